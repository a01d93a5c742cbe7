//go:build linux

package features

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// buildCProgram compiles testdata/lake_features_test.c against
// lakelib/include/lake_features.h into a temporary directory.
func buildCProgram(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot check the C header (CI has gcc)")
	}
	bin := filepath.Join(t.TempDir(), "lake_features_test")
	cmd := exec.Command(cc, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror",
		"-I", filepath.Join("..", "lakelib", "include"),
		"-o", bin, filepath.Join("testdata", "lake_features_test.c"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compiling the C test program: %v\n%s", err, out)
	}
	return bin
}

// TestCHeaderLayoutMatchesGo compares every offset, size and constant of
// lake_features.h with the Go layout constants.
func TestCHeaderLayoutMatchesGo(t *testing.T) {
	bin := buildCProgram(t)
	out, err := exec.Command(bin, "layout").Output()
	if err != nil {
		t.Fatalf("layout: %v", err)
	}
	got := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		v, err := strconv.ParseUint(val, 10, 64)
		if !ok || err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		got[name] = v
	}
	want := map[string]uint64{
		"magic": Magic, "version": uint64(Version), "header_size": HeaderSize, "max_fields": MaxFields,
		"name_len": MaxNameLen, "field_name_len": MaxFieldNameLen, "schema_entry_size": schemaEntrySize,
		"field_size": fieldDescSize, "slot_size": keySlotSize, "rec_hdr_size": recHdrSize,
		"st_mask": stMask, "gen_shift": genShift, "st_empty": stEmpty, "st_busy": stBusy,
		"st_claimed": stClaimed, "st_live": stLive, "st_dead": stDead, "st_owned": stOwned,
		"type_u8": uint64(U8), "type_u16": uint64(U16), "type_u32": uint64(U32), "type_u64": uint64(U64),
		"type_i32": uint64(I32), "type_i64": uint64(I64), "type_f32": uint64(F32), "type_f64": uint64(F64),
		"hash_1": mix64(1), "hash_deadbeef": mix64(0xdeadbeef),

		"lake_feat_header.magic": hdrMagic, "lake_feat_header.version": hdrVersion,
		"lake_feat_header.header_size": hdrHeaderSize, "lake_feat_header.total_size": hdrTotalSize,
		"lake_feat_header.max_schemas": hdrMaxSchemas, "lake_feat_header.max_fields": hdrMaxFields,
		"lake_feat_header.max_keys": hdrMaxKeys, "lake_feat_header.max_history": hdrMaxHistory,
		"lake_feat_header.max_record": hdrMaxRecord, "lake_feat_header.schema_entry_size": hdrSchemaEntrySize,
		"lake_feat_header.schema_table_off": hdrSchemaTableOff, "lake_feat_header.arena_off": hdrArenaOff,
		"lake_feat_header.arena_size": hdrArenaSize, "lake_feat_header.arena_used": hdrArenaUsed,
		"lake_feat_header.schema_count": hdrSchemaCount, "lake_feat_header.reg_lock": hdrRegLock,
		"lake_feat_header.reserved": hdrReserved,

		"lake_feat_schema.state": schState, "lake_feat_schema.id": schID, "lake_feat_schema.name": schName,
		"lake_feat_schema.nfields": schNFields, "lake_feat_schema.history": schHistory,
		"lake_feat_schema.ring_len": schRingLen, "lake_feat_schema.record_size": schRecordSize,
		"lake_feat_schema.record_stride": schRecordStride, "lake_feat_schema.key_capacity": schKeyCapacity,
		"lake_feat_schema.table_size": schTableSize, "lake_feat_schema.live_keys": schLiveKeys,
		"lake_feat_schema.key_table_off": schKeyTableOff, "lake_feat_schema.ring_off": schRingOff,
		"lake_feat_schema.reserved": schReserved, "lake_feat_schema.fields": schFields,

		"lake_feat_field.name": fdName, "lake_feat_field.type": fdType, "lake_feat_field.reserved": fdReserved,
		"lake_feat_field.count": fdCount, "lake_feat_field.offset": fdOffset,

		"lake_feat_slot.state": slotState, "lake_feat_slot.key": slotKey, "lake_feat_slot.write_idx": slotWriteIdx,
		"lake_feat_slot.base_idx": slotBaseIdx, "lake_feat_slot.lost": slotLost, "lake_feat_slot.owner": slotOwner,
		"lake_feat_slot.own_base": slotOwnBase, "lake_feat_slot.reserved": slotReserved,

		"lake_feat_rec.seq": recSeq, "lake_feat_rec.lost": recLost,
		"lake_feat_rec.payload": recHdrSize,
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("C program does not print %s", name)
		} else if g != w {
			t.Errorf("%s: C says %d, Go says %d", name, g, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("C prints %s, which the test does not check", name)
		}
	}
}

// cSchema is the schema the C program records into.
var cSchema = Schema{Name: "ctest", History: 8192, MaxKeys: 8, Fields: []Field{
	{Name: "writer", Type: U32}, {Name: "key", Type: U64}, {Name: "i", Type: U32},
	{Name: "sq", Type: I32, Count: 2}, {Name: "x", Type: F64},
}}

// TestCProducerRecordsGoReads creates a registry in a file mapped by Go,
// runs the C producer on it while Go goroutines record into the same keys,
// and reads everything back: windows, values, counts and a drain.
func TestCProducerRecordsGoReads(t *testing.T) {
	bin := buildCProgram(t)
	const (
		cKeys   = 6    // C records keys 1..6
		goKeys  = 4    // Go records keys 1..4 concurrently
		perKey  = 3000 // samples per key per writer
		cWriter = 1
		goWrite = 2
	)
	path, r := mappedRegistry(t, Config{MaxSchemas: 4, MaxKeys: 16, MaxHistory: 8192, MaxRecordBytes: 64, ArenaBytes: 8 << 20})
	id, err := r.Register(cSchema)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	drainer, err := r.NewDrainer(id, false)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "record", path, cSchema.Name, strconv.Itoa(cKeys), strconv.Itoa(perKey))
	var cOut, cErr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &cOut, &cErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Start the Go writers once the C producer has inserted its first key,
	// so that both record into the same keys at the same time.
	cDone := make(chan error, 1)
	go func() { cDone <- cmd.Wait() }()
	var cWaitErr error
	cFinished := false
wait:
	for {
		select {
		case cWaitErr = <-cDone:
			cFinished = true
			break wait
		default:
		}
		if keys, _ := r.Keys(id); len(keys) > 0 {
			break
		}
		runtime.Gosched()
	}
	var wg sync.WaitGroup
	goErr := make(chan error, goKeys)
	for k := uint64(1); k <= goKeys; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := s.NewRecord()
			for i := range uint64(perKey) {
				if err := fillC(s, rec, goWrite, k, i); err != nil {
					goErr <- err
					return
				}
				if err := r.Record(id, k, rec); err != nil {
					goErr <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(goErr)
	if err := <-goErr; err != nil {
		t.Fatal(err)
	}
	if !cFinished {
		cWaitErr = <-cDone
	}
	if cWaitErr != nil {
		t.Fatalf("C producer: %v\n%s", cWaitErr, cErr.String())
	}
	if want := fmt.Sprintf("recorded %d lost 0\n", cKeys*perKey); cOut.String() != want {
		t.Fatalf("C producer says %q, want %q", cOut.String(), want)
	}

	keys, err := r.Keys(id)
	if err != nil || len(keys) != cKeys {
		t.Fatalf("keys %v (%v), want 1..%d once each", keys, err, cKeys)
	}
	var w Window
	switches := 0 // writer changes inside windows: how much C and Go interleaved
	for k := uint64(1); k <= cKeys; k++ {
		n := perKey
		if k <= goKeys {
			n = 2 * perKey
		}
		st, err := r.Stats(id, k)
		if err != nil || st.Recorded != uint64(n) || st.Lost != 0 {
			t.Fatalf("key %d: stats %+v (%v), want %d recorded", k, st, err, n)
		}
		if err := r.ReadWindow(id, k, n, &w); err != nil || w.Len() != n {
			t.Fatalf("key %d: window of %d (%v), want %d", k, w.Len(), err, n)
		}
		next := map[uint64]uint64{}
		for j := 0; j < w.Len(); j++ {
			if j > 0 && binary.LittleEndian.Uint32(w.Record(j)) != binary.LittleEndian.Uint32(w.Record(j-1)) {
				switches++
			}
			writer, i, err := checkC(s, w.Record(j), k)
			if err != nil {
				t.Fatalf("key %d record %d: %v", k, j, err)
			}
			if i != next[writer] {
				t.Fatalf("key %d writer %d: sample %d, want %d (order)", k, writer, i, next[writer])
			}
			next[writer]++
		}
		if next[cWriter] != perKey {
			t.Fatalf("key %d: %d C samples, want %d", k, next[cWriter], perKey)
		}
	}
	t.Logf("C and Go records interleaved %d times in the shared keys", switches)
	// Training capture sees every sample of both producers once.
	var b Batch
	total := 0
	for {
		if err := drainer.Drain(100, &b); err != nil {
			t.Fatal(err)
		}
		if b.Dropped != 0 {
			t.Fatalf("drain dropped %d", b.Dropped)
		}
		if len(b.Samples) == 0 {
			break
		}
		for _, smp := range b.Samples {
			if _, _, err := checkC(s, smp.Data, smp.Key); err != nil {
				t.Fatal(err)
			}
		}
		total += len(b.Samples)
	}
	if want := cKeys*perKey + goKeys*perKey; total != want {
		t.Fatalf("drained %d samples, want %d", total, want)
	}
}

func fillC(s *SchemaInfo, rec []byte, writer, key, i uint64) error {
	for _, err := range []error{
		s.SetUint(rec, 0, 0, writer), s.SetUint(rec, 1, 0, key), s.SetUint(rec, 2, 0, i),
		s.SetInt(rec, 3, 0, -int64(i)), s.SetInt(rec, 3, 1, int64(i*i)), s.SetFloat(rec, 4, 0, float64(i)/2),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkC(s *SchemaInfo, rec []byte, key uint64) (writer, i uint64, err error) {
	get := func(f, e int) int64 { v, _ := s.Int(rec, f, e); return v }
	writer, i = uint64(get(0, 0)), uint64(get(2, 0))
	x, _ := s.Float(rec, 4, 0)
	if uint64(get(1, 0)) != key || get(3, 0) != -int64(i) || get(3, 1) != int64(i*i) || x != float64(i)/2 || (writer != 1 && writer != 2) {
		return 0, 0, fmt.Errorf("bad record %x (key %d): writer %d i %d sq %d,%d x %v", rec, key, writer, i, get(3, 0), get(3, 1), x)
	}
	if math.IsNaN(x) || binary.LittleEndian.Uint32(rec[s.fields[0].Offset+4:]) != 0 {
		return 0, 0, fmt.Errorf("bad padding in %x", rec)
	}
	return writer, i, nil
}

// mappedRegistry creates a registry in a file under t.TempDir(), mapped
// shared, and returns the file's path and the registry.
func mappedRegistry(t *testing.T, cfg Config) (string, *Registry) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := SizeFor(cfg)
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(mem) })
	r, err := Create(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return path, r
}

// TestCAndGoInsertSameKeys has the C producer (ascending) and Go
// (descending) insert the same 2000 fresh keys at the same time, so that
// claims of one key by the two languages race in the key table: every key
// must end up live exactly once, holding both samples.
func TestCAndGoInsertSameKeys(t *testing.T) {
	bin := buildCProgram(t)
	const (
		nkeys = 2000
		base  = 1000
	)
	path, r := mappedRegistry(t, Config{MaxSchemas: 2, MaxKeys: nkeys, MaxHistory: 4, MaxRecordBytes: 64, ArenaBytes: 4 << 20})
	sc := cSchema
	sc.Name, sc.History, sc.MaxKeys = "cinsert", 2, nkeys
	id, err := r.Register(sc)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	cmd := exec.Command(bin, "record", path, sc.Name, strconv.Itoa(nkeys), "1", strconv.Itoa(base))
	var cOut, cErr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &cOut, &cErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Start when the C producer is under way.
	deadline := time.Now().Add(10 * time.Second)
	for atomic.LoadUint32(r.u32(s.entryOff+schLiveKeys)) == 0 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	rec := s.NewRecord()
	for k := uint64(base + nkeys); k > base; k-- {
		if err := fillC(s, rec, 2, k, 0); err != nil {
			t.Fatal(err)
		}
		if err := r.Record(id, k, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("C producer: %v\n%s", err, cErr.String())
	}
	if want := fmt.Sprintf("recorded %d lost 0\n", nkeys); cOut.String() != want {
		t.Fatalf("C producer says %q, want %q", cOut.String(), want)
	}
	keys, err := r.Keys(id)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, k := range keys {
		if seen[k] || k <= base || k > base+nkeys {
			t.Fatalf("key %d duplicated or out of range", k)
		}
		seen[k] = true
	}
	if len(keys) != nkeys {
		t.Fatalf("%d keys live, want %d", len(keys), nkeys)
	}
	if n := atomic.LoadUint32(r.u32(s.entryOff + schLiveKeys)); n != nkeys {
		t.Fatalf("live key count %d, want %d", n, nkeys)
	}
	var w Window
	for k := uint64(base + 1); k <= base+nkeys; k++ {
		if err := r.ReadWindow(id, k, 2, &w); err != nil || w.Len() != 2 {
			t.Fatalf("key %d: %d samples (%v), want 2 (one from C, one from Go)", k, w.Len(), err)
		}
		w1, _, err1 := checkC(s, w.Record(0), k)
		w2, _, err2 := checkC(s, w.Record(1), k)
		if err1 != nil || err2 != nil || w1 == w2 {
			t.Fatalf("key %d: writers %d,%d (%v, %v)", k, w1, w2, err1, err2)
		}
	}
}
