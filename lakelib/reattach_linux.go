//go:build linux

package lakelib

import (
	"context"

	"fmt"
	"net"
	"time"

	"github.com/lakeos/lake/shm"
)

// reattach hands the client's region to the laked now listening on the
// socket, retrying until ReconnectTimeout. On success it fails the calls
// the old laked consumed but never completed, and watches the new
// connection.
func (c *Client) reattach() error {
	timeout := c.opts.ReconnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-c.closed:
			return ErrClosed
		default:
		}
		conn, rep, err := c.tryReattach()
		if err == nil {
			c.resume(conn, rep)
			return nil
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("lakelib: no laked to re-attach to within %v: %w", timeout, lastErr)
}

func (c *Client) tryReattach() (*net.UnixConn, shm.Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, shm.Reply{}, err
	}
	conn := nc.(*net.UnixConn)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	hello := shm.Hello{Kind: shm.HelloReattach}
	c.life.RLock()
	if c.unmapped {
		c.life.RUnlock()
		conn.Close()
		return nil, shm.Reply{}, ErrClosed
	}
	err = shm.SendMsgFD(conn, hello.Encode(), c.mapping.FD())
	c.life.RUnlock()
	if err != nil {
		conn.Close()
		return nil, shm.Reply{}, err
	}
	msg, fd, err := shm.RecvMsgFD(conn)
	if fd >= 0 {
		closeFD(fd)
	}
	if err != nil {
		conn.Close()
		return nil, shm.Reply{}, err
	}
	rep, err := shm.DecodeReply(msg)
	if err == nil && rep.Status != shm.StatusOK {
		err = fmt.Errorf("laked refused the re-attach: %s: %s", rep.Status, rep.Message)
	}
	if err != nil {
		conn.Close()
		return nil, shm.Reply{}, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, rep, nil
}

// resume settles the calls the old laked took: it reaps every completion
// the old laked posted, then fails each call still pending whose ring
// position is before the new laked's resume head.
func (c *Client) resume(conn *net.UnixConn, rep shm.Reply) {
	c.submitMu.Lock()
	c.reapMu.Lock()
	c.reapLocked()
	lost := 0
	for i := range c.calls {
		cl := &c.calls[i]
		st := cl.state.Load()
		if (st != callPending && st != callAbandoned) || !cl.published.Load() {
			continue // not in the ring yet: it will be submitted to the new laked
		}
		if int32(cl.pos.Load()-rep.ResumeHead) >= 0 {
			continue // still in the ring: the new laked serves it
		}
		lost++
		if st == callAbandoned {
			c.releaseCall(uint32(i))
			continue
		}
		c.complete(uint32(i), statusLost, [2]uint64{})
	}
	c.reapMu.Unlock()
	c.submitMu.Unlock()
	c.connMu.Lock()
	old := c.conn
	c.conn = conn
	c.connMu.Unlock()
	if old != nil {
		old.Close()
	}
	c.restarts.Add(1)
	go c.watch(conn)

}

// Restarts counts the laked restarts this client re-attached across.
func (c *Client) Restarts() uint64 { return c.restarts.Load() }
