package plot

import (
	"bytes"
	"errors"
	"image/color"
	"image/png"
	"math"
	"testing"
)

func TestEncodeWritesDecodablePNG(t *testing.T) {
	var lat []float64
	for i := 1; i <= 2000; i++ {
		lat = append(lat, 80+math.Pow(float64(i)/2000, 8)*5000)
	}
	series := []Series{
		{Label: "baseline", Points: CDF(lat, 300)},
		{Label: "linnos", Points: CDF(lat[:1500], 300)},
	}
	for _, logX := range []bool{false, true} {
		var buf bytes.Buffer
		opt := Options{Width: 640, Height: 400, Title: "read latency CDF", XLabel: "latency (us)", YLabel: "CDF", LogX: logX, LegendBottomRight: logX}
		if err := Encode(&buf, series, opt); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 400 {
			t.Fatalf("size %v, want 640x400", b)
		}
		var nonWhite, seriesColour int
		want := color.RGBAModel.Convert(Palette[0]).(color.RGBA)
		for y := 0; y < 400; y++ {
			for x := 0; x < 640; x++ {
				c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
				if c != (color.RGBA{0xff, 0xff, 0xff, 0xff}) {
					nonWhite++
				}
				if c == want {
					seriesColour++
				}
			}
		}
		if nonWhite < 2000 {
			t.Errorf("logX=%v: only %d non-background pixels", logX, nonWhite)
		}
		if seriesColour < 300 {
			t.Errorf("logX=%v: only %d pixels of the first series colour", logX, seriesColour)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	if _, err := Render(nil, Options{}); !errors.Is(err, ErrNoData) {
		t.Fatalf("no series: %v, want ErrNoData", err)
	}
	if _, err := Render([]Series{{Points: []Point{{-1, 0.5}}}}, Options{LogX: true}); !errors.Is(err, ErrNoData) {
		t.Fatalf("only non-positive x on log axis: %v, want ErrNoData", err)
	}
	if _, err := Render([]Series{{Points: []Point{{1, 1}}}}, Options{Width: 10, Height: 10}); !errors.Is(err, ErrSize) {
		t.Fatalf("tiny image: %v, want ErrSize", err)
	}
	// A single point must not divide by zero.
	if _, err := Render([]Series{{Points: []Point{{3, 3}}}}, Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestCDF(t *testing.T) {
	pts := CDF([]float64{3, 1, 2, math.NaN(), 4}, 0)
	if len(pts) != 4 || pts[0] != (Point{1, 0.25}) || pts[3] != (Point{4, 1}) {
		t.Fatalf("CDF = %v", pts)
	}
	many := make([]float64, 1001)
	for i := range many {
		many[i] = float64(i)
	}
	pts = CDF(many, 100)
	if len(pts) > 102 || pts[len(pts)-1] != (Point{1000, 1}) {
		t.Fatalf("thinned CDF has %d points, last %v", len(pts), pts[len(pts)-1])
	}
}

func TestNiceTicks(t *testing.T) {
	got, dec := niceTicks(0, 1)
	if len(got) < 5 || got[0] != 0 || math.Abs(got[len(got)-1]-1) > 1e-9 || dec != 1 {
		t.Fatalf("niceTicks(0,1) = %v, %v decimals", got, dec)
	}
	var labels []string
	for _, tk := range ticks(axis{min: 0, max: 1}) {
		labels = append(labels, tk.label)
	}
	if labels[3] != "0.3" {
		t.Fatalf("linear labels %v", labels)
	}
	lt := ticks(axis{log: true, min: 1, max: 5})
	if len(lt) != 5 || lt[0].label != "10" || lt[4].label != "100000" {
		t.Fatalf("log ticks = %v", lt)
	}
	lt = ticks(axis{log: true, min: 1.9, max: 3.5})
	if len(lt) < 4 || lt[0].label != "100" {
		t.Fatalf("log ticks over 2 decades = %v", lt)
	}
}
