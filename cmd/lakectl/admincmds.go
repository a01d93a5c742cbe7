package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/lakeos/lake/laked/admin"
)

func (c *cli) status(ctx context.Context, args []string) error {
	fs := newFlagSet("status", c)
	st, err := ask(ctx, c, fs, args, (*admin.Client).Status)
	if err != nil {
		return err
	}
	if c.json {
		return c.emitJSON(st)
	}
	tw := c.table()
	fmt.Fprintf(tw, "laked\t%s\n", orDash(st.Version))
	fmt.Fprintf(tw, "started\t%s\n", st.Started.Format(time.RFC3339))
	fmt.Fprintf(tw, "uptime\t%s\n", (time.Duration(st.UptimeSeconds) * time.Second).String())
	fmt.Fprintf(tw, "models\t%d\n", st.Models)
	fmt.Fprintf(tw, "sessions\t%d\n", len(st.Sessions))
	if st.Policy != nil {
		fmt.Fprintf(tw, "policy\t%s\n", policyLine(*st.Policy))
	} else {
		fmt.Fprintf(tw, "policy\tnone (no policy engine)\n")
	}
	if st.Features {
		fmt.Fprintf(tw, "features\tregistry attached\n")
	} else {
		fmt.Fprintf(tw, "features\tno registry\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Sessions) > 0 {
		fmt.Fprintln(c.out)
		tw = c.table()
		fmt.Fprintln(tw, "CLIENT\tTRANSPORT\tCONTEXTS")
		for _, s := range st.Sessions {
			fmt.Fprintf(tw, "%d\t%s\t%d\n", s.ClientID, s.Transport, s.Contexts)
		}
		return tw.Flush()
	}
	return nil
}

func policyLine(p admin.PolicyStatus) string {
	where := "Go fallback"
	if p.Kernel {
		where = "BPF in the kernel"
	}
	return fmt.Sprintf("%s (%s)", p.Active, where)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func parseID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, usageErr("model id %q: want a number 0..%d", s, uint32(1<<32-1))
	}
	return uint32(v), nil
}

func (c *cli) models(ctx context.Context, args []string) error {
	verb, args := sub(args, "list", "list", "load", "unload")
	fs := newFlagSet("models "+verb, c)
	replace := false
	if verb == "load" {
		fs.BoolVar(&replace, "replace", false, "swap the model already served under ID")
	}
	if err := c.parse(fs, args); err != nil {
		return err
	}
	cl := c.client()
	defer cl.Close()
	switch verb {
	case "list":
		if err := noArgs(fs); err != nil {
			return err
		}
		ms, err := cl.Models(ctx)
		if err != nil {
			return err
		}
		if c.json {
			return c.emitJSON(admin.ModelsResponse{Models: ms})
		}
		tw := c.table()
		fmt.Fprintln(tw, "ID\tNAME\tVERSION\tIN(B)\tOUT(B)")
		for _, m := range ms {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\n", m.ID, m.Name, m.Version, m.InputBytes, m.OutputBytes)
		}
		return tw.Flush()
	case "load":
		if fs.NArg() != 3 {
			return usageErr("models load [--replace] ID KIND PATH")
		}
		id, err := parseID(fs.Arg(0))
		if err != nil {
			return err
		}
		// laked opens the file; make a relative path mean lakectl's
		// directory, as a user expects.
		path, err := filepath.Abs(fs.Arg(2))
		if err != nil {
			return fmt.Errorf("models load: %w", err)
		}
		m, err := cl.LoadModel(ctx, id, fs.Arg(1), path, replace)
		if err != nil {
			return err
		}
		if c.json {
			return c.emitJSON(m)
		}
		verbDone := "loaded"
		if replace {
			verbDone = "replaced"
		}
		fmt.Fprintf(c.out, "model %d (%s) %s: version %d, %d bytes in, %d bytes out\n", m.ID, m.Name, verbDone, m.Version, m.InputBytes, m.OutputBytes)
		return nil
	default: // unload
		if fs.NArg() != 1 {
			return usageErr("models unload ID")
		}
		id, err := parseID(fs.Arg(0))
		if err != nil {
			return err
		}
		m, err := cl.UnloadModel(ctx, id)
		if err != nil {
			return err
		}
		if c.json {
			return c.emitJSON(m)
		}
		fmt.Fprintf(c.out, "model %d (%s) unloaded\n", m.ID, m.Name)
		return nil
	}
}

func (c *cli) policy(ctx context.Context, args []string) error {
	verb, args := sub(args, "show", "show", "load", "shipped", "params")
	fs := newFlagSet("policy "+verb, c)
	var minBatch, maxUtil, minMem, kernelShare uint
	var batchNs uint64
	if verb == "params" {
		fs.UintVar(&minBatch, "gpu-min-batch", 0, "GPU only for batches of at least N items")
		fs.UintVar(&maxUtil, "gpu-max-util-pct", 0, "GPU only below P percent utilisation")
		fs.UintVar(&minMem, "gpu-min-mem-mib", 0, "GPU only with M MiB free")
		fs.Uint64Var(&batchNs, "gpu-batch-ns", 0, "cost-aware policy: fixed GPU cost per batch")
		fs.UintVar(&kernelShare, "kernel-gpu-share-pct", 0, "GPU share reserved for kernel batches")
	}
	if err := c.parse(fs, args); err != nil {
		return err
	}
	cl := c.client()
	defer cl.Close()
	var (
		p   *admin.PolicyResponse
		err error
	)
	switch verb {
	case "show":
		if err := noArgs(fs); err != nil {
			return err
		}
		p, err = cl.Policy(ctx)
	case "load", "shipped":
		if fs.NArg() != 1 {
			return usageErr("policy %s %s", verb, map[string]string{"load": "FILE", "shipped": "NAME"}[verb])
		}
		req := admin.LoadPolicyRequest{Shipped: fs.Arg(0)}
		if verb == "load" {
			path, aerr := filepath.Abs(fs.Arg(0))
			if aerr != nil {
				return fmt.Errorf("policy load: %w", aerr)
			}
			req = admin.LoadPolicyRequest{File: path}
		}
		p, err = cl.LoadPolicy(ctx, req)
	default: // params
		if err := noArgs(fs); err != nil {
			return err
		}
		var u admin.ParamsUpdate
		var bad error
		fs.Visit(func(f *pflag.Flag) {
			u32 := func(v uint) *uint32 {
				if v > 1<<32-1 {
					bad = usageErr("--%s %d: too large", f.Name, v)
				}
				x := uint32(v)
				return &x
			}
			switch f.Name {
			case "gpu-min-batch":
				u.GPUMinBatch = u32(minBatch)
			case "gpu-max-util-pct":
				u.GPUMaxUtilPct = u32(maxUtil)
			case "gpu-min-mem-mib":
				u.GPUMinMemMiB = u32(minMem)
			case "gpu-batch-ns":
				u.GPUBatchNs = &batchNs
			case "kernel-gpu-share-pct":
				u.KernelGPUSharePct = u32(kernelShare)
			}
		})
		if bad != nil {
			return bad
		}
		if u == (admin.ParamsUpdate{}) {
			return usageErr("policy params: give at least one of --gpu-min-batch, --gpu-max-util-pct, --gpu-min-mem-mib, --gpu-batch-ns, --kernel-gpu-share-pct")
		}
		p, err = cl.SetParams(ctx, u)
	}
	if err != nil {
		// A rejected object's error carries the verifier log.
		return err
	}
	if c.json {
		return c.emitJSON(p)
	}
	tw := c.table()
	fmt.Fprintf(tw, "active\t%s\n", policyLine(p.Status))
	if p.Status.Note != "" {
		fmt.Fprintf(tw, "note\t%s\n", p.Status.Note)
	}
	fmt.Fprintf(tw, "params\tgpu_min_batch=%d gpu_max_util_pct=%d gpu_min_mem_mib=%d gpu_batch_ns=%d kernel_gpu_share_pct=%d\n",
		p.Params.GPUMinBatch, p.Params.GPUMaxUtilPct, p.Params.GPUMinMemMiB, p.Params.GPUBatchNs, p.Params.KernelGPUSharePct)
	fmt.Fprintf(tw, "decisions\tcpu=%d gpu=%d errors=%d\n", p.Counts.CPU, p.Counts.GPU, p.Counts.Errors)
	fmt.Fprintf(tw, "shipped\t%s\n", strings.Join(p.Shipped, ", "))
	return tw.Flush()
}

func (c *cli) features(ctx context.Context, args []string) error {
	_, args = sub(args, "list", "list")
	fs := newFlagSet("features list", c)
	fr, err := ask(ctx, c, fs, args, (*admin.Client).Features)
	if err != nil {
		return err
	}
	if c.json {
		return c.emitJSON(fr)
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tNAME\tKEYS\tMAX_KEYS\tHISTORY\tRECORD(B)\tFIELDS")
	for _, s := range fr.Schemas {
		fields := make([]string, 0, len(s.Fields))
		for _, f := range s.Fields {
			t := f.Type
			if f.Count > 1 {
				t += "[" + strconv.Itoa(f.Count) + "]"
			}
			fields = append(fields, f.Name+":"+t)
		}
		keys := strconv.Itoa(s.Keys)
		if s.Keys < 0 {
			keys = "?"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%s\n", s.ID, s.Name, keys, s.MaxKeys, s.History, s.RecordSize, strings.Join(fields, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if fr.Error != "" {
		fmt.Fprintf(c.errw, "lakectl: warning: feature registry: %s\n", fr.Error)
	}
	return nil
}

func (c *cli) retrain(ctx context.Context, args []string) error {
	fs := newFlagSet("retrain", c)
	rr, err := ask(ctx, c, fs, args, (*admin.Client).Retrain)
	if err != nil {
		return err
	}
	if c.json {
		return c.emitJSON(rr)
	}
	tw := c.table()
	fmt.Fprintln(tw, "DEVICE	MODEL	VERSION	SAMPLES	TRAININGS	INSTALLS	ACCURACY	SERVED	FIDELITY	LAST TRAINING	OUTCOME")
	for _, d := range rr.Devices {
		model := "-"
		if id, ok := rr.Models[strconv.FormatUint(d.Device, 10)]; ok {
			model = strconv.FormatUint(uint64(id), 10)
		}
		last, acc, served, fid := "never", "-", "-", "-"
		if !d.LastTraining.IsZero() {
			last = d.LastTraining.Format(time.RFC3339)
			acc = fmt.Sprintf("%.1f%%", 100*d.Accuracy)
			fid = fmt.Sprintf("%.1f%%", 100*d.Fidelity)
			if d.ServedAccuracy >= 0 {
				served = fmt.Sprintf("%.1f%%", 100*d.ServedAccuracy)
			}
		}
		fmt.Fprintf(tw, "%d:%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", d.Device>>20, d.Device&(1<<20-1), model, d.Version,
			d.Samples, d.Trainings, d.Installs, acc, served, fid, last, d.Outcome)
	}
	return tw.Flush()
}

func (c *cli) reload(ctx context.Context, args []string) error {
	fs := newFlagSet("reload", c)
	if err := c.parseNoArgs(fs, args); err != nil {
		return err
	}
	cl := c.client()
	defer cl.Close()
	if err := cl.Reload(ctx); err != nil {
		return err
	}
	if c.json {
		return c.emitJSON(admin.ReloadResponse{Reloaded: true})
	}
	fmt.Fprintln(c.out, "laked reloaded its configuration and policy")
	return nil
}
