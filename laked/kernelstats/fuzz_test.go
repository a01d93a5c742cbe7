package kernelstats

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakeos/lake/features"
)

// fuzzImage is a registry as the kernel leaves it: the dm-linnos
// statistics schemas (the layout of lakelib/c/lake_feat_create.h) with a
// target's and a replica's records, and a schema that is not exported.
func fuzzImage(t testing.TB) []byte {
	cfg := features.Config{MaxSchemas: 4, MaxKeys: 4, MaxHistory: 4, ArenaBytes: 16 << 10}
	mem := alignedBytes(features.SizeFor(cfg))
	reg, err := features.Create(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var tf []features.Field
	for _, n := range []string{"reads", "predictions", "revokes", "capped", "bypassed", "all_slow", "fallbacks",
		"deadline_miss", "laked_ok", "laked_err", "laked_bad", "read_errors", "write_errors", "failovers"} {
		tf = append(tf, features.Field{Name: n, Type: features.U64})
	}
	tf = append(tf, features.Field{Name: "accuracy", Type: features.I32}, features.Field{Name: "bypass", Type: features.U32})
	for _, s := range []features.Schema{
		{Name: "stats.dm_linnos", History: 2, MaxKeys: 4, Fields: tf},
		{Name: "stats.dm_linnos_dev", History: 2, MaxKeys: 4, Fields: []features.Field{
			{Name: "reads", Type: features.U64}, {Name: "errors", Type: features.U64}, {Name: "version", Type: features.U64},
			{Name: "pending", Type: features.U32}, {Name: "model", Type: features.U32, Count: 1},
		}},
		{Name: "linnos.arrival", History: 2, MaxKeys: 4, Fields: []features.Field{{Name: "pending", Type: features.U32}}},
	} {
		id, err := reg.Register(s)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := reg.Schema(id)
		for key := uint64(1); key <= 2; key++ {
			rec := info.NewRecord()
			for i := range rec {
				rec[i] = byte(i + int(key))
			}
			if err := reg.Record(id, 253<<20|key, rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	return mem
}

func alignedBytes(n int) []byte {
	b := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), n)[:n:n]
}

// FuzzCollect patches a registry the kernel filled (the input is a list of
// 3-byte patches: little-endian offset, then the byte written there) and
// collects its statistics: whatever the registry holds, collecting never
// panics and never fails the whole /metrics answer (a duplicate or
// unreadable statistic is skipped and counted).
func FuzzCollect(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x00, 0x00, 0xff})                                                                                     // the magic
	f.Add([]byte{0x90, 0x00, 0x09, 0x91, 0x00, 0x00})                                                                   // in the first schema entry
	f.Add([]byte{0x17, 0x03, 0x00})                                                                                     // stats.dm_linnos_dev renamed stats.dm_linnos: the same statistics twice
	f.Add([]byte{0x88, 0x05, 's', 0x89, 0x05, 't', 0x8a, 0x05, 'a', 0x8b, 0x05, 't', 0x8c, 0x05, 's', 0x8d, 0x05, '.'}) // linnos.arrival renamed stats.arrival
	f.Fuzz(func(t *testing.T, patches []byte) {
		mem := fuzzImage(t)
		for i := 0; i+3 <= len(patches); i += 3 {
			off := int(binary.LittleEndian.Uint16(patches[i:]))
			if off < len(mem) {
				mem[off] = patches[i+2]
			}
		}
		reg, err := features.Attach(mem)
		if err != nil {
			return
		}
		pr := prometheus.NewPedanticRegistry()
		pr.MustRegister(New(reg))
		if _, err := pr.Gather(); err != nil {
			t.Fatalf("gathering a patched registry failed: %v", err)
		}
	})
}
