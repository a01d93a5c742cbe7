//go:build cuda

package main

import (
	"errors"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend/cuda"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/linnos"
)

// openGPU opens the configured GPU through the CUDA backend. It returns
// nil (and logs why) when the GPU is off or absent: laked then runs on
// the CPU alone.
func openGPU(cfg *Config, log zerolog.Logger) (*gpuSetup, error) {
	if cfg.GPU.Mode == "off" {
		return nil, nil
	}
	be, err := cuda.New(cfg.GPU.Index, cpuLimits(cfg.Limits))
	if errors.Is(err, cuda.ErrNoDriver) {
		log.Info().Str("reason", err.Error()).Msg("no GPU: running on the CPU")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	log.Info().Int("gpu", cfg.GPU.Index).Str("name", be.DeviceName()).Msg("GPU opened (CUDA backend)")
	var models []interface{ Close() error }
	return &gpuSetup{
		be: be,
		linnos: func(m *linnos.IntModel) (laked.GPURunsFunc, error) {
			g, err := cuda.NewLinnOSInt(be, m)
			if err != nil {
				return nil, err
			}
			models = append(models, g)
			return g.PredictRuns, nil
		},
		snapshot: func(img []byte) (laked.SnapshotRunner, error) {
			g, err := cuda.NewSnapshot(be, img)
			if err != nil {
				return nil, err
			}
			models = append(models, g)
			return g.RunQuantized, nil
		},
		mlp: func(m *kernels.MLP) (laked.GPURunsFunc, error) {
			g, err := cuda.NewMLP(be, m)
			if err != nil {
				return nil, err
			}
			models = append(models, g)
			return g.PredictRuns, nil
		},
		close: func() {
			for _, g := range models {
				g.Close()
			}
			be.Close()
		},
	}, nil
}
