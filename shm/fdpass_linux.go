//go:build linux

package shm

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// SendMsgFD writes a handshake message with an optional file descriptor
// (fd < 0: none) over a unix connection.
func SendMsgFD(c *net.UnixConn, msg []byte, fd int) error {
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	n, oobn, err := c.WriteMsgUnix(msg, oob, nil)
	if err != nil {
		return fmt.Errorf("shm: send handshake: %w", err)
	}
	if n != len(msg) || oobn != len(oob) {
		return fmt.Errorf("shm: short handshake write (%d/%d bytes, %d/%d control)", n, len(msg), oobn, len(oob))
	}
	return nil
}

// RecvMsgFD reads one handshake message and at most one descriptor (-1 if
// none came). Extra descriptors are closed and reported as an error.
func RecvMsgFD(c *net.UnixConn) ([]byte, int, error) {
	buf := make([]byte, HandshakeLen)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, -1, fmt.Errorf("shm: receive handshake: %w", err)
	}
	fd := -1
	var extra error
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil {
			return nil, -1, fmt.Errorf("shm: parse handshake control message: %w", perr)
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				continue
			}
			for _, f := range fds {
				if fd < 0 {
					fd = f
				} else {
					unix.Close(f)
					extra = fmt.Errorf("%w: more than one descriptor", ErrHandshake)
				}
			}
		}
	}
	if flags&unix.MSG_CTRUNC != 0 && extra == nil {
		extra = fmt.Errorf("%w: control message truncated", ErrHandshake)
	}
	if extra != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, -1, extra
	}
	return buf[:n], fd, nil
}
