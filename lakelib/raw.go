package lakelib

import (
	"context"
	"errors"
	"fmt"

	"github.com/lakeos/lake/shm"
)

// Raw submits an arbitrary submission (opcode, flags and args as given;
// the tag is the client's) and returns its completion, whatever its
// status. It is for tools and tests that speak the protocol directly.
func (c *Client) Raw(ctx context.Context, e shm.SQE) (shm.CQE, error) {
	var out shm.CQE
	c.life.RLock()
	defer c.life.RUnlock()
	if c.unmapped {
		return out, ErrClosed
	}
	i, err := c.acquire(ctx)
	if err != nil {
		return out, err
	}
	if err := c.submit(ctx, i, &e); err != nil {
		c.releaseCall(i)
		return out, err
	}
	if err := c.wait(ctx, i); err != nil {
		return out, err
	}
	cl := &c.calls[i]
	out = shm.CQE{Status: cl.status, Tag: e.Tag, Results: cl.results}
	c.releaseCall(i)
	if out.Status == statusLost {
		return out, ErrLostInRestart
	}
	return out, nil
}

// Batch submits many operations at once and waits for all of them: one
// doorbell for the lot, which is how a client reaches the ring's
// throughput. It returns the completions in submission order.
func (c *Client) Batch(ctx context.Context, es []shm.SQE, out []shm.CQE) error {
	if len(out) < len(es) {
		return fmt.Errorf("lakelib: batch of %d with room for %d completions", len(es), len(out))
	}
	if len(es) > len(c.calls) {
		return fmt.Errorf("lakelib: batch of %d is larger than the ring (%d)", len(es), len(c.calls))
	}
	c.life.RLock()
	defer c.life.RUnlock()
	if c.unmapped {
		return ErrClosed
	}
	idx := make([]uint32, 0, len(es))
	var firstErr error
	for k := range es {
		i, err := c.acquire(ctx)
		if err != nil {
			firstErr = err
			break
		}
		cl := &c.calls[i]
		cl.op = es[k].Opcode
		es[k].Tag = uint64(cl.gen.Load())<<32 | uint64(i)
		cl.state.Store(callPending)
		for {
			err := c.publish(cl, &es[k])
			if err == nil {
				break
			}
			if !errors.Is(err, shm.ErrRingFull) {
				firstErr = fmt.Errorf("lakelib: submit: %w", err)
				break
			}
			if err := c.failErr(); err != nil {
				firstErr = err
				break
			}
			c.tryReap()
		}
		if firstErr != nil {
			c.releaseCall(i)
			break
		}
		idx = append(idx, i)
	}
	_ = c.sq.Bell.Ring()
	for k, i := range idx {
		cl := &c.calls[i]
		// By the time earlier completions are read most later ones are
		// in: reap in bulk, and take the full wait (spin, then park) only
		// for a call still out.
		if cl.state.Load() != callDone {
			c.tryReap()
		}
		if cl.state.Load() != callDone {
			if err := c.wait(ctx, i); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
		}
		out[k] = shm.CQE{Status: cl.status, Tag: es[k].Tag, Results: cl.results}
		c.releaseCall(i)
	}
	return firstErr
}

// Region exposes the client's region (for tools and tests that inspect
// or deliberately corrupt it).
func (c *Client) Region() *shm.Region { return c.region }
