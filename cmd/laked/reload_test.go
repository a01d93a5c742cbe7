package main

import (
	"slices"
	"testing"
	"time"
)

// TestRestartOnlyNamesChangedKeys: a reload applies only the policy
// section; every other changed top-level key is named in the warning.
func TestRestartOnlyNamesChangedKeys(t *testing.T) {
	base := Config{Socket: "/run/lake.sock", IdleSpin: time.Millisecond}
	same := base
	if keys := restartOnly(&base, &same); len(keys) != 0 {
		t.Fatalf("unchanged config: %v", keys)
	}
	next := base
	next.Policy.Name = "costaware" // applied by the reload: not named
	next.IdleYield = true
	next.Limits.UserClients = 7
	next.Socket = "/tmp/other.sock"
	got := restartOnly(&base, &next)
	want := []string{"socket", "idle_yield", "limits"}
	if !slices.Equal(got, want) {
		t.Fatalf("restartOnly = %v, want %v", got, want)
	}
}
