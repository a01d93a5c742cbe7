package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/admin"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/linnos/retrain"
)

// parseRetrainDevices parses retrain.linnos_devices: "MAJOR:MINOR=ID,..."
// into device key (the kernel's major<<20 | minor) -> model id.
func parseRetrainDevices(s string) (map[uint64]uint32, error) {
	out := map[uint64]uint32{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	ids := map[uint32]bool{}
	for _, item := range strings.Split(s, ",") {
		dev, id, ok := strings.Cut(strings.TrimSpace(item), "=")
		maj, min, ok2 := strings.Cut(dev, ":")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%q: want MAJOR:MINOR=MODEL_ID", item)
		}
		ma, err1 := strconv.ParseUint(maj, 10, 12)
		mi, err2 := strconv.ParseUint(min, 10, 20)
		m, err3 := strconv.ParseUint(id, 10, 32)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("%q: major < 4096, minor < 2^20, model id a uint32: %w", item, err)
		}
		key := ma<<20 | mi
		if _, dup := out[key]; dup || ids[uint32(m)] {
			return nil, fmt.Errorf("%q: device or model id given twice", item)
		}
		out[key], ids[uint32(m)] = uint32(m), true
	}
	return out, nil
}

// modelInstaller serves each device's retrained model under its model id
// (retrain.Installer): the first install registers it, later ones replace
// it and so bump the version the kernel polls.
type modelInstaller struct {
	srv *laked.Server
	ids map[uint64]uint32
}

func (m *modelInstaller) Install(dev uint64, im *linnos.IntModel, meta linnos.ModelMeta) (uint64, error) {
	id, ok := m.ids[dev]
	if !ok {
		return 0, fmt.Errorf("device %d:%d has no model id", dev>>20, dev&(1<<20-1))
	}
	lm := laked.NewLinnOSModelMeta(fmt.Sprintf("linnos-%d:%d", dev>>20, dev&(1<<20-1)), im, meta)
	if _, _, served := m.srv.Served(id); served {
		return m.srv.ReplaceModel(id, lm)
	}
	if err := m.srv.RegisterModel(id, lm); err != nil {
		return 0, err
	}
	_, v, _ := m.srv.Served(id)
	return v, nil
}

func (m *modelInstaller) Current(dev uint64) (*linnos.IntModel, bool) {
	id, ok := m.ids[dev]
	if !ok {
		return nil, false
	}
	mdl, _, ok := m.srv.Served(id)
	if !ok {
		return nil, false
	}
	lm, ok := mdl.(*laked.LinnOSModel)
	if !ok {
		return nil, false
	}
	return lm.IntModel(), true
}

// startRetrain starts LinnOS retraining on reg when the config names
// devices; it returns the admin API's status function (nil when off).
func (d *daemon) startRetrain(reg *features.Registry) (func() admin.RetrainResponse, error) {
	ids, err := parseRetrainDevices(d.cfg.Retrain.LinnOSDevices)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	devs := make([]uint64, 0, len(ids))
	models := map[string]uint32{}
	for k, id := range ids {
		devs = append(devs, k)
		models[strconv.FormatUint(k, 10)] = id
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i] < devs[j] })
	cfg := retrain.Config{Devices: devs, MinSamples: d.cfg.Retrain.MinSamples,
		Window: max(20000, d.cfg.Retrain.MinSamples), Train: linnos.TrainConfig{ThresholdUs: float64(d.cfg.Retrain.ThresholdUs), FalseSubmitCost: d.cfg.Retrain.FalseSubmitCost}}
	tr, err := retrain.New(reg, &modelInstaller{srv: d.srv, ids: ids}, cfg)
	if err != nil {
		return nil, fmt.Errorf("config key retrain.linnos_devices: %w (is the kernel region, with lake_shm's LinnOS schemas, attached?)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	log := d.log
	go func() {
		defer close(done)
		err := tr.Run(ctx, time.Millisecond, time.Second, func(r retrain.Result) { logRetrain(log, r) })
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error().Err(err).Msg("LinnOS retraining stopped")
		}
	}()
	d.closers = append(d.closers, func() { cancel(); <-done })
	log.Info().Int("devices", len(devs)).Msg("retraining LinnOS models from the kernel's records")
	return func() admin.RetrainResponse { return admin.RetrainResponse{Devices: tr.Status(), Models: models} }, nil
}

func logRetrain(log zerolog.Logger, r retrain.Result) {
	s := r.Status
	ev := log.Info()
	if r.Err != nil {
		ev = log.Warn().Err(r.Err)
	}
	ev.Str("device", fmt.Sprintf("%d:%d", s.Device>>20, s.Device&(1<<20-1))).Int("trained_on", s.TrainedOn).
		Float64("accuracy", s.Accuracy).Float64("fidelity", s.Fidelity).Float64("served_accuracy", s.ServedAccuracy).
		Uint64("version", s.Version).Str("outcome", s.Outcome).Msg("LinnOS retraining")
}
