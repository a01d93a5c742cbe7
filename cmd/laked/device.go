package main

import (
	"os"

	"github.com/lakeos/lake/laked"
)

// autoDevice is the device "auto" looks for (a variable for tests).
var autoDevice = DefaultDevice

// resolveDevice turns the device key into the path to serve: "auto" is
// autoDevice when it exists and none otherwise.
func resolveDevice(key string) string {
	if key != DeviceAuto {
		return key
	}
	if _, err := os.Stat(autoDevice); err != nil {
		return ""
	}
	return autoDevice
}

// attachDevice serves the kernel's region device (/dev/lake).
func attachDevice(srv *laked.Server, path string) (laked.Transport, error) {
	t, err := laked.OpenDevice(path)
	if err != nil {
		return nil, err
	}
	if _, err := srv.Attach(t); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}
