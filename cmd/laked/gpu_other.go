//go:build !cuda

package main

import "github.com/rs/zerolog"

// openGPU: laked built without the cuda tag has no GPU backend (make
// cuda-env; go build -tags cuda ./cmd/laked).
func openGPU(cfg *Config, log zerolog.Logger) (*gpuSetup, error) {
	if cfg.GPU.Mode != "off" {
		log.Debug().Msg("built without the cuda tag: no GPU backend")
	}
	return nil, nil
}
