package lakedtest

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/lakelib"
)

// DemoMLP is the model id of the demo MLP (8 float32 in, 2 float32 out,
// laked.DemoMLPBlob(1, 8, 16, 2)).
const DemoMLP = 2

// Start runs a laked with cfg (a CPU backend when Backend is unset; no logs)
// and returns it with its socket path.
func Start(tb testing.TB, cfg laked.Config) (*laked.Server, string) {
	tb.Helper()
	if err := kernels.Register(); err != nil {
		tb.Fatal(err)
	}
	if cfg.Backend == nil {
		cfg.Backend = cpu.New(backend.Limits{})
	}
	cfg.Logger = zerolog.Nop()
	srv, err := laked.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := laked.NewMLPModel("mlp-demo", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.RegisterModel(DemoMLP, m); err != nil {
		tb.Fatal(err)
	}
	sock := filepath.Join(tb.TempDir(), "laked.sock")
	l, err := laked.Listen(sock)
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(l)
	tb.Cleanup(func() {
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("laked shutdown: %v", err)
		}
	})
	return srv, sock
}

// Dial connects a client, closed when the test ends.
func Dial(tb testing.TB, sock string, opts lakelib.Options) *lakelib.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := lakelib.Dial(ctx, sock, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// VectorAdd runs ctx create, alloc ×3, HtoD ×2, module load, get
// function, launch vector_add, DtoH, check, free ×3, ctx destroy.
func VectorAdd(ctx context.Context, c *lakelib.Client, n int, seed float32) error {
	x, err := c.CtxCreate(ctx)
	if err != nil {
		return err
	}
	defer x.Destroy(ctx)
	a, b := make([]float32, n), make([]float32, n)
	for i := range a {
		a[i], b[i] = seed+float32(i), 2*float32(i)
	}
	var ptr [3]lakelib.DevPtr
	for i := range ptr {
		if ptr[i], err = x.MemAlloc(ctx, uint64(4*n)); err != nil {
			return err
		}
	}
	if err := x.MemcpyHtoD(ctx, ptr[0], laked.Float32sToBytes(a)); err != nil {
		return err
	}
	if err := x.MemcpyHtoD(ctx, ptr[1], laked.Float32sToBytes(b)); err != nil {
		return err
	}
	mod, err := x.ModuleLoadData(ctx, []byte("lake_builtin"))
	if err != nil {
		return err
	}
	fn, err := x.ModuleGetFunction(ctx, mod, "vector_add")
	if err != nil {
		return err
	}
	grid := lakelib.Dim3{X: uint32((n + 127) / 128), Y: 1, Z: 1}
	if err := x.LaunchKernel(ctx, fn, grid, lakelib.Dim3{X: 128, Y: 1, Z: 1}, 0, 0,
		uint64(ptr[0]), uint64(ptr[1]), uint64(ptr[2]), uint64(n)); err != nil {
		return err
	}
	out := make([]byte, 4*n)
	if err := x.MemcpyDtoH(ctx, out, ptr[2]); err != nil {
		return err
	}
	for i, v := range laked.BytesToFloat32s(out) {
		if v != a[i]+b[i] {
			return errors.New("vector_add: wrong result")
		}
	}
	for _, p := range ptr {
		if err := x.MemFree(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// TwoClients is the core acceptance workload: two clients at once, each
// running the vector_add sequence and then predicts of 1..9 items from four
// goroutines, every answer checked against the demo MLP computed locally.
func TwoClients(tb testing.TB, sock string) {
	tb.Helper()
	ref, err := kernels.ParseMLP(laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for k := 0; k < 2; k++ {
		c := Dial(tb, sock, lakelib.Options{})
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := VectorAdd(ctx, c, 4096, float32(k+1)); err != nil {
				errs <- err
				return
			}
			var pg sync.WaitGroup
			for g := 0; g < 4; g++ {
				pg.Add(1)
				go func(g int) {
					defer pg.Done()
					for it := 0; it < 25; it++ {
						n := 1 + (k+g+it)%9
						in := make([]float32, 8*n)
						for i := range in {
							in[i] = float32((k*7+g*3+it+i)%11) * 0.25
						}
						out := make([]byte, 8*n)
						if _, err := c.Predict(ctx, DemoMLP, n, laked.Float32sToBytes(in), out); err != nil {
							errs <- err
							return
						}
						want := make([]float32, 2*n)
						if err := ref.Forward(in, want, n); err != nil {
							errs <- err
							return
						}
						for i, v := range laked.BytesToFloat32s(out) {
							if v != want[i] {
								errs <- errors.New("predict result differs from the reference MLP")
								return
							}
						}
					}
				}(g)
			}
			pg.Wait()
		}(k)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}
