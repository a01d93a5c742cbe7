package linnos

import (
	"slices"
	"testing"
)

func TestExtractorLayout(t *testing.T) {
	var e Extractor
	for _, p := range []int{5, 1234, 42, 7} { // 1234 clamps to 999
		e.Arrive(p)
	}
	for _, l := range []int{100, 20000, 3, 456} { // 20000 clamps to 9999
		e.Complete(l)
	}
	got := make([]int32, NumInputs)
	e.Features(12, got)
	want := []int32{
		0, 1, 2, // pending now
		0, 0, 5, 9, 9, 9, 0, 4, 2, 0, 0, 7, // pending history, oldest first
		0, 1, 0, 0, 9, 9, 9, 9, 0, 0, 0, 3, 0, 4, 5, 6, // latencies, oldest first
	}
	if !slices.Equal(got, want) {
		t.Fatalf("features\n got %v\nwant %v", got, want)
	}
	// The history shifts: a new arrival drops the oldest.
	e.Arrive(-3) // negative clamps to 0
	e.Complete(8)
	e.Features(1000, got)
	want2 := []int32{9, 9, 9, 9, 9, 9, 0, 4, 2, 0, 0, 7, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 3, 0, 4, 5, 6, 0, 0, 0, 8}
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
