package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/policy"
)

// DefaultConfigFile is where laked looks for its config when --config is
// not given. A missing default file is fine; a missing --config file is
// an error.
const DefaultConfigFile = "/etc/lake/laked.yaml"

// DefaultDevice is the region device the lake_shm module creates.
// DeviceAuto, the device key's default, serves it when it exists at start
// or as soon as it appears later (watchDevice), and runs without it until
// then; a path must exist; "" turns it off.
const (
	DefaultDevice = "/dev/lake"
	DeviceAuto    = "auto"
)

// Config is laked's configuration. Sources, lowest precedence first: the
// defaults below, the config file, LAKED_* environment variables
// (LAKED_BATCH_MAX_SIZE for batch.max_size), command-line flags.
type Config struct {
	Socket      string        `mapstructure:"socket" yaml:"socket"`
	Device      string        `mapstructure:"device" yaml:"device"`
	AdminSocket string        `mapstructure:"admin_socket" yaml:"admin_socket"`
	MetricsAddr string        `mapstructure:"metrics_addr" yaml:"metrics_addr"`
	BusyPoll    bool          `mapstructure:"busy_poll" yaml:"busy_poll"`
	IdleSpin    time.Duration `mapstructure:"idle_spin" yaml:"idle_spin"`
	IdleYield   bool          `mapstructure:"idle_yield" yaml:"idle_yield"`
	MaxClients  int           `mapstructure:"max_clients" yaml:"max_clients"`
	Log         LogConfig     `mapstructure:"log" yaml:"log"`
	Batch       BatchConfig   `mapstructure:"batch" yaml:"batch"`
	Policy      PolicyConfig  `mapstructure:"policy" yaml:"policy"`
	Models      ModelsConfig  `mapstructure:"models" yaml:"models"`
	Watchdog    time.Duration `mapstructure:"watchdog" yaml:"watchdog"`
	Limits      LimitsConfig  `mapstructure:"limits" yaml:"limits"`
	GPU         GPUConfig     `mapstructure:"gpu" yaml:"gpu"`
	Retrain     RetrainConfig `mapstructure:"retrain" yaml:"retrain"`
}

// RetrainConfig turns on LinnOS retraining from the kernel's records
// (package linnos/retrain; cmd/laked/retrain.go).
type RetrainConfig struct {
	// LinnOSDevices maps the block devices the kernel records reads of
	// to the laked model ids their models are served under:
	// "MAJOR:MINOR=ID,..." (empty: no retraining).
	LinnOSDevices string `mapstructure:"linnos_devices" yaml:"linnos_devices"`
	// MinSamples is how many new reads of a device trigger a training.
	MinSamples int `mapstructure:"min_samples" yaml:"min_samples"`
	// ThresholdUs is the slow threshold the models learn (0: found per
	// training at the knee of the latency distribution).
	ThresholdUs uint32 `mapstructure:"threshold_us" yaml:"threshold_us"`
	// FalseSubmitCost weighs slow reads in the training loss (a slow read
	// predicted fast costs this many fast reads predicted slow; 0: the
	// trainer's default, linnos.TrainConfig). Slow reads are rare, and
	// an unweighted model learns to call every read fast.
	FalseSubmitCost float64 `mapstructure:"false_submit_cost" yaml:"false_submit_cost"`
}

// GPUConfig chooses the GPU and what laked uses it for.
type GPUConfig struct {
	// Mode is "auto" (use GPU Index when laked is built with the cuda tag
	// and a GPU is there) or "off".
	Mode  string `mapstructure:"mode" yaml:"mode"`
	Index int    `mapstructure:"index" yaml:"index"`
	// Contexts serves clients' device operations (cuCtxCreate, ...) on
	// the GPU instead of the CPU backend.
	Contexts bool `mapstructure:"contexts" yaml:"contexts"`
}

// LimitsConfig holds the resource budgets (laked.Limits and the CPU
// backend's device limits).
type LimitsConfig struct {
	RegionBytes        uint64        `mapstructure:"region_bytes" yaml:"region_bytes"`
	TotalRegionBytes   uint64        `mapstructure:"total_region_bytes" yaml:"total_region_bytes"`
	Handshakes         int           `mapstructure:"handshakes" yaml:"handshakes"`
	UserHandshakes     int           `mapstructure:"user_handshakes" yaml:"user_handshakes"`
	UserClients        int           `mapstructure:"user_clients" yaml:"user_clients"`
	SessionInflight    int           `mapstructure:"session_inflight" yaml:"session_inflight"`
	TotalInflight      int           `mapstructure:"total_inflight" yaml:"total_inflight"`
	SessionQueuedBytes uint64        `mapstructure:"session_queued_bytes" yaml:"session_queued_bytes"`
	TotalQueuedBytes   uint64        `mapstructure:"total_queued_bytes" yaml:"total_queued_bytes"`
	SessionDeviceBytes uint64        `mapstructure:"session_device_bytes" yaml:"session_device_bytes"`
	TotalDeviceBytes   uint64        `mapstructure:"total_device_bytes" yaml:"total_device_bytes"`
	LaunchTimeout      time.Duration `mapstructure:"launch_timeout" yaml:"launch_timeout"`
}

// Laked returns the budgets laked.Server enforces.
func (l LimitsConfig) Laked() laked.Limits {
	return laked.Limits{
		RegionBytes: l.RegionBytes, TotalRegionBytes: l.TotalRegionBytes, Handshakes: l.Handshakes,
		UserHandshakes: l.UserHandshakes, UserClients: l.UserClients,
		SessionInflight: l.SessionInflight, TotalInflight: l.TotalInflight,
		SessionQueuedBytes: l.SessionQueuedBytes, TotalQueuedBytes: l.TotalQueuedBytes,
		SessionDeviceBytes: l.SessionDeviceBytes,
	}
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
	// KernelGPUSharePct is the GPU share reserved for kernel batches
	// (policy.Params.KernelGPUSharePct).
	KernelGPUSharePct uint32 `mapstructure:"kernel_gpu_share_pct" yaml:"kernel_gpu_share_pct"`
	DisableBPF        bool   `mapstructure:"disable_bpf" yaml:"disable_bpf"`
}

// ModelsConfig chooses the models served at start.
type ModelsConfig struct {
	// LinnOS is a LinnOS weight file (cmd/linnos train) served as model
	// 1; empty means train the built-in demo model at start (a few
	// seconds); "none" serves no LinnOS model.
	LinnOS string `mapstructure:"linnos" yaml:"linnos"`
	// LiteFlow is a LiteFlow snapshot file served as model 3 (the kernel
	// app LiteFlowApp fetches it) and adapted online on the samples that
	// app records; empty: none.
	LiteFlow    string `mapstructure:"liteflow" yaml:"liteflow"`
	LiteFlowApp string `mapstructure:"liteflow_app" yaml:"liteflow_app"`
}

// A configuration key, its default, its command-line flag and what it
// means. keys is the one list laked reads: viper's defaults, the LAKED_*
// variables and the flags all come from it.
//
// Adding a key is a one-place change: add the field to Config (or one of
// its sections) with `mapstructure` and `yaml` tags naming the key, add
// one row here (the default's Go type is the key's type; a key with a
// flag needs string, bool, int, int64, uint32, uint64 or time.Duration;
// flag "" for a key set only in the file or the environment), and, if it
// has limits, a case in Validate.
// deploy/laked.yaml documents every key with its default;
// TestKeysMatchConfig and TestShippedDefaultConfig fail until the row,
// the field and the file agree.
type key struct {
	name  string // dotted config key, e.g. batch.max_size
	def   any    // default value; its type is the key's type
	flag  string // command-line flag, or "" for none
	usage string // flag help
}

var keys = []key{
	{"socket", lakelib.DefaultSocket, "socket", "unix socket for userspace clients (empty: none)"},
	{"device", DeviceAuto, "device", `kernel region device to serve: "auto" (` + DefaultDevice + ` when it exists), a path, or "" for none`},
	{"admin_socket", "/run/lake/laked-admin.sock", "admin-socket", "unix socket of the admin API (lakectl; empty: none)"},
	{"metrics_addr", "127.0.0.1:9477", "metrics-addr", "address of the Prometheus endpoint (empty: none)"},
	{"busy_poll", false, "busy-poll", "spin on idle rings instead of sleeping"},
	{"idle_spin", time.Millisecond, "idle-spin", "how long a reader spins on an empty ring before sleeping (0: never)"},
	{"idle_yield", false, "idle-yield", "readers yield their CPU (sched_yield) while spinning idle"},
	{"max_clients", 256, "max-clients", "most attached clients"},
	{"watchdog", time.Duration(0), "", ""},
	{"log.level", "info", "log-level", "debug, info, warn or error"},
	{"log.format", "auto", "log-format", "json, console or auto"},
	{"batch.max_size", 64, "max-batch", "most items in one model call and one batch (a larger request runs one piece per batch)"},
	{"batch.max_wait", 200 * time.Microsecond, "max-wait", "longest a predict batch waits for more requests (only for the GPU)"},
	{"policy.name", "default", "policy", "shipped placement policy: " + strings.Join(shippedNames(), ", ")},
	{"policy.file", "", "policy-file", "compiled eBPF policy object to load instead"},
	{"policy.gpu_min_batch", uint32(policy.DefaultGPUMinBatch), "", ""},
	{"policy.gpu_max_util_pct", uint32(policy.DefaultGPUMaxUtilPct), "", ""},
	{"policy.gpu_min_mem_mib", uint32(0), "", ""},
	{"policy.gpu_batch_ns", uint64(0), "", ""},
	{"policy.kernel_gpu_share_pct", uint32(25), "", ""},
	{"policy.disable_bpf", false, "no-bpf", "use the Go policy instead of loading eBPF"},
	{"models.linnos", "", "linnos-weights", "LinnOS weight file to serve as model 1"},
	{"limits.region_bytes", laked.DefaultLimits.RegionBytes, "", ""},
	{"limits.total_region_bytes", laked.DefaultLimits.TotalRegionBytes, "", ""},
	{"limits.handshakes", laked.DefaultLimits.Handshakes, "", ""},
	{"limits.user_handshakes", laked.DefaultLimits.UserHandshakes, "", ""},
	{"limits.user_clients", laked.DefaultLimits.UserClients, "", ""},
	{"limits.session_inflight", laked.DefaultLimits.SessionInflight, "", ""},
	{"limits.total_inflight", laked.DefaultLimits.TotalInflight, "", ""},
	{"limits.session_queued_bytes", laked.DefaultLimits.SessionQueuedBytes, "", ""},
	{"limits.total_queued_bytes", laked.DefaultLimits.TotalQueuedBytes, "", ""},
	{"limits.session_device_bytes", laked.DefaultLimits.SessionDeviceBytes, "", ""},
	{"limits.total_device_bytes", cpu.DefaultTotalBytes, "", ""},
	{"limits.launch_timeout", cpu.DefaultLaunchTimeout, "", ""},
	{"gpu.mode", "auto", "gpu", `"auto" (the GPU when built with the cuda tag and one is present) or "off"`},
	{"gpu.index", 0, "", ""},
	{"gpu.contexts", false, "", ""},
	{"retrain.linnos_devices", "", "retrain-linnos", `retrain LinnOS models from the kernel's records: "MAJOR:MINOR=MODEL_ID,..." (empty: off)`},
	{"retrain.min_samples", 4000, "", ""},
	{"retrain.threshold_us", uint32(0), "", ""},
	{"retrain.false_submit_cost", float64(0), "", ""},
	{"models.liteflow", "", "liteflow-snapshot", "LiteFlow snapshot to serve as model 3 and adapt online"},
	{"models.liteflow_app", "aurora", "liteflow-app", "kernel LiteFlow app whose samples adapt model 3"},
}

// envPrefix prefixes the environment variable of every key:
// LAKED_BATCH_MAX_SIZE for batch.max_size.
const envPrefix = "LAKED"

func envName(k string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
}

// invocation is what the command line asked for besides config.
type invocation struct {
	configFile  string
	printConfig bool
	demo        bool
}

// addFlag defines k's flag on fs with k's default and type.
func addFlag(fs *pflag.FlagSet, k key) {
	switch d := k.def.(type) {
	case string:
		fs.String(k.flag, d, k.usage)
	case bool:
		fs.Bool(k.flag, d, k.usage)
	case int:
		fs.Int(k.flag, d, k.usage)
	case int64:
		fs.Int64(k.flag, d, k.usage)
	case uint32:
		fs.Uint32(k.flag, d, k.usage)
	case uint64:
		fs.Uint64(k.flag, d, k.usage)
	case time.Duration:
		fs.Duration(k.flag, d, k.usage)
	default:
		panic(fmt.Sprintf("config key %s: default of unsupported type %T", k.name, k.def))
	}
}

// loadConfig parses args and builds the effective Config from the
// defaults, the config file, the process environment and args, in that
// order of precedence (viper does the layering).
func loadConfig(args []string, stderr io.Writer) (*Config, invocation, error) {
	var inv invocation
	fs := pflag.NewFlagSet("laked", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&inv.configFile, "config", "", "config file (default "+DefaultConfigFile+" if it exists)")
	fs.BoolVar(&inv.printConfig, "print-config", false, "print the effective configuration as YAML and exit")
	fs.BoolVar(&inv.demo, "demo", false, "run the embedded LinnOS demo job, print what it did, and exit")
	for _, k := range keys {
		if k.flag != "" {
			addFlag(fs, k)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, inv, err
	}
	if fs.NArg() > 0 {
		return nil, inv, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AllowEmptyEnv(true) // LAKED_DEVICE= means "no device", as in the file
	v.AutomaticEnv()
	known := map[string]bool{}
	for _, k := range keys {
		known[k.name] = true
		v.SetDefault(k.name, k.def)
		if k.flag != "" {
			if err := v.BindPFlag(k.name, fs.Lookup(k.flag)); err != nil {
				return nil, inv, err
			}
		}
	}

	path, explicit := inv.configFile, inv.configFile != ""
	if !explicit {
		path = DefaultConfigFile
	}
	if _, err := os.Stat(path); err == nil || explicit {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, inv, fmt.Errorf("config file %s: %w", path, err)
		}
		// UnmarshalExact would reject these too; checking here names
		// the key and the file.
		for _, k := range v.AllKeys() {
			if !known[k] {
				return nil, inv, fmt.Errorf("config file %s: unknown key %q", path, k)
			}
		}
	}
	// viper reads only the variables of keys it knows; an unknown LAKED_
	// variable is a typo that would otherwise be ignored.
	knownEnv := map[string]bool{}
	for _, k := range keys {
		knownEnv[envName(k.name)] = true
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix+"_") && !knownEnv[name] {
			return nil, inv, fmt.Errorf("environment: unknown variable %s", name)
		}
	}

	var cfg Config
	hooks := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(), rejectNegativeUnsigned))
	if err := v.UnmarshalExact(&cfg, hooks); err != nil {
		var de *mapstructure.DecodeError
		if errors.As(err, &de) {
			return nil, inv, fmt.Errorf("config key %s: bad value %q: %w", de.Name(), fmt.Sprint(v.Get(de.Name())), de.Unwrap())
		}
		return nil, inv, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, inv, err
	}
	return &cfg, inv, nil
}

// rejectNegativeUnsigned refuses a negative number for an unsigned key:
// weakly typed decoding (needed for LAKED_* strings) would otherwise wrap
// -1 to the type's maximum.
func rejectNegativeUnsigned(_, to reflect.Type, data any) (any, error) {
	switch to.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
	default:
		return data, nil
	}
	v := reflect.ValueOf(data)
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Int() < 0 {
			return nil, fmt.Errorf("negative value %d for an unsigned key", v.Int())
		}
	case reflect.Float32, reflect.Float64:
		if v.Float() < 0 {
			return nil, fmt.Errorf("negative value %v for an unsigned key", v.Float())
		}
	}
	return data, nil
}

// Validate checks values, naming the key of the first bad one.
func (c *Config) Validate() error {
	bad := func(key string, val any, why string) error {
		return fmt.Errorf("config key %s: bad value %v: %s", key, val, why)
	}
	switch {
	case c.Socket == "" && (c.Device == "" || c.Device == DeviceAuto):
		return bad("socket", `""`, "give a socket or a device path (or both)")
	case c.MaxClients < 1 || c.MaxClients > 65536:
		return bad("max_clients", c.MaxClients, "want 1..65536")
	case c.Batch.MaxSize < 1 || c.Batch.MaxSize > 65536:
		return bad("batch.max_size", c.Batch.MaxSize, "want 1..65536")
	case c.Batch.MaxWait < 0 || c.Batch.MaxWait > time.Second:
		return bad("batch.max_wait", c.Batch.MaxWait, "want 0..1s")
	case c.IdleSpin < 0 || c.IdleSpin > time.Second:
		return bad("idle_spin", c.IdleSpin, "want 0..1s")
	case c.Watchdog < 0:
		return bad("watchdog", c.Watchdog, "want >= 0")
	case c.Limits.RegionBytes == 0 || c.Limits.RegionBytes > c.Limits.TotalRegionBytes:
		return bad("limits.region_bytes", c.Limits.RegionBytes, "want 1..limits.total_region_bytes")
	case c.Limits.Handshakes < 1:
		return bad("limits.handshakes", c.Limits.Handshakes, "want >= 1")
	case c.Limits.UserHandshakes < 1 || c.Limits.UserHandshakes > c.Limits.Handshakes:
		return bad("limits.user_handshakes", c.Limits.UserHandshakes, "want 1..limits.handshakes")
	case c.Limits.UserClients < 1:
		return bad("limits.user_clients", c.Limits.UserClients, "want >= 1")
	case c.Limits.SessionInflight < 1 || c.Limits.SessionInflight > c.Limits.TotalInflight:
		return bad("limits.session_inflight", c.Limits.SessionInflight, "want 1..limits.total_inflight")
	case c.Limits.SessionQueuedBytes == 0 || c.Limits.SessionQueuedBytes > c.Limits.TotalQueuedBytes:
		return bad("limits.session_queued_bytes", c.Limits.SessionQueuedBytes, "want 1..limits.total_queued_bytes")
	case c.Limits.SessionDeviceBytes == 0 || c.Limits.TotalDeviceBytes == 0:
		return bad("limits.session_device_bytes", c.Limits.SessionDeviceBytes, "want device byte limits > 0")
	case c.Limits.LaunchTimeout <= 0:
		return bad("limits.launch_timeout", c.Limits.LaunchTimeout, "want > 0")
	}
	if _, err := parseRetrainDevices(c.Retrain.LinnOSDevices); err != nil {
		return bad("retrain.linnos_devices", fmt.Sprintf("%q", c.Retrain.LinnOSDevices), err.Error())
	}
	if c.Retrain.MinSamples < 200 || c.Retrain.MinSamples > 1<<24 {
		return bad("retrain.min_samples", c.Retrain.MinSamples, "want 200..16777216")
	}
	if !(c.Retrain.FalseSubmitCost >= 0 && c.Retrain.FalseSubmitCost <= 1000) {
		return bad("retrain.false_submit_cost", c.Retrain.FalseSubmitCost, "want 0..1000 (0: the trainer's default)")
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
	if c.Policy.KernelGPUSharePct > 100 {
		return bad("policy.kernel_gpu_share_pct", c.Policy.KernelGPUSharePct, "want 0..100")
	}
	if c.GPU.Mode != "auto" && c.GPU.Mode != "off" {
		return bad("gpu.mode", c.GPU.Mode, "want auto or off")
	}
	if c.GPU.Index < 0 || c.GPU.Index > 255 {
		return bad("gpu.index", c.GPU.Index, "want 0..255")
	}
	return nil
}

// PolicyParams returns the policy parameters the config asks for.
func (c *Config) PolicyParams() policy.Params {
	return policy.Params{
		GPUMinBatch: c.Policy.GPUMinBatch, GPUMaxUtilPct: c.Policy.GPUMaxUtilPct,
		GPUMinMemMiB: c.Policy.GPUMinMemMiB, GPUBatchNs: c.Policy.GPUBatchNs,
		KernelGPUSharePct: c.Policy.KernelGPUSharePct,
	}
}

// YAML renders the effective config in the config file's format; yaml
// writes durations as strings ("200µs"), so the output is a valid config
// file.
func (c *Config) YAML() ([]byte, error) { return yaml.Marshal(c) }

func shippedNames() []string { return policy.Shipped() }
