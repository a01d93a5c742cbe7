package linnos

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestGenerateDeterministicAndShaped(t *testing.T) {
	for _, p := range Presets() {
		a, err := Generate(p, 20000, 7)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Generate(p, 20000, 7)
		c, _ := Generate(p, 20000, 8)
		if !slices.Equal(a, b) {
			t.Fatalf("%s: same seed, different traces", p.Name)
		}
		if slices.Equal(a, c) {
			t.Fatalf("%s: different seeds, same trace", p.Name)
		}
		reads := 0
		prev := 0.0
		for _, x := range a {
			if x.Offset%pageSize != 0 || x.Size%pageSize != 0 || x.Size < pageSize || x.Size > p.MaxSizeBytes || x.Offset+x.Size > p.SpanBytes {
				t.Fatalf("%s: bad I/O %+v", p.Name, x)
			}
			if x.TsUs < prev || x.Dev < 0 || x.Dev >= p.Devices {
				t.Fatalf("%s: bad time or dev %+v", p.Name, x)
			}
			prev = x.TsUs
			if x.Op == Read {
				reads++
			}
		}
		if rf := float64(reads) / float64(len(a)); math.Abs(rf-p.ReadFraction) > 0.02 {
			t.Errorf("%s: read fraction %.3f, want %.2f", p.Name, rf, p.ReadFraction)
		}
		if ia := prev / float64(len(a)); math.Abs(ia-p.MeanInterarrivalUs)/p.MeanInterarrivalUs > 0.05 {
			t.Errorf("%s: mean inter-arrival %.2f, want %.2f", p.Name, ia, p.MeanInterarrivalUs)
		}
	}
	if _, err := PresetByName("Bing-I"); err != nil {
		t.Fatal(err)
	}
	if _, err := PresetByName("nope"); err == nil {
		t.Fatal("unknown preset accepted")
	}
	bad := presets[0]
	bad.MeanInterarrivalUs = math.NaN()
	if _, err := Generate(bad, 10, 1); err == nil {
		t.Fatal("NaN inter-arrival accepted")
	}
}

func TestTraceRoundTrip(t *testing.T) {
	p, _ := PresetByName("cosmos")
	a, _ := Generate(p, 500, 1)
	var b bytes.Buffer
	if err := WriteTrace(&b, a); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTrace(strings.NewReader("# comment\n\n"+b.String()), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, a) {
		t.Fatal("trace round trip differs")
	}
	got, err = ReadTrace(strings.NewReader("5 0 0 4096 R\n1 0 0 4096 1\n9 0 0 4096 W\n"), 2)
	if err != nil || len(got) != 2 || got[0].TsUs != 1 || got[0].Op != Read {
		t.Fatalf("limit/sort: %v %v", got, err)
	}
	if _, err := ReadTrace(strings.NewReader("1 0 0 4096 R\n2 0 0 0 R\n"), 0); !errors.Is(err, ErrTrace) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad line: %v", err)
	}
}

func TestParseTraceLineRejects(t *testing.T) {
	for _, l := range []string{"", "1 0 0 4096", "x 0 0 4096 R", "-1 0 0 4096 R", "Inf 0 0 4096 R", "1 -1 0 4096 R",
		"1 0 -5 4096 R", "1 0 0 0 R", "1 0 0 999999999999 R", "1 0 0 4096 Q", "1 0 0 4096 R extra"} {
		if _, err := ParseTraceLine(l); !errors.Is(err, ErrTrace) {
			t.Errorf("%q: %v, want ErrTrace", l, err)
		}
	}
}

func FuzzParseTraceLine(f *testing.F) {
	f.Add("1.5 2 8192 4096 W")
	f.Fuzz(func(t *testing.T, line string) {
		x, err := ParseTraceLine(line)
		if err != nil {
			if !errors.Is(err, ErrTrace) {
				t.Fatalf("unwrapped error %v", err)
			}
			return
		}
		if x.Size <= 0 || x.Size > MaxTraceIOSize || x.Offset < 0 || x.Dev < 0 || !(x.TsUs >= 0) || (x.Op != Read && x.Op != Write) {
			t.Fatalf("accepted invalid record %+v", x)
		}
		var b bytes.Buffer
		if err := WriteTrace(&b, []IO{x}); err != nil {
			t.Fatal(err)
		}
		y, err := ParseTraceLine(b.String())
		if err != nil || y != x {
			t.Fatalf("re-parse %+v -> %+v, %v", x, y, err)
		}
	})
}
