package main

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

type tinfo struct {
	acked uint64
	rtt   time.Duration
}

// tcpInfo reads the bytes acknowledged and the smoothed RTT of c.
func tcpInfo(c *net.TCPConn) (tinfo, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return tinfo{}, err
	}
	var ti *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) { ti, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return tinfo{}, err
	}
	if serr != nil {
		return tinfo{}, serr
	}
	return tinfo{acked: ti.Bytes_acked, rtt: time.Duration(ti.Rtt) * time.Microsecond}, nil
}
