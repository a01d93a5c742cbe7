package main

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lakeos/lake/internal/lakedtest"
)

func TestParseCPUList(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"0", "0"}, {"3", "3"}, {"0-1", "0-1"}, {"0,2-3", "0,2-3"}, {"5,1,2", "1-2,5"}, {"1023", "1023"}, {"0-2,1-3", "0-3"},
	} {
		set, err := parseCPUList(c.in)
		if err != nil {
			t.Errorf("parseCPUList(%q): %v", c.in, err)
			continue
		}
		if got := formatCPUList(&set); got != c.want {
			t.Errorf("parseCPUList(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "a", "-1", "3-1", "1024", "0,,1", "0-", "-", "1 ", "0x1", "0-1024"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) accepted", bad)
		}
	}
}

// TestBenchBurstPlacement: bench --burst-cpus/--burst-nice place every
// thread of the bursting process (read back from the kernel by the child
// at its end, so threads the Go runtime started after the placement are
// covered), and bench --cpus places the measuring process. The test
// process itself is the measuring one, so it is "placed" on the CPUs it
// has already; the child gets one CPU and nice 3.
func TestBenchBurstPlacement(t *testing.T) {
	f := newFixture(t)
	t.Setenv("LAKECTL_TEST_AS_LAKECTL", "1")
	var mine unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mine); err != nil {
		t.Fatal(err)
	}
	all := formatCPUList(&mine)
	first := strings.FieldsFunc(all, func(r rune) bool { return r == ',' || r == '-' })[0]
	var rep burstBenchReport
	f.okJSON(t, &rep, "bench", "--model", "2", "--count", "200", "--warmup", "10", "--burst", "2", "--burst-ring", "8", "--rounds", "2",
		"--cpus", all, "--burst-cpus", first, "--burst-nice", "3")
	if rep.Placement == nil || *rep.Placement != (placement{CPUs: all, Nice: rep.Placement.Nice}) {
		t.Fatalf("measured client's placement %+v, want CPUs %s", rep.Placement, all)
	}
	if len(rep.Bursts) != 2 {
		t.Fatalf("bursts %+v", rep.Bursts)
	}
	for i, b := range rep.Bursts {
		if b.Placement == nil || *b.Placement != (placement{CPUs: first, Nice: 3}) {
			t.Fatalf("round %d: bursting process's placement %+v, want CPUs %s nice 3", i+1, b.Placement, first)
		}
		if b.Predicts == 0 || b.Busy != 0 || b.Failed != 0 {
			t.Fatalf("round %d: burst %+v", i+1, b)
		}
	}
	if rep.WrongOutputs != 0 || rep.MeasuredBusy != 0 {
		t.Fatalf("wrong %d, busy %d", rep.WrongOutputs, rep.MeasuredBusy)
	}
	out := f.ok(t, "bench", "--model", "2", "--count", "100", "--warmup", "0", "--burst", "1", "--burst-ring", "8", "--burst-cpus", first, "--burst-nice", "2")
	hasLine(t, out, fmt.Sprintf(`^placement: bursting clients on CPUs %s at nice 2$`, first))
	out = f.ok(t, "bench", "--model", "2", "--count", "100", "--warmup", "0", "--burst", "1", "--burst-ring", "8")
	if strings.Contains(out, "placement:") {
		t.Fatalf("a placement line without placement flags:\n%s", out)
	}
	if p := lakedtest.BurstProcs(t, f.sock); len(p) != 0 {
		t.Fatalf("bursting processes left: %v", p)
	}
	for _, bad := range [][]string{
		{"bench", "--cpus", "x"},
		{"bench", "--cpus", "2-1"},
		{"bench", "--nice", "20"},
		{"bench", "--model", "2", "--burst-cpus", "0"}, // no --burst
		{"bench", "--model", "2", "--burst-nice", "1"}, // no --burst
		{"bench", "--model", "2", "--burst", "1", "--burst-cpus", "0,,1"},
		{"bench", "--model", "2", "--burst", "1", "--burst-nice", "-21"},
		{"burst", "--cpus", "1024"},
		{"burst", "--nice", "99"},
	} {
		if code, _, errs := f.ctl(t, bad...); code != 2 {
			t.Errorf("lakectl %v: exit %d (want 2) %s", bad, code, errs)
		}
	}
}
