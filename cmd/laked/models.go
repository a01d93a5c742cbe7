package main

import (
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend"
)

// Model ids laked serves by default.
const (
	modelLinnOS  = 1
	modelDemoMLP = 2
)

func cpuLimits() backend.Limits { return backend.Limits{} }

// registerModels serves the built-in models.
func registerModels(srv *laked.Server) error {
	m, err := laked.NewMLPModel("mlp-demo", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		return err
	}
	return srv.RegisterModel(modelDemoMLP, m)
}
