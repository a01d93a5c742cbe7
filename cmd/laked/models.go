package main

import (
	"context"
	"fmt"
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/liteflow/adapt"
	"github.com/lakeos/lake/liteflow/kapp"
)

// Model ids laked serves by default.
const (
	modelLinnOS   = 1
	modelDemoMLP  = 2
	modelLiteFlow = 3
)

// startLiteFlow serves the configured LiteFlow snapshot as model 3 and
// runs its app's online adaptation on the samples the kernel app records.
func (d *daemon) startLiteFlow() error {
	cfg := d.cfg.Models
	if cfg.LiteFlow == "" {
		return nil
	}
	s, err := kapp.LoadFile(cfg.LiteFlow)
	if err != nil {
		return fmt.Errorf("config key models.liteflow: %w", err)
	}
	// A kernel congestion controller records one sample per flow per
	// RTT: small batches, several training steps per batch and a short
	// stale override let adaptation follow a change in a few seconds.
	app, err := kapp.NewApp(d.srv, d.features, kapp.Config{Name: cfg.LiteFlowApp, Model: modelLiteFlow, Snapshot: s, Batch: 16,
		Adapt: adapt.Config{FidelityThreshold: 0.02, Steps: 4, MinInstallInterval: time.Second, MaxStale: 3 * time.Second}})
	if err != nil {
		return fmt.Errorf("config key models.liteflow: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go app.Run(ctx)
	d.closers = append(d.closers, cancel)
	d.liteflow = app
	d.log.Info().Str("app", cfg.LiteFlowApp).Uint32("model", modelLiteFlow).Uint64("generation", s.Generation).Msg("serving a LiteFlow snapshot; adapting on the kernel app's samples")
	return nil
}

// cpuLimits are the CPU backend's limits from the config.
func cpuLimits(l LimitsConfig) backend.Limits {
	return backend.Limits{TotalBytes: l.TotalDeviceBytes, LaunchTimeout: l.LaunchTimeout}
}

// registerModels serves the built-in models: LinnOS (when a model is
// given) as model 1, with gpu as its GPU path when not nil, and a small
// demo MLP as model 2.
//
// gpuMLP, when not nil, gives an MLP its GPU path (nil: none).
func registerModels(srv *laked.Server, lm *linnos.IntModel, gpu laked.GPURunsFunc, gpuMLP func(*kernels.MLP) laked.GPURunsFunc) error {
	if lm != nil {
		if err := srv.RegisterModel(modelLinnOS, laked.WithGPURuns(laked.NewLinnOSModel("linnos", lm), gpu)); err != nil {
			return err
		}
	}
	m, err := laked.NewMLPModel("mlp-demo", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		return err
	}
	var served laked.Model = m
	if gpuMLP != nil {
		served = laked.WithGPURuns(m, gpuMLP(m.MLP()))
	}
	return srv.RegisterModel(modelDemoMLP, served)
}
