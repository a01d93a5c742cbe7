package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	cfg, _, err := loadConfig([]string{"--config", file}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Batch.MaxSize != 10 || cfg.Batch.MaxWait != time.Millisecond || cfg.Log.Level != "warn" || cfg.Socket != "/tmp/file.sock" {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if cfg.MaxClients != 256 || cfg.Policy.Name != "default" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
	env := []string{"LAKED_BATCH_MAX_SIZE=20", "LAKED_LOG_LEVEL=debug", "PATH=/bin"}
	cfg, _, err = loadConfig([]string{"--config", file}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Batch.MaxSize != 20 || cfg.Log.Level != "debug" || cfg.Batch.MaxWait != time.Millisecond {
		t.Fatalf("environment does not override the file: %+v", cfg)
	}
	cfg, _, err = loadConfig([]string{"--config", file, "--max-batch", "30", "--max-wait", "2ms"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Batch.MaxSize != 30 || cfg.Batch.MaxWait != 2*time.Millisecond || cfg.Log.Level != "debug" {
		t.Fatalf("flags do not override the environment: %+v", cfg)
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
		{name: "bad duration", file: "batch:\n  max_wait: soon\n", want: "batch.max_wait"},
		{name: "bad int", file: "max_clients: many\n", want: "max_clients"},
		{name: "out of range", file: "batch:\n  max_size: 0\n", want: "batch.max_size"},
		{name: "bad level", file: "log:\n  level: loud\n", want: "log.level"},
		{name: "bad policy", file: "policy:\n  name: fastest\n", want: "policy.name"},
		{name: "util over 100", file: "policy:\n  gpu_max_util_pct: 130\n", want: "policy.gpu_max_util_pct"},
		{name: "bad yaml", file: "batch: [1, 2\n", want: "config file"},
		{name: "unknown env", env: []string{"LAKED_BATCH_MAXSIZE=3"}, want: "LAKED_BATCH_MAXSIZE"},
		{name: "bad env value", env: []string{"LAKED_MAX_CLIENTS=-4"}, want: "max_clients"},
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
		_, _, err := loadConfig(args, tc.env, io.Discard)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %q", tc.name, err, tc.want)
		}
	}
}

// TestPrintConfigIsAValidConfig checks that --print-config's output reads
// back as the same configuration.
func TestPrintConfigIsAValidConfig(t *testing.T) {
	cfg, inv, err := loadConfig([]string{"--config", writeConfig(t, "batch:\n  max_wait: 3ms\n"), "--print-config", "--policy", "costaware"}, []string{"LAKED_MAX_CLIENTS=9"}, io.Discard)
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
	back, _, err := loadConfig([]string{"--config", writeConfig(t, string(out))}, nil, io.Discard)
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
	shipped, _, err := loadConfig([]string{"--config", "../../deploy/laked.yaml"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	builtin, _, err := loadConfig([]string{"--config", writeConfig(t, "")}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if *shipped != *builtin {
		t.Fatalf("deploy/laked.yaml differs from the defaults:\n%+v\n%+v", shipped, builtin)
	}
}
