package laked_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

const mlpID = lakedtest.DemoMLP

var (
	startServer  = lakedtest.Start
	dial         = lakedtest.Dial
	runVectorAdd = lakedtest.VectorAdd
	f32bytes     = laked.Float32sToBytes
)

func TestVectorAddAndPredictTwoClients(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	lakedtest.TwoClients(t, sock)
	st := srv.Stats()
	if st.Batches == 0 || st.BatchItems == 0 || st.DecisionsCPU == 0 {
		t.Fatalf("no batches counted: %+v", st)
	}
	if st.Submissions != st.TotalCompletions() {
		t.Fatalf("submissions %d != completions %d", st.Submissions, st.TotalCompletions())
	}
}

func TestErrorsAreCompletions(t *testing.T) {
	_, sock := startServer(t, laked.Config{})
	c := dial(t, sock, lakelib.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	arena := c.Region().Layout().ArenaSize
	cases := []struct {
		name string
		e    shm.SQE
		want shm.Status
	}{
		{"unknown opcode", shm.SQE{Opcode: 200}, shm.StatusBadOpcode},
		{"zero opcode", shm.SQE{Opcode: 0}, shm.StatusBadOpcode},
		{"flags", shm.SQE{Opcode: shm.OpNop, Flags: 1}, shm.StatusInvalidValue},
		{"pad", shm.SQE{Opcode: shm.OpNop, Pad: 3}, shm.StatusInvalidValue},
		{"unused arg", shm.SQE{Opcode: shm.OpNop, Args: [6]uint64{0, 0, 0, 0, 0, 9}}, shm.StatusInvalidValue},
		{"unknown ctx", shm.SQE{Opcode: shm.OpMemAlloc, Args: [6]uint64{77, 64}}, shm.StatusInvalidHandle},
		{"unknown model", shm.SQE{Opcode: shm.OpPredict, Args: [6]uint64{99, 1, 0, 32, 64, 8}}, shm.StatusNotFound},
		{"huge model id", shm.SQE{Opcode: shm.OpPredict, Args: [6]uint64{1 << 40, 1, 0, 32, 64, 8}}, shm.StatusNotFound},
		{"predict n=0", shm.SQE{Opcode: shm.OpPredict, Args: [6]uint64{mlpID, 0, 0, 0, 64, 0}}, shm.StatusInvalidValue},
		{"predict wrong len", shm.SQE{Opcode: shm.OpPredict, Args: [6]uint64{mlpID, 1, 0, 31, 64, 8}}, shm.StatusInvalidValue},
		{"predict out of arena", shm.SQE{Opcode: shm.OpPredict, Args: [6]uint64{mlpID, 1, arena - 8, 32, 0, 8}}, shm.StatusOutOfBounds},
		{"predict offset overflow", shm.SQE{Opcode: shm.OpPredict, Args: [6]uint64{mlpID, 1, math.MaxUint64 - 4, 32, 0, 8}}, shm.StatusOutOfBounds},
		{"model info", shm.SQE{Opcode: shm.OpModelInfo, Args: [6]uint64{mlpID}}, shm.StatusOK},
	}
	for _, tc := range cases {
		cqe, err := c.Raw(ctx, tc.e)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cqe.Status != tc.want {
			t.Errorf("%s: status %s, want %s", tc.name, cqe.Status, tc.want)
		}
	}
	// Device operations with bad arguments.
	x, err := c.CtxCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := x.MemAlloc(ctx, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.MemcpyHtoD(ctx, p+32, make([]byte, 64)); !errors.Is(err, lakelib.ErrStatus(shm.StatusInvalidValue)) {
		t.Errorf("copy past allocation: %v", err)
	}
	if _, err := x.ModuleLoadData(ctx, []byte("no_such_module")); !errors.Is(err, lakelib.ErrStatus(shm.StatusNotFound)) {
		t.Errorf("unknown module: %v", err)
	}
	if err := x.MemFree(ctx, p+8); err == nil {
		t.Error("free of an interior pointer accepted")
	}
	if err := x.MemFree(ctx, p); err != nil {
		t.Error(err)
	}
	if err := x.MemFree(ctx, p); err == nil {
		t.Error("double free accepted")
	}
	// The client is still served after all of that.
	if err := runVectorAdd(ctx, c, 64, 1); err != nil {
		t.Fatal(err)
	}
}

// TestGarbageInRegion writes random bytes into submission slots and
// publishes them: every one gets exactly one error completion (or a
// success for the rare valid one), and laked keeps serving.
func TestGarbageInRegion(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	c := dial(t, sock, lakelib.Options{})
	region := c.Region()
	sq := region.SQ()
	cq := region.CQ()
	// Garbage gets tags that match no lakelib call, so lakelib counts
	// each completion as a stray.
	before := srv.Stats()
	const n = 200
	seed := uint64(12345)
	for i := 0; i < n; i++ {
		var slot [shm.SlotSize]byte
		for j := range slot {
			seed = seed*6364136223846793005 + 1442695040888963407
			slot[j] = byte(seed >> 56)
		}
		var e shm.SQE
		shm.DecodeSQE(slot[:], &e)
		e.Tag = 1<<63 | uint64(i) // never a lakelib tag
		for sq.TrySubmit(&e) != nil {
			time.Sleep(time.Millisecond)
		}
	}
	_ = sq.Bell.Ring()
	// Completions are reaped by callers: keep calling until all the
	// garbage completions have been seen (as strays: no call owns them).
	deadline := time.Now().Add(10 * time.Second)
	nops := uint64(0)
	for c.Strays() < n && time.Now().Before(deadline) {
		nops++
		nctx, ncancel := context.WithTimeout(context.Background(), time.Second)
		if err := c.Nop(nctx); err != nil {
			t.Fatalf("nop between garbage: %v", err)
		}
		ncancel()
	}
	if got := c.Strays(); got != n {
		t.Fatalf("got %d completions for %d garbage slots", got, n)
	}
	after := srv.Stats()
	if after.Submissions-before.Submissions != n+nops {
		t.Fatalf("laked counted %d submissions, want %d garbage + %d nops", after.Submissions-before.Submissions, n, nops)
	}
	_ = cq
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := runVectorAdd(ctx, c, 128, 3); err != nil {
		t.Fatalf("client not served after garbage: %v", err)
	}
}

// TestCorruptHeaderDoesNotHurtOthers scribbles over one client's ring
// words; the other client keeps working and laked survives.
func TestCorruptHeaderDoesNotHurtOthers(t *testing.T) {
	_, sock := startServer(t, laked.Config{})
	bad := dial(t, sock, lakelib.Options{})
	good := dial(t, sock, lakelib.Options{})
	mem := bad.Region().Bytes()
	for off := shm.OffSQTail; off < shm.OffCQWaiters+4; off++ {
		mem[off] = 0xA5
	}
	for i := shm.HeaderSize; i < shm.HeaderSize+4096; i++ {
		mem[i] ^= 0x5A
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := runVectorAdd(ctx, good, 256, 2); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_ = bad.Nop(short) // may fail or time out; must not hang past the context
}

func TestContextTimeoutWhenNotServed(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	c := dial(t, sock, lakelib.Options{})
	// Drain the server so that nothing is read any more, but keep the
	// socket open by not closing the client.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	start := time.Now()
	err := c.Nop(short)
	if err == nil {
		t.Fatal("nop succeeded after shutdown")
	}
	if !errors.Is(err, lakelib.ErrDaemonGone) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("call took %v after laked stopped", time.Since(start))
	}
}

func TestModelInfoAndReplace(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	c := dial(t, sock, lakelib.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.ModelInfo(ctx, mlpID)
	if err != nil {
		t.Fatal(err)
	}
	if info.InputBytes != 32 || info.OutputBytes != 8 || info.Version != 1 {
		t.Fatalf("info %+v", info)
	}
	m2, _ := laked.NewMLPModel("mlp-demo", laked.DemoMLPBlob(2, 8, 16, 2))
	if v, err := srv.ReplaceModel(mlpID, m2); err != nil || v != 2 {
		t.Fatalf("replace: v=%d err=%v", v, err)
	}
	in := f32bytes(make([]float32, 8))
	out := make([]byte, 8)
	res, err := c.Predict(ctx, mlpID, 1, in, out)
	if err != nil || res.Version != 2 {
		t.Fatalf("predict after replace: %+v %v", res, err)
	}
	wrong, _ := laked.NewMLPModel("x", laked.DemoMLPBlob(2, 9, 16, 2))
	if _, err := srv.ReplaceModel(mlpID, wrong); !errors.Is(err, laked.ErrModelShape) {
		t.Fatalf("replace with other shape: %v", err)
	}
	_ = binary.LittleEndian
}
