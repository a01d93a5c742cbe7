package laked_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/liteflow/snapshot"
	"github.com/lakeos/lake/shm"
)

// A served installer is what a LiteFlow adapter installs into.

// randomFloatModel returns a LinnOS float model with weights and biases
// drawn from rng (normal, deviation 0.3).
func randomFloatModel(t *testing.T, extra int, rng *rand.Rand) *linnos.FloatModel {
	t.Helper()
	fm, err := linnos.NewFloatModel(extra)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range fm.W {
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.3)
		}
	}
	for _, b := range fm.B {
		for i := range b {
			b[i] = float32(rng.NormFloat64() * 0.3)
		}
	}
	return fm
}

// randomIntModel returns a LinnOS integer model with random weights.
func randomIntModel(t *testing.T, extra int, seed int64) *linnos.IntModel {
	t.Helper()
	fm := randomFloatModel(t, extra, rand.New(rand.NewSource(seed)))
	im, err := linnos.Quantize(fm)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestModelFetchLinnOS fetches a served LinnOS model's image over the ring:
// the bytes are the integer weight file (same weights and metadata), the
// version is the registry's, and a replacement is seen with its new
// version and image.
func TestModelFetchLinnOS(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	meta := linnos.ModelMeta{ThresholdUs: 750, Pending: linnos.PendingIOs}
	m1 := randomIntModel(t, 0, 1)
	if err := srv.RegisterModel(7, laked.NewLinnOSModelMeta("linnos-7", m1, meta)); err != nil {
		t.Fatal(err)
	}
	c := dial(t, sock, lakelib.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	check := func(want *linnos.IntModel, wantVersion uint64) {
		t.Helper()
		data, v, err := c.ModelFetch(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		if v != wantVersion {
			t.Fatalf("version %d, want %d", v, wantVersion)
		}
		wantBytes, err := linnos.EncodeInt(want, meta)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, wantBytes) {
			t.Fatalf("image of %d bytes differs from the %d-byte weight file", len(data), len(wantBytes))
		}
		mf, err := linnos.DecodeModel(data)
		if err != nil {
			t.Fatalf("image does not decode: %v", err)
		}
		if mf.Int == nil || mf.Meta != meta || mf.Int.Extra() != want.Extra() {
			t.Fatalf("decoded image: meta %+v, int %v", mf.Meta, mf.Int != nil)
		}
		info, err := c.ModelInfo(ctx, 7)
		if err != nil || info.Version != wantVersion {
			t.Fatalf("model_info version %d (%v), want %d", info.Version, err, wantVersion)
		}
	}
	check(m1, 1)
	m2 := randomIntModel(t, 2, 2) // larger: the client must ask again
	if _, err := srv.ReplaceModel(7, laked.NewLinnOSModelMeta("linnos-7", m2, meta)); err != nil {
		t.Fatal(err)
	}
	check(m2, 2)
}

// TestModelFetchErrors checks model_fetch's answers on raw submissions:
// size query, buffer too small with the size needed, exact fit, unknown
// model, model without an image, ranges outside the arena and unused
// arguments.
func TestModelFetchErrors(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	im := randomIntModel(t, 0, 3)
	if err := srv.RegisterModel(7, laked.NewLinnOSModel("linnos", im)); err != nil {
		t.Fatal(err)
	}
	want, err := linnos.EncodeInt(im, linnos.ModelMeta{})
	if err != nil {
		t.Fatal(err)
	}
	size := uint64(len(want))
	c := dial(t, sock, lakelib.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	arena := c.Region().Layout().ArenaSize
	buf, err := c.AllocHost(int(size) + 64)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	off := buf.Offset()
	for i := range buf.Bytes() {
		buf.Bytes()[i] = 0xAA
	}

	fetch := func(a ...uint64) shm.CQE {
		t.Helper()
		e := shm.SQE{Opcode: shm.OpModelFetch}
		copy(e.Args[:], a)
		cq, err := c.Raw(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		return cq
	}
	cases := []struct {
		name   string
		args   []uint64
		status shm.Status
		r0, r1 uint64
	}{
		{"size query", []uint64{7, 0, 0}, shm.StatusBufferTooSmall, size, 1},
		{"one byte short", []uint64{7, off, size - 1}, shm.StatusBufferTooSmall, size, 1},
		{"unknown model", []uint64{8, off, size}, shm.StatusNotFound, 0, 0},
		{"huge model id", []uint64{7 | 1<<32, off, size}, shm.StatusNotFound, 0, 0},
		{"no image", []uint64{mlpID, off, size}, shm.StatusNotSupported, 0, 1},
		{"range past the arena", []uint64{7, arena - 8, size}, shm.StatusOutOfBounds, 0, 0},
		{"offset overflow", []uint64{7, math.MaxUint64 - 4, size}, shm.StatusOutOfBounds, 0, 0},
		{"unused arg", []uint64{7, off, size, 1}, shm.StatusInvalidValue, 0, 0},
	}
	for _, tc := range cases {
		cq := fetch(tc.args...)
		if cq.Status != tc.status || cq.Results[0] != tc.r0 || cq.Results[1] != tc.r1 {
			t.Errorf("%s: status %v results %v, want %v [%d %d]", tc.name, cq.Status, cq.Results, tc.status, tc.r0, tc.r1)
		}
	}
	if !bytes.Equal(buf.Bytes(), bytes.Repeat([]byte{0xAA}, len(buf.Bytes()))) {
		t.Fatal("a failed fetch wrote into the buffer")
	}
	cq := fetch(7, off, size+64)
	if cq.Status != shm.StatusOK || cq.Results[0] != size || cq.Results[1] != 1 {
		t.Fatalf("fetch: %+v", cq)
	}
	if !bytes.Equal(buf.Bytes()[:size], want) {
		t.Fatal("fetched image differs from the weight file")
	}
	if !bytes.Equal(buf.Bytes()[size:], bytes.Repeat([]byte{0xAA}, 64)) {
		t.Fatal("fetch wrote past the image")
	}

	if _, _, err := c.ModelFetch(ctx, 99); !errors.Is(err, lakelib.ErrStatus(shm.StatusNotFound)) {
		t.Fatalf("ModelFetch of an unknown model: %v", err)
	}
	if _, _, err := c.ModelFetch(ctx, mlpID); !errors.Is(err, lakelib.ErrStatus(shm.StatusNotSupported)) {
		t.Fatalf("ModelFetch of a model without an image: %v", err)
	}
}

// TestModelFetchLiteFlow fetches a LiteFlow router's active snapshot:
// none installed is "not supported"; after Install the image decodes to
// the installed snapshot; TouchModel bumps the version and the next fetch
// returns the newly installed one.
func TestModelFetchLiteFlow(t *testing.T) {
	r, lm := newCCModel(t)
	srv, sock := startServer(t, laked.Config{})
	if err := srv.RegisterModel(3, lm); err != nil {
		t.Fatal(err)
	}
	c := dial(t, sock, lakelib.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.ModelFetch(ctx, 3); !errors.Is(err, lakelib.ErrStatus(shm.StatusNotSupported)) {
		t.Fatalf("fetch with no snapshot installed: %v", err)
	}
	for i, s := range []*snapshot.Snapshot{liteflowSnapshot(t, 1, 1), liteflowSnapshot(t, 2, 2)} {
		if _, err := r.Install(s); err != nil {
			t.Fatal(err)
		}
		v, err := srv.TouchModel(3)
		if err != nil {
			t.Fatal(err)
		}
		if v != uint64(i+2) {
			t.Fatalf("TouchModel: version %d, want %d", v, i+2)
		}
		data, fv, err := c.ModelFetch(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		want, err := snapshot.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if fv != v || !bytes.Equal(data, want) {
			t.Fatalf("install %d: fetched version %d (want %d), image equal %v", i, fv, v, bytes.Equal(data, want))
		}
		if _, err := snapshot.Decode(data); err != nil {
			t.Fatalf("fetched snapshot does not decode: %v", err)
		}
	}
	if _, err := srv.TouchModel(99); !errors.Is(err, laked.ErrModelNotFound) {
		t.Fatalf("TouchModel of an unknown model: %v", err)
	}
}
