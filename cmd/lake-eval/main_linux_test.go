//go:build linux

package main

import (
	"testing"
	"time"
)

func TestJobFilesWrites(t *testing.T) {
	want := map[string]bool{"randread": false, "randread-flush": true, "azure": true, "bingi": true, "cosmos": true}
	for wl, w := range want {
		got, err := jobWrites("../../eval/jobs/" + wl + ".fio")
		if err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("%s: writes %v, want %v", wl, got, w)
		}
	}
}

func TestValidate(t *testing.T) {
	good := options{jobsDir: "../../eval/jobs", workloads: []string{"randread"}, runtime: 2 * time.Second,
		sizeMiB: 64, trainFrac: 0.5, maxTrain: 1000, epochs: 2}
	if err := validate(&good); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*options){
		"no workloads": func(o *options) { o.workloads = nil },
		"traversal":    func(o *options) { o.workloads = []string{"../x"} },
		"missing job":  func(o *options) { o.workloads = []string{"nope"} },
		"runtime":      func(o *options) { o.runtime = time.Millisecond },
		"size":         func(o *options) { o.sizeMiB = 1 },
		"frac":         func(o *options) { o.trainFrac = 1 },
		"epochs":       func(o *options) { o.epochs = 0 },
	} {
		o := good
		mut(&o)
		if err := validate(&o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
