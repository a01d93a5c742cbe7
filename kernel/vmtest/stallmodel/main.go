// Command stallmodel trains the LinnOS model the dm-linnos VM test
// installs: it simulates reads on one replica of the VM test (a RAM disk
// behind the lake_stall target, kernel/dm-stall) and trains on the
// features the kernel computes for them, labelling reads slower than
// -threshold-us slow.
//
// The simulated device matches the VM: a RAM disk completes an I/O in the
// context that submits it, so a healthy device has nothing pending when a
// read arrives (-noise of the reads see one I/O pending anyway, from
// preemption); the service time (fio, dm and brd under TCG) is drawn
// log-uniformly from [-min-us, -max-us], or for -starve of the reads
// from [-max-us, -starve-us]: under TCG on a loaded host a tenth of the
// reads of a healthy RAM disk take 10 to 50 ms (the VM waits for CPU),
// which is why the slow threshold is 200 ms (a stall holds reads for
// seconds). Stalls follow the lake_stall schedule: periods of
// -period-ms jittered by ±30%, each with one busy interval of -busy-ms
// (±30%) at a random offset, during which every I/O (reads from -qd
// closed-loop readers, writes arriving at -write-iops) is held until the
// interval ends. The history is that of the kernel: the pending count at
// arrival and the latency of each of the last 4 completed reads, and, as
// the target's hist_ttl_us does, entries that completed more than -ttl-us
// before a read arrives read as zeros. On the primary that rarely
// happens, but the other replica, which gets reads only while the primary
// looks slow, usually has its whole history expired when it is asked:
// -expired of the samples are added again with their history expired
// (the same read and outcome: in the simulation the outcome depends on the
// device's state, not on what the history says about it), so the model
// learns what an expired history with a given pending count means; and
// -mixed of the samples have their history replaced by that of a random
// earlier read or a random one (history says little about a stall that
// has just begun: no read has completed since, so the pending count is
// what tells), so the model does not learn the incidental histories of
// the few stalls it sees. The
// defaults match phase-dm.sh (iodepth 32 at 500 reads/s, 3 s stalls)
// except the period, 7 s instead of 12 s, so that a short simulation
// holds enough stalls to learn from (the features do not depend on it).
//
// Usage: stallmodel -o model.lnw [-n 20000] [-seed 1]
package main

import (
	"container/heap"
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/lakeos/lake/linnos"
)

type params struct {
	n                int
	qd               int
	periodMs, busyMs float64
	minUs, maxUs     float64
	starve, starveUs float64
	thinkUs          float64
	writeIOPS        float64
	noise            float64
	ttlUs, expired   float64
	mixed            float64
	thresholdUs      float64
	seed             uint64
	epochs           int
	falseSubmitCost  float64
	out              string
	extra            int
}

func main() {
	var p params
	flag.IntVar(&p.n, "n", 20000, "simulated reads")
	flag.IntVar(&p.qd, "qd", 32, "closed-loop readers (fio iodepth)")
	flag.Float64Var(&p.periodMs, "period-ms", 7000, "stall period (lake_stall PERIOD_MS)")
	flag.Float64Var(&p.busyMs, "busy-ms", 3000, "stall length (lake_stall BUSY_MS)")
	flag.Float64Var(&p.minUs, "min-us", 50, "shortest healthy service time")
	flag.Float64Var(&p.maxUs, "max-us", 2000, "longest healthy service time")
	flag.Float64Var(&p.starve, "starve", 0.15, "fraction of healthy reads that take up to -starve-us (the VM starved of CPU)")
	flag.Float64Var(&p.starveUs, "starve-us", 100000, "longest starved service time")
	flag.Float64Var(&p.thinkUs, "think-us", 64000, "mean time a reader takes between a completion and its next read")
	flag.Float64Var(&p.writeIOPS, "write-iops", 200, "background writes per second")
	flag.Float64Var(&p.noise, "noise", 0.001, "fraction of healthy reads that see one I/O pending")
	flag.Float64Var(&p.thresholdUs, "threshold-us", 200000, "reads slower than this are labelled slow")
	flag.Float64Var(&p.ttlUs, "ttl-us", 1e6, "history time-to-live (the target's hist_ttl_us; 0: none)")
	flag.Float64Var(&p.expired, "expired", 0.3, "fraction of samples added again with their history expired")
	flag.Float64Var(&p.mixed, "mixed", 1, "fraction of samples whose history is replaced by an earlier read's or a random one")
	flag.Uint64Var(&p.seed, "seed", 1, "seed")
	flag.IntVar(&p.epochs, "epochs", 16, "training epochs")
	flag.Float64Var(&p.falseSubmitCost, "false-submit-cost", 50, "loss weight of a slow read predicted fast")
	flag.IntVar(&p.extra, "extra", 0, "extra hidden layers")
	flag.StringVar(&p.out, "o", "", "output model file (required)")
	flag.Parse()
	if p.out == "" || p.n < 1000 || p.ttlUs < 0 || p.expired < 0 || p.expired > 1 || p.mixed < 0 || p.mixed > 1 || p.qd < 1 || p.busyMs <= 0 || p.periodMs < 2*p.busyMs || p.minUs <= 0 || p.maxUs < p.minUs || p.starveUs < p.maxUs || p.starve < 0 || p.starve > 1 {
		fmt.Fprintln(os.Stderr, "stallmodel: bad flags (need -o; n >= 1000, qd >= 1, period >= 2*busy, 0 < min <= max)")
		os.Exit(2)
	}
	s := simulate(p)
	res, err := linnos.Train(context.Background(), s, linnos.TrainConfig{
		Extra: p.extra, Epochs: p.epochs, ThresholdUs: p.thresholdUs, Seed: p.seed, FalseSubmitCost: p.falseSubmitCost,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "stallmodel:", err)
		os.Exit(1)
	}
	im, err := linnos.Quantize(res.Model)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stallmodel:", err)
		os.Exit(1)
	}
	img, err := linnos.EncodeInt(im, linnos.ModelMeta{ThresholdUs: uint32(p.thresholdUs)})
	if err == nil {
		err = os.WriteFile(p.out, img, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stallmodel:", err)
		os.Exit(1)
	}
	slow := 0
	for _, l := range s.LatencyUs {
		if l > p.thresholdUs {
			slow++
		}
	}
	fmt.Printf("stallmodel: %d reads, %d slow; held-out accuracy %.4f, false submits %.4f, false revokes %.4f; wrote %s\n",
		s.Len(), slow, res.Test.Accuracy, res.Test.FalseSubmitRate, res.Test.FalseRevokeRate, p.out)
}

// event is a completion (read or write) or a reader's next arrival.
type event struct {
	t       float64
	kind    int // 0 completion, 1 reader arrival, 2 write arrival
	reader  int
	held    bool
	read    bool
	pending int     // at arrival
	lat     float64 // for completions
	seq     int
}

type queue []event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].t != q[j].t {
		return q[i].t < q[j].t
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// schedule yields the busy intervals of lake_stall (µs).
type schedule struct {
	r                        *rand.Rand
	periodUs, busyUs         float64
	next, busyStart, busyEnd float64
}

func (s *schedule) jitter(v float64) float64 { return v * (0.7 + 0.6*s.r.Float64()) }

func (s *schedule) busy(t float64) (bool, float64) {
	for t >= s.next {
		period := s.jitter(s.periodUs)
		busy := min(s.jitter(s.busyUs), period/2)
		start := s.next
		s.next = start + period
		s.busyStart = start + s.r.Float64()*(period-busy)
		s.busyEnd = s.busyStart + busy
	}
	return t >= s.busyStart && t < s.busyEnd, s.busyEnd
}

func simulate(p params) *linnos.Samples {
	r := rand.New(rand.NewPCG(p.seed, 0x5151))
	sch := &schedule{r: rand.New(rand.NewPCG(p.seed, 0x57a11)), periodUs: p.periodMs * 1000, busyUs: p.busyMs * 1000}
	var q queue
	seq := 0
	push := func(e event) { e.seq = seq; seq++; heap.Push(&q, e) }
	for i := 0; i < p.qd; i++ {
		push(event{t: r.Float64() * p.thinkUs, kind: 1, reader: i})
	}
	if p.writeIOPS > 0 {
		push(event{t: r.ExpFloat64() * 1e6 / p.writeIOPS, kind: 2})
	}
	var e linnos.Extractor                  // the kernel's history: one entry per completed read
	var histDone [linnos.HistoryLen]float64 // completion time of each history entry
	var past []linnos.Extractor             // histories of earlier reads, for -mixed
	held := 0
	s := &linnos.Samples{}
	feat := make([]int32, linnos.NumInputs)
	// log-uniform: under TCG on a busy host a healthy read can take
	// milliseconds, so recent latencies alone must not mean "slow"
	service := func() float64 {
		if r.Float64() < p.starve {
			return p.maxUs * math.Pow(p.starveUs/p.maxUs, r.Float64())
		}
		return p.minUs * math.Pow(p.maxUs/p.minUs, r.Float64())
	}
	for s.Len() < p.n {
		ev := heap.Pop(&q).(event)
		switch ev.kind {
		case 0:
			if ev.held {
				held--
			}
			if ev.read {
				e.Complete(ev.pending, int(ev.lat))
				copy(histDone[:], histDone[1:])
				histDone[linnos.HistoryLen-1] = ev.t
				push(event{t: ev.t + r.ExpFloat64()*p.thinkUs, kind: 1, reader: ev.reader})
			}
		case 1, 2:
			// the pending count includes the arriving I/O (LinnOS's)
			pending := held + 1
			if held == 0 && r.Float64() < p.noise {
				pending = 2
			}
			busy, end := sch.busy(ev.t)
			done := ev.t + service()
			if busy {
				done = end + service()
				held++
			}
			c := event{t: done, kind: 0, reader: ev.reader, held: busy, read: ev.kind == 1, pending: pending, lat: done - ev.t}
			if ev.kind == 1 {
				// the kernel's time-to-live (lake_linnos_hist_stale)
				stale := 0
				for k := linnos.HistoryLen; p.ttlUs > 0 && k > 0; k-- {
					if ev.t-histDone[k-1] > p.ttlUs {
						stale = k
						break
					}
				}
				h := e
				h.Expire(stale)
				if len(past) < 4096 {
					past = append(past, h)
				} else {
					past[r.IntN(len(past))] = h
				}
				if r.Float64() < p.mixed {
					// an earlier read's history, or (half the time) a
					// random one: pending 1..4, latency log-uniform
					// 50 µs..10 ms (TCG's healthy reads span it)
					o := past[r.IntN(len(past))]
					if r.IntN(2) == 0 {
						for k := 0; k < linnos.HistoryLen; k++ {
							o.Complete(1+r.IntN(4), int(50*math.Pow(200, r.Float64())))
						}
					}
					o.Features(pending, feat)
				} else {
					h.Features(pending, feat)
				}
				s.Features = append(s.Features, feat...)
				s.LatencyUs = append(s.LatencyUs, c.lat)
				if r.Float64() < p.expired {
					h.Expire(linnos.HistoryLen)
					h.Features(pending, feat)
					s.Features = append(s.Features, feat...)
					s.LatencyUs = append(s.LatencyUs, c.lat)
				}
			} else {
				push(event{t: ev.t + r.ExpFloat64()*1e6/p.writeIOPS, kind: 2})
			}
			push(c)
		}
	}
	return s
}
