package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestDemo runs the embedded default job (smaller than the real one) and
// checks that it reports every replay mode, what laked did, and batching.
func TestDemo(t *testing.T) {
	saved := demoConfig
	defer func() { demoConfig = saved }()
	demoConfig.NumIOs, demoConfig.TrainIOs, demoConfig.Epochs = 4000, 4000, 1
	cfg, _, err := loadConfig([]string{"--config", writeConfig(t, ""), "--admin-socket", "", "--metrics-addr", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := demo(context.Background(), cfg, zerolog.Nop(), &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"baseline", "hedging", "linnos+hedging", "laked did:", "completions (map[ok:", "burst: 8 clients", "feature registry: schema \"linnos.arrival\""} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
}
