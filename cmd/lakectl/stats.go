package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/lakeos/lake/laked/metrics"
)

// quantiles are a histogram's estimated percentiles; nil without
// observations (JSON null: NaN is not JSON).
type quantiles struct {
	Mean *float64 `json:"mean"`
	P50  *float64 `json:"p50"`
	P90  *float64 `json:"p90"`
	P99  *float64 `json:"p99"`
}

func quantilesOf(h metrics.Histogram) quantiles {
	f := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) || h.Count == 0 {
			return nil
		}
		return &v
	}
	return quantiles{Mean: f(h.Mean()), P50: f(h.Quantile(0.5)), P90: f(h.Quantile(0.9)), P99: f(h.Quantile(0.99))}
}

// statsJSON is lakectl stats --json: the scraped series and estimated
// percentiles (bucket interpolation, as PromQL's histogram_quantile).
type statsJSON struct {
	*metrics.Snapshot
	Estimates map[string]quantiles `json:"estimates"`
}

func (c *cli) stats(ctx context.Context, args []string) error {
	fs := newFlagSet("stats", c)
	if err := c.parseNoArgs(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	s, err := metrics.Scrape(ctx, nil, c.metrics)
	if err != nil {
		return err
	}
	if c.json {
		return c.emitJSON(statsJSON{Snapshot: s, Estimates: map[string]quantiles{
			"batch_size":           quantilesOf(s.BatchSize),
			"queue_wait_seconds":   quantilesOf(s.QueueWait),
			"service_time_seconds": quantilesOf(s.ServiceTime),
		}})
	}
	tw := c.table()
	fmt.Fprintf(tw, "submissions\t%d\n", s.Submissions)
	fmt.Fprintf(tw, "completions\t%d\t%s\n", s.TotalCompletions(), countsLine(s.Completions))
	bs := s.BatchSize
	fmt.Fprintf(tw, "batches\t%d\tmean %.1f items, p50 %s, p99 %s\n", s.Batches, bs.Mean(), fmtItems(bs.UpperBound(0.5)), fmtItems(bs.UpperBound(0.99)))
	for _, h := range []struct {
		name string
		h    metrics.Histogram
	}{{"queue wait", s.QueueWait}, {"service time", s.ServiceTime}} {
		fmt.Fprintf(tw, "%s\t%d\tmean %s, p50 %s, p90 %s, p99 %s\n", h.name, h.h.Count,
			fmtMean(h.h), fmtSeconds(h.h.Quantile(0.5)), fmtSeconds(h.h.Quantile(0.9)), fmtSeconds(h.h.Quantile(0.99)))
	}
	fmt.Fprintf(tw, "decisions\t%d\tcpu %d, gpu %d, gpu fallbacks %d\n", s.Decisions["cpu"]+s.Decisions["gpu"], s.Decisions["cpu"], s.Decisions["gpu"], s.GPUFallbacks)
	fmt.Fprintf(tw, "sessions\t%d\t%d served since start\n", s.Sessions, s.SessionsServed)
	if s.Overflowed > 0 {
		fmt.Fprintf(tw, "overflowed\t%d\tcompletions held back by a full ring\n", s.Overflowed)
	}
	models := make([]string, 0, len(s.Models))
	for _, m := range s.Models {
		models = append(models, fmt.Sprintf("%d %s v%d", m.ID, m.Name, m.Version))
	}
	fmt.Fprintf(tw, "models\t%d\t%s\n", len(s.Models), strings.Join(models, ", "))
	if p := s.Policy; p != nil {
		where := "Go fallback"
		if p.Kernel {
			where = "BPF"
		}
		fmt.Fprintf(tw, "policy\t%s\t%s, cpu %d, gpu %d, errors %d\n", p.Active, where, p.Decisions["cpu"], p.Decisions["gpu"], p.Errors)
	}
	return tw.Flush()
}

func fmtMean(h metrics.Histogram) string {
	if h.Count == 0 {
		return "-"
	}
	return fmtSeconds(h.Mean())
}

// fmtItems prints a batch-size bucket bound as "<=N".
func fmtItems(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return "above the last bucket"
	}
	return fmt.Sprintf("<=%g", v)
}

// countsLine prints non-zero counts, largest first.
func countsLine(m map[string]uint64) string {
	type kv struct {
		k string
		v uint64
	}
	var kvs []kv
	for k, v := range m {
		if v > 0 {
			kvs = append(kvs, kv{k, v})
		}
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].v != kvs[j].v {
			return kvs[i].v > kvs[j].v
		}
		return kvs[i].k < kvs[j].k
	})
	parts := make([]string, len(kvs))
	for i, e := range kvs {
		parts[i] = fmt.Sprintf("%s %d", e.k, e.v)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
