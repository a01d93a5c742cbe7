//go:build linux

package lakec

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lakeos/lake/shm"
)

var (
	benchOnce sync.Once
	benchBin  string
	benchErr  error
	benchOut  []byte
)

// benchBinary builds the C test program optimised, without sanitizers.
func benchBinary(b *testing.B) string {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		b.Skip("gcc not found")
	}
	benchOnce.Do(func() {
		var dir string
		dir, benchErr = os.MkdirTemp("", "lakec-bench-")
		if benchErr != nil {
			return
		}
		tempDirs = append(tempDirs, dir) // removed by TestMain
		benchBin = filepath.Join(dir, "lake_c_bench")
		benchOut, benchErr = exec.Command(cc, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread",
			"-I", ".", "-I", filepath.Join("..", "include"), "-o", benchBin,
			filepath.Join("testdata", "lake_c_test.c"), filepath.Join("src", "lake_client.c")).CombinedOutput()
	})
	if benchErr != nil {
		b.Fatalf("compiling: %v\n%s", benchErr, benchOut)
	}
	return benchBin
}

// BenchmarkRingRoundTrip times one submit, consume, complete and reap on
// a single thread: "go" is the shm package (the baseline), "c" the shared
// C ring code (lake_ring.h and lakelib/c, what the kernel module and C
// clients run), timed inside the C process. Compare ns/roundtrip.
func BenchmarkRingRoundTrip(b *testing.B) {
	b.Run("go", func(b *testing.B) {
		cfg := shm.Config{SQEntries: 256, CQEntries: 512, ArenaSize: 4096}
		l, err := cfg.Layout()
		if err != nil {
			b.Fatal(err)
		}
		r, err := shm.NewRegion(aligned(int(l.RegionSize)), cfg, 1)
		if err != nil {
			b.Fatal(err)
		}
		sq, cq := r.SQ(), r.CQ()
		in, out := make([]shm.SQE, 1), make([]shm.CQE, 1)
		e := shm.SQE{Opcode: shm.OpNop}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			e.Tag = uint64(i)
			if err := sq.TrySubmit(&e); err != nil {
				b.Fatal(err)
			}
			if sq.Consume(in) != 1 {
				b.Fatal("consume")
			}
			if cq.Post([]shm.CQE{{Tag: in[0].Tag}}) != 1 {
				b.Fatal("post")
			}
			_ = cq.Bell.Ring()
			if cq.Reap(out) != 1 || out[0].Tag != uint64(i) {
				b.Fatal("reap")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/roundtrip")
	})
	b.Run("c", func(b *testing.B) {
		bin := benchBinary(b)
		b.ResetTimer()
		out, err := exec.Command(bin, "bench", strconv.Itoa(b.N)).Output()
		if err != nil {
			b.Fatal(err)
		}
		v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "ns_per_roundtrip ")
		ns, perr := strconv.ParseFloat(v, 64)
		if !ok || perr != nil {
			b.Fatalf("bad output %q", out)
		}
		b.ReportMetric(ns, "ns/roundtrip")
	})
}
