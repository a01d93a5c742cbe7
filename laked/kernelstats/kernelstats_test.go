package kernelstats

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakeos/lake/features"
)

// TestCollect publishes statistics the way a kernel target does (one
// record per report, the newest is current) and checks what is exported:
// every element of every field of stats.* schemas, the newest record
// only, other schemas not at all.
func TestCollect(t *testing.T) {
	cfg := features.Config{MaxSchemas: 4, MaxKeys: 8, MaxHistory: 8, ArenaBytes: 1 << 16}
	reg, err := features.Create(make([]byte, features.SizeFor(cfg)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := reg.Register(features.Schema{Name: "stats.dm_linnos", History: 2, MaxKeys: 4, Fields: []features.Field{
		{Name: "revokes", Type: features.U64}, {Name: "accuracy_pct", Type: features.I32}, {Name: "mode", Type: features.U32, Count: 2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := reg.Register(features.Schema{Name: "io", History: 2, MaxKeys: 4, Fields: []features.Field{{Name: "lat", Type: features.U32}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := reg.Schema(id)
	for i, rv := range []uint64{5, 9} { // two reports: the second is current
		rec := s.NewRecord()
		_ = s.SetUint(rec, 0, 0, rv)
		_ = s.SetInt(rec, 1, 0, int64(-1+i*94))
		_ = s.SetUint(rec, 2, 0, 2)
		_ = s.SetUint(rec, 2, 1, 1)
		if err := reg.Record(id, 253<<20|3, rec); err != nil {
			t.Fatal(err)
		}
	}
	os, _ := reg.Schema(other)
	if err := reg.Record(other, 1, os.NewRecord()); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP lake_kernel_stat A statistic a kernel component published in the feature registry (schema stats.*; the newest record of each key).
# TYPE lake_kernel_stat gauge
lake_kernel_stat{field="accuracy_pct",key="265289731",schema="stats.dm_linnos"} 93
lake_kernel_stat{field="mode[0]",key="265289731",schema="stats.dm_linnos"} 2
lake_kernel_stat{field="mode[1]",key="265289731",schema="stats.dm_linnos"} 1
lake_kernel_stat{field="revokes",key="265289731",schema="stats.dm_linnos"} 9
# HELP lake_kernel_stats_errors_total Kernel statistics schemas or keys that could not be read.
# TYPE lake_kernel_stats_errors_total counter
lake_kernel_stats_errors_total 0
`
	pr := prometheus.NewRegistry()
	pr.MustRegister(New(reg))
	if err := testutil.GatherAndCompare(pr, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
