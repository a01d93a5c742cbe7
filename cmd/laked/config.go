package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/policy"
)

// DefaultConfigFile is where laked looks for its config when --config is
// not given. A missing default file is fine; a missing --config file is
// an error.
const DefaultConfigFile = "/etc/lake/laked.yaml"

// Config is laked's configuration. Sources, lowest precedence first: the
// defaults below, the config file, LAKED_* environment variables
// (LAKED_BATCH_MAX_SIZE for batch.max_size), command-line flags.
type Config struct {
	Socket      string        `mapstructure:"socket" yaml:"socket"`
	Device      string        `mapstructure:"device" yaml:"device"`
	AdminSocket string        `mapstructure:"admin_socket" yaml:"admin_socket"`
	MetricsAddr string        `mapstructure:"metrics_addr" yaml:"metrics_addr"`
	BusyPoll    bool          `mapstructure:"busy_poll" yaml:"busy_poll"`
	MaxClients  int           `mapstructure:"max_clients" yaml:"max_clients"`
	Log         LogConfig     `mapstructure:"log" yaml:"log"`
	Batch       BatchConfig   `mapstructure:"batch" yaml:"batch"`
	Policy      PolicyConfig  `mapstructure:"policy" yaml:"policy"`
	Models      ModelsConfig  `mapstructure:"models" yaml:"models"`
	Watchdog    time.Duration `mapstructure:"watchdog" yaml:"watchdog"`
}

// LogConfig chooses log level and format.
type LogConfig struct {
	Level  string `mapstructure:"level" yaml:"level"`   // debug, info, warn, error
	Format string `mapstructure:"format" yaml:"format"` // json, console, auto (console on a terminal)
}

// BatchConfig tunes predict batching.
type BatchConfig struct {
	MaxSize int           `mapstructure:"max_size" yaml:"max_size"`
	MaxWait time.Duration `mapstructure:"max_wait" yaml:"max_wait"`
}

// PolicyConfig chooses the placement policy and its parameters.
type PolicyConfig struct {
	Name          string `mapstructure:"name" yaml:"name"` // a shipped policy: default, costaware
	File          string `mapstructure:"file" yaml:"file"` // a compiled policy object (overrides name)
	GPUMinBatch   uint32 `mapstructure:"gpu_min_batch" yaml:"gpu_min_batch"`
	GPUMaxUtilPct uint32 `mapstructure:"gpu_max_util_pct" yaml:"gpu_max_util_pct"`
	GPUMinMemMiB  uint32 `mapstructure:"gpu_min_mem_mib" yaml:"gpu_min_mem_mib"`
	GPUBatchNs    uint64 `mapstructure:"gpu_batch_ns" yaml:"gpu_batch_ns"`
	DisableBPF    bool   `mapstructure:"disable_bpf" yaml:"disable_bpf"`
}

// ModelsConfig chooses the models served at start.
type ModelsConfig struct {
	// LinnOS is a LinnOS weight file (cmd/linnos train) served as model
	// 1; empty means train the built-in demo model at start (a few
	// seconds); "none" serves no LinnOS model.
	LinnOS string `mapstructure:"linnos" yaml:"linnos"`
}

// defaults are the built-in values; every key laked knows appears here.
var defaults = map[string]any{
	"socket":                  lakelib.DefaultSocket,
	"device":                  "",
	"admin_socket":            "/run/lake/laked-admin.sock",
	"metrics_addr":            "127.0.0.1:9477",
	"busy_poll":               false,
	"max_clients":             256,
	"watchdog":                "0s",
	"log.level":               "info",
	"log.format":              "auto",
	"batch.max_size":          64,
	"batch.max_wait":          "200us",
	"policy.name":             "default",
	"policy.file":             "",
	"policy.gpu_min_batch":    policy.DefaultGPUMinBatch,
	"policy.gpu_max_util_pct": policy.DefaultGPUMaxUtilPct,
	"policy.gpu_min_mem_mib":  0,
	"policy.gpu_batch_ns":     0,
	"policy.disable_bpf":      false,
	"models.linnos":           "",
}

// flagKeys maps command-line flags to config keys.
var flagKeys = map[string]string{
	"socket":         "socket",
	"device":         "device",
	"admin-socket":   "admin_socket",
	"metrics-addr":   "metrics_addr",
	"busy-poll":      "busy_poll",
	"max-clients":    "max_clients",
	"log-level":      "log.level",
	"log-format":     "log.format",
	"max-batch":      "batch.max_size",
	"max-wait":       "batch.max_wait",
	"policy":         "policy.name",
	"policy-file":    "policy.file",
	"no-bpf":         "policy.disable_bpf",
	"linnos-weights": "models.linnos",
}

// invocation is what the command line asked for besides config.
type invocation struct {
	configFile  string
	printConfig bool
	demo        bool
}

// loadConfig parses args and builds the effective Config. env is the
// process environment (os.Environ()).
func loadConfig(args, env []string, stderr io.Writer) (*Config, invocation, error) {
	var inv invocation
	fs := pflag.NewFlagSet("laked", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&inv.configFile, "config", "", "config file (default "+DefaultConfigFile+" if it exists)")
	fs.BoolVar(&inv.printConfig, "print-config", false, "print the effective configuration as YAML and exit")
	fs.BoolVar(&inv.demo, "demo", false, "run the embedded LinnOS demo job, print what it did, and exit")
	fs.String("socket", "", "unix socket for userspace clients (empty: none)")
	fs.String("device", "", "kernel region device to serve, e.g. /dev/lake")
	fs.String("admin-socket", "", "unix socket of the admin API (lakectl)")
	fs.String("metrics-addr", "", "address of the Prometheus endpoint (empty: none)")
	fs.Bool("busy-poll", false, "spin on idle rings instead of sleeping")
	fs.Int("max-clients", 0, "most attached clients")
	fs.String("log-level", "", "debug, info, warn or error")
	fs.String("log-format", "", "json, console or auto")
	fs.Int("max-batch", 0, "most items in one predict batch")
	fs.Duration("max-wait", 0, "longest a predict batch waits for more requests")
	fs.String("policy", "", "shipped placement policy: "+strings.Join(shippedNames(), ", "))
	fs.String("policy-file", "", "compiled eBPF policy object to load instead")
	fs.Bool("no-bpf", false, "use the Go policy instead of loading eBPF")
	fs.String("linnos-weights", "", "LinnOS weight file to serve as model 1")
	if err := fs.Parse(args); err != nil {
		return nil, inv, err
	}
	if fs.NArg() > 0 {
		return nil, inv, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	// File.
	path, explicit := inv.configFile, inv.configFile != ""
	if !explicit {
		path = DefaultConfigFile
	}
	if _, err := os.Stat(path); err == nil || explicit {
		fv := viper.New()
		fv.SetConfigFile(path)
		fv.SetConfigType("yaml")
		if err := fv.ReadInConfig(); err != nil {
			return nil, inv, fmt.Errorf("config file %s: %w", path, err)
		}
		for _, k := range fv.AllKeys() {
			if _, ok := defaults[k]; !ok {
				return nil, inv, fmt.Errorf("config file %s: unknown key %q", path, k)
			}
			v.Set(k, fv.Get(k))
		}
	}
	// Environment: LAKED_<KEY with dots as underscores>. An unknown
	// LAKED_ variable is a typo that would otherwise be ignored.
	envKeys := map[string]string{}
	for k := range defaults {
		envKeys["LAKED_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = k
	}
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "LAKED_") {
			continue
		}
		k, ok := envKeys[name]
		if !ok {
			return nil, inv, fmt.Errorf("environment: unknown variable %s", name)
		}
		v.Set(k, val)
	}
	// Flags, only those given.
	var ferr error
	fs.Visit(func(f *pflag.Flag) {
		if k, ok := flagKeys[f.Name]; ok {
			v.Set(k, f.Value.String())
		}
	})
	if ferr != nil {
		return nil, inv, ferr
	}
	cfg, err := decode(v)
	if err != nil {
		return nil, inv, err
	}
	return cfg, inv, nil
}

// decode turns the merged settings into a Config, naming the key of any
// value that does not parse, and validates it.
func decode(v *viper.Viper) (*Config, error) {
	var cfg Config
	keys := v.AllKeys()
	sort.Strings(keys)
	for _, k := range keys {
		// Decode each key on its own first so that an error names it.
		single := map[string]any{}
		setPath(single, strings.Split(k, "."), v.Get(k))
		var probe Config
		if err := strictDecode(single, &probe); err != nil {
			return nil, fmt.Errorf("config key %s: bad value %q: %w", k, fmt.Sprint(v.Get(k)), unwrapDecode(err))
		}
	}
	all := map[string]any{}
	for _, k := range keys {
		setPath(all, strings.Split(k, "."), v.Get(k))
	}
	if err := strictDecode(all, &cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func setPath(m map[string]any, path []string, val any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = val
}

func strictDecode(in map[string]any, out *Config) error {
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           out,
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
	})
	if err != nil {
		return err
	}
	return d.Decode(in)
}

func unwrapDecode(err error) error {
	var de *mapstructure.DecodeError
	if errors.As(err, &de) && de.Unwrap() != nil {
		return de.Unwrap()
	}
	return err
}

// Validate checks values, naming the key of the first bad one.
func (c *Config) Validate() error {
	bad := func(key string, val any, why string) error {
		return fmt.Errorf("config key %s: bad value %v: %s", key, val, why)
	}
	switch {
	case c.Socket == "" && c.Device == "":
		return bad("socket", `""`, "give a socket or a device (or both)")
	case c.MaxClients < 1 || c.MaxClients > 65536:
		return bad("max_clients", c.MaxClients, "want 1..65536")
	case c.Batch.MaxSize < 1 || c.Batch.MaxSize > 65536:
		return bad("batch.max_size", c.Batch.MaxSize, "want 1..65536")
	case c.Batch.MaxWait < 0 || c.Batch.MaxWait > time.Second:
		return bad("batch.max_wait", c.Batch.MaxWait, "want 0..1s")
	case c.Watchdog < 0:
		return bad("watchdog", c.Watchdog, "want >= 0")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", c.Log.Level, "want debug, info, warn or error")
	}
	switch c.Log.Format {
	case "json", "console", "auto":
	default:
		return bad("log.format", c.Log.Format, "want json, console or auto")
	}
	if c.Policy.File == "" {
		known := false
		for _, n := range shippedNames() {
			known = known || n == c.Policy.Name
		}
		if !known {
			return bad("policy.name", c.Policy.Name, "want one of "+strings.Join(shippedNames(), ", "))
		}
	}
	if c.Policy.GPUMaxUtilPct > 100 {
		return bad("policy.gpu_max_util_pct", c.Policy.GPUMaxUtilPct, "want 0..100")
	}
	return nil
}

// PolicyParams returns the policy parameters the config asks for.
func (c *Config) PolicyParams() policy.Params {
	return policy.Params{
		GPUMinBatch: c.Policy.GPUMinBatch, GPUMaxUtilPct: c.Policy.GPUMaxUtilPct,
		GPUMinMemMiB: c.Policy.GPUMinMemMiB, GPUBatchNs: c.Policy.GPUBatchNs,
	}
}

// YAML renders the effective config in the config file's format
// (durations as strings, so that the output is a valid config file).
func (c *Config) YAML() ([]byte, error) {
	m := map[string]any{
		"socket": c.Socket, "device": c.Device, "admin_socket": c.AdminSocket,
		"metrics_addr": c.MetricsAddr, "busy_poll": c.BusyPoll, "max_clients": c.MaxClients,
		"watchdog": c.Watchdog.String(),
		"log":      map[string]any{"level": c.Log.Level, "format": c.Log.Format},
		"batch":    map[string]any{"max_size": c.Batch.MaxSize, "max_wait": c.Batch.MaxWait.String()},
		"policy": map[string]any{
			"name": c.Policy.Name, "file": c.Policy.File, "gpu_min_batch": c.Policy.GPUMinBatch,
			"gpu_max_util_pct": c.Policy.GPUMaxUtilPct, "gpu_min_mem_mib": c.Policy.GPUMinMemMiB,
			"gpu_batch_ns": c.Policy.GPUBatchNs, "disable_bpf": c.Policy.DisableBPF,
		},
		"models": map[string]any{"linnos": c.Models.LinnOS},
	}
	return yaml.Marshal(m)
}

func shippedNames() []string { return policy.Shipped() }
