package lakelib

import "golang.org/x/sys/unix"

// DaemonPID is the process id of the laked serving this client, as the
// kernel reports it for the socket (SO_PEERCRED), or 0 if unknown (tools
// use it to read laked's CPU time from /proc).
func (c *Client) DaemonPID() int {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.conn == nil {
		return 0
	}
	raw, err := c.conn.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}
