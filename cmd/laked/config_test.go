package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "laked.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigPrecedence checks defaults < file < environment < flags.
func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, "batch:\n  max_size: 10\n  max_wait: 1ms\nlog:\n  level: warn\nsocket: /tmp/file.sock\n")
	cfg, _, err := loadConfig([]string{"--config", file}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Batch.MaxSize != 10 || cfg.Batch.MaxWait != time.Millisecond || cfg.Log.Level != "warn" || cfg.Socket != "/tmp/file.sock" {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if cfg.MaxClients != 256 || cfg.Policy.Name != "default" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
	t.Setenv("LAKED_BATCH_MAX_SIZE", "20")
	t.Setenv("LAKED_LOG_LEVEL", "debug")
	cfg, _, err = loadConfig([]string{"--config", file}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Batch.MaxSize != 20 || cfg.Log.Level != "debug" || cfg.Batch.MaxWait != time.Millisecond {
		t.Fatalf("environment does not override the file: %+v", cfg)
	}
	cfg, _, err = loadConfig([]string{"--config", file, "--max-batch", "30", "--max-wait", "2ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Batch.MaxSize != 30 || cfg.Batch.MaxWait != 2*time.Millisecond || cfg.Log.Level != "debug" {
		t.Fatalf("flags do not override the environment: %+v", cfg)
	}
	// Empty values are values: an empty variable clears the file's
	// socket, an empty flag clears the environment's device.
	t.Setenv("LAKED_SOCKET", "")
	t.Setenv("LAKED_DEVICE", "/dev/lake")
	cfg, _, err = loadConfig([]string{"--config", file}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket != "" || cfg.Device != "/dev/lake" {
		t.Fatalf("empty LAKED_SOCKET not applied: %+v", cfg)
	}
	cfg, _, err = loadConfig([]string{"--config", file, "--device", "", "--socket", "/tmp/flag.sock"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket != "/tmp/flag.sock" || cfg.Device != "" {
		t.Fatalf("empty --device not applied: %+v", cfg)
	}
}

// TestConfigRejectsBadInput checks that unknown keys and bad values are
// rejected with the key named.
func TestConfigRejectsBadInput(t *testing.T) {
	cases := []struct {
		name, file string
		env, args  []string
		want       string
	}{
		{name: "unknown file key", file: "batch:\n  max_sise: 3\n", want: `unknown key "batch.max_sise"`},
		{name: "unknown top key", file: "sockett: /x\n", want: `unknown key "sockett"`},
		{name: "bad duration", file: "batch:\n  max_wait: soon\n", want: "config key batch.max_wait"},
		{name: "bad int", file: "max_clients: many\n", want: "config key max_clients"},
		{name: "negative uint", file: "policy:\n  gpu_batch_ns: -1\n", want: "config key policy.gpu_batch_ns"},
		{name: "out of range", file: "batch:\n  max_size: 0\n", want: "batch.max_size"},
		{name: "bad level", file: "log:\n  level: loud\n", want: "log.level"},
		{name: "bad policy", file: "policy:\n  name: fastest\n", want: "policy.name"},
		{name: "util over 100", file: "policy:\n  gpu_max_util_pct: 130\n", want: "policy.gpu_max_util_pct"},
		{name: "negative false-submit cost", file: "retrain:\n  false_submit_cost: -1\n", want: "retrain.false_submit_cost"},
		{name: "huge false-submit cost", env: []string{"LAKED_RETRAIN_FALSE_SUBMIT_COST=1e9"}, want: "retrain.false_submit_cost"},
		{name: "bad yaml", file: "batch: [1, 2\n", want: "config file"},
		{name: "unknown env", env: []string{"LAKED_BATCH_MAXSIZE=3"}, want: "LAKED_BATCH_MAXSIZE"},
		{name: "bad env value", env: []string{"LAKED_MAX_CLIENTS=-4"}, want: "max_clients"},
		{name: "bad env type", env: []string{"LAKED_POLICY_GPU_MIN_BATCH=lots"}, want: "config key policy.gpu_min_batch"},
		{name: "bad env duration", env: []string{"LAKED_WATCHDOG=often"}, want: "config key watchdog"},
		{name: "bad env bool", env: []string{"LAKED_BUSY_POLL=maybe"}, want: "config key busy_poll"},
		{name: "map for a value", file: "socket:\n  path: /x\n", want: "socket"},
		{name: "bad flag", args: []string{"--max-wait", "2 s"}, want: "max-wait"},
		{name: "missing file", args: []string{"--config", "/nonexistent/laked.yaml"}, want: "/nonexistent/laked.yaml"},
		{name: "nothing to serve", args: []string{"--socket", ""}, want: "socket"},
	}
	for _, tc := range cases {
		args := tc.args
		if tc.file != "" {
			args = append([]string{"--config", writeConfig(t, tc.file)}, args...)
		} else if len(args) == 0 || args[0] != "--config" {
			args = append([]string{"--config", writeConfig(t, "")}, args...)
		}
		t.Run(tc.name, func(t *testing.T) {
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			_, _, err := loadConfig(args, io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestPrintConfigIsAValidConfig checks that --print-config's output reads
// back as the same configuration.
func TestPrintConfigIsAValidConfig(t *testing.T) {
	t.Setenv("LAKED_MAX_CLIENTS", "9")
	cfg, inv, err := loadConfig([]string{"--config", writeConfig(t, "batch:\n  max_wait: 3ms\n"), "--print-config", "--policy", "costaware"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !inv.printConfig {
		t.Fatal("--print-config not seen")
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("LAKED_MAX_CLIENTS") // t.Setenv restores it
	back, _, err := loadConfig([]string{"--config", writeConfig(t, string(out))}, io.Discard)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, out)
	}
	if *back != *cfg {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, back)
	}
	if back.Batch.MaxWait != 3*time.Millisecond || back.MaxClients != 9 || back.Policy.Name != "costaware" {
		t.Fatalf("values lost: %+v", back)
	}
}

// TestShippedDefaultConfig checks that deploy/laked.yaml loads and equals
// the built-in defaults, so the documented file never drifts.
func TestShippedDefaultConfig(t *testing.T) {
	shipped, _, err := loadConfig([]string{"--config", "../../deploy/laked.yaml"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	builtin, _, err := loadConfig([]string{"--config", writeConfig(t, "")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if *shipped != *builtin {
		t.Fatalf("deploy/laked.yaml differs from the defaults:\n%+v\n%+v", shipped, builtin)
	}
}

// TestKeysMatchConfig checks that the key table and Config name the same
// keys, so that a key added to one and not the other fails here.
func TestKeysMatchConfig(t *testing.T) {
	var leaves func(prefix string, typ reflect.Type) []string
	leaves = func(prefix string, typ reflect.Type) []string {
		var out []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := prefix + f.Tag.Get("mapstructure")
			if f.Tag.Get("yaml") != f.Tag.Get("mapstructure") {
				t.Errorf("field %s: yaml tag %q differs from mapstructure tag %q", f.Name, f.Tag.Get("yaml"), f.Tag.Get("mapstructure"))
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				out = append(out, leaves(name+".", f.Type)...)
				continue
			}
			out = append(out, name)
		}
		return out
	}
	fields := leaves("", reflect.TypeFor[Config]())
	var table []string
	flags := map[string]bool{}
	for _, k := range keys {
		table = append(table, k.name)
		if k.flag != "" && flags[k.flag] {
			t.Errorf("flag --%s used twice", k.flag)
		}
		flags[k.flag] = true
	}
	slices.Sort(fields)
	slices.Sort(table)
	if !slices.Equal(fields, table) {
		t.Fatalf("Config fields and keys differ:\nfields %v\nkeys   %v", fields, table)
	}
}

// TestFlagHelpShowsDefaults checks that --help lists each flag with the
// key's default and exits with pflag.ErrHelp.
func TestFlagHelpShowsDefaults(t *testing.T) {
	var buf strings.Builder
	_, _, err := loadConfig([]string{"--help"}, &buf)
	if !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--max-batch int", "(default 64)", "--max-wait duration", "(default 200µs)", "--print-config"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestDeviceAuto checks the device key: "auto" (the default) serves
// /dev/lake only when it exists, a path is served or laked fails naming
// the key, and "" serves none.
func TestDeviceAuto(t *testing.T) {
	saved := autoDevice
	defer func() { autoDevice = saved }()
	dir := t.TempDir()
	autoDevice = filepath.Join(dir, "lake")
	cfg, _, err := loadConfig([]string{"--config", writeConfig(t, ""), "--socket", filepath.Join(dir, "s.sock"),
		"--admin-socket", "", "--metrics-addr", "", "--linnos-weights", "none", "--no-bpf"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Device != DeviceAuto {
		t.Fatalf("default device %q, want %q", cfg.Device, DeviceAuto)
	}
	if got := resolveDevice(DeviceAuto); got != "" {
		t.Fatalf("auto with no device resolved to %q", got)
	}
	savedInterval := deviceWatchInterval
	defer func() { deviceWatchInterval = savedInterval }()
	deviceWatchInterval = 5 * time.Millisecond
	var logBuf syncBuffer
	d, err := start(context.Background(), cfg, zerolog.New(&logBuf), nil, nil)
	if err != nil {
		t.Fatalf("auto without a device: %v", err)
	}
	// The device appears after start (here a plain file, which is not a
	// lake region): the watcher finds it, tries it, and reports the
	// failure once while it keeps trying.
	if err := os.WriteFile(autoDevice, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const appeared = "the device appeared but does not attach"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logBuf.String(), appeared) {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not try the device that appeared:\n%s", logBuf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logBuf.String(), appeared); n != 1 {
		t.Fatalf("the same failure reported %d times", n)
	}
	d.stop(context.Background()) // stops the watcher too (-race checks it)
	if err := os.Remove(autoDevice); err != nil {
		t.Fatal(err)
	}

	// The device is there at start: auto serves it, and fails to start
	// naming the key.
	if err := os.WriteFile(autoDevice, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := resolveDevice(DeviceAuto); got != autoDevice {
		t.Fatalf("auto with %s present resolved to %q", autoDevice, got)
	}
	if _, err := start(context.Background(), cfg, zerolog.Nop(), nil, nil); err == nil || !strings.Contains(err.Error(), "config key device") {
		t.Fatalf("auto with a bad device: %v", err)
	}
	if got := resolveDevice(""); got != "" {
		t.Fatalf("device off resolved to %q", got)
	}
	if got := resolveDevice("/dev/other"); got != "/dev/other" {
		t.Fatalf("explicit device resolved to %q", got)
	}
	// auto alone is not enough to serve: with no socket laked may end
	// up serving nothing.
	if _, _, err := loadConfig([]string{"--config", writeConfig(t, ""), "--socket", ""}, io.Discard); err == nil || !strings.Contains(err.Error(), "config key socket") {
		t.Fatalf("auto device and no socket: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger writing from goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FuzzConfigFile feeds arbitrary config files (untrusted input): loading
// never panics, and a file that loads is valid and prints (--print-config)
// a file that loads back to the same configuration.
func FuzzConfigFile(f *testing.F) {
	f.Add("batch:\n  max_size: 10\n  max_wait: 1ms\n")
	f.Add("device: auto\nsocket: \"\"\n")
	f.Add("policy:\n  gpu_batch_ns: -1\n")
	f.Add("log: [1, 2\n")
	f.Add("limits:\n  launch_timeout: 5s\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := loadConfig([]string{"--config", p}, io.Discard)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded an invalid config: %v", err)
		}
		out, err := cfg.YAML()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, out, 0o600); err != nil {
			t.Fatal(err)
		}
		back, _, err := loadConfig([]string{"--config", p}, io.Discard)
		if err != nil {
			t.Fatalf("printed config does not load: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, cfg) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, back)
		}
	})
}
