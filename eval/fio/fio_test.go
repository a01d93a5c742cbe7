package fio

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseRealOutput(t *testing.T) {
	b, err := os.ReadFile("testdata/randread.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != "fio-3.33" || len(r.Jobs) != 1 || r.Jobs[0].Name != "a" {
		t.Fatalf("header: %+v", r)
	}
	rd := r.Jobs[0].Read
	if rd.IOs != 300 || rd.Bytes != 300*4096 {
		t.Fatalf("read counts %d ios %d bytes", rd.IOs, rd.Bytes)
	}
	if p, ok := rd.Percentile(50); !ok || p != 59648 {
		t.Fatalf("p50 %v %v, want 59648", p, ok)
	}
	if p, ok := rd.Percentile(99.9); !ok || p != 1089536 {
		t.Fatalf("p99.9 %v %v", p, ok)
	}
	if r.Jobs[0].Write.IOs != 0 {
		t.Fatalf("writes %d", r.Jobs[0].Write.IOs)
	}
	reads, writes := r.Total()
	if reads.IOs != 300 || writes.IOs != 0 {
		t.Fatalf("totals %d/%d", reads.IOs, writes.IOs)
	}
}

func TestParseRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":       "",
		"no object":   "fio: error",
		"no jobs":     `{"jobs":[]}`,
		"no read":     `{"jobs":[{"write":{"total_ios":0,"io_bytes":0}}]}`,
		"negative":    `{"jobs":[{"read":{"total_ios":-1,"io_bytes":0},"write":{"total_ios":0,"io_bytes":0}}]}`,
		"bad pct key": `{"jobs":[{"read":{"total_ios":1,"io_bytes":1,"clat_ns":{"percentile":{"150":1}}},"write":{"total_ios":0,"io_bytes":0}}]}`,
		"neg latency": `{"jobs":[{"read":{"total_ios":1,"io_bytes":1,"clat_ns":{"mean":-3}},"write":{"total_ios":0,"io_bytes":0}}]}`,
		"truncated":   `{"jobs":[{"read":{"total_ios":1`,
	} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrOutput) {
			t.Errorf("%s: err %v, want ErrOutput", name, err)
		}
	}
	if _, err := Parse([]byte("{" + strings.Repeat(" ", MaxOutput))); !errors.Is(err, ErrOutput) {
		t.Errorf("oversized output: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"jobs":[{"jobname":"x","read":{"total_ios":2,"io_bytes":8192,"clat_ns":{"mean":1,"percentile":{"50.000000":10}}},"write":{"total_ios":0,"io_bytes":0}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrOutput) {
				t.Fatalf("error %v does not wrap ErrOutput", err)
			}
			return
		}
		if len(r.Jobs) == 0 {
			t.Fatal("accepted output without jobs")
		}
		for _, j := range r.Jobs {
			for p, v := range j.Read.ClatPct {
				if p < 0 || p > 100 || v < 0 {
					t.Fatalf("accepted percentile %v = %v", p, v)
				}
			}
		}
	})
}
