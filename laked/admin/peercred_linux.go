package admin

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerAllowed checks the connecting process's credentials (SO_PEERCRED,
// taken by the kernel at connect): root, laked's own effective user, or a
// process whose effective group is the socket file's group (so that an
// administrator can open the API to a group with chgrp and mode 0660).
// The socket's mode alone is not trusted: a mode widened by mistake does
// not open the API to every local user.
func peerAllowed(c *net.UnixConn, path string, self int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("admin: peer credentials: %w", cerr)
	}
	if cred.Uid == 0 || int(cred.Uid) == self {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("admin: stat %s: %w", path, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Gid == cred.Gid {
		return nil
	}
	return fmt.Errorf("admin: peer uid %d gid %d is neither root, laked's user nor in the socket's group", cred.Uid, cred.Gid)
}
