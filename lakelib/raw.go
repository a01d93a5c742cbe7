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
		idx = append(idx, i)
	}
	// Publish in bulk: one ring claim for as many slots as are free.
	published := 0
	for published < len(idx) {
		c.submitMu.RLock()
		first, n, err := c.sq.TrySubmitBatch(es[published:len(idx)])
		for j := 0; j < n; j++ {
			cl := &c.calls[idx[published+j]]
			cl.pos.Store(first + uint32(j))
			cl.published.Store(true)
		}
		c.submitMu.RUnlock()
		published += n
		if err == nil {
			continue
		}
		if !errors.Is(err, shm.ErrRingFull) {
			firstErr = fmt.Errorf("lakelib: submit: %w", err)
		} else if ferr := c.failErr(); ferr != nil {
			firstErr = ferr
		} else if cerr := ctx.Err(); cerr != nil {
			firstErr = fmt.Errorf("lakelib: submission ring full: %w", cerr)
		}
		if firstErr != nil {
			break
		}
		_ = c.sq.Bell.Ring()
		c.tryReap()
	}
	// Calls never published are nobody else's: release them now.
	for _, i := range idx[published:] {
		c.releaseCall(i)
	}
	idx = idx[:published]
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
