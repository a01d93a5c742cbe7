package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/linnos"
)

func TestParseRetrainDevices(t *testing.T) {
	got, err := parseRetrainDevices(" 8:16=11, 259:0=12 ")
	if err != nil || len(got) != 2 || got[8<<20|16] != 11 || got[259<<20] != 12 {
		t.Fatalf("parsed %v, %v", got, err)
	}
	if got, err := parseRetrainDevices(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"8:16", "8=11", "8:16=x", "4096:0=1", "8:1048576=1", "8:16=11,8:16=12", "8:16=11,8:32=11", "8:16=-1", "8:16=4294967296"} {
		if _, err := parseRetrainDevices(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestModelInstaller checks that the first install registers the device's
// model and later ones replace it (the version the kernel polls grows),
// and that the image laked hands out is the installed weights.
func TestModelInstaller(t *testing.T) {
	srv, err := laked.New(laked.Config{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	const dev = 8<<20 | 16
	inst := &modelInstaller{srv: srv, ids: map[uint64]uint32{dev: 11}}
	if _, ok := inst.Current(dev); ok {
		t.Fatal("a model before any install")
	}
	meta := linnos.ModelMeta{ThresholdUs: 600}
	for want := uint64(1); want <= 2; want++ {
		fm, err := linnos.NewFloatModel(0)
		if err != nil {
			t.Fatal(err)
		}
		fm.B[1][1] = float32(want) // two different models
		im, err := linnos.Quantize(fm)
		if err != nil {
			t.Fatal(err)
		}
		v, err := inst.Install(dev, im, meta)
		if err != nil || v != want {
			t.Fatalf("install %d: version %d, %v", want, v, err)
		}
		if cur, ok := inst.Current(dev); !ok || cur != im {
			t.Fatalf("install %d: current model is not the installed one", want)
		}
		kind, img, ver, err := srv.ModelImage(11)
		wantImg, _ := linnos.EncodeInt(im, meta)
		if err != nil || kind != laked.ImageLinnOS || ver != want || !bytes.Equal(img, wantImg) {
			t.Fatalf("install %d: image %s v%d (%v), equal %v", want, kind, ver, err, bytes.Equal(img, wantImg))
		}
	}
	if _, err := inst.Install(9, nil, meta); err == nil || !strings.Contains(err.Error(), "no model id") {
		t.Fatalf("install for an unknown device: %v", err)
	}
}

// TestStartRetrain checks laked's wiring: off without devices, an error
// without the kernel's LinnOS schemas, and a running trainer whose status
// the admin API reports otherwise.
func TestStartRetrain(t *testing.T) {
	srv, err := laked.New(laked.Config{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	reg, release, err := newFeatureRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	d := &daemon{cfg: &Config{Retrain: RetrainConfig{MinSamples: 4000}}, srv: srv, log: zerolog.Nop()}
	if st, err := d.startRetrain(reg); st != nil || err != nil {
		t.Fatalf("no devices: %v, %v", st != nil, err)
	}
	d.cfg.Retrain.LinnOSDevices = "8:16=11"
	if _, err := d.startRetrain(reg); err == nil || !strings.Contains(err.Error(), "retrain.linnos_devices") {
		t.Fatalf("no LinnOS schemas: %v", err)
	}
	l, err := features.NewLinnOS(reg, 8)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.startRetrain(reg)
	if err != nil || st == nil {
		t.Fatalf("start: %v", err)
	}
	defer func() {
		for _, c := range d.closers {
			c()
		}
	}()
	if err := l.RecordCompletion(8<<20|16, features.LinnOSCompletion{LatencyUs: 100, Pending: 1, DoneSeq: 1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := st()
		if len(r.Devices) == 1 && r.Devices[0].Records == 1 && r.Devices[0].Samples == 1 && r.Models["8388624"] == 11 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
