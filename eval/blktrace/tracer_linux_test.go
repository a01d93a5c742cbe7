//go:build linux

package blktrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/lakeos/lake/eval/fio"
	"github.com/lakeos/lake/eval/loopdev"
)

// needRoot skips unless the test can attach the tracer to a loop device
// driven by fio: root, fio and losetup.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: attaches BPF programs to block tracepoints and creates a loop device (runs in CI as root)")
	}
	for _, bin := range []string{"fio", "losetup"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s: %v", bin, err)
		}
	}
}

// TestTracerMatchesFio attaches the tracer, runs a short random-read fio
// job on a loop device and checks the trace against fio's own report:
//
//   - count: fio's read count equals the traced 4 KiB read issues and
//     completions inside the job's offset range, allowing only the events
//     the tracer counts as lost (traced <= fio and fio-traced <= lost; see
//     Stats for the accounting), and lost is at most 5%;
//   - queue depth: never above iodepth-1 (the requests fio can have in
//     flight besides this one; plus any missed completions, which stay
//     counted as in flight), and above 0 for some requests;
//   - latency: the traced median (driver issue to completion) lies between
//     fio's median completion latency divided by 3 and multiplied by 1.1.
//     fio's clat spans io_submit to the reaped completion, which contains
//     the traced interval plus the submission path (bio and request
//     allocation, plugging, loop queueing) and the completion path (IRQ,
//     aio event, wakeup): a few µs to tens of µs on top of a disk read of
//     ~50-500 µs. The traced median therefore cannot exceed fio's (10%
//     for percentile bucketing: fio's clat percentiles come from
//     log-linear histogram buckets with ~3% width), and a traced median
//     under a third of fio's would mean the tracer measures the wrong
//     interval (e.g. pairs the wrong requests). fio's side also holds
//     the wait until fio's thread runs to reap the event, which grows
//     without bound when the CPUs are busy (other test packages, other
//     fio runs: a traced/fio ratio of 0.33 was seen with three of these
//     tests at once on the shared 2-core VM). So the lower bound is a
//     twentieth of fio's (still far above what a wrong pairing, such as
//     insertion to issue, measures), and the third only with
//     LAKE_BLKTRACE_STRICT=1 on a quiet machine. The upper bound holds
//     under any load.
func TestTracerMatchesFio(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	dev, err := loopdev.Create(ctx, t.TempDir(), loopdev.Options{SizeBytes: 64 << 20, DirectIO: true, Fill: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dev.Detach(); err != nil {
			t.Error(err)
		}
	})
	if settle, err := exec.LookPath("udevadm"); err == nil {
		_ = exec.CommandContext(ctx, settle, "settle", "--timeout=5").Run()
	}
	kdev, err := DeviceOf(dev.Path)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(Options{Devices: []uint32{kdev}})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("cannot load BPF here: %v", err)
		}
		t.Fatal(err)
	}
	defer tr.Close()

	var events []Event
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- tr.Run(runCtx, func(e Event) error { events = append(events, e); return nil })
	}()

	const (
		iodepth = 4
		offset  = 32 << 20 // fio reads [32 MiB, 64 MiB): udev/blkid probes read the first and last sectors
		span    = 32 << 20
		nios    = 3000
	)
	res, err := fio.Run(ctx, "--name=trace-test", "--filename="+dev.Path, "--rw=randread", "--bs=4k",
		"--direct=1", "--ioengine=libaio", fmt.Sprintf("--iodepth=%d", iodepth),
		fmt.Sprintf("--offset=%d", offset), fmt.Sprintf("--size=%d", span),
		fmt.Sprintf("--number_ios=%d", nios), "--randrepeat=1", "--norandommap", "--group_reporting")
	stopRun()
	if rerr := <-done; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != 1 {
		t.Fatalf("fio reported %d jobs with --group_reporting", len(res.Jobs))
	}
	reads := res.Jobs[0].Read
	var lat []float64
	maxQD, busy := uint32(0), 0
	var issued uint64
	for _, e := range events {
		if e.Kind == KindIssue && e.Dev == kdev && e.Op == OpRead && e.Bytes == 4096 && e.Sector*512 >= offset && e.Sector*512 < offset+span {
			issued++
		}
		if e.Kind != KindComplete || e.Dev != kdev || e.Op != OpRead || e.Bytes != 4096 {
			continue
		}
		if off := e.Sector * 512; off < offset || off >= offset+span {
			continue
		}
		if e.Error != 0 {
			t.Errorf("traced read at sector %d failed: %d", e.Sector, e.Error)
		}
		lat = append(lat, float64(e.LatencyNs()))
		maxQD = max(maxQD, e.QueueDepth)
		if e.QueueDepth > 0 {
			busy++
		}
	}
	t.Logf("fio: %d reads, clat p50 %.0f ns; tracer: %d events, %d matching reads, stats %+v", reads.IOs,
		reads.ClatPct[50], len(events), len(lat), st)
	if reads.IOs != nios {
		t.Errorf("fio reports %d reads, asked for %d", reads.IOs, nios)
	}
	if issued != reads.IOs && (issued > reads.IOs || reads.IOs-issued > st.Lost+st.Missed) {
		t.Errorf("traced %d read issues, fio did %d reads, lost events %d, missed %d", issued, reads.IOs, st.Lost, st.Missed)
	}
	traced := uint64(len(lat))
	lost := st.LostCompletions()
	if traced > reads.IOs || reads.IOs-traced > lost {
		t.Errorf("traced %d read completions, fio did %d, lost completions %d (%+v): the difference is not explained by the lost-event counters", traced, reads.IOs, lost, st)
	}
	if lost > reads.IOs/20 {
		t.Errorf("%d of %d completions lost: more than 5%%", lost, reads.IOs)
	}
	if st.Malformed != 0 {
		t.Errorf("%d malformed ring records", st.Malformed)
	}
	// The in-kernel depth counter goes down only on a traced completion,
	// so every missed completion (still in flight, or replaced by a new
	// request at the same address) leaves it one higher for good.
	if uint64(maxQD) > iodepth-1+lost {
		t.Errorf("queue depth at issue up to %d with fio iodepth %d and %d missed completions", maxQD, iodepth, lost)
	}
	if busy == 0 {
		t.Errorf("no read was issued with another in flight at iodepth %d", iodepth)
	}
	if err := tr.Reset(); err != nil {
		t.Fatal(err)
	}
	if st2, err := tr.Stats(); err != nil || st2.InFlight != 0 {
		t.Errorf("after Reset: %+v, %v", st2, err)
	}
	if len(lat) == 0 {
		t.Fatal("no traced reads")
	}
	slices.Sort(lat)
	med := lat[len(lat)/2]
	fmed, ok := reads.Percentile(50)
	if !ok || fmed <= 0 {
		t.Fatalf("fio reported no clat median: %+v", reads.ClatPct)
	}
	t.Logf("median latency: traced %.0f ns, fio %.0f ns (ratio %.2f)", med, fmed, med/fmed)
	lower, what := fmed/20, "fio/20"
	if os.Getenv("LAKE_BLKTRACE_STRICT") == "1" {
		lower, what = fmed/3, "fio/3"
	}
	if med > 1.1*fmed || med < lower {
		t.Errorf("traced median %.0f ns is not within [%s, fio*1.1] of fio's median %.0f ns", med, what, fmed)
	}
}
