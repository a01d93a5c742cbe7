package blktrace

import "testing"

func TestDepthTracker(t *testing.T) {
	var d DepthTracker
	dev := KernelDev(7, 0)
	issue := func(sector, ns uint64) uint32 {
		return d.Observe(Event{Kind: KindIssue, Dev: dev, Sector: sector, IssueNs: ns, Bytes: 4096})
	}
	done := func(sector, ns uint64) {
		d.Observe(Event{Kind: KindComplete, Dev: dev, Sector: sector, IssueNs: ns, DoneNs: ns + 1, Bytes: 4096})
	}
	if q := issue(8, 100); q != 0 {
		t.Fatalf("first issue depth %d", q)
	}
	if q := issue(16, 200); q != 1 {
		t.Fatalf("second issue depth %d", q)
	}
	// Another device does not count.
	if q := d.Observe(Event{Kind: KindIssue, Dev: dev + 1, Sector: 8, IssueNs: 250, Bytes: 4096}); q != 0 {
		t.Fatalf("other device depth %d", q)
	}
	done(8, 100)
	if q := issue(24, 300); q != 1 {
		t.Fatalf("after a completion depth %d", q)
	}
	// The completion of sector 16 is never seen: after MaxAgeNs it no
	// longer counts (24 is also older than a second by then).
	if q := issue(32, 300+2e9); q != 0 {
		t.Fatalf("stale requests still counted: %d", q)
	}
}
