package fio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
)

// ErrOutput is wrapped by every Parse error.
var ErrOutput = errors.New("fio: bad JSON output")

// MaxOutput is the largest fio output Parse accepts.
const MaxOutput = 64 << 20

// Dir is one direction's figures for a job (fio's "read" or "write"
// object).
type Dir struct {
	// IOs is the number of completed I/Os (total_ios).
	IOs uint64
	// Bytes is the amount transferred (io_bytes).
	Bytes uint64
	// ClatMeanNs is the mean completion latency (submission to completion).
	ClatMeanNs float64
	// ClatPct maps a percentile (e.g. 50, 99.9) to the completion latency
	// in ns, as fio reports it.
	ClatPct map[float64]float64
}

// Percentile returns the reported clat percentile closest to p (fio reports
// 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95 and
// 99.99 by default) and false if none is reported.
func (d Dir) Percentile(p float64) (float64, bool) {
	best, bestDist, ok := 0.0, math.Inf(1), false
	for k, v := range d.ClatPct {
		if dist := math.Abs(k - p); dist < bestDist {
			best, bestDist, ok = v, dist, true
		}
	}
	return best, ok
}

// Job is one job (or the group, with --group_reporting).
type Job struct {
	Name        string
	Read, Write Dir
}

// Result is a decoded fio run.
type Result struct {
	Version string
	Jobs    []Job
}

// Total sums IOs and Bytes over all jobs for reads and writes.
func (r *Result) Total() (reads, writes Dir) {
	for _, j := range r.Jobs {
		reads.IOs += j.Read.IOs
		reads.Bytes += j.Read.Bytes
		writes.IOs += j.Write.IOs
		writes.Bytes += j.Write.Bytes
	}
	return reads, writes
}

type rawDir struct {
	TotalIOs *int64 `json:"total_ios"`
	IOBytes  *int64 `json:"io_bytes"`
	Clat     struct {
		Mean       float64            `json:"mean"`
		Percentile map[string]float64 `json:"percentile"`
	} `json:"clat_ns"`
}

type rawJob struct {
	Name  string  `json:"jobname"`
	Read  *rawDir `json:"read"`
	Write *rawDir `json:"write"`
}

type rawResult struct {
	Version string   `json:"fio version"`
	Jobs    []rawJob `json:"jobs"`
}

// Parse decodes fio's --output-format=json output. Text before the first
// '{' (fio prints warnings there) is skipped. Every number is checked:
// counts and sizes non-negative, latencies finite and non-negative,
// percentile keys in [0,100].
func Parse(out []byte) (*Result, error) {
	if len(out) > MaxOutput {
		return nil, fmt.Errorf("%w: %d bytes is more than %d", ErrOutput, len(out), MaxOutput)
	}
	i := bytes.IndexByte(out, '{')
	if i < 0 {
		return nil, fmt.Errorf("%w: no JSON object", ErrOutput)
	}
	var raw rawResult
	dec := json.NewDecoder(bytes.NewReader(out[i:]))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOutput, err)
	}
	if len(raw.Jobs) == 0 {
		return nil, fmt.Errorf("%w: no jobs", ErrOutput)
	}
	res := &Result{Version: raw.Version}
	for n, j := range raw.Jobs {
		job := Job{Name: j.Name}
		var err error
		if job.Read, err = convDir(j.Read); err != nil {
			return nil, fmt.Errorf("%w: job %d (%q) read: %w", ErrOutput, n, j.Name, err)
		}
		if job.Write, err = convDir(j.Write); err != nil {
			return nil, fmt.Errorf("%w: job %d (%q) write: %w", ErrOutput, n, j.Name, err)
		}
		res.Jobs = append(res.Jobs, job)
	}
	return res, nil
}

func convDir(r *rawDir) (Dir, error) {
	if r == nil {
		return Dir{}, errors.New("missing")
	}
	if r.TotalIOs == nil || r.IOBytes == nil {
		return Dir{}, errors.New("missing total_ios or io_bytes")
	}
	if *r.TotalIOs < 0 || *r.IOBytes < 0 {
		return Dir{}, fmt.Errorf("negative count %d or size %d", *r.TotalIOs, *r.IOBytes)
	}
	if !finiteNonNeg(r.Clat.Mean) {
		return Dir{}, fmt.Errorf("bad mean latency %v", r.Clat.Mean)
	}
	d := Dir{IOs: uint64(*r.TotalIOs), Bytes: uint64(*r.IOBytes), ClatMeanNs: r.Clat.Mean}
	if len(r.Clat.Percentile) > 0 {
		d.ClatPct = make(map[float64]float64, len(r.Clat.Percentile))
		keys := make([]string, 0, len(r.Clat.Percentile))
		for k := range r.Clat.Percentile {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p, err := strconv.ParseFloat(k, 64)
			if err != nil || !(p >= 0 && p <= 100) {
				return Dir{}, fmt.Errorf("bad percentile key %q", k)
			}
			v := r.Clat.Percentile[k]
			if !finiteNonNeg(v) {
				return Dir{}, fmt.Errorf("bad latency %v at percentile %q", v, k)
			}
			d.ClatPct[p] = v
		}
	}
	return d, nil
}

func finiteNonNeg(v float64) bool { return v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

// Run runs `fio --output-format=json args...` and parses its output.
func Run(ctx context.Context, args ...string) (*Result, error) {
	return RunEnv(ctx, nil, args...)
}

// RunEnv is Run with extra environment variables ("NAME=value"), which fio
// expands as ${NAME} in job files.
func RunEnv(ctx context.Context, env []string, args ...string) (*Result, error) {
	bin, err := exec.LookPath("fio")
	if err != nil {
		return nil, fmt.Errorf("fio: not installed (apt-get install fio): %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--output-format=json"}, args...)...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("fio %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	res, err := Parse(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("fio %v: %w", args, err)
	}
	return res, nil
}
