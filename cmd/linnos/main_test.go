package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	trace := filepath.Join(dir, "t.trace")
	model := filepath.Join(dir, "m.model")
	header := filepath.Join(dir, "m.h")
	plotPath := filepath.Join(dir, "cdf.png")
	var out, errb bytes.Buffer
	step := func(args ...string) string {
		t.Helper()
		out.Reset()
		errb.Reset()
		if err := run(ctx, args, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}
	step("gen", "-preset", "azure", "-n", "4000", "-seed", "4", "-o", trace)
	if b, err := os.ReadFile(trace); err != nil || strings.Count(string(b), "\n") != 4000 {
		t.Fatalf("trace file: %v", err)
	}
	o := step("train", "-trace", trace, "-epochs", "1", "-o", model, "-header", header, "-seed", "4")
	if !strings.Contains(o, "held-out 20%") || !strings.Contains(errb.String(), "training [") || !strings.Contains(errb.String(), "100%") {
		t.Fatalf("train output %q / %q", o, errb.String())
	}
	o = step("replay", "-preset", "azure", "-n", "2500", "-model", model, "-plot", plotPath)
	for _, m := range []string{"baseline", "hedging", "linnos", "linnos+hedging"} {
		if !strings.Contains(o, m) {
			t.Fatalf("replay table lacks %s:\n%s", m, o)
		}
	}
	f, err := os.Open(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("plot: %v", err)
	}
	f.Close()
	imported := filepath.Join(dir, "imported.model")
	step("import-header", "-in", header, "-o", imported)
	// The imported header and the float model's integer path give the same table.
	a := step("replay", "-preset", "azure", "-n", "2000", "-model", model)
	b := step("replay", "-preset", "azure", "-n", "2000", "-model", imported, "-threshold", thresholdOf(t, a))
	if a != b {
		t.Fatalf("imported header replays differently:\n%s\n%s", a, b)
	}
	if err := run(ctx, []string{"replay", "-trace", filepath.Join(dir, "missing")}, &out, &errb); err == nil {
		t.Fatal("missing trace accepted")
	}
	if err := run(ctx, []string{"bogus"}, &out, &errb); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(ctx, []string{"gen", "-n", "-5"}, &out, &errb); err == nil {
		t.Fatal("negative count accepted")
	}
}

// thresholdOf extracts the threshold printed under a replay table.
func thresholdOf(t *testing.T, table string) string {
	t.Helper()
	i := strings.Index(table, "slow threshold ")
	if i < 0 {
		t.Fatalf("no threshold in %q", table)
	}
	return strings.Fields(table[i+len("slow threshold "):])[0]
}
