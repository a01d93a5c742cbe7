package features

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Drainer hands out every sample recorded in one schema exactly once, in
// batches, for training capture (online adaptation). Samples it cannot
// deliver any more (overwritten in a key's ring before it read them,
// belonging to a dropped key's reused slot, or lost by writers) are counted
// in Batch.Dropped: loss is never silent and a sample is never delivered
// twice. A Drainer's cursors live in Go memory, so any number of
// independent Drainers can follow the same schema. Drain may be called from
// several goroutines; calls are serialised.
type Drainer struct {
	r *Registry
	s *SchemaInfo

	mu   sync.Mutex
	cur  []cursor // per key slot
	next uint64   // slot to resume the round-robin scan at
}

// cursor is the drainer's position in one key slot. The zero value means
// "from index 0 of generation 0", so that every index of generations the
// drainer never saw is counted as dropped (slot generations start at 1).
type cursor struct {
	gen  uint64 // generation being followed
	next uint64 // next record index to deliver
}

// Sample is one drained record.
type Sample struct {
	Key   uint64
	Index uint64 // free-running record index within the key's generation
	Data  []byte // RecordSize bytes, valid until the Batch is reused
}

// Batch is the result of Drain. Reuse a Batch across calls to avoid
// allocation.
type Batch struct {
	Samples []Sample
	// Dropped counts record indices reserved since the previous Drain (by
	// this Drainer) that will never be delivered: overwritten before they
	// were drained, lost by writers, or cut off by a DropKey. An index that
	// a writer abandoned because it raced with DropKey is counted too
	// (its sample was recorded again in the key's new generation), so
	// Dropped may over-count but never under-counts.
	Dropped uint64
	data    []byte
}

// NewDrainer returns a Drainer for schema id. With fromNow, samples already
// recorded when NewDrainer runs are skipped (and not counted as dropped);
// otherwise every sample since each key's creation is delivered or counted.
func (r *Registry) NewDrainer(id SchemaID, fromNow bool) (*Drainer, error) {
	s, err := r.schema(id)
	if err != nil {
		return nil, fmt.Errorf("features: new drainer: %w", err)
	}
	d := &Drainer{r: r, s: s, cur: make([]cursor, s.tableSize)}
	if fromNow {
		for p := uint64(0); p < s.tableSize; p++ {
			so := r.slotOff(s, p)
			st := atomic.LoadUint64(r.u64(so + slotState))
			d.cur[p] = cursor{gen: st >> genShift, next: atomic.LoadUint64(r.u64(so + slotWriteIdx))}
		}
	}
	return d, nil
}

// Drain fills b with up to maxSamples samples (>= 1) and the count of samples
// dropped since the previous call. Keys are visited round-robin so that one
// busy key cannot starve the others. An empty batch with Dropped == 0 means
// nothing new was recorded.
func (d *Drainer) Drain(maxSamples int, b *Batch) error {
	if maxSamples < 1 {
		return fmt.Errorf("features: drain: %w: max = %d, want >= 1", ErrWindow, maxSamples)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, s := d.r, d.s
	rs := s.recordSize
	if cap(b.data) < maxSamples*rs {
		b.data = make([]byte, maxSamples*rs)
	}
	b.data = b.data[:maxSamples*rs]
	b.Samples = b.Samples[:0]
	b.Dropped = 0
	for k := uint64(0); k < s.tableSize && len(b.Samples) < maxSamples; k++ {
		p := (d.next + k) & (s.tableSize - 1)
		st, key, base, end, ok := r.slotSpan(s, p)
		if t := st & stMask; !ok || (t != stLive && t != stOwned && t != stDead) {
			continue // free, being claimed, or changing: look next time
		}
		gen := st >> genShift
		c := d.cur[p]
		if c.gen != gen {
			if base > c.next {
				// The generation(s) we followed ended before base.
				b.Dropped += base - c.next
			}
			c = cursor{gen: gen, next: max(base, c.next)}
		}
		if end > c.next && end-c.next > s.ringLen {
			b.Dropped += end - s.ringLen - c.next
			c.next = end - s.ringLen
		}
		for c.next < end && len(b.Samples) < maxSamples {
			i := len(b.Samples)
			dst := b.data[i*rs : (i+1)*rs : (i+1)*rs]
			switch r.readRec(s, p, c.next, dst) {
			case rdOK:
				b.Samples = append(b.Samples, Sample{Key: key, Index: c.next, Data: dst})
			case rdNewer, rdHole:
				b.Dropped++
			default:
				// In progress: stop on this key; the record completes, or
				// is overwritten and counted, before a later Drain.
				goto nextKey
			}
			c.next++
		}
	nextKey:
		d.cur[p] = c
		if len(b.Samples) == maxSamples {
			d.next = p // resume at this key
			return nil
		}
	}
	d.next = (d.next + 1) & (s.tableSize - 1)
	return nil
}
