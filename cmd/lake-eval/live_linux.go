//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/eval/blktrace"
	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/shm"
)

const liveModel = 1

// runLive starts an in-process laked serving im, runs workload wl under the
// tracer and, for every traced read as its issue event arrives, records the
// event in a feature registry, builds the 31 LinnOS inputs from it and asks
// laked through lakelib.Predict, timing each call from the caller's side.
// Completions are recorded too (the latency history) and score the
// decisions.
func runLive(ctx context.Context, o options, tr *blktrace.Tracer, dev, wl string, im *linnos.IntModel, thrUs float64, w io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "lake-eval-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := laked.New(laked.Config{Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	if err := srv.RegisterModel(liveModel, laked.NewLinnOSModel("linnos", im)); err != nil {
		return err
	}
	sock := filepath.Join(dir, "laked.sock")
	l, err := laked.Listen(sock)
	if err != nil {
		return err
	}
	go srv.Serve(l)
	defer func() {
		l.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	c, err := lakelib.Dial(ctx, sock, lakelib.Options{})
	if err != nil {
		return fmt.Errorf("dial laked: %w", err)
	}
	defer c.Close()

	fcfg := features.Config{MaxSchemas: 4, MaxKeys: 64, MaxHistory: 64, ArenaBytes: 1 << 20}
	mem, err := shm.NewAnonymous(uint64(features.SizeFor(fcfg)))
	if err != nil {
		return err
	}
	defer mem.Close()
	reg, err := features.Create(mem.Mem, fcfg)
	if err != nil {
		return err
	}
	lf, err := features.NewLinnOS(reg, 16)
	if err != nil {
		return err
	}
	sink, err := blktrace.NewFeatureSink(lf)
	if err != nil {
		return err
	}

	type key struct {
		dev    uint32
		sector uint64
		issue  uint64
	}
	var (
		lat                 []time.Duration
		feat                = make([]int32, 0, linnos.NumInputs)
		in                  = make([]byte, 4*linnos.NumInputs)
		out                 = make([]byte, 4)
		pending             = map[key]bool{}
		scored, correct     int
		slowPred, falseSubm int
		falseRev            int
		predErrs            int
		lastErr             error
	)
	fmt.Fprintf(w, "\n== live: fio %s for %v, predictions served by laked per traced read...\n", wl, o.liveRuntime)
	var depth blktrace.DepthTracker
	res, st, err := traceRun(ctx, o, tr, dev, wl, o.liveRuntime, func(e blktrace.Event) error {
		// The pending input comes from the event stream, not from the
		// kernel counter (which drifts with missed completions).
		e.QueueDepth = depth.Observe(e)
		if e.Kind == blktrace.KindComplete {
			k := key{e.Dev, e.Sector, e.IssueNs}
			if slow, ok := pending[k]; ok {
				delete(pending, k)
				truth := float64(e.LatencyNs())/1e3 > thrUs
				scored++
				switch {
				case slow == truth:
					correct++
				case truth:
					falseSubm++
				default:
					falseRev++
				}
			}
			_ = sink.Record(e)
			return nil
		}
		if e.Op == blktrace.OpRead {
			var ferr error
			if feat, ferr = sink.Features(e, feat); ferr == nil {
				for i, v := range feat {
					binary.LittleEndian.PutUint32(in[4*i:], uint32(v))
				}
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				t0 := time.Now()
				_, perr := c.Predict(pctx, liveModel, 1, in, out)
				d := time.Since(t0)
				cancel()
				if perr != nil {
					predErrs++
					lastErr = perr
				} else {
					lat = append(lat, d)
					slow := binary.LittleEndian.Uint32(out) == 1
					if slow {
						slowPred++
					}
					pending[key{e.Dev, e.Sector, e.IssueNs}] = slow
				}
			} else {
				predErrs++
				lastErr = ferr
			}
		}
		_ = sink.Record(e)
		return nil
	})
	if err != nil {
		return err
	}
	reads, _ := res.Total()
	slices.Sort(lat)
	fmt.Fprintf(w, "### Live LinnOS through laked (%s, %v)\n\n", wl, o.liveRuntime)
	fmt.Fprintf(w, "fio did %d reads; %d predictions served by laked for traced reads as their issue events arrived (%d failed%s); %d predicted slow (would be revoked).\n",
		reads.IOs, len(lat), predErrs, errNote(lastErr), slowPred)
	if scored > 0 {
		fmt.Fprintf(w, "Scored against the traced completion (slow > %.0f µs): accuracy %.1f%%, false submit %.1f%%, false revoke %.1f%% over %d reads.\n",
			thrUs, 100*float64(correct)/float64(scored), 100*float64(falseSubm)/float64(scored), 100*float64(falseRev)/float64(scored), scored)
	}
	fmt.Fprintf(w, "Tracer: lost events %d, missed %d, never completed %d; feature-registry errors %d.\n\n", st.Lost, st.Missed, st.InFlight+st.Replaced, sink.Errors())
	if len(lat) > 0 {
		fmt.Fprintln(w, "| inference latency seen by the caller (lakelib.Predict, 1 read) | p50 | p90 | p99 | p99.9 | max |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		fmt.Fprintf(w, "| %d calls | %v | %v | %v | %v | %v |\n", len(lat), pctDur(lat, 50).Round(100*time.Nanosecond),
			pctDur(lat, 90).Round(100*time.Nanosecond), pctDur(lat, 99).Round(100*time.Nanosecond),
			pctDur(lat, 99.9).Round(100*time.Nanosecond), lat[len(lat)-1].Round(100*time.Nanosecond))
	}
	return nil
}

func errNote(err error) string {
	if err == nil {
		return ""
	}
	return "; last error: " + err.Error()
}
