package backend

import (
	"testing"
	"time"
)

func TestLimitsWithDefaults(t *testing.T) {
	d := Limits{MaxBytes: 1, MaxAllocations: 2, MaxStreams: 3, MaxThreads: 4, TotalBytes: 5,
		QueuedBytes: 6, TotalQueuedBytes: 7, LaunchTimeout: 8}
	if got := (Limits{}).WithDefaults(d); got != d {
		t.Errorf("zero limits: got %+v, want %+v", got, d)
	}
	neg := Limits{MaxAllocations: -1, MaxStreams: -1, LaunchTimeout: -1}
	if got := neg.WithDefaults(d); got != d {
		t.Errorf("negative signed fields: got %+v, want %+v", got, d)
	}
	set := Limits{MaxBytes: 10, MaxAllocations: 20, MaxStreams: 30, MaxThreads: 40, TotalBytes: 50,
		QueuedBytes: 60, TotalQueuedBytes: 70, LaunchTimeout: time.Second}
	if got := set.WithDefaults(d); got != set {
		t.Errorf("set fields: got %+v, want them kept (%+v)", got, set)
	}
	// A default left zero sets nothing: the CUDA backend does not
	// enforce LaunchTimeout and keeps whatever came.
	if got := neg.WithDefaults(Limits{}); got != neg {
		t.Errorf("zero defaults: got %+v, want %+v", got, neg)
	}
}
