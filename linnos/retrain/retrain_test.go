package retrain

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/linnos"
)

func newRegistry(t testing.TB) (*features.Registry, *features.LinnOS) {
	t.Helper()
	cfg := features.Config{MaxSchemas: 4, MaxKeys: 16, MaxHistory: 4096, ArenaBytes: 4 << 20}
	reg, err := features.Create(make([]byte, features.SizeFor(cfg)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := features.NewLinnOS(reg, 8)
	if err != nil {
		t.Fatal(err)
	}
	return reg, l
}

// fakeInstaller records what the trainer installs.
type fakeInstaller struct {
	mu       sync.Mutex
	models   map[uint64]*linnos.IntModel
	versions map[uint64]uint64
	metas    []linnos.ModelMeta
}

func (f *fakeInstaller) Install(dev uint64, m *linnos.IntModel, meta linnos.ModelMeta) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.models == nil {
		f.models, f.versions = map[uint64]*linnos.IntModel{}, map[uint64]uint64{}
	}
	f.models[dev] = m
	f.versions[dev]++
	f.metas = append(f.metas, meta)
	return f.versions[dev], nil
}

func (f *fakeInstaller) Current(dev uint64) (*linnos.IntModel, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.models[dev]
	return m, ok
}

// kernelDevice simulates what the dm target does for one replica: reads
// arrive (Poisson), each sees the device's pending count (itself
// included) and the history of the last 4 completed reads; the device
// stalls in bursts (as an SSD in GC), so slow reads follow slow reads;
// completions are recorded, in completion order, with the ordinals the
// kernel keeps. want[done_seq] is the vector the kernel computed at the
// read's arrival.
type kernelDevice struct {
	rng      *rand.Rand
	t        float64 // µs
	pending  int
	ndone    uint32
	hist     linnos.Extractor
	histDone [linnos.HistoryLen]float64 // completion time of each history entry (µs)
	ttl      float64                    // history time-to-live (µs), as the kernel's hist_ttl_us
	stales   int                        // reads that arrived with stale history
	inflight doneHeap
	stallEnd float64
	want     map[uint32][linnos.NumInputs]int32
}

type flight struct {
	done            float64
	pending, arrive uint32
	stale           uint32
	lat             float64
	x               [linnos.NumInputs]int32
}

type doneHeap []flight

func (h doneHeap) Len() int           { return len(h) }
func (h doneHeap) Less(i, j int) bool { return h[i].done < h[j].done }
func (h doneHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *doneHeap) Push(x any)        { *h = append(*h, x.(flight)) }
func (h *doneHeap) Pop() any {
	o := *h
	x := o[len(o)-1]
	*h = o[:len(o)-1]
	return x
}

func newKernelDevice(seed uint64) *kernelDevice {
	return &kernelDevice{rng: rand.New(rand.NewPCG(seed, 1)), want: map[uint32][linnos.NumInputs]int32{}, ttl: 1500}
}

// run simulates n reads and records their completions for key; poll, if
// not nil, runs after every pollEvery completions (laked draining).
func (k *kernelDevice) run(t testing.TB, l *features.LinnOS, key uint64, n int, pollEvery int, poll func()) {
	t.Helper()
	complete := func(upTo float64) {
		for len(k.inflight) > 0 && k.inflight[0].done <= upTo {
			f := heap.Pop(&k.inflight).(flight)
			k.pending--
			k.ndone++
			k.hist.Complete(int(f.pending), int(f.lat))
			copy(k.histDone[:], k.histDone[1:])
			k.histDone[linnos.HistoryLen-1] = f.done
			k.want[k.ndone] = f.x
			c := features.LinnOSCompletion{LatencyUs: uint32(f.lat), Pending: f.pending, ArriveSeq: f.arrive, DoneSeq: k.ndone, Stale: f.stale}
			if err := l.RecordCompletion(key, c); err != nil {
				t.Fatal(err)
			}
			if poll != nil && k.ndone%uint32(pollEvery) == 0 {
				poll()
			}
		}
	}
	for i := 0; i < n; i++ {
		k.t += k.rng.ExpFloat64() * 60
		if k.rng.Float64() < 0.01 {
			k.t += k.rng.Float64() * 3 * k.ttl // idle: some history outlives the TTL
		}
		complete(k.t)
		if k.t > k.stallEnd && k.rng.Float64() < 0.004 {
			k.stallEnd = k.t + 2000 + k.rng.Float64()*6000 // a GC burst
		}
		k.pending++
		f := flight{pending: uint32(k.pending), arrive: k.ndone}
		// the kernel's time-to-live (lake_linnos_hist_stale): the newest
		// entry older than the TTL and all before it read as zeros
		for j := linnos.HistoryLen; j > 0; j-- {
			if k.t-k.histDone[j-1] > k.ttl {
				f.stale = uint32(j)
				break
			}
		}
		if f.stale > 0 && f.arrive > 0 {
			k.stales++
		}
		e := k.hist
		e.Expire(int(f.stale))
		e.Features(k.pending, f.x[:])
		f.lat = 60 + 12*float64(k.pending) + k.rng.Float64()*30
		if k.t < k.stallEnd {
			f.lat += k.stallEnd - k.t + 400
		}
		f.done = k.t + f.lat
		heap.Push(&k.inflight, f)
	}
	complete(k.t + 1e9)
}

func testConfig() Config {
	return Config{MinSamples: 3000, Window: 6000, HoldOut: 0.25, MinAccuracy: 0.85,
		Train: linnos.TrainConfig{ThresholdUs: 600, Epochs: 4, Seed: 1},
		Now:   func() time.Time { return time.Unix(1700000000, 0) }}
}

// TestRetrainFromKernelRecords drains records of two simulated devices,
// checks that every rebuilt sample is exactly the vector the kernel
// predicted with, trains, checks and installs one model per device, and
// trains again (a new version) after more I/O.
func TestRetrainFromKernelRecords(t *testing.T) {
	reg, l := newRegistry(t)
	inst := &fakeInstaller{}
	tr, err := New(reg, inst, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	devs := map[uint64]*kernelDevice{0x800010: newKernelDevice(1), 0x800020: newKernelDevice(2)}
	polled := 0
	poll := func() {
		n, err := tr.Poll()
		if err != nil {
			t.Fatal(err)
		}
		polled += n
	}
	for key, k := range devs {
		k.run(t, l, key, 4000, 16, poll) // drained before the 32-record ring wraps
	}
	poll()
	if polled != 8000 || tr.Dropped() != 0 {
		t.Fatalf("polled %d records, %d dropped; want 8000, 0", polled, tr.Dropped())
	}
	// Every rebuilt sample is the vector the kernel computed at arrival.
	tr.mu.Lock()
	for key, k := range devs {
		d := tr.devs[key]
		if d == nil || len(d.win) != 4000 || d.st.Incomplete+d.st.Invalid+d.st.Uncounted != 0 {
			t.Fatalf("device %#x: %+v", key, d.st)
		}
		if k.stales < 20 {
			t.Fatalf("device %#x: only %d reads arrived with stale history; the TTL is not exercised", key, k.stales)
		}
		for i, s := range d.win {
			if s.seq != uint32(i+1) || s.x != k.want[s.seq] {
				t.Fatalf("device %#x sample %d (read %d): rebuilt %v, kernel had %v", key, i, s.seq, s.x, k.want[s.seq])
			}
		}
	}
	tr.mu.Unlock()

	res := tr.Step(context.Background())
	if len(res) != 2 {
		t.Fatalf("%d trainings, want 2", len(res))
	}
	for _, r := range res {
		st := r.Status
		if r.Err != nil || st.Outcome != "installed" || st.Version != 1 || st.Installs != 1 || st.Trainings != 1 {
			t.Fatalf("device %#x: %+v (%v)", st.Device, st, r.Err)
		}
		if st.Accuracy < 0.85 || st.Fidelity < 0.98 || st.HeldOut != 1000 || st.TrainedOn != 3000 || st.ServedAccuracy != -1 {
			t.Fatalf("device %#x checks: %+v", st.Device, st)
		}
		t.Logf("device %#x: held-out accuracy %.3f, false submit %.3f, fidelity %.3f", st.Device, st.Accuracy, st.FalseSubmitRate, st.Fidelity)
	}
	if len(inst.metas) != 2 || inst.metas[0].ThresholdUs != 600 {
		t.Fatalf("installed metadata %+v", inst.metas)
	}
	if again := tr.Step(context.Background()); len(again) != 0 {
		t.Fatalf("trained again without new samples: %+v", again)
	}
	// More I/O on one device: it is trained again, compared with the
	// served model, and replaced.
	devs[0x800010].run(t, l, 0x800010, 3000, 16, poll)
	poll()
	res = tr.Step(context.Background())
	if len(res) != 1 || res[0].Status.Device != 0x800010 || res[0].Status.ServedAccuracy < 0.8 || res[0].Status.Trainings != 2 {
		t.Fatalf("second training: %+v", res)
	}
	if st := res[0].Status; st.Outcome == "installed" && st.Version != 2 {
		t.Fatalf("second install has version %d", st.Version)
	}
	sts := tr.Status()
	if len(sts) != 2 || sts[0].Device != 0x800010 || sts[0].Samples != 6000 || sts[0].LastTraining.IsZero() {
		t.Fatalf("status %+v", sts)
	}
}

// TestRetrainSparsePolling drains far less often than the ring wraps:
// records are lost (counted), the reads whose history was lost are
// skipped (counted), and every sample kept is still exactly the kernel's
// vector.
func TestRetrainSparsePolling(t *testing.T) {
	reg, l := newRegistry(t)
	tr, err := New(reg, &fakeInstaller{}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	k := newKernelDevice(5)
	k.run(t, l, 3, 5000, 200, func() { _, _ = tr.Poll() })
	if _, err := tr.Poll(); err != nil {
		t.Fatal(err)
	}
	st := tr.Status()[0]
	if tr.Dropped() == 0 || st.Incomplete == 0 || st.Samples == 0 || uint64(st.Samples)+st.Incomplete != st.Records {
		t.Fatalf("dropped %d, status %+v", tr.Dropped(), st)
	}
	t.Logf("drained %d of 5000 records (%d dropped), kept %d samples", st.Records, tr.Dropped(), st.Samples)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, s := range tr.devs[3].win {
		if s.x != k.want[s.seq] {
			t.Fatalf("read %d: rebuilt %v, kernel had %v", s.seq, s.x, k.want[s.seq])
		}
	}
}

// TestRetrainRejects checks that a model below the accuracy floor is not
// installed and that the status says why.
func TestRetrainRejects(t *testing.T) {
	reg, l := newRegistry(t)
	inst := &fakeInstaller{}
	cfg := testConfig()
	cfg.MinAccuracy = 1 // nothing is perfect
	tr, err := New(reg, inst, cfg)
	if err != nil {
		t.Fatal(err)
	}
	newKernelDevice(3).run(t, l, 7, 3500, 16, func() { _, _ = tr.Poll() })
	if _, err := tr.Poll(); err != nil {
		t.Fatal(err)
	}
	res := tr.Step(context.Background())
	if len(res) != 1 || res[0].Status.Version != 0 || res[0].Status.Rejects != 1 || !strings.HasPrefix(res[0].Status.Outcome, "rejected: held-out accuracy") {
		t.Fatalf("%+v", res)
	}
	if len(inst.models) != 0 {
		t.Fatal("a rejected model was installed")
	}
}

// TestRetrainHostileRecords feeds records no honest kernel writes: no
// ordinals, a read that arrived after it completed, history that was never
// recorded; and ordinals that start again (a repeated one, one far
// behind), after which the old history is forgotten. Each is counted;
// nothing panics.
func TestRetrainHostileRecords(t *testing.T) {
	reg, l := newRegistry(t)
	tr, err := New(reg, &fakeInstaller{}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	const key = 9
	rec := func(c features.LinnOSCompletion) {
		if err := l.RecordCompletion(key, c); err != nil {
			t.Fatal(err)
		}
	}
	rec(features.LinnOSCompletion{LatencyUs: 5, Pending: 1})                           // uncounted
	rec(features.LinnOSCompletion{LatencyUs: 5, Pending: 1, ArriveSeq: 3, DoneSeq: 3}) // arrived after done
	rec(features.LinnOSCompletion{LatencyUs: 5, Pending: 1, ArriveSeq: 0, DoneSeq: 1}) // ok: no history
	rec(features.LinnOSCompletion{LatencyUs: 5, Pending: 1, ArriveSeq: 0, DoneSeq: 1}) // repeated: a restart
	rec(features.LinnOSCompletion{LatencyUs: 5, Pending: 1, ArriveSeq: 3, DoneSeq: 9}) // history 2, 3 never seen
	rec(features.LinnOSCompletion{LatencyUs: 7, Pending: 2, ArriveSeq: 1, DoneSeq: 2}) // ok: history read 1
	rec(features.LinnOSCompletion{LatencyUs: 1<<32 - 1, Pending: 1<<32 - 1, ArriveSeq: 1<<32 - 2, DoneSeq: 1<<32 - 1})
	rec(features.LinnOSCompletion{LatencyUs: 5, Pending: 1, ArriveSeq: 0, DoneSeq: 1}) // ordinals start again
	if _, err := tr.Poll(); err != nil {
		t.Fatal(err)
	}
	st := tr.Status()
	if len(st) != 1 {
		t.Fatalf("status %+v", st)
	}
	s := st[0]
	if s.Records != 8 || s.Uncounted != 1 || s.Invalid != 1 || s.Incomplete != 2 || s.Restarts != 2 || s.Samples != 4 {
		t.Fatalf("counters %+v", s)
	}
	tr.mu.Lock()
	got := tr.devs[key].win[2].x // the read with done_seq 2 after the first restart
	tr.mu.Unlock()
	var e linnos.Extractor
	e.Complete(1, 5)
	want := make([]int32, linnos.NumInputs)
	e.Features(2, want)
	if !slices.Equal(got[:], want) {
		t.Fatalf("sample with one history read: %v, want %v", got, want)
	}
}

// TestRetrainRun runs the trainer's loops against a device that records
// while they run: the device gets a model installed, and Run returns when
// its context ends.
func TestRetrainRun(t *testing.T) {
	reg, l := newRegistry(t)
	inst := &fakeInstaller{}
	tr, err := New(reg, inst, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan Result, 4)
	errc := make(chan error, 1)
	go func() { errc <- tr.Run(ctx, time.Millisecond, 5*time.Millisecond, func(r Result) { results <- r }) }()
	// 3500 reads, pausing every 8 completions so that Run's 1 ms drain
	// keeps up with the 32-record ring
	newKernelDevice(6).run(t, l, 4, 3500, 8, func() { time.Sleep(2 * time.Millisecond) })
	select {
	case r := <-results:
		if r.Status.Device != 4 || r.Status.Trainings != 1 {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no training within 60 s")
	}
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
	if err := (&Trainer{}).Run(context.Background(), 0, time.Second, nil); err == nil {
		t.Fatal("zero poll interval accepted")
	}
}

// TestRetrainConfigAndSchema checks that bad settings and a registry
// without the completion layout are refused.
func TestRetrainConfigAndSchema(t *testing.T) {
	reg, _ := newRegistry(t)
	for _, c := range []Config{{MinSamples: 10}, {Window: 100}, {HoldOut: 0.9}, {MinAccuracy: 2}, {Pending: 7}} {
		if _, err := New(reg, &fakeInstaller{}, c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if _, err := New(nil, &fakeInstaller{}, Config{}); err == nil {
		t.Error("nil registry accepted")
	}
	cfg := features.Config{MaxSchemas: 4, MaxKeys: 16, MaxHistory: 16, ArenaBytes: 1 << 18}
	old, err := features.Create(make([]byte, features.SizeFor(cfg)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Register(features.Schema{Name: features.LinnOSCompletionSchema, History: 16, MaxKeys: 4, Fields: []features.Field{{Name: "latency_us", Type: features.U32}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(old, &fakeInstaller{}, Config{}); err == nil || !strings.Contains(err.Error(), "layout") {
		t.Errorf("old completion layout: %v", err)
	}
}

// FuzzDeviceRecords feeds arbitrary completion records to a device: it
// must never panic, every record must be counted exactly once (a sample,
// or skipped for a reason), and the window must stay bounded.
func FuzzDeviceRecords(f *testing.F) {
	f.Add([]byte{})
	f.Add(slices.Concat(rec16(5, 1, 0, 1), rec16(7, 2, 1, 2), rec16(9, 3, 2, 3), rec16(1, 1, 3, 4), rec16(2, 2, 4, 5)))
	f.Add(slices.Concat(rec16(5, 1, 0, 0), rec16(5, 1, 3, 3), rec16(5, 1, 0, 1), rec16(5, 1, 0, 1)))
	f.Add(slices.Concat(rec16(1, 1, 1<<32-2, 1<<32-1), rec16(1, 1, 0, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &device{hist: map[uint32]histEntry{}}
		const window = 64
		n := 0
		for ; len(data) >= features.LinnOSCompletionBytes; data = data[features.LinnOSCompletionBytes:] {
			c, err := features.DecodeLinnOSCompletion(data)
			if err != nil {
				t.Fatal(err)
			}
			before := d.st.Incomplete + d.st.Invalid + d.st.Uncounted
			fresh := d.fresh
			d.add(c, window)
			n++
			if skipped := d.st.Incomplete + d.st.Invalid + d.st.Uncounted - before; skipped+uint64(d.fresh-fresh) != 1 {
				t.Fatalf("record %d %+v counted %d times", n, c, skipped+uint64(d.fresh-fresh))
			}
		}
		if d.st.Records != uint64(n) || len(d.win) > window || len(d.hist) > 2*histKeep+1 {
			t.Fatalf("records %d of %d, window %d, history %d", d.st.Records, n, len(d.win), len(d.hist))
		}
	})
}

func rec16(lat, pending, arrive, done uint32) []byte {
	b := make([]byte, features.LinnOSCompletionBytes)
	features.LinnOSCompletion{LatencyUs: lat, Pending: pending, ArriveSeq: arrive, DoneSeq: done}.Encode(b)
	return b
}
