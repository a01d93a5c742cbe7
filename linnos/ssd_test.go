package linnos

import (
	"testing"
)

func TestSSDDeterministicWithInternalActivity(t *testing.T) {
	run := func(seed uint64) []float64 {
		s, err := NewSSD(DefaultSSDParams(), seed)
		if err != nil {
			t.Fatal(err)
		}
		var lat []float64
		for i := 0; i < 40000; i++ {
			now := float64(i) * 20
			if i%2 == 0 {
				s.SubmitWrite(now, 16384)
				continue
			}
			peek := s.PeekRead(now, 4096, uint64(i))
			done := s.SubmitRead(now, 4096, uint64(i))
			if done-now != peek {
				t.Fatalf("peek %.3f differs from submit %.3f", peek, done-now)
			}
			lat = append(lat, done-now)
		}
		return lat
	}
	a, b, c := run(1), run(1), run(2)
	same, diff := true, false
	slow, fast := 0, 0
	for i := range a {
		same = same && a[i] == b[i]
		diff = diff || a[i] != c[i]
		if a[i] > 3*DefaultSSDParams().ReadBaseUs {
			slow++
		}
		if a[i] < 1.2*DefaultSSDParams().ReadBaseUs {
			fast++
		}
	}
	if !same || !diff {
		t.Fatalf("determinism: same seed equal=%v, other seed differs=%v", same, diff)
	}
	// Flushes and GC must make a minority of reads slow.
	if slow < len(a)/100 || fast < len(a)/2 {
		t.Fatalf("%d slow and %d fast of %d reads: internal activity missing or dominating", slow, fast, len(a))
	}
}

func TestSSDParamsValidate(t *testing.T) {
	bad := []func(*SSDParams){
		func(p *SSDParams) { p.Channels = 0 },
		func(p *SSDParams) { p.ReadBaseUs = -1 },
		func(p *SSDParams) { p.JitterFrac = 1 },
		func(p *SSDParams) { p.WriteBufPages = 0 },
		func(p *SSDParams) { p.GCSlowdown = 0.5 },
		func(p *SSDParams) { p.RampUs = -1 },
	}
	for i, f := range bad {
		p := DefaultSSDParams()
		f(&p)
		if _, err := NewSSD(p, 1); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}
