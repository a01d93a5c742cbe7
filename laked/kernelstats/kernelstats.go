package kernelstats

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakeos/lake/features"
)

// Prefix marks the schemas this package exports.
const Prefix = "stats."

// Registry is what the collector reads; *features.Registry implements it.
type Registry interface {
	Schemas() ([]*features.SchemaInfo, error)
	Keys(id features.SchemaID) ([]uint64, error)
	ReadWindow(id features.SchemaID, key uint64, n int, w *features.Window) error
}

var (
	descStat   = prometheus.NewDesc("lake_kernel_stat", "A statistic a kernel component published in the feature registry (schema stats.*; the newest record of each key).", []string{"schema", "key", "field"}, nil)
	descErrors = prometheus.NewDesc("lake_kernel_stats_errors_total", "Kernel statistics schemas or keys that could not be read.", nil, nil)
)

// Collector is a prometheus.Collector over a registry's stats.* schemas.
type Collector struct {
	r      Registry
	errors atomic.Uint64
}

// New returns a Collector reading r.
func New(r Registry) *Collector { return &Collector{r: r} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStat
	ch <- descErrors
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	schemas, err := c.r.Schemas()
	if err != nil {
		c.errors.Add(1) // the schemas before the bad entry are still listed
	}
	var w features.Window
	// a registry that lists a name twice (a corrupt or hostile one) would
	// make the same series twice, which fails the whole gather: the first
	// wins, the others are counted
	seen := map[[3]string]bool{}
	for _, s := range schemas {
		if s == nil || !strings.HasPrefix(s.Name(), Prefix) {
			continue
		}
		keys, err := c.r.Keys(s.ID())
		if err != nil {
			c.errors.Add(1)
			continue
		}
		for _, k := range keys {
			if err := c.r.ReadWindow(s.ID(), k, 1, &w); err != nil || w.Len() == 0 {
				if err != nil && !errors.Is(err, features.ErrUnknownKey) {
					c.errors.Add(1)
				}
				continue
			}
			rec := w.Record(w.Len() - 1)
			key := strconv.FormatUint(k, 10)
			for fi, f := range s.Fields() {
				for e := 0; e < f.Count; e++ {
					v, err := s.Float(rec, fi, e)
					if err != nil {
						c.errors.Add(1)
						continue
					}
					name := f.Name
					if f.Count > 1 {
						name += "[" + strconv.Itoa(e) + "]"
					}
					if id := [3]string{s.Name(), key, name}; seen[id] {
						c.errors.Add(1)
						continue
					} else {
						seen[id] = true
					}
					ch <- prometheus.MustNewConstMetric(descStat, prometheus.GaugeValue, v, s.Name(), key, name)
				}
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(c.errors.Load()))
}
