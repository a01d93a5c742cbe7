package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"sort"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Point is one (x, y) sample.
type Point struct{ X, Y float64 }

// Series is one labelled line. Color nil picks one from the default palette.
type Series struct {
	Label  string
	Points []Point
	Color  color.Color
}

// Options controls the figure. Zero Width/Height default to 800×500. The
// axis ranges default to the data range; with LogX/LogY the axis is log10
// and non-positive values are dropped.
type Options struct {
	Width, Height  int
	Title          string
	XLabel, YLabel string
	LogX, LogY     bool
	// Fixed ranges; used when Max > Min.
	XMin, XMax, YMin, YMax float64
	Background             color.Color // default white
	// LegendBottomRight puts the legend in the bottom right corner of the
	// plot area (the empty part of a CDF) instead of the top left.
	LegendBottomRight bool
}

// Errors returned (wrapped) by Render.
var (
	ErrNoData = errors.New("plot: no plottable points")
	ErrSize   = errors.New("plot: bad image size")
)

// Palette is the default series colours.
var Palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xd6, 0x27, 0x28, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff},
	color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	color.RGBA{0xe3, 0x77, 0xc2, 0xff}, color.RGBA{0x7f, 0x7f, 0x7f, 0xff},
}

// CDF returns the empirical CDF of values as points (value, fraction ≤ value),
// thinned to at most maxPoints points (0 = all). values is not modified.
func CDF(values []float64, maxPoints int) []Point {
	s := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	sort.Float64s(s)
	n := len(s)
	step := 1
	if maxPoints > 0 && n > maxPoints {
		step = (n + maxPoints - 1) / maxPoints
	}
	var out []Point
	for i := 0; i < n; i += step {
		out = append(out, Point{s[i], float64(i+1) / float64(n)})
	}
	if n > 0 && (n-1)%step != 0 {
		out = append(out, Point{s[n-1], 1})
	}
	return out
}

// Encode renders the plot and writes it as PNG.
func Encode(w io.Writer, series []Series, opt Options) error {
	img, err := Render(series, opt)
	if err != nil {
		return err
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("plot: encode png: %w", err)
	}
	return nil
}

type axis struct {
	log      bool
	min, max float64 // in transformed space
}

func (a axis) tr(v float64) float64 {
	if a.log {
		return math.Log10(v)
	}
	return v
}

func (a axis) frac(v float64) float64 { return (a.tr(v) - a.min) / (a.max - a.min) }

// Render draws the plot into an RGBA image.
func Render(series []Series, opt Options) (*image.RGBA, error) {
	if opt.Width == 0 {
		opt.Width = 800
	}
	if opt.Height == 0 {
		opt.Height = 500
	}
	if opt.Width < 120 || opt.Height < 100 || opt.Width > 8000 || opt.Height > 8000 {
		return nil, fmt.Errorf("%w: %dx%d (want 120..8000 × 100..8000)", ErrSize, opt.Width, opt.Height)
	}
	ok := func(v float64, log bool) bool {
		return !math.IsNaN(v) && !math.IsInf(v, 0) && (!log || v > 0)
	}
	xa, ya := axis{log: opt.LogX, min: math.Inf(1), max: math.Inf(-1)}, axis{log: opt.LogY, min: math.Inf(1), max: math.Inf(-1)}
	count := 0
	for _, s := range series {
		for _, p := range s.Points {
			if !ok(p.X, opt.LogX) || !ok(p.Y, opt.LogY) {
				continue
			}
			count++
			xa.min, xa.max = math.Min(xa.min, xa.tr(p.X)), math.Max(xa.max, xa.tr(p.X))
			ya.min, ya.max = math.Min(ya.min, ya.tr(p.Y)), math.Max(ya.max, ya.tr(p.Y))
		}
	}
	if count == 0 {
		return nil, ErrNoData
	}
	if opt.XMax > opt.XMin && ok(opt.XMin, opt.LogX) && ok(opt.XMax, opt.LogX) {
		xa.min, xa.max = xa.tr(opt.XMin), xa.tr(opt.XMax)
	}
	if opt.YMax > opt.YMin && ok(opt.YMin, opt.LogY) && ok(opt.YMax, opt.LogY) {
		ya.min, ya.max = ya.tr(opt.YMin), ya.tr(opt.YMax)
	}
	widen := func(a *axis) {
		if a.max-a.min < 1e-12 {
			a.min -= 0.5
			a.max += 0.5
		}
	}
	widen(&xa)
	widen(&ya)

	bg := opt.Background
	if bg == nil {
		bg = color.White
	}
	img := image.NewRGBA(image.Rect(0, 0, opt.Width, opt.Height))
	draw.Draw(img, img.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	left, right, top, bottom := 70, opt.Width-20, 30, opt.Height-50
	pw, ph := float64(right-left), float64(bottom-top)
	toPx := func(x, y float64) (int, int) {
		return left + int(math.Round(xa.frac(x)*pw)), bottom - int(math.Round(ya.frac(y)*ph))
	}
	black := color.RGBA{0, 0, 0, 0xff}
	grid := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}

	// ticks and grid
	for _, t := range ticks(xa) {
		px := left + int(math.Round((t.pos-xa.min)/(xa.max-xa.min)*pw))
		line(img, px, top, px, bottom, grid, 1)
		line(img, px, bottom, px, bottom+5, black, 1)
		text(img, px-textWidth(t.label)/2, bottom+18, t.label, black)
	}
	for _, t := range ticks(ya) {
		py := bottom - int(math.Round((t.pos-ya.min)/(ya.max-ya.min)*ph))
		line(img, left, py, right, py, grid, 1)
		line(img, left-5, py, left, py, black, 1)
		text(img, left-8-textWidth(t.label), py+4, t.label, black)
	}
	line(img, left, bottom, right, bottom, black, 1)
	line(img, left, top, left, bottom, black, 1)
	if opt.Title != "" {
		text(img, (opt.Width-textWidth(opt.Title))/2, 18, opt.Title, black)
	}
	if opt.XLabel != "" {
		text(img, left+(right-left-textWidth(opt.XLabel))/2, opt.Height-12, opt.XLabel, black)
	}
	if opt.YLabel != "" {
		text(img, 4, top-8, opt.YLabel, black)
	}

	// series, clipped to the plot area
	clip := img.SubImage(image.Rect(left, top, right+1, bottom+1)).(*image.RGBA)
	for i, s := range series {
		c := s.Color
		if c == nil {
			c = Palette[i%len(Palette)]
		}
		havePrev := false
		var px, py int
		for _, p := range s.Points {
			if !ok(p.X, opt.LogX) || !ok(p.Y, opt.LogY) {
				continue
			}
			x, y := toPx(p.X, p.Y)
			if havePrev {
				line(clip, px, py, x, y, c, 2)
			}
			px, py, havePrev = x, y, true
		}
	}

	// legend
	var labelled []int
	maxW := 0
	for i, s := range series {
		if s.Label != "" {
			labelled = append(labelled, i)
			maxW = max(maxW, textWidth(s.Label))
		}
	}
	lx, ly := left+10, top+8
	if opt.LegendBottomRight {
		lx, ly = right-50-maxW, bottom-8-16*len(labelled)
	}
	for _, i := range labelled {
		c := series[i].Color
		if c == nil {
			c = Palette[i%len(Palette)]
		}
		line(img, lx, ly+6, lx+24, ly+6, c, 3)
		text(img, lx+30, ly+11, series[i].Label, black)
		ly += 16
	}
	return img, nil
}

type tick struct {
	pos   float64 // in transformed space
	label string
}

func ticks(a axis) []tick {
	var out []tick
	if a.log {
		decades := 0
		for e := math.Ceil(a.min - 1e-9); e <= a.max+1e-9; e++ {
			decades++
		}
		mult := []float64{1}
		if decades < 4 {
			mult = []float64{1, 2, 5}
		}
		for e := math.Floor(a.min); e <= math.Ceil(a.max) && len(out) < 60; e++ {
			for _, m := range mult {
				v := m * math.Pow(10, e)
				if lv := math.Log10(v); lv >= a.min-1e-9 && lv <= a.max+1e-9 {
					out = append(out, tick{lv, formatNum(v, math.Max(0, -e))})
				}
			}
		}
		if len(out) >= 2 {
			return out
		}
		// a fraction of a decade: linear ticks on the log axis
		out = out[:0]
		lo, hi := math.Pow(10, a.min), math.Pow(10, a.max)
		vals, dec := niceTicks(lo, hi)
		for _, v := range vals {
			out = append(out, tick{math.Log10(v), formatNum(v, dec)})
		}
		return out
	}
	vals, dec := niceTicks(a.min, a.max)
	for _, v := range vals {
		out = append(out, tick{v, formatNum(v, dec)})
	}
	return out
}

// niceTicks returns about 5-10 round values in [lo, hi] and the number of
// decimals their step needs.
func niceTicks(lo, hi float64) ([]float64, float64) {
	span := hi - lo
	if !(span > 0) {
		return []float64{lo}, 0
	}
	step := math.Pow(10, math.Floor(math.Log10(span/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 10 {
			step *= m
			break
		}
	}
	dec := math.Max(0, -math.Floor(math.Log10(step)+1e-9))
	var out []float64
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi+step*1e-9 && len(out) < 50; i++ {
		out = append(out, i*step)
	}
	return out, dec
}

// formatNum formats a tick value with the given number of decimals (large
// and tiny values use %g).
func formatNum(v, decimals float64) string {
	a := math.Abs(v)
	if a >= 1e7 || (a > 0 && a < 1e-4) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	if a < 1e-12 {
		v = 0
	}
	return strconv.FormatFloat(v, 'f', int(math.Min(decimals, 6)), 64)
}

var face = basicfont.Face7x13

func textWidth(s string) int { return font.MeasureString(face, s).Round() }

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// line draws a line of the given thickness (Bresenham), clipped by img's
// bounds.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color, width int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	err := dx + dy
	b := img.Bounds()
	lo, hi := -(width-1)/2, width/2
	for n := 0; n < 1<<20; n++ {
		for ox := lo; ox <= hi; ox++ {
			for oy := lo; oy <= hi; oy++ {
				if p := (image.Point{x0 + ox, y0 + oy}); p.In(b) {
					img.Set(p.X, p.Y, c)
				}
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
