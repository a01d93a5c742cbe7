package main

import (
	"errors"

	"github.com/rs/zerolog"
)

func runDemo(o options, log zerolog.Logger) error {
	_ = o
	_ = log
	return errors.New("demo not built yet")
}
