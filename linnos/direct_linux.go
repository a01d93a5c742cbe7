//go:build linux

package linnos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DirectConfig configures ReplayDirect.
type DirectConfig struct {
	// Paths are the replicas: regular files or block devices opened
	// read-only with O_DIRECT. At least one.
	Paths []string
	// Mode is Baseline or LinnOS (hedging is not supported on real devices).
	Mode       Mode
	Predictor  Predictor   // required for LinnOS
	MaxRetries int         // LinnOS retries (default 2)
	QueueDepth int         // concurrent reads (default 16, max 1024)
	Pending    PendingUnit // unit of the pending feature
	// TimeScale multiplies trace inter-arrival times; 0 issues reads as fast
	// as the queue depth allows.
	TimeScale float64
}

type directReplica struct {
	f    *os.File
	size int64
	mu   sync.Mutex
	ext  Extractor
	pend int
}

// ReplayDirect issues the reads of trace (writes are skipped: real devices
// are never written) to real files or block devices with O_DIRECT and
// reports their latencies. A read's primary replica is dev modulo
// len(Paths); offsets are wrapped into the target's size and aligned to
// 4 KiB. In LinnOS mode the predictor sees each replica's real pending count
// and completed-read latencies. Accuracy is not measured (the latency a
// revoked read would have had is unknown).
func ReplayDirect(ctx context.Context, trace []IO, cfg DirectConfig) (*ModeResult, error) {
	if len(cfg.Paths) == 0 || len(cfg.Paths) > 64 {
		return nil, fmt.Errorf("linnos: direct replay: %d paths (want 1..64)", len(cfg.Paths))
	}
	if cfg.Mode != Baseline && cfg.Mode != LinnOS {
		return nil, fmt.Errorf("linnos: direct replay: mode %v not supported (baseline or linnos)", cfg.Mode)
	}
	if cfg.Mode == LinnOS && cfg.Predictor == nil {
		return nil, errors.New("linnos: direct replay: LinnOS mode needs a Predictor")
	}
	if cfg.QueueDepth == 0 {
		cfg.QueueDepth = 16
	}
	if cfg.QueueDepth < 1 || cfg.QueueDepth > 1024 {
		return nil, fmt.Errorf("linnos: direct replay: queue depth %d not in [1,1024]", cfg.QueueDepth)
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 2
	}
	if math.IsNaN(cfg.TimeScale) || cfg.TimeScale < 0 || math.IsInf(cfg.TimeScale, 0) {
		return nil, errors.New("linnos: direct replay: bad time scale")
	}
	reps := make([]*directReplica, len(cfg.Paths))
	defer func() {
		for _, r := range reps {
			if r != nil {
				r.f.Close()
			}
		}
	}()
	for i, p := range cfg.Paths {
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			return nil, fmt.Errorf("linnos: direct replay: open %s with O_DIRECT: %w", p, err)
		}
		size, err := f.Seek(0, 2)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("linnos: direct replay: size of %s: %w", p, err)
		}
		if size < pageSize {
			f.Close()
			return nil, fmt.Errorf("linnos: direct replay: %s is smaller than 4 KiB", p)
		}
		reps[i] = &directReplica{f: f, size: size / pageSize * pageSize}
	}

	type job struct {
		x   IO
		idx int
	}
	jobs := make(chan job)
	var reads []IO
	for _, x := range trace {
		if x.Op == Read {
			reads = append(reads, x)
		}
	}
	lat := make([]float64, len(reads))
	res := &ModeResult{Mode: cfg.Mode}
	var mu sync.Mutex // guards res counters and firstErr
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < cfg.QueueDepth; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf, err := unix.Mmap(-1, 0, MaxTraceIOSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
			if err != nil {
				mu.Lock()
				firstErr = cmpErr(firstErr, fmt.Errorf("linnos: direct replay: buffer: %w", err))
				mu.Unlock()
				for range jobs {
				}
				return
			}
			defer unix.Munmap(buf)
			feat := make([]int32, NumInputs)
			dec := make([]bool, 1)
			for j := range jobs {
				d, err := directRead(j.x, reps, cfg, buf, feat, dec, res, &mu)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					continue
				}
				lat[j.idx] = d
			}
		}()
	}
	start := time.Now()
	var err error
	for i, x := range reads {
		if cfg.TimeScale > 0 {
			due := start.Add(time.Duration((x.TsUs - reads[0].TsUs) * cfg.TimeScale * float64(time.Microsecond)))
			if wait := time.Until(due); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
		}
		if err = ctx.Err(); err != nil {
			break
		}
		jobs <- job{x: x, idx: i}
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("linnos: direct replay: %w", err)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	res.setLatencies(lat)
	return res, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// readSize is the size of the read x becomes on r: page multiples, at
// most the file and the buffer.
func (r *directReplica) readSize(x IO, buf []byte) int64 {
	size := min(x.Size, r.size, int64(len(buf)))
	return max(size/pageSize*pageSize, pageSize)
}

// directRead performs one read (with LinnOS revocation when configured) and
// returns its latency in µs.
func directRead(x IO, reps []*directReplica, cfg DirectConfig, buf []byte, feat []int32, dec []bool, res *ModeResult, mu *sync.Mutex) (float64, error) {
	t0 := time.Now()
	primary := x.Dev % len(reps)
	target := primary
	if cfg.Mode == LinnOS {
		tries := min(1+cfg.MaxRetries, len(reps))
		target = -1
		for k := 0; k < tries; k++ {
			rn := (primary + k) % len(reps)
			r := reps[rn]
			r.mu.Lock()
			r.ext.Features(r.pend+cfg.Pending.Weight(r.readSize(x, buf)), feat)
			r.mu.Unlock()
			if err := cfg.Predictor.Predict(feat, 1, dec); err != nil {
				return 0, fmt.Errorf("linnos: direct replay: predict: %w", err)
			}
			mu.Lock()
			res.Predictions++
			if dec[0] {
				res.Revokes++
			}
			mu.Unlock()
			if !dec[0] {
				target = rn
				break
			}
		}
		if target < 0 {
			mu.Lock()
			res.Forced++
			mu.Unlock()
			target = primary
		}
	}
	r := reps[target]
	size := r.readSize(x, buf)
	off := (x.Offset / pageSize * pageSize) % (r.size - size + pageSize)
	w := cfg.Pending.Weight(size)
	r.mu.Lock()
	r.pend += w
	pendAt := r.pend // this read included, as its features counted it
	r.mu.Unlock()
	ts := time.Now()
	_, err := r.f.ReadAt(buf[:size], off)
	d := float64(time.Since(ts).Nanoseconds()) / 1e3
	r.mu.Lock()
	r.pend -= w
	r.ext.Complete(pendAt, int(math.Round(d)))
	r.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("linnos: direct replay: read %s at %d (%d bytes): %w", r.f.Name(), off, size, err)
	}
	return float64(time.Since(t0).Nanoseconds()) / 1e3, nil
}
