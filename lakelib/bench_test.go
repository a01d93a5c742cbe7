package lakelib_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// startLaked runs an in-process laked for the benchmarks.
func startLaked(tb testing.TB, busy bool) string {
	tb.Helper()
	_, sock := lakedtest.Start(tb, laked.Config{BusyPoll: busy})
	return sock
}

// echoServer is the baseline: a unix stream socket server that answers
// every 64-byte message with a 64-byte message, as a minimal RPC would.
func echoServer(tb testing.TB) string {
	tb.Helper()
	sock := filepath.Join(tb.TempDir(), "echo.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64*256)
				for {
					n, err := io.ReadAtLeast(c, buf, 64)
					if err != nil {
						return
					}
					// Answer only whole messages; keep a partial one.
					whole := n - n%64
					if _, err := c.Write(buf[:whole]); err != nil {
						return
					}
					if rest := n - whole; rest > 0 {
						if _, err := io.ReadFull(c, buf[rest:64]); err != nil {
							return
						}
						copy(buf, buf[whole:n])
						if _, err := c.Write(buf[:64]); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return sock
}

func percentile(d []time.Duration, p float64) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[int(float64(len(d)-1)*p)].Nanoseconds())
}

// ringAndSocket starts a busy-polling laked and a unix-socket echo server
// (the baseline) and returns a client of each, closed when b ends.
func ringAndSocket(b *testing.B, opts lakelib.Options) (*lakelib.Client, net.Conn) {
	sock := startLaked(b, true)
	c, err := lakelib.Dial(context.Background(), sock, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ec, err := net.Dial("unix", echoServer(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ec.Close() })
	return c, ec
}

// BenchmarkRoundTrip measures one request/response through the ring
// (busy-polling on both sides) and through a unix socket in the same
// run, interleaved in blocks so that both see the same machine state. It
// reports p50 and p99 of each and the ring/socket p50 ratio.
func BenchmarkRoundTrip(b *testing.B) {
	c, ec := ringAndSocket(b, lakelib.Options{BusyPoll: true})
	ctx := context.Background()
	msg := make([]byte, 64)
	ringLat := make([]time.Duration, 0, b.N)
	sockLat := make([]time.Duration, 0, b.N)
	for i := 0; i < 1000; i++ { // warm up both paths
		_ = c.Nop(ctx)
		ec.Write(msg)
		io.ReadFull(ec, msg)
	}
	b.ResetTimer()
	const block = 64
	for done := 0; done < b.N; {
		n := min(block, b.N-done)
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if err := c.Nop(ctx); err != nil {
				b.Fatal(err)
			}
			ringLat = append(ringLat, time.Since(t0))
		}
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if _, err := ec.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(ec, msg); err != nil {
				b.Fatal(err)
			}
			sockLat = append(sockLat, time.Since(t0))
		}
		done += n
	}
	b.StopTimer()
	r50, s50 := percentile(ringLat, 0.5), percentile(sockLat, 0.5)
	b.ReportMetric(r50, "ring-p50-ns")
	b.ReportMetric(percentile(ringLat, 0.99), "ring-p99-ns")
	b.ReportMetric(s50, "unix-p50-ns")
	b.ReportMetric(percentile(sockLat, 0.99), "unix-p99-ns")
	b.ReportMetric(r50/s50, "ring/unix-p50")
}

// BenchmarkThroughput pushes batches of 256 NOPs through the ring and,
// in the same run, batches of 256 64-byte messages through a unix socket
// echo; it reports slots per second for each and their ratio.
func BenchmarkThroughput(b *testing.B) {
	const batch = 256
	c, ec := ringAndSocket(b, lakelib.Options{BusyPoll: true, Region: shm.Config{SQEntries: 1024, CQEntries: 1024}})
	ctx := context.Background()
	es := make([]shm.SQE, batch)
	out := make([]shm.CQE, batch)
	wbuf := make([]byte, 64*batch)
	rbuf := make([]byte, 64*batch)
	var ringTime, sockTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for k := range es {
			es[k] = shm.SQE{Opcode: shm.OpNop}
		}
		if err := c.Batch(ctx, es, out); err != nil {
			b.Fatal(err)
		}
		ringTime += time.Since(t0)
		t0 = time.Now()
		if _, err := ec.Write(wbuf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(ec, rbuf); err != nil {
			b.Fatal(err)
		}
		sockTime += time.Since(t0)
	}
	b.StopTimer()
	ringRate := float64(b.N*batch) / ringTime.Seconds()
	sockRate := float64(b.N*batch) / sockTime.Seconds()
	b.ReportMetric(ringRate, "ring-slots/s")
	b.ReportMetric(sockRate, "unix-msgs/s")
	b.ReportMetric(ringRate/sockRate, "ring/unix")
}

// BenchmarkRingOnly measures the shared-memory rings alone, without
// laked or lakelib: a producer goroutine submits batches, a consumer
// goroutine consumes them and posts completions, the producer reaps.
func BenchmarkRingOnly(b *testing.B) {
	cfg := shm.Config{SQEntries: 1024, CQEntries: 1024, ArenaSize: shm.PageSize}
	l, _ := cfg.Layout()
	m, err := shm.NewAnonymous(l.RegionSize)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	r, err := shm.NewRegion(m.Mem, cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	sq, cq := r.SQ(), r.CQ()
	stop := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		in := make([]shm.SQE, 256)
		outs := make([]shm.CQE, 256)
		for {
			n := sq.Consume(in)
			if n == 0 {
				select {
				case <-stop:
					return
				default:
					continue
				}
			}
			for i := range in[:n] {
				outs[i] = shm.CQE{Tag: in[i].Tag}
			}
			for p := 0; p < n; {
				p += cq.Post(outs[p:n])
			}
		}
	}()
	const batch = 256
	reaped := make([]shm.CQE, batch)
	e := shm.SQE{Opcode: shm.OpNop}
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		for k := 0; k < batch; k++ {
			e.Tag = uint64(k)
			for sq.TrySubmit(&e) != nil {
			}
		}
		for got := 0; got < batch; {
			got += cq.Reap(reaped)
		}
	}
	el := time.Since(t0)
	b.StopTimer()
	close(stop)
	<-exited
	b.ReportMetric(float64(b.N*batch)/el.Seconds(), "slots/s")
}
