package laked_test

import (
	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/lakelib"
)

func cpuLimits() backend.Limits { return backend.Limits{} }

func lakelibOptions() lakelib.Options { return lakelib.Options{} }
