//go:build !linux

package main

import (
	"errors"
	"net"
	"time"
)

type tinfo struct {
	acked uint64
	rtt   time.Duration
}

func tcpInfo(*net.TCPConn) (tinfo, error) { return tinfo{}, errors.New("TCP_INFO needs Linux") }
