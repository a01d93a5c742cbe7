//go:build linux

package blktrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Counter indexes in the BPF counters map (mirrors bpf/blktrace.c).
const (
	cntLost = iota
	cntUnmatched
	cntIssues
	cntCompletes
	cntTrackFail
	cntReplaced
	cntMax
)

// Options configures Open.
type Options struct {
	// Devices are the kernel dev_t values (KernelDev, DeviceOf) to trace
	// from the start; more can be added with Watch. Events on other
	// devices are dropped in the kernel.
	Devices []uint32
	// RingBytes is the ring buffer size (a power of two, at least the page
	// size); 0 means 4 MiB (~87k events).
	RingBytes uint32
}

// Stats are the tracer's counters.
//
// Accounting: every request issued on a watched device is either delivered
// as an issue event or counted in Lost; every completion is either
// delivered, counted in Lost (ring full), Missed (program skipped), or,
// measured on kernel 6.18 with loop devices over virtio, silently not seen
// (about 0 to 2% of completions; the cause is not known): such requests stay
// in the in-flight table, so once the device is idle
// Lost+Missed+InFlight+Replaced bounds every missing completion. Call
// LostCompletions for that sum.
type Stats struct {
	// Lost is the number of events the kernel dropped because the ring
	// buffer was full.
	Lost uint64
	// Unmatched counts completions whose issue was not recorded (issued
	// before the tracer attached, or evicted from the in-flight table).
	Unmatched uint64
	// Issues and Completes are the issues seen and completions matched on
	// watched devices, whether or not their event could be queued.
	Issues, Completes uint64
	// TrackFailures counts issues that could not enter the in-flight table.
	TrackFailures uint64
	// Missed counts runs of the two programs the kernel skipped because
	// the same program was already running on that CPU (recursion
	// misses): each is an issue or completion that was not seen.
	Missed uint64
	// Malformed counts ring records that DecodeEvent rejected.
	Malformed uint64
	// InFlight is the number of issued requests whose completion has not
	// been seen. Once the traced devices are idle, these are completions
	// the tracer missed (see Lost for the accounting).
	InFlight uint64
	// Replaced counts issues of a request (struct request) that was already
	// in the in-flight table: its earlier issue's completion was not seen
	// (a requeue, or a missed completion).
	Replaced uint64
}

// Tracer is an attached block tracer. Next and Run must be called from one
// goroutine at a time; Stats, Watch and Close may be called from any.
type Tracer struct {
	objs      blktraceObjects
	links     []link.Link
	rd        *ringbuf.Reader
	malformed atomic.Uint64
}

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("blktrace: tracer closed")

// Open loads the BPF program, watches opts.Devices and attaches to
// block_rq_issue and block_rq_complete (as BTF raw tracepoints). It needs
// root (CAP_BPF and CAP_PERFMON) and kernel BTF (/sys/kernel/btf/vmlinux).
func Open(opts Options) (t *Tracer, err error) {
	if opts.RingBytes != 0 {
		ps := uint32(os.Getpagesize())
		if opts.RingBytes < ps || opts.RingBytes&(opts.RingBytes-1) != 0 {
			return nil, fmt.Errorf("blktrace: ring size %d is not a power of two >= %d", opts.RingBytes, ps)
		}
	}
	_ = rlimit.RemoveMemlock() // only needed before kernel 5.11; harmless after
	spec, err := loadBlktrace()
	if err != nil {
		return nil, fmt.Errorf("blktrace: load spec: %w", err)
	}
	if opts.RingBytes != 0 {
		spec.Maps[blktraceMapEvents].MaxEntries = opts.RingBytes
	}
	t = &Tracer{}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		return nil, fmt.Errorf("blktrace: load BPF objects: %w", err)
	}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	for _, d := range opts.Devices {
		if err := t.Watch(d); err != nil {
			return nil, err
		}
	}
	if t.rd, err = ringbuf.NewReader(t.objs.Events); err != nil {
		return nil, fmt.Errorf("blktrace: ring buffer reader: %w", err)
	}
	for _, a := range []struct {
		name string
		prog *ebpf.Program
	}{{"block_rq_complete", t.objs.LakeRqComplete}, {"block_rq_issue", t.objs.LakeRqIssue}} {
		l, err := link.AttachTracing(link.TracingOptions{Program: a.prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return nil, fmt.Errorf("blktrace: attach block/%s: %w", a.name, err)
		}
		t.links = append(t.links, l)
	}
	return t, nil
}

// Watch starts tracing dev (a kernel dev_t). Requests already in flight on
// dev when Watch is called complete unmatched.
func (t *Tracer) Watch(dev uint32) error {
	var zero int64
	if err := t.objs.Watch.Update(dev, zero, ebpf.UpdateNoExist); err != nil {
		if errors.Is(err, ebpf.ErrKeyExist) {
			return nil
		}
		return fmt.Errorf("blktrace: watch %d:%d: %w", dev>>20, dev&(1<<20-1), err)
	}
	return nil
}

// Next blocks until an event arrives and returns it. After Close it returns
// ErrClosed; after Run's context is done, an error wrapping
// ringbuf.ErrFlushed. A record
// that fails to decode is counted in Stats.Malformed and skipped.
func (t *Tracer) Next() (Event, error) {
	for {
		rec, err := t.rd.Read()
		if err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return Event{}, ErrClosed
			}
			return Event{}, fmt.Errorf("blktrace: read ring: %w", err)
		}
		e, err := DecodeEvent(rec.RawSample)
		if err != nil {
			t.malformed.Add(1)
			continue
		}
		return e, nil
	}
}

// Run calls fn for every event until ctx is done or fn returns an error.
// When ctx is done, it first delivers the events already in the ring
// buffer, then returns nil.
func (t *Tracer) Run(ctx context.Context, fn func(Event) error) error {
	stop := context.AfterFunc(ctx, func() { _ = t.rd.Flush() })
	defer stop()
	for {
		e, err := t.Next()
		if err != nil {
			if errors.Is(err, ringbuf.ErrFlushed) {
				return nil
			}
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// Reset forgets every request in flight and zeroes the kernel queue-depth
// counters, undoing the drift of missed completions. Call it only while
// the watched devices are idle (between runs): a request in flight during
// Reset completes unmatched.
func (t *Tracer) Reset() error {
	var k [16]byte
	var keys [][16]byte
	var v [24]byte
	it := t.objs.Inflight.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("blktrace: reset: %w", err)
	}
	for _, k := range keys {
		if err := t.objs.Inflight.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("blktrace: reset: %w", err)
		}
	}
	var dev uint32
	var depth int64
	var devs []uint32
	wit := t.objs.Watch.Iterate()
	for wit.Next(&dev, &depth) {
		devs = append(devs, dev)
	}
	if err := wit.Err(); err != nil {
		return fmt.Errorf("blktrace: reset: %w", err)
	}
	for _, d := range devs {
		if err := t.objs.Watch.Update(d, int64(0), ebpf.UpdateExist); err != nil {
			return fmt.Errorf("blktrace: reset depth of %d:%d: %w", d>>20, d&(1<<20-1), err)
		}
	}
	return nil
}

// Stats reads the counters.
func (t *Tracer) Stats() (Stats, error) {
	var v [cntMax]uint64
	for i := range v {
		if err := t.objs.Counters.Lookup(uint32(i), &v[i]); err != nil {
			return Stats{}, fmt.Errorf("blktrace: read counter %d: %w", i, err)
		}
	}
	var missed uint64
	for _, p := range []*ebpf.Program{t.objs.LakeRqIssue, t.objs.LakeRqComplete} {
		ps, err := p.Stats()
		if err != nil {
			return Stats{}, fmt.Errorf("blktrace: program stats: %w", err)
		}
		missed += ps.RecursionMisses
	}
	var (
		k        [16]byte // struct rq_key
		v2       [24]byte // struct rq_val
		inflight uint64
	)
	it := t.objs.Inflight.Iterate()
	for it.Next(&k, &v2) {
		inflight++
	}
	if err := it.Err(); err != nil {
		return Stats{}, fmt.Errorf("blktrace: read in-flight table: %w", err)
	}
	return Stats{
		InFlight: inflight, Missed: missed, Replaced: v[cntReplaced], Lost: v[cntLost], Unmatched: v[cntUnmatched], Issues: v[cntIssues],
		Completes: v[cntCompletes], TrackFailures: v[cntTrackFail], Malformed: t.malformed.Load(),
	}, nil
}

// LostCompletions is the number of completions the trace may lack: Lost +
// Missed + InFlight + Replaced (meaningful when the watched devices are
// idle).
func (s Stats) LostCompletions() uint64 { return s.Lost + s.Missed + s.InFlight + s.Replaced }

// Close detaches the programs and frees the maps. It is safe to call more
// than once.
func (t *Tracer) Close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	if t.rd != nil {
		errs = append(errs, t.rd.Close())
		t.rd = nil
	}
	errs = append(errs, t.objs.Close())
	return errors.Join(errs...)
}

// DeviceOf returns the kernel dev_t of a block device node.
func DeviceOf(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("blktrace: stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, fmt.Errorf("blktrace: %s is not a block device", path)
	}
	return KernelDev(unix.Major(st.Rdev), unix.Minor(st.Rdev)), nil
}
