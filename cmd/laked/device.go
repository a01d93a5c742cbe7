package main

import (
	"github.com/lakeos/lake/laked"
)

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
