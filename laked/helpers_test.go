package laked_test

import "github.com/lakeos/lake/laked/backend"

func cpuLimits() backend.Limits { return backend.Limits{} }
