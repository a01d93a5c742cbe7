package linnos

import (
	"slices"
	"testing"
)

// TestExtractorLayout checks the LinnOS/LAKE layout digit by digit:
// history pending counts (oldest first), the pending count now, then the
// history latencies (oldest first).
func TestExtractorLayout(t *testing.T) {
	var e Extractor
	got := make([]int32, NumInputs)
	e.Features(3, got)
	if !slices.Equal(got, append(make([]int32, 14), append([]int32{3}, make([]int32, 16)...)...)) {
		t.Fatalf("empty history: %v", got)
	}
	reads := [][2]int{{5, 100}, {1234, 20000}, {42, 3}, {7, 456}} // 1234 clamps to 999, 20000 to 9999
	for _, r := range reads {
		e.Complete(r[0], r[1])
	}
	e.Features(12, got)
	want := []int32{
		0, 0, 5, 9, 9, 9, 0, 4, 2, 0, 0, 7, // pending at the 4 history reads' arrivals, oldest first
		0, 1, 2, // pending now
		0, 1, 0, 0, 9, 9, 9, 9, 0, 0, 0, 3, 0, 4, 5, 6, // their latencies, oldest first
	}
	if !slices.Equal(got, want) {
		t.Fatalf("features\n got %v\nwant %v", got, want)
	}
	// A completed read drops the oldest pair.
	e.Complete(-3, 8) // negative clamps to 0
	e.Features(1000, got)
	want2 := []int32{9, 9, 9, 0, 4, 2, 0, 0, 7, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 3, 0, 4, 5, 6, 0, 0, 0, 8}
	if !slices.Equal(got, want2) {
		t.Fatalf("after shift\n got %v\nwant %v", got, want2)
	}
}

func TestPendingUnit(t *testing.T) {
	if PendingIOs.Weight(1<<20) != 1 || PendingPages.Weight(1<<20) != 256 || PendingPages.Weight(1) != 1 || PendingPages.Weight(0) != 1 {
		t.Fatal("weights")
	}
	for _, s := range []string{"ios", "pages"} {
		u, err := ParsePendingUnit(s)
		if err != nil || u.String() != s {
			t.Fatalf("ParsePendingUnit(%q) = %v, %v", s, u, err)
		}
	}
	if _, err := ParsePendingUnit("bytes"); err == nil {
		t.Fatal("accepted bytes")
	}
}
