package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/lakeos/lake/laked/admin"
)

// defaultLiteFlowProc is where lake_liteflow.ko reports its apps.
const defaultLiteFlowProc = "/proc/lake_liteflow"

// maxProcBytes bounds what lakectl reads of the kernel's report.
const maxProcBytes = 1 << 20

// liteflow shows laked's LiteFlow apps (served model, adaptation,
// fidelity, the snapshots shipped) and, when lake_liteflow.ko is loaded,
// the kernel's apps (active snapshot version, counters, install history
// with refusals and their reasons).
//
// lakectl liteflow unpin [--restart] APP lets an app pinned by a snapshot
// loaded by hand (models load --replace ID liteflow FILE) ship adapted
// snapshots again; --restart restarts adaptation from the loaded one.
func (c *cli) liteflow(ctx context.Context, args []string) error {
	verb, args := sub(args, "show", "show", "unpin")
	if verb == "unpin" {
		return c.liteflowUnpin(ctx, args)
	}
	fs := newFlagSet("liteflow", c)
	proc := fs.String("proc", defaultLiteFlowProc, "the kernel module's report")
	trace := fs.Bool("trace", false, "print each app's per-batch error trace (served and initial snapshot vs the labels)")
	lr, err := ask(ctx, c, fs, args, (*admin.Client).LiteFlow)
	if err != nil {
		return err
	}
	kern, kerr := readProc(*proc)
	if c.json {
		return c.emitJSON(struct {
			Apps   any    `json:"apps"`
			Kernel string `json:"kernel,omitempty"`
		}{lr.Apps, kern})
	}
	tw := c.table()
	fmt.Fprintln(tw, "APP\tMODEL\tSCHEMA\tSAMPLES\tDROPPED\tBATCHES\tFIDELITY\tLOSS\tPINNED\tLAST DECISION")
	for _, a := range lr.Apps {
		pin := "no"
		if a.Pinned {
			pin = fmt.Sprintf("yes (%d withheld)", a.Withheld)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", a.Name, a.Model, a.Schema, a.Samples, a.Dropped, a.Batches,
			num(a.Fidelity), num(a.Loss), pin, orDash(a.LastReason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range lr.Apps {
		if a.Err != "" {
			fmt.Fprintf(c.errw, "lakectl: app %s: %s\n", a.Name, a.Err)
		}
		if len(a.Installs) == 0 {
			continue
		}
		fmt.Fprintf(c.out, "\nsnapshots shipped by %s (laked side):\n", a.Name)
		tw = c.table()
		fmt.Fprintln(tw, "AT\tGENERATION\tMODEL VERSION\tFIDELITY\tREASON")
		for _, in := range a.Installs {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", in.At.Format(time.RFC3339), in.Generation, in.Version, num(in.Fidelity), in.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if *trace {
		for _, a := range lr.Apps {
			for _, p := range a.Trace {
				fmt.Fprintf(c.out, "trace %s at_ms %d served %.5f fixed %.5f generation %d\n", a.Name, p.AtMs, p.Served, p.Fixed, p.Generation)
			}
		}
	}
	switch {
	case kerr == nil:
		fmt.Fprintf(c.out, "\nkernel (%s):\n%s", *proc, kern)
	case errors.Is(kerr, os.ErrNotExist):
		fmt.Fprintf(c.out, "\nkernel: %s absent (lake_liteflow.ko not loaded)\n", *proc)
	default:
		fmt.Fprintf(c.errw, "lakectl: %s: %v\n", *proc, kerr)
	}
	return nil
}

func (c *cli) liteflowUnpin(ctx context.Context, args []string) error {
	fs := newFlagSet("liteflow unpin", c)
	restart := fs.Bool("restart", false, "restart adaptation from the snapshot loaded by hand")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("liteflow unpin [--restart] APP")
	}
	cl := c.client()
	defer cl.Close()
	if _, err := cl.LiteFlowUnpin(ctx, fs.Arg(0), *restart); err != nil {
		return fmt.Errorf("liteflow unpin: %w", err)
	}
	fmt.Fprintf(c.out, "app %s unpinned (restart %v)\n", fs.Arg(0), *restart)
	return nil
}

func num(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.4g", *v)
}

// readProc reads the kernel's report, bounded, keeping printable lines.
func readProc(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcBytes))
	if err != nil {
		return "", err
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= 0x20 && r < 0x7f) {
			return r
		}
		return '?'
	}, string(b)), nil
}
