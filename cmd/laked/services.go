package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/admin"
	"github.com/lakeos/lake/laked/kernelstats"
	"github.com/lakeos/lake/laked/metrics"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/liteflow/kapp"
	"github.com/lakeos/lake/liteflow/snapshot"
	"github.com/lakeos/lake/shm"
)

// version is laked's version string (set with -ldflags "-X main.version=...").
var version = "dev"

// featureConfig sizes laked's own feature registry (the kernel's lives in
// its region).
var featureConfig = features.Config{MaxSchemas: 16, MaxKeys: 1024, MaxHistory: 256, ArenaBytes: 1 << 20}

// newFeatureRegistry creates laked's feature registry in shared memory.
func newFeatureRegistry() (*features.Registry, func(), error) {
	size := features.SizeFor(featureConfig)
	m, err := shm.NewAnonymous(uint64(size))
	if err != nil {
		return nil, nil, fmt.Errorf("feature registry: %w", err)
	}
	reg, err := features.Create(m.Mem, featureConfig)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("feature registry: %w", err)
	}
	return reg, func() { m.Close() }, nil
}

// startServices starts the admin API and the metrics endpoint the config
// asks for.
func (d *daemon) startServices(started time.Time, args []string) error {
	cfg := d.cfg
	if cfg.AdminSocket != "" || d.passed.admin != nil {
		h, err := admin.New(admin.Deps{
			Server: d.srv, Policy: d.engine, LoadModel: loadModelFile, Features: d.features, Retrain: d.retrain,
			ModelKinds: []string{admin.KindMLP, admin.KindLinnOS, admin.KindLiteFlow}, LiteFlow: d.liteflowStatus,
			LiteFlowLoad: d.liteflowLoad, LiteFlowUnpin: d.liteflowUnpin,
			Version: version, Started: started, Reload: func() error { return d.reload(args) }, Logger: d.log,
		})
		if err != nil {
			return fmt.Errorf("admin API: %w", err)
		}
		var l net.Listener
		if pl := d.passed.admin; pl != nil {
			d.passed.admin = nil
			l = pl
			logPassed(d.log, "admin_socket", cfg.AdminSocket, pl)
		} else {
			al, err := admin.Listen(cfg.AdminSocket)
			if err != nil {
				return fmt.Errorf("config key admin_socket: %w", err)
			}
			l = al
		}
		hs := admin.NewHTTPServer(h)
		go serveHTTP(d, hs, l, "admin API")
		d.closers = append(d.closers, func() { shutdownHTTP(hs) })
		d.log.Info().Str("socket", cfg.AdminSocket).Msg("admin API listening")
	}
	if cfg.MetricsAddr != "" {
		// "unix:/path": a unix socket of mode 0600 (only root and laked's
		// user read the metrics); otherwise TCP, which on loopback every
		// local user can read.
		unixPath, onUnix := strings.CutPrefix(cfg.MetricsAddr, "unix:")
		if !onUnix {
			loop, err := metrics.IsLoopback(cfg.MetricsAddr)
			if err != nil {
				return fmt.Errorf("config key metrics_addr: %w", err)
			}
			if !loop {
				d.log.Warn().Str("addr", cfg.MetricsAddr).Msg("metrics endpoint is not on loopback")
			}
		}
		var extra []prometheus.Collector
		if d.features != nil {
			extra = append(extra, kernelstats.New(d.features))
		}
		h, err := metrics.Handler(d.srv, d.engine, extra...)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		var ln net.Listener
		if onUnix {
			if !filepath.IsAbs(unixPath) {
				return fmt.Errorf("config key metrics_addr: %q: a unix socket path must be absolute", cfg.MetricsAddr)
			}
			ln, err = laked.Listen(unixPath)
		} else {
			ln, err = net.Listen("tcp", cfg.MetricsAddr)
		}
		if err != nil {
			return fmt.Errorf("config key metrics_addr: %w", err)
		}
		hs := metrics.NewHTTPServer(cfg.MetricsAddr, h)
		go serveHTTP(d, hs, ln, "metrics")
		d.closers = append(d.closers, func() { shutdownHTTP(hs) })
		d.log.Info().Str("addr", ln.Addr().String()).Msg("metrics endpoint listening")
	}
	return nil
}

func serveHTTP(d *daemon, hs *http.Server, l net.Listener, what string) {
	if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		d.log.Error().Err(err).Str("service", what).Msg("serve")
	}
}

func shutdownHTTP(hs *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
}

// liteflowStatus lists the LiteFlow apps laked runs.
func (d *daemon) liteflowStatus() []kapp.Status {
	if d.liteflow == nil {
		return nil
	}
	return []kapp.Status{d.liteflow.Status()}
}

// liteflowLoad has the LiteFlow app serving model id serve the snapshot
// of m (lakectl models load --replace ID liteflow FILE) and pin; other
// ids are not the app's (handled false).
func (d *daemon) liteflowLoad(id uint32, m laked.Model) (bool, error) {
	if d.liteflow == nil || id != d.liteflow.Model() {
		return false, nil
	}
	lm, ok := m.(*laked.LiteFlowModel)
	if !ok {
		return false, fmt.Errorf("model %d is LiteFlow app %s's: only a liteflow snapshot can replace it", id, d.liteflow.Name())
	}
	s, _ := lm.Router().ActiveSnapshot()
	if s == nil {
		return false, fmt.Errorf("the loaded model has no snapshot")
	}
	if err := d.liteflow.Load(s); err != nil {
		return false, err
	}
	return true, nil
}

// liteflowUnpin unpins the named app (lakectl liteflow unpin).
func (d *daemon) liteflowUnpin(app string, restart bool) error {
	if d.liteflow == nil || d.liteflow.Name() != app {
		return fmt.Errorf("%w: %q", kapp.ErrNoApp, app)
	}
	return d.liteflow.Unpin(restart)
}

// loadModelFile builds a servable model from a file (lakectl models load).
func loadModelFile(kind, path string, b []byte) (laked.Model, error) {
	switch kind {
	case admin.KindMLP:
		return laked.NewMLPModel(path, b)
	case admin.KindLinnOS:
		f, err := linnos.DecodeModel(b)
		if err != nil {
			return nil, err
		}
		im, err := f.IntModel()
		if err != nil {
			return nil, err
		}
		return laked.NewLinnOSModelMeta("linnos", im, f.Meta), nil
	case admin.KindLiteFlow:
		s, err := snapshot.Decode(b)
		if err != nil {
			return nil, err
		}
		return kapp.NewModel(filepath.Base(path), s)
	}
	return nil, fmt.Errorf("unknown model kind %q", kind)
}
