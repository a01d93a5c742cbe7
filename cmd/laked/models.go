package main

import (
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/linnos"
)

// Model ids laked serves by default.
const (
	modelLinnOS  = 1
	modelDemoMLP = 2
)

// cpuLimits are the CPU backend's limits from the config.
func cpuLimits(l LimitsConfig) backend.Limits {
	return backend.Limits{TotalBytes: l.TotalDeviceBytes, LaunchTimeout: l.LaunchTimeout}
}

// registerModels serves the built-in models: LinnOS (when a model is
// given) as model 1, with gpu as its GPU path when not nil, and a small
// demo MLP as model 2.
//
// gpuMLP, when not nil, gives an MLP its GPU path (nil: none).
func registerModels(srv *laked.Server, lm *linnos.IntModel, gpu laked.GPUFunc, gpuMLP func(*kernels.MLP) laked.GPUFunc) error {
	if lm != nil {
		if err := srv.RegisterModel(modelLinnOS, laked.WithGPU(laked.NewLinnOSModel("linnos", lm), gpu)); err != nil {
			return err
		}
	}
	m, err := laked.NewMLPModel("mlp-demo", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		return err
	}
	var served laked.Model = m
	if gpuMLP != nil {
		served = laked.WithGPU(m, gpuMLP(m.MLP()))
	}
	return srv.RegisterModel(modelDemoMLP, served)
}
