package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/lakeos/lake/liteflow/apps/aurora"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/snapshot"
)

const usage = `usage: liteflow <command> [flags]

commands:
  aurora -o FILE [-seed N] [-pretrain D] [-epochs N]
                 pre-train the Aurora congestion-control policy (30 inputs:
                 10 intervals of latency gradient, latency ratio and sending
                 ratio; 1 output: the rate change) and write its snapshot
  toy -o FILE [-in N] [-hidden N] [-out N] [-gen G] [-seed N]
                 a small random quantized MLP (for tests)
  info FILE      validate a snapshot and print its shape and quantization
`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "liteflow:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "aurora":
		fs := flag.NewFlagSet("aurora", flag.ContinueOnError)
		o := fs.String("o", "", "output file")
		seed := fs.Uint64("seed", 1, "seed")
		pre := fs.Duration("pretrain", 20*time.Second, "simulated pre-training time")
		epochs := fs.Int("epochs", 25, "training epochs")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *o == "" {
			return errors.New("aurora: -o is required")
		}
		s, _, _, err := aurora.PretrainedSnapshot(aurora.Config{Seed: *seed, PretrainDuration: *pre, PretrainEpochs: *epochs})
		if err != nil {
			return err
		}
		return write(*o, s, out)
	case "toy":
		fs := flag.NewFlagSet("toy", flag.ContinueOnError)
		o := fs.String("o", "", "output file")
		in := fs.Int("in", 4, "inputs")
		hidden := fs.Int("hidden", 8, "hidden units (ReLU)")
		outs := fs.Int("out", 2, "outputs")
		gen := fs.Uint64("gen", 1, "generation stored in the snapshot")
		seed := fs.Uint64("seed", 1, "seed")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *o == "" {
			return errors.New("toy: -o is required")
		}
		m, err := model.NewMLP([]int{*in, *hidden, *outs}, []model.Activation{model.ReLU, model.Identity}, *seed)
		if err != nil {
			return err
		}
		r := rand.New(rand.NewPCG(*seed, 1))
		calib := make([][]float32, 64)
		for i := range calib {
			calib[i] = make([]float32, *in)
			for j := range calib[i] {
				calib[i][j] = float32(r.NormFloat64())
			}
		}
		s, err := quant.Quantize(m, calib, quant.Options{Generation: *gen})
		if err != nil {
			return err
		}
		return write(*o, s, out)
	case "info":
		if len(args) != 2 {
			return errors.New("info: one file")
		}
		b, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		s, err := snapshot.Decode(b)
		if err != nil {
			return err
		}
		describe(out, s, len(b))
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func write(path string, s *snapshot.Snapshot, out io.Writer) error {
	b, err := snapshot.Encode(s)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	describe(out, s, len(b))
	return nil
}

func describe(out io.Writer, s *snapshot.Snapshot, n int) {
	fmt.Fprintf(out, "snapshot: %d bytes, generation %d, %v, %d -> %d, input scale %g zero %d, output scale %g zero %d\n",
		n, s.Generation, s.DType, s.InputDim(), s.OutputDim(), s.Input.Scale, s.Input.Zero, s.Output().Scale, s.Output().Zero)
	for i, l := range s.Layers {
		fmt.Fprintf(out, "layer %d: %d -> %d %v per-channel=%v\n", i, l.In, l.Out, l.Act, l.PerChannel)
	}
}
