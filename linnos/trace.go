package linnos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

// Op is an I/O direction.
type Op byte

// I/O directions as written in trace files.
const (
	Read  Op = 'R'
	Write Op = 'W'
)

// IO is one trace record: arrival time in µs, logical device, byte offset and
// size, and direction.
type IO struct {
	TsUs   float64
	Dev    int
	Offset int64
	Size   int64
	Op     Op
}

// Preset parameterises the synthetic trace generator: exponential
// inter-arrival times, lognormal sizes clipped to MaxSize and rounded up to
// 4 KiB, 4 KiB-aligned uniformly random offsets within SpanBytes.
type Preset struct {
	Name               string
	MeanInterarrivalUs float64 // mean of the exponential inter-arrival time
	ReadFraction       float64 // probability that an I/O is a read
	SizeMedianBytes    float64 // median of the lognormal size distribution
	SizeSigma          float64 // sigma of the underlying normal
	MaxSizeBytes       int64   // sizes are clipped to this
	Devices            int     // logical devices (dev field), uniformly chosen
	SpanBytes          int64   // offsets are uniform in [0, SpanBytes)
}

// The built-in presets. They are shaped after the characteristics the LinnOS
// paper reports for its traces (Azure: read-heavy, small I/Os; Bing-I: larger
// I/Os, fewer reads; Cosmos: write-heavy, large I/Os), scaled so that one
// simulated SSD is moderately loaded.
var presets = []Preset{
	{Name: "azure", MeanInterarrivalUs: 12, ReadFraction: 0.75, SizeMedianBytes: 8 << 10, SizeSigma: 0.9, MaxSizeBytes: 128 << 10, Devices: 3, SpanBytes: 64 << 30},
	{Name: "bingi", MeanInterarrivalUs: 18, ReadFraction: 0.6, SizeMedianBytes: 16 << 10, SizeSigma: 1.0, MaxSizeBytes: 256 << 10, Devices: 3, SpanBytes: 64 << 30},
	{Name: "cosmos", MeanInterarrivalUs: 20, ReadFraction: 0.45, SizeMedianBytes: 24 << 10, SizeSigma: 1.1, MaxSizeBytes: 512 << 10, Devices: 3, SpanBytes: 64 << 30},
}

// Presets returns copies of the built-in presets (azure, bingi, cosmos).
func Presets() []Preset { return append([]Preset(nil), presets...) }

// PresetByName returns the preset named name ("azure", "bingi" or "bing-i",
// "cosmos").
func PresetByName(name string) (Preset, error) {
	n := strings.ReplaceAll(strings.ToLower(name), "-", "")
	for _, p := range presets {
		if p.Name == n {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("linnos: unknown trace preset %q (want azure, bingi or cosmos)", name)
}

// Validate checks the preset's parameters.
func (p Preset) Validate() error {
	switch {
	case !(p.MeanInterarrivalUs > 0) || math.IsInf(p.MeanInterarrivalUs, 0):
		return fmt.Errorf("linnos: preset %q: mean inter-arrival must be > 0", p.Name)
	case !(p.ReadFraction >= 0 && p.ReadFraction <= 1):
		return fmt.Errorf("linnos: preset %q: read fraction must be in [0,1]", p.Name)
	case !(p.SizeMedianBytes >= 1) || !(p.SizeSigma >= 0) || p.SizeSigma > 10:
		return fmt.Errorf("linnos: preset %q: bad size distribution", p.Name)
	case p.MaxSizeBytes < pageSize || p.MaxSizeBytes > 64<<20:
		return fmt.Errorf("linnos: preset %q: max size must be in [4 KiB, 64 MiB]", p.Name)
	case p.Devices < 1 || p.Devices > 1024:
		return fmt.Errorf("linnos: preset %q: devices must be in [1,1024]", p.Name)
	case p.SpanBytes < p.MaxSizeBytes:
		return fmt.Errorf("linnos: preset %q: span smaller than the max size", p.Name)
	}
	return nil
}

// Generate produces n I/Os from preset p, deterministically for a seed.
func Generate(p Preset, n int, seed uint64) ([]IO, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if n < 0 || n > 100_000_000 {
		return nil, fmt.Errorf("linnos: cannot generate %d I/Os", n)
	}
	r := rand.New(rand.NewPCG(seed, 0x6c696e6e6f73))
	out := make([]IO, n)
	t := 0.0
	pages := p.SpanBytes / pageSize
	mu := math.Log(p.SizeMedianBytes)
	for i := range out {
		t += r.ExpFloat64() * p.MeanInterarrivalUs
		size := int64(math.Exp(mu + p.SizeSigma*r.NormFloat64()))
		if size > p.MaxSizeBytes {
			size = p.MaxSizeBytes
		}
		size = (size + pageSize - 1) / pageSize * pageSize
		if size < pageSize {
			size = pageSize
		}
		op := Write
		if r.Float64() < p.ReadFraction {
			op = Read
		}
		off := r.Int64N(pages-size/pageSize+1) * pageSize
		out[i] = IO{TsUs: math.Round(t*1000) / 1000, Dev: r.IntN(p.Devices), Offset: off, Size: size, Op: op}
	}
	return out, nil
}

// WriteTrace writes I/Os one per line as "ts_us dev offset size op" with op R
// or W.
func WriteTrace(w io.Writer, ios []IO) error {
	bw := bufio.NewWriter(w)
	for _, x := range ios {
		bw.WriteString(strconv.FormatFloat(x.TsUs, 'f', -1, 64))
		bw.WriteByte(' ')
		bw.WriteString(strconv.Itoa(x.Dev))
		bw.WriteByte(' ')
		bw.WriteString(strconv.FormatInt(x.Offset, 10))
		bw.WriteByte(' ')
		bw.WriteString(strconv.FormatInt(x.Size, 10))
		bw.WriteByte(' ')
		bw.WriteByte(byte(x.Op))
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write trace: %w", err)
	}
	return nil
}

// ErrTrace is returned (wrapped) for malformed trace lines.
var ErrTrace = errors.New("linnos: bad trace line")

// Limits applied to trace records.
const (
	MaxTraceIOSize = 64 << 20
	MaxTraceDev    = 1 << 20
)

// ParseTraceLine parses one "ts_us dev offset size op" line. op is R or W
// (case-insensitive) or the LinnOS convention 1 = read, 0 = write. Offsets
// must be non-negative, sizes in (0, 64 MiB], timestamps finite and >= 0.
func ParseTraceLine(line string) (IO, error) {
	f := strings.Fields(line)
	if len(f) != 5 {
		return IO{}, fmt.Errorf("%w: %d fields, want 5 (ts_us dev offset size op)", ErrTrace, len(f))
	}
	ts, err := strconv.ParseFloat(f[0], 64)
	if err != nil || math.IsNaN(ts) || math.IsInf(ts, 0) || ts < 0 || ts > 1e15 {
		return IO{}, fmt.Errorf("%w: timestamp %q", ErrTrace, f[0])
	}
	dev, err := strconv.Atoi(f[1])
	if err != nil || dev < 0 || dev > MaxTraceDev {
		return IO{}, fmt.Errorf("%w: device %q", ErrTrace, f[1])
	}
	off, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || off < 0 || off > math.MaxInt64-MaxTraceIOSize {
		return IO{}, fmt.Errorf("%w: offset %q", ErrTrace, f[2])
	}
	size, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil || size <= 0 || size > MaxTraceIOSize {
		return IO{}, fmt.Errorf("%w: size %q", ErrTrace, f[3])
	}
	var op Op
	switch f[4] {
	case "R", "r", "1":
		op = Read
	case "W", "w", "0":
		op = Write
	default:
		return IO{}, fmt.Errorf("%w: op %q (want R or W)", ErrTrace, f[4])
	}
	return IO{TsUs: ts, Dev: dev, Offset: off, Size: size, Op: op}, nil
}

// ReadTrace reads a trace (blank lines and lines starting with # are skipped),
// at most maxIOs records (0 = no limit), and returns it sorted by time.
func ReadTrace(r io.Reader, maxIOs int) ([]IO, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	var out []IO
	ln := 0
	for sc.Scan() {
		ln++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		x, err := ParseTraceLine(s)
		if err != nil {
			return nil, fmt.Errorf("trace line %d: %w", ln, err)
		}
		out = append(out, x)
		if maxIOs > 0 && len(out) >= maxIOs {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read trace (line %d): %w", ln+1, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].TsUs < out[j].TsUs })
	return out, nil
}
