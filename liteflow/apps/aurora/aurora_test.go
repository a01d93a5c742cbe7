package aurora

import (
	"strings"
	"testing"
	"time"
)

// TestAdaptationBeatsStatic asserts the ordering the issue asks for: in a
// link whose capacity and RTT change, LiteFlow adaptation achieves higher
// goodput than the static snapshot pre-trained on the first environment.
func TestAdaptationBeatsStatic(t *testing.T) {
	seeds := []uint64{1, 2}
	var sched []Segment
	var modes []Mode
	var pretrain time.Duration
	if raceEnabled {
		// The race detector slows training about twentyfold: one seed, no
		// slow path (checked in normal builds), a shorter pre-training and
		// two of the six environments (the pre-training one and the lossy,
		// jittery 120 Mbit/s one). Checked for seeds 1-8: the ordering holds
		// with a wide margin on both configurations.
		seeds, modes, pretrain = seeds[:1], []Mode{Static, LiteFlow}, 12*time.Second
		sched = []Segment{DefaultSchedule[0], DefaultSchedule[4]}
	}
	for _, seed := range seeds {
		res, err := Run(Config{Seed: seed, Schedule: sched, Modes: modes, PretrainDuration: pretrain})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		res.Fprint(&b)
		t.Logf("seed %d\n%s", seed, b.String())
		st, lf, sp := res.Get(Static), res.Get(LiteFlow), res.Get(SlowPath)
		if !(lf.GoodputMbps > st.GoodputMbps) {
			t.Errorf("seed %d: liteflow goodput %.2f not above static %.2f", seed, lf.GoodputMbps, st.GoodputMbps)
		}
		if lf.Installs < 2 {
			t.Errorf("seed %d: liteflow installed %d snapshots", seed, lf.Installs)
		}
		if !raceEnabled && (sp.Crossings == 0 || sp.CrossTime != time.Duration(sp.Crossings)*res.Config.CrossingCost) {
			t.Errorf("seed %d: slow path crossings %d, time %v", seed, sp.Crossings, sp.CrossTime)
		}
		// The first environment is the pre-training one: there the static
		// snapshot is already good.
		if st.SegmentUtil[0] < 0.9 {
			t.Errorf("seed %d: static snapshot utilization %.2f in its own environment", seed, st.SegmentUtil[0])
		}
	}
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, PretrainDuration: 2 * time.Second, PretrainEpochs: 3, Schedule: []Segment{
		{time.Second, 20, 30 * time.Millisecond, 0, 0},
		{time.Second, 50, 20 * time.Millisecond, 0.02, time.Millisecond},
	}}
	a, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Run(cfg)
	for i := range a.Outcomes {
		if a.Outcomes[i].GoodputMbps != b.Outcomes[i].GoodputMbps || a.Outcomes[i].Installs != b.Outcomes[i].Installs {
			t.Fatalf("same seed, different outcome: %+v vs %+v", a.Outcomes[i], b.Outcomes[i])
		}
	}
}

func TestBadConfig(t *testing.T) {
	bad := []Config{
		{Schedule: []Segment{{0, 10, 10 * time.Millisecond, 0, 0}}},
		{Schedule: []Segment{{time.Second, 10, 0, 0, 0}}},
		{Schedule: []Segment{{time.Second, 10, 10 * time.Millisecond, 0.9, 0}}},
		{BufferBytes: -1},
		{BatchSize: -1},
		{Modes: []Mode{7}},
	}
	for _, c := range bad {
		if _, err := Run(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}
