package laked_test

import "github.com/lakeos/lake/lakelib"

func lakelibOptions() lakelib.Options { return lakelib.Options{} }
