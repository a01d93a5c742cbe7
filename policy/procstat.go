package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ProcStat reports the host's CPU utilisation from the aggregate "cpu"
// line of /proc/stat: the share of non-idle time (idle and iowait count
// as idle) between two readings. Reading the file costs microseconds, so
// Util re-reads it at most once per interval and otherwise returns the
// last value; callers on the batch path never wait for a reader.
type ProcStat struct {
	path     string
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	last      time.Time
	busy, all uint64
	err       error
	util      atomic.Uint32
}

// NewProcStat reads path (normally /proc/stat) at most once per interval.
// now is the clock (time.Now when nil). It fails when the file cannot be
// read or parsed now.
func NewProcStat(path string, interval time.Duration, now func() time.Time) (*ProcStat, error) {
	if now == nil {
		now = time.Now
	}
	p := &ProcStat{path: path, interval: interval, now: now}
	busy, all, err := readProcStat(path)
	if err != nil {
		return nil, err
	}
	p.busy, p.all, p.last = busy, all, now()
	return p, nil
}

// Util returns CPU utilisation in percent, 0..100, over the time between
// the last two readings. While another goroutine reads the file it
// returns the previous value.
func (p *ProcStat) Util() uint32 {
	if !p.mu.TryLock() {
		return p.util.Load() // another goroutine is refreshing
	}
	defer p.mu.Unlock()
	now := p.now()
	if now.Sub(p.last) < p.interval {
		return p.util.Load()
	}
	busy, all, err := readProcStat(p.path)
	p.err = err
	if err != nil {
		return p.util.Load()
	}
	if all > p.all && busy >= p.busy {
		db, da := busy-p.busy, all-p.all
		p.util.Store(uint32(min(100, db*100/da)))
	}
	// Counters that went backwards (a reset) only restart the interval.
	p.busy, p.all, p.last = busy, all, now
	return p.util.Load()
}

// Err is the error of the last reading, nil when it succeeded.
func (p *ProcStat) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// maxProcStatLine bounds the "cpu" line read from the file.
const maxProcStatLine = 4096

var errProcStat = errors.New("procstat: malformed /proc/stat")

// readProcStat returns (busy, total) jiffies from the aggregate cpu line.
func readProcStat(path string) (busy, total uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, maxProcStatLine)
	line, isPrefix, err := r.ReadLine()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errProcStat, err)
	}
	if isPrefix {
		return 0, 0, fmt.Errorf("%w: first line longer than %d bytes", errProcStat, maxProcStatLine)
	}
	return parseCPULine(line)
}

// parseCPULine parses "cpu user nice system idle iowait irq softirq steal
// [guest guest_nice]". guest time is already inside user and nice, so it
// is not added again.
func parseCPULine(line []byte) (busy, total uint64, err error) {
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("%w: first line %q", errProcStat, truncate(line))
	}
	var v [8]uint64
	n := min(len(f)-1, 8)
	for i := 0; i < n; i++ {
		x, err := strconv.ParseUint(string(f[i+1]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%w: field %d: %v", errProcStat, i+1, err)
		}
		v[i] = x
	}
	idle := v[3] + v[4]
	for i := 0; i < n; i++ {
		if total+v[i] < total {
			return 0, 0, fmt.Errorf("%w: counters overflow", errProcStat)
		}
		total += v[i]
	}
	return total - idle, total, nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
