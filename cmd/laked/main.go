// Command laked is the lake daemon: it serves client regions handed out
// over a unix socket (userspace clients) and the kernel's /dev/lake
// region, batches predict requests across clients, and runs them and
// CUDA-driver-shaped operations on its backends.
//
// With --demo it runs its embedded default job instead: it starts a
// laked on a private socket, serves a LinnOS model, replays a generated
// SSD trace through it from a lakelib client, prints what it did, and
// exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/linnos"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "laked:", err)
		os.Exit(1)
	}
}

type options struct {
	socket   string
	device   string
	busyPoll bool
	maxBatch int
	maxWait  time.Duration
	demo     bool
	logLevel string
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("laked", flag.ContinueOnError)
	fs.StringVar(&o.socket, "socket", lakelib.DefaultSocket, "unix socket to serve userspace clients on (empty: none)")
	fs.StringVar(&o.device, "device", "", "kernel region device to serve, e.g. /dev/lake (empty: none)")
	fs.BoolVar(&o.busyPoll, "busy-poll", false, "spin on idle rings instead of sleeping (lowest latency, one core per busy client)")
	fs.IntVar(&o.maxBatch, "max-batch", laked.DefaultConfig.MaxBatch, "most items in one predict batch")
	fs.DurationVar(&o.maxWait, "max-wait", laked.DefaultConfig.MaxWait, "longest a predict batch waits for more requests")
	fs.BoolVar(&o.demo, "demo", false, "run the embedded LinnOS demo workload, print what it did, and exit")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	lvl, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
	if o.demo {
		return runDemo(o, log)
	}
	srv, closeAll, err := startServer(o, log, nil)
	if err != nil {
		return err
	}
	defer closeAll()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Info().Str("signal", s.String()).Msg("draining")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// startServer builds the backend, the server and its models, and starts
// serving the socket and the device.
func startServer(o options, log zerolog.Logger, linnosModel *linnos.IntModel) (*laked.Server, func(), error) {
	if err := kernels.Register(); err != nil {
		return nil, nil, fmt.Errorf("register kernels: %w", err)
	}
	be := cpu.New(cpuLimits())
	srv, err := laked.New(laked.Config{
		MaxBatch: o.maxBatch, MaxWait: o.maxWait, BusyPoll: o.busyPoll,
		Backend: be, Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := registerModels(srv, linnosModel); err != nil {
		return nil, nil, err
	}
	var closers []func()
	if o.socket != "" {
		l, err := laked.Listen(o.socket)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, func() { l.Close() })
		go func() {
			if err := srv.Serve(l); err != nil {
				log.Error().Err(err).Msg("serve")
			}
		}()
		log.Info().Str("socket", o.socket).Msg("listening")
	}
	if o.device != "" {
		if err := attachDevice(srv, o.device); err != nil {
			for _, c := range closers {
				c()
			}
			return nil, nil, err
		}
		log.Info().Str("device", o.device).Msg("serving kernel region")
	}
	if o.socket == "" && o.device == "" {
		return nil, nil, errors.New("nothing to serve: give --socket or --device")
	}
	return srv, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}
