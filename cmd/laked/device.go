package main

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/lakeos/lake/laked"
)

// deviceWatchInterval is how often a laked started without its device
// (device: auto) looks for it (a variable for tests).
var deviceWatchInterval = time.Second

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

// watchDevice serves autoDevice once it appears, for a laked with device:
// auto that started before the lake_shm module was loaded (it then needs
// no restart). It looks every deviceWatchInterval until the device
// attaches or the daemon stops; a device that exists but does not attach
// (not a lake region, another laked has it) is reported once and tried
// again. The kernel's feature registry in a region attached this way is
// not used until laked restarts: the admin API, the kernel stats and
// retraining keep laked's own registry, chosen at start.
func (d *daemon) watchDevice() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	d.closers = append(d.closers, func() { cancel(); wg.Wait() })
	go func() {
		defer wg.Done()
		tick := time.NewTicker(deviceWatchInterval)
		defer tick.Stop()
		var lastErr string
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if resolveDevice(DeviceAuto) == "" {
				continue
			}
			if _, err := attachDevice(d.srv, autoDevice); err != nil {
				if err.Error() != lastErr {
					d.log.Error().Err(err).Str("device", autoDevice).Msg("config key device: the device appeared but does not attach; retrying")
					lastErr = err.Error()
				}
				continue
			}
			d.log.Info().Str("device", autoDevice).Msg("serving kernel region (it appeared after start; its feature registry, for kernel stats and retraining, is used after a restart)")
			return
		}
	}()
}
