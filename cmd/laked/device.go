package main

import (
	"errors"

	"github.com/lakeos/lake/laked"
)

// attachDevice serves the kernel's region device.
func attachDevice(srv *laked.Server, path string) error {
	_ = srv
	return errors.New("--device " + path + ": /dev/lake support is not built yet")
}
