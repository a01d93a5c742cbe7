package linnos

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestInflectionPercentile(t *testing.T) {
	// 90% fast reads around 100 µs, 10% slow around 2000 µs: the knee of
	// the CDF is at the start of the slow tail, near p90.
	r := rand.New(rand.NewPCG(1, 1))
	var lat []float64
	for i := 0; i < 10000; i++ {
		if i%10 == 0 {
			lat = append(lat, 1500+r.Float64()*1000)
		} else {
			lat = append(lat, 90+r.Float64()*20)
		}
	}
	p, err := InflectionPercentile(lat)
	if err != nil {
		t.Fatal(err)
	}
	if p < 88 || p > 91 {
		t.Fatalf("inflection at p%.1f, want about p90", p)
	}
	if _, err := InflectionPercentile(lat[:10]); err == nil {
		t.Fatal("10 samples accepted")
	}
}

// Train learns a rule that depends on the pending digits and reports
// held-out metrics; the progress callback sees every minibatch.
func TestTrainLearnsPendingRule(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	var s Samples
	var e Extractor
	f := make([]int32, NumInputs)
	for i := 0; i < 3000; i++ {
		p := r.IntN(40)
		e.Features(p, f)
		lat := 100.0
		if p >= 20 {
			lat = 900
		}
		e.Complete(p, int(lat))
		s.Features = append(s.Features, f...)
		s.LatencyUs = append(s.LatencyUs, lat+r.Float64())
	}
	calls, last, total := 0, 0, 0
	res, err := Train(context.Background(), &s, TrainConfig{Epochs: 4, Seed: 1, ThresholdUs: 500,
		Progress: func(d, tot int) { calls++; last, total = d, tot }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Test.Accuracy < 0.9 || res.Test.N != 600 || res.Train.N != 2400 {
		t.Fatalf("test metrics %+v train %+v", res.Test, res.Train)
	}
	if res.Test.FalseSubmitRate+res.Test.FalseRevokeRate+res.Test.Accuracy < 0.999 {
		t.Fatalf("rates do not add up: %+v", res.Test)
	}
	if calls == 0 || last != total || total != 4*((2400+63)/64) {
		t.Fatalf("progress: %d calls, last %d of %d", calls, last, total)
	}
	// The variants train too (tiny run).
	small := Samples{Features: s.Features[:400*NumInputs], LatencyUs: s.LatencyUs[:400]}
	res2, err := Train(context.Background(), &small, TrainConfig{Extra: 1, Epochs: 1, ThresholdUs: 500})
	if err != nil || res2.Model.Extra != 1 || res2.ThresholdUs != 500 {
		t.Fatalf("+1 variant: %v", err)
	}
	if _, err := Train(context.Background(), &Samples{Features: f, LatencyUs: []float64{1, 2}}, TrainConfig{}); !errors.Is(err, ErrShape) {
		t.Fatalf("mismatched samples: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Train(ctx, &s, TrainConfig{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
