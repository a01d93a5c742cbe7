package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/admin"
	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/laked/sdnotify"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/liteflow/kapp"
	"github.com/lakeos/lake/policy"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return // --help printed the flags
		}
		fmt.Fprintln(os.Stderr, "laked:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, inv, err := loadConfig(args, os.Stderr)
	if err != nil {
		return err
	}
	if inv.printConfig {
		out, err := cfg.YAML()
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(out)
		return err
	}
	log := newLogger(cfg.Log, os.Stderr)
	if inv.demo {
		// The demo prints its own report; the daemon's state-change lines
		// would only interleave with it.
		if log.GetLevel() < zerolog.WarnLevel {
			log = log.Level(zerolog.WarnLevel)
		}
		return runDemo(cfg, log)
	}
	started := time.Now()
	passed, err := takePassedSockets(log)
	if err != nil {
		return err
	}
	d, err := start(context.Background(), cfg, log, nil, passed)
	if err != nil {
		passed.close()
		return err
	}
	if err := d.startServices(started, args); err != nil {
		d.stop(context.Background())
		return err
	}
	// Everything is up: the socket, the device region, the models.
	if err := sdnotify.Ready(); err != nil {
		log.Warn().Err(err).Msg("systemd notify")
	}
	wdCtx, wdStop := context.WithCancel(context.Background())
	defer wdStop()
	go func() {
		if err := sdnotify.RunWatchdog(wdCtx, d.srv.Healthy); err != nil {
			log.Warn().Err(err).Msg("systemd watchdog")
		}
	}()
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for s := range sig {
		if s == syscall.SIGHUP {
			_ = sdnotify.Reloading()
			if err := d.reload(args); err != nil {
				log.Error().Err(err).Msg("reload failed; keeping the running configuration")
			}
			_ = sdnotify.Ready()
			continue
		}
		log.Info().Str("signal", s.String()).Msg("draining")
		break
	}
	_ = sdnotify.Stopping()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.stop(ctx)
}

// newLogger builds the zerolog logger: JSON, or human console lines when
// asked for or (format auto) when stderr is a terminal.
func newLogger(c LogConfig, w *os.File) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		lvl = zerolog.InfoLevel // Validate rejected anything else
	}
	var out io.Writer = w
	if c.Format == "console" || (c.Format == "auto" && isTerminal(w)) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// daemon is a running laked with everything around the core.
type daemon struct {
	cfg      *Config
	log      zerolog.Logger
	srv      *laked.Server
	engine   *policy.Engine
	features *features.Registry
	retrain  func() admin.RetrainResponse // nil: not retraining
	passed   *passedSockets               // sockets a service manager passed, not yet served
	liteflow *kapp.App                    // the LiteFlow app adapting model 3, or nil
	closers  []func()
}

// start builds the backend, the policy, the server and its models, and
// serves the socket and the device. linnosModel, if not nil, is served as
// model 1 (otherwise the config's weight file, or a freshly trained demo
// model). passed, if not nil, holds the sockets a service manager passed
// (they replace the configured paths); on success the daemon owns them.
func start(ctx context.Context, cfg *Config, log zerolog.Logger, linnosModel *linnos.IntModel, passed *passedSockets) (*daemon, error) {
	if err := kernels.Register(); err != nil {
		return nil, fmt.Errorf("register kernels: %w", err)
	}
	if passed == nil {
		passed = &passedSockets{}
	}
	d := &daemon{cfg: cfg, log: log, passed: passed}
	ok := false
	defer func() {
		if !ok {
			d.closeAll()
		}
	}()
	params := cfg.PolicyParams()
	eng, err := policy.New(policy.Options{Policy: cfg.Policy.Name, File: cfg.Policy.File, Params: &params, DisableBPF: cfg.Policy.DisableBPF})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	d.engine = eng
	d.closers = append(d.closers, func() { eng.Close() })
	st := eng.Status()
	ev := log.Info()
	if st.Note != "" {
		ev = log.Warn().Str("note", st.Note)
	}
	ev.Str("policy", st.Active).Bool("kernel", st.Kernel).Msg("policy loaded")

	var be backend.Backend = cpu.New(cpuLimits(cfg.Limits))
	src := newLoadSources(cfg.GPU.Index, log)
	d.closers = append(d.closers, src.close)
	gpu, err := openGPU(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("config key gpu: %w", err)
	}
	var gpuBackend backend.Backend
	if gpu != nil {
		d.closers = append(d.closers, gpu.close)
		gpuBackend = gpu.be
		if cfg.GPU.Contexts {
			be = gpu.be
		}
	}
	srv, err := laked.New(laked.Config{
		MaxBatch: cfg.Batch.MaxSize, MaxWait: cfg.Batch.MaxWait, BusyPoll: cfg.BusyPoll, IdleSpin: idleSpin(cfg.IdleSpin), IdleYield: cfg.IdleYield,
		MaxClients: cfg.MaxClients, Limits: cfg.Limits.Laked(), Backend: be, GPU: gpuBackend, Logger: log,
		Placer: &laked.PolicyPlacer{Engine: eng, Load: src.gpu, SelfLoad: src.self, CPUUtil: src.cpu, Log: log},
	})
	if err != nil {
		return nil, err
	}
	d.srv = srv
	if linnosModel == nil && cfg.Models.LinnOS != "none" {
		if linnosModel, err = loadLinnOS(ctx, cfg, log); err != nil {
			return nil, err
		}
	}
	var gpuLinnOS laked.GPURunsFunc
	if gpu != nil && linnosModel != nil {
		if f, err := gpu.linnos(linnosModel); err == nil {
			gpuLinnOS = timedRuns(src.self, f)
		} else {
			log.Warn().Err(err).Msg("LinnOS on the GPU: running it on the CPU only")
		}
	}
	if err := registerModels(srv, linnosModel, gpuLinnOS, gpuMLP(gpu, src, log)); err != nil {
		return nil, err
	}
	if l := passed.client; l != nil {
		passed.client = nil
		d.closers = append(d.closers, func() { l.Close() })
		go func() {
			if err := srv.Serve(l); err != nil {
				log.Error().Err(err).Msg("serve")
			}
		}()
		logPassed(log, "socket", cfg.Socket, l)
	} else if cfg.Socket != "" {
		l, err := laked.Listen(cfg.Socket)
		if err != nil {
			return nil, err
		}
		d.closers = append(d.closers, func() { l.Close() })
		go func() {
			if err := srv.Serve(l); err != nil {
				log.Error().Err(err).Msg("serve")
			}
		}()
		log.Info().Str("socket", cfg.Socket).Msg("listening")
	}
	if dev := resolveDevice(cfg.Device); dev != "" {
		t, err := attachDevice(srv, dev)
		if err != nil {
			return nil, fmt.Errorf("config key device: %w", err)
		}
		log.Info().Str("device", dev).Msg("serving kernel region")
		// The kernel module owns the registry in its region: attach,
		// never create.
		if area := t.Region().Features(); area != nil {
			if reg, err := features.Attach(area); err == nil {
				d.features = reg
			} else {
				log.Warn().Err(err).Msg("kernel region has no usable feature registry")
			}
		}
	} else if cfg.Device == DeviceAuto {
		log.Info().Str("device", autoDevice).Msg("no kernel region device (lake_shm not loaded); serving userspace clients only until it appears")
		d.watchDevice()
	}
	if d.features == nil {
		reg, release, err := newFeatureRegistry()
		if err != nil {
			return nil, err
		}
		d.features = reg
		d.closers = append(d.closers, release)
	}
	if st, err := d.startRetrain(d.features); err != nil {
		log.Warn().Err(err).Msg("not retraining LinnOS models")
	} else {
		d.retrain = st
	}
	if err := d.startLiteFlow(); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// loadLinnOS reads the configured LinnOS weights, or trains the demo
// model when none are configured.
func loadLinnOS(ctx context.Context, cfg *Config, log zerolog.Logger) (*linnos.IntModel, error) {
	if cfg.Models.LinnOS != "" {
		f, err := os.Open(cfg.Models.LinnOS)
		if err != nil {
			return nil, fmt.Errorf("config key models.linnos: %w", err)
		}
		m, err := linnos.ReadModel(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("config key models.linnos: %s: %w", cfg.Models.LinnOS, err)
		}
		im, err := m.IntModel()
		if err != nil {
			return nil, fmt.Errorf("config key models.linnos: %w", err)
		}
		return im, nil
	}
	t0 := time.Now()
	dm, err := linnos.TrainDemoModel(ctx, demoConfig)
	if err != nil {
		return nil, fmt.Errorf("train the built-in LinnOS model: %w", err)
	}
	log.Info().Dur("took", time.Since(t0)).Float64("accuracy", dm.Train.Test.Accuracy).Msg("trained the built-in LinnOS model (set models.linnos to serve your own)")
	return dm.Int, nil
}

// reload re-reads the configuration (same command line) and applies what
// can change at run time: the policy and its parameters. Other changes
// need a restart and are reported.
func (d *daemon) reload(args []string) error {
	cfg, _, err := loadConfig(args, io.Discard)
	if err != nil {
		return err
	}
	if cfg.Policy.File != "" {
		if err := d.engine.LoadFile(cfg.Policy.File); err != nil {
			return err
		}
	} else if err := d.engine.LoadShipped(cfg.Policy.Name); err != nil {
		return err
	}
	if err := d.engine.SetParams(cfg.PolicyParams()); err != nil {
		return err
	}
	d.log.Info().Str("policy", d.engine.Status().Active).Msg("policy swapped")
	if keys := restartOnly(d.cfg, cfg); len(keys) > 0 {
		d.log.Warn().Strs("keys", keys).Msg("a reload applies only the policy section: these changed keys take effect at the next restart")
	}
	d.cfg.Policy = cfg.Policy
	return nil
}

// restartOnly names the top-level keys that differ between the running
// configuration and a reloaded one, other than policy (the only section
// a reload applies): laked reads every other key once, at start.
func restartOnly(running, reloaded *Config) []string {
	var keys []string
	a, b := reflect.ValueOf(*running), reflect.ValueOf(*reloaded)
	t := a.Type()
	for i := 0; i < t.NumField(); i++ {
		key := t.Field(i).Tag.Get("mapstructure")
		if key == "policy" || reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

func (d *daemon) closeAll() {
	d.passed.close()
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// stop drains the server and releases everything.
func (d *daemon) stop(ctx context.Context) error {
	var err error
	if d.srv != nil {
		err = d.srv.Shutdown(ctx)
	}
	d.closeAll()
	if errors.Is(err, context.DeadlineExceeded) {
		d.log.Warn().Msg("drain timed out")
	}
	return err
}

// idleSpin maps the idle_spin key (0: never spin) to laked.Config.IdleSpin
// (0: the default, negative: never spin).
func idleSpin(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
