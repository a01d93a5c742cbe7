package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// raceReport is what the race detector prints first in a report.
const raceReport = "WARNING: DATA RACE"

// raceWatch passes a laked child's stderr through to w and remembers
// whether the child printed a race report. The children are -race builds
// when the tests are, but their exit status is lost when a test kills
// them at its end and their stderr is shown only when the package fails,
// so without this a race in laked would pass unnoticed.
type raceWatch struct {
	w    io.Writer
	mu   sync.Mutex
	tail []byte // the last bytes written, for a report split over writes
	seen bool
}

func (r *raceWatch) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.tail = append(r.tail, p...)
	if bytes.Contains(r.tail, []byte(raceReport)) {
		r.seen = true
	}
	if keep := len(raceReport); len(r.tail) > keep {
		r.tail = append(r.tail[:0], r.tail[len(r.tail)-keep:]...)
	}
	r.mu.Unlock()
	return r.w.Write(p)
}

func (r *raceWatch) sawRace() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

// watchRaces sends cmd's stderr to os.Stderr and fails t, when the test
// ends, if the child reported a data race. It must be called before
// cmd.Start; the cleanup it registers kills and reaps cmd first.
func watchRaces(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	w := &raceWatch{w: os.Stderr}
	cmd.Stderr = w
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait() // waits for the stderr copy too
		}
		if w.sawRace() {
			t.Errorf("the laked child process (%s) reported a data race; its report is above", cmd.Path)
		}
	})
}
