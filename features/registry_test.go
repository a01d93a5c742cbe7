package features

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func newTestRegistry(t testing.TB, cfg Config) *Registry {
	t.Helper()
	size := SizeFor(cfg)
	if size == 0 {
		t.Fatalf("SizeFor(%+v) = 0", cfg)
	}
	r, err := Create(make([]byte, size), cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r
}

func smallCfg() Config {
	return Config{MaxSchemas: 4, MaxKeys: 64, MaxHistory: 64, MaxRecordBytes: 128, ArenaBytes: 1 << 20}
}

func u64rec(s *SchemaInfo, vals ...uint64) []byte {
	rec := s.NewRecord()
	for i, v := range vals {
		binary.LittleEndian.PutUint64(rec[8*i:], v)
	}
	return rec
}

func TestRegisterLayoutAndLookup(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "net.flow", History: 8, MaxKeys: 16, Fields: []Field{
		{Name: "proto", Type: U8},
		{Name: "bytes", Type: U64},
		{Name: "rtt", Type: F32, Count: 3},
		{Name: "win", Type: U16, Count: 2},
		{Name: "delta", Type: I32},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Schema(id)
	if err != nil {
		t.Fatal(err)
	}
	want := []FieldInfo{
		{"proto", U8, 1, 0}, {"bytes", U64, 1, 8}, {"rtt", F32, 3, 16}, {"win", U16, 2, 28}, {"delta", I32, 1, 32},
	}
	if got := s.Fields(); !slices.Equal(got, want) {
		t.Fatalf("fields = %+v, want %+v", got, want)
	}
	if s.RecordSize() != 40 {
		t.Fatalf("record size %d, want 40", s.RecordSize())
	}
	if got, err := r.Lookup("net.flow"); err != nil || got != id {
		t.Fatalf("Lookup = %d, %v", got, err)
	}
	if _, err := r.Lookup("nope"); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("Lookup(nope) err = %v", err)
	}
	// A second process attaching sees the same schema.
	r2, err := Attach(r.mem)
	if err != nil {
		t.Fatal(err)
	}
	all, err := r2.Schemas()
	if err != nil || len(all) != 1 || all[0].Name() != "net.flow" || !slices.Equal(all[0].Fields(), want) || all[0].History() != 8 || all[0].MaxKeys() != 16 {
		t.Fatalf("Schemas after Attach = %v, %v", all, err)
	}

	// Typed encode/decode round trip.
	rec := s.NewRecord()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SetUint(rec, 0, 0, 17))
	must(s.SetUint(rec, 1, 0, 1<<40))
	must(s.SetFloat(rec, 2, 2, 1.5))
	must(s.SetUint(rec, 3, 1, 65535))
	must(s.SetInt(rec, 4, 0, -5))
	if v, _ := s.Int(rec, 1, 0); v != 1<<40 {
		t.Fatalf("bytes = %d", v)
	}
	if v, _ := s.Float(rec, 2, 2); v != 1.5 {
		t.Fatalf("rtt[2] = %v", v)
	}
	if v, _ := s.Int(rec, 4, 0); v != -5 {
		t.Fatalf("delta = %d", v)
	}
	if v, _ := s.Int(rec, 3, 1); v != 65535 {
		t.Fatalf("win[1] = %d", v)
	}
	for name, err := range map[string]error{
		"u8 overflow":   s.SetUint(rec, 0, 0, 256),
		"u16 overflow":  s.SetUint(rec, 3, 0, 1<<16),
		"elem range":    s.SetUint(rec, 3, 2, 1),
		"field range":   s.SetUint(rec, 9, 0, 1),
		"negative u":    s.SetInt(rec, 0, 0, -1),
		"i32 overflow":  s.SetInt(rec, 4, 0, 1<<40),
		"float on int":  s.SetFloat(rec, 1, 0, 1),
		"short record":  s.SetUint(rec[:8], 0, 0, 1),
		"negative elem": s.SetUint(rec, 0, -1, 1),
	} {
		if !errors.Is(err, ErrWidth) {
			t.Errorf("%s: err = %v, want ErrWidth", name, err)
		}
	}
}

func TestRegisterErrors(t *testing.T) {
	r := newTestRegistry(t, Config{MaxSchemas: 2, MaxKeys: 64, MaxHistory: 64, MaxRecordBytes: 64, ArenaBytes: 64 << 10})
	ok := Schema{Name: "a", History: 4, MaxKeys: 4, Fields: []Field{{Name: "x", Type: U32}}}
	cases := []struct {
		name string
		s    Schema
		want error
	}{
		{"empty name", Schema{History: 4, MaxKeys: 4, Fields: ok.Fields}, ErrSchema},
		{"long name", Schema{Name: "0123456789012345678901234567890123", History: 4, MaxKeys: 4, Fields: ok.Fields}, ErrSchema},
		{"space in name", Schema{Name: "a b", History: 4, MaxKeys: 4, Fields: ok.Fields}, ErrSchema},
		{"no fields", Schema{Name: "b", History: 4, MaxKeys: 4}, ErrSchema},
		{"17 fields", Schema{Name: "b", History: 4, MaxKeys: 4, Fields: make([]Field, 17)}, ErrSchema},
		{"bad type", Schema{Name: "b", History: 4, MaxKeys: 4, Fields: []Field{{Name: "x", Type: 9}}}, ErrSchema},
		{"dup field", Schema{Name: "b", History: 4, MaxKeys: 4, Fields: []Field{{Name: "x", Type: U8}, {Name: "x", Type: U8}}}, ErrSchema},
		{"negative width", Schema{Name: "b", History: 4, MaxKeys: 4, Fields: []Field{{Name: "x", Type: U8, Count: -1}}}, ErrSchema},
		{"zero history", Schema{Name: "b", MaxKeys: 4, Fields: ok.Fields}, ErrSchema},
		{"zero keys", Schema{Name: "b", History: 4, Fields: ok.Fields}, ErrSchema},
		{"record too big", Schema{Name: "b", History: 4, MaxKeys: 4, Fields: []Field{{Name: "x", Type: U64, Count: 9}}}, ErrNoSpace},
		{"history too long", Schema{Name: "b", History: 65, MaxKeys: 4, Fields: ok.Fields}, ErrNoSpace},
		{"too many keys", Schema{Name: "b", History: 4, MaxKeys: 65, Fields: ok.Fields}, ErrNoSpace},
		{"arena", Schema{Name: "b", History: 64, MaxKeys: 64, Fields: []Field{{Name: "x", Type: U64, Count: 8}}}, ErrNoSpace},
	}
	for _, c := range cases {
		if _, err := r.Register(c.s); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := r.Register(ok); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ok); !errors.Is(err, ErrSchemaExists) {
		t.Fatalf("duplicate: err = %v", err)
	}
	ok.Name = "c"
	if _, err := r.Register(ok); err != nil {
		t.Fatal(err)
	}
	ok.Name = "d"
	if _, err := r.Register(ok); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("schema table full: err = %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{MaxSchemas: -1}, {MaxKeys: limitKeys + 1}, {MaxHistory: -3}, {MaxRecordBytes: limitRecord + 1}, {ArenaBytes: -1}} {
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err = %v", cfg, err)
		}
		if SizeFor(cfg) != 0 {
			t.Errorf("SizeFor(%+v) != 0", cfg)
		}
		if _, err := Create(make([]byte, 1<<20), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("Create(%+v) err = %v", cfg, err)
		}
	}
	cfg := smallCfg()
	if _, err := Create(make([]byte, SizeFor(cfg)-1), cfg); !errors.Is(err, ErrConfig) {
		t.Errorf("short area: err = %v", err)
	}
	buf := make([]byte, SizeFor(cfg)+8)
	if _, err := Create(buf[1:], cfg); !errors.Is(err, ErrConfig) {
		t.Errorf("misaligned area: err = %v", err)
	}
}

func TestRecordWindowBasics(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "s", History: 5, MaxKeys: 4, Fields: []Field{{Name: "v", Type: U64}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	var w Window
	if err := r.ReadWindow(id, 7, 3, &w); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	for v := uint64(1); v <= 3; v++ {
		if err := r.Record(id, 7, u64rec(s, v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.ReadWindow(id, 7, 5, &w); err != nil {
		t.Fatal(err)
	}
	if got := windowVals(&w); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("window = %v", got)
	}
	for v := uint64(4); v <= 20; v++ {
		if err := r.Record(id, 7, u64rec(s, v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.ReadWindow(id, 7, 5, &w); err != nil {
		t.Fatal(err)
	}
	if got := windowVals(&w); !slices.Equal(got, []uint64{16, 17, 18, 19, 20}) {
		t.Fatalf("window = %v", got)
	}
	if !slices.Equal(w.Index, []uint64{15, 16, 17, 18, 19}) {
		t.Fatalf("indices = %v", w.Index)
	}
	if err := r.ReadWindow(id, 7, 2, &w); err != nil || !slices.Equal(windowVals(&w), []uint64{19, 20}) {
		t.Fatalf("window(2) = %v, %v", windowVals(&w), err)
	}
	for _, n := range []int{0, -1, 6} {
		if err := r.ReadWindow(id, 7, n, &w); !errors.Is(err, ErrWindow) {
			t.Errorf("n=%d: err = %v", n, err)
		}
	}
	if err := r.Record(id, 7, make([]byte, 16)); !errors.Is(err, ErrWidth) {
		t.Fatalf("wrong width: %v", err)
	}
	if err := r.Record(99, 7, make([]byte, 8)); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("unknown schema: %v", err)
	}
	if err := r.Record(3, 7, make([]byte, 8)); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("unregistered schema: %v", err)
	}
	st, err := r.Stats(id, 7)
	if err != nil || st.Recorded != 20 || st.Lost != 0 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
}

func windowVals(w *Window) []uint64 {
	out := make([]uint64, w.Len())
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(w.Record(i))
	}
	return out
}

func TestKeysCapacityAndDrop(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "s", History: 4, MaxKeys: 5, Fields: []Field{{Name: "v", Type: U64}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	keys := []uint64{0, 1, 1 << 63, 42, 0xdeadbeef}
	for _, k := range keys {
		if err := r.Record(id, k, u64rec(s, k+1)); err != nil {
			t.Fatalf("key %#x: %v", k, err)
		}
	}
	if err := r.Record(id, 99, u64rec(s, 1)); !errors.Is(err, ErrKeyCapacity) {
		t.Fatalf("6th key: err = %v", err)
	}
	got, err := r.Keys(id)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("keys = %v, want %v", got, want)
	}
	if err := r.DropKey(id, 42); err != nil {
		t.Fatal(err)
	}
	if err := r.DropKey(id, 42); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("second drop: %v", err)
	}
	var w Window
	if err := r.ReadWindow(id, 42, 1, &w); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("read dropped: %v", err)
	}
	// Capacity is free again; the new key works and the dropped key comes
	// back with an empty history.
	if err := r.Record(id, 99, u64rec(s, 5)); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(id, 42, u64rec(s, 7)); !errors.Is(err, ErrKeyCapacity) {
		t.Fatalf("over capacity after reuse: %v", err)
	}
	if err := r.DropKey(id, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(id, 42, u64rec(s, 7)); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadWindow(id, 42, 4, &w); err != nil || !slices.Equal(windowVals(&w), []uint64{7}) {
		t.Fatalf("re-created key window = %v, %v", windowVals(&w), err)
	}
	// Many drop/re-create cycles keep working (tombstones are reused).
	for i := uint64(0); i < 200; i++ {
		k := 1000 + i
		if err := r.DropKey(id, 99); err != nil && !errors.Is(err, ErrUnknownKey) {
			t.Fatal(err)
		}
		if err := r.Record(id, k, u64rec(s, i)); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if err := r.DropKey(id, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.DropKey(7, 1); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("drop in unknown schema: %v", err)
	}
}

func TestKeyHandle(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "s", History: 4, MaxKeys: 2, Fields: []Field{{Name: "v", Type: U64}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	h, err := r.Key(id, 9)
	if err != nil {
		t.Fatal(err)
	}
	for v := uint64(1); v <= 3; v++ {
		if err := h.Record(u64rec(s, v)); err != nil {
			t.Fatal(err)
		}
	}
	var w Window
	if err := r.ReadWindow(id, 9, 4, &w); err != nil || !slices.Equal(windowVals(&w), []uint64{1, 2, 3}) {
		t.Fatalf("window %v (%v)", windowVals(&w), err)
	}
	if err := h.Record(make([]byte, 4)); !errors.Is(err, ErrWidth) {
		t.Fatalf("wrong width: %v", err)
	}
	// After a drop the handle re-creates the key with a fresh history.
	if err := r.DropKey(id, 9); err != nil {
		t.Fatal(err)
	}
	if err := h.Record(u64rec(s, 4)); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadWindow(id, 9, 4, &w); err != nil || !slices.Equal(windowVals(&w), []uint64{4}) {
		t.Fatalf("after drop: %v (%v)", windowVals(&w), err)
	}
	// Capacity errors surface through the handle too.
	if _, err := r.Key(id, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Key(id, 11); !errors.Is(err, ErrKeyCapacity) {
		t.Fatalf("third key: %v", err)
	}
	if err := r.DropKey(id, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Key(id, 11); err != nil {
		t.Fatal(err)
	}
	if err := h.Record(u64rec(s, 5)); !errors.Is(err, ErrKeyCapacity) {
		t.Fatalf("re-create beyond capacity: %v", err)
	}
	if _, err := r.Key(5, 1); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("unknown schema: %v", err)
	}
}
