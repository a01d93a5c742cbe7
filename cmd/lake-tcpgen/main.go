package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"sync"
	"time"
)

// maxFlowBytes bounds a short flow the server accepts.
const maxFlowBytes = 64 << 20

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lake-tcpgen:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: lake-tcpgen server [-listen ADDR] | client -addr ADDR [flags]")
	}
	switch args[0] {
	case "server":
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		listen := fs.String("listen", ":5201", "listen address")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		return serve(l)
	case "client":
		var c clientConfig
		fs := flag.NewFlagSet("client", flag.ContinueOnError)
		fs.StringVar(&c.addr, "addr", "", "server address")
		fs.StringVar(&c.tag, "tag", "run", "label of the summary lines")
		fs.DurationVar(&c.duration, "duration", 8*time.Second, "run time")
		fs.DurationVar(&c.change, "change", 0, "when to run -change-cmd (0: never)")
		fs.StringVar(&c.changeCmd, "change-cmd", "", "shell command changing the path (tc qdisc change ...)")
		fs.DurationVar(&c.warmup, "warmup", time.Second, "excluded from each phase's averages")
		fs.IntVar(&c.flowSize, "flow-size", 64<<10, "bytes of each short flow")
		fs.DurationVar(&c.flowEvery, "flow-every", 250*time.Millisecond, "a short flow starts this often")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if c.addr == "" || c.duration <= 0 || c.flowSize < 1 || c.flowSize > maxFlowBytes || c.flowEvery <= 0 {
			return errors.New("client: bad -addr, -duration, -flow-size or -flow-every")
		}
		res, at, err := client(c)
		if err != nil {
			return err
		}
		if at != 0 {
			fmt.Fprintf(out, "TCPGEN tag=%s change at_ms=%d\n", c.tag, at)
		}
		for _, p := range res {
			fmt.Fprintln(out, p)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// serve sinks connections: a header byte 'B' (bulk: read to EOF) or 'F'
// with a u64 size (read size bytes, answer one byte).
func serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			var h [9]byte
			if _, err := io.ReadFull(c, h[:1]); err != nil {
				return
			}
			switch h[0] {
			case 'B':
				_, _ = io.Copy(io.Discard, c)
			case 'F':
				if _, err := io.ReadFull(c, h[1:]); err != nil {
					return
				}
				n := binary.LittleEndian.Uint64(h[1:])
				if n > maxFlowBytes {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
					return
				}
				_, _ = c.Write([]byte{1})
			}
		}()
	}
}

type clientConfig struct {
	addr, tag, changeCmd     string
	duration, change, warmup time.Duration
	flowEvery                time.Duration
	flowSize                 int
}

type sample struct {
	at    time.Duration
	acked uint64
	rtt   time.Duration
}

type flowResult struct {
	start time.Duration
	fct   time.Duration
	err   error
}

// phase is one summary line.
type phase struct {
	tag             string
	index           int
	mbps, rttMs     float64
	fctP50, fctMean float64 // ms
	flows, failed   int
}

func (p phase) String() string {
	return fmt.Sprintf("TCPGEN tag=%s phase=%d mbps=%.2f rtt_ms=%.1f fct_p50_ms=%.1f fct_mean_ms=%.1f flows=%d failed=%d",
		p.tag, p.index, p.mbps, p.rttMs, p.fctP50, p.fctMean, p.flows, p.failed)
}

// client runs the client; it returns the phases and when (unix ms) the
// change was made (0: none).
func client(c clientConfig) ([]phase, int64, error) {
	bulk, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return nil, 0, err
	}
	tc := bulk.(*net.TCPConn)
	// an abortive close (RST): nothing lingers using the congestion
	// control module after the run
	defer func() { _ = tc.SetLinger(0); tc.Close() }()
	if _, err := tc.Write([]byte{'B'}); err != nil {
		return nil, 0, err
	}
	start := time.Now()
	deadline := start.Add(c.duration)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the bulk writer
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for time.Now().Before(deadline) {
			_ = tc.SetWriteDeadline(deadline)
			if _, err := tc.Write(buf); err != nil {
				return
			}
		}
	}()
	var mu sync.Mutex
	var flows []flowResult
	wg.Add(1)
	go func() { // short flows
		defer wg.Done()
		t := time.NewTicker(c.flowEvery)
		defer t.Stop()
		var fw sync.WaitGroup
		for {
			select {
			case <-stop:
				fw.Wait()
				return
			case <-t.C:
			}
			fw.Add(1)
			go func(at time.Duration) {
				defer fw.Done()
				fct, err := shortFlow(c.addr, c.flowSize, deadline.Add(5*time.Second))
				mu.Lock()
				flows = append(flows, flowResult{start: at, fct: fct, err: err})
				mu.Unlock()
			}(time.Since(start))
		}
	}()
	var samples []sample
	changed := false
	var changedAt int64
	tick := time.NewTicker(100 * time.Millisecond)
	for now := range tick.C {
		at := now.Sub(start)
		if info, err := tcpInfo(tc); err == nil {
			samples = append(samples, sample{at: at, acked: info.acked, rtt: info.rtt})
		}
		if !changed && c.change > 0 && at >= c.change {
			changed = true
			changedAt = time.Now().UnixMilli()
			if c.changeCmd != "" {
				if out, err := exec.Command("/bin/sh", "-c", c.changeCmd).CombinedOutput(); err != nil {
					fmt.Fprintf(os.Stderr, "lake-tcpgen: change command: %v: %s\n", err, out)
				}
			}
		}
		if at >= c.duration {
			break
		}
	}
	tick.Stop()
	close(stop)
	_ = tc.SetWriteDeadline(time.Now())
	wg.Wait()
	bounds := []time.Duration{0, c.duration}
	if c.change > 0 && c.change < c.duration {
		bounds = []time.Duration{0, c.change, c.duration}
	}
	var res []phase
	for i := 0; i+1 < len(bounds); i++ {
		res = append(res, summarize(c.tag, i, bounds[i]+c.warmup, bounds[i+1], samples, flows))
	}
	if len(bounds) == 3 {
		// phase 2: the second half after the change (what adaptation
		// has recovered by then)
		res = append(res, summarize(c.tag, 2, c.change+(c.duration-c.change)/2, c.duration, samples, flows))
	}
	return res, changedAt, nil
}

func summarize(tag string, i int, from, to time.Duration, samples []sample, flows []flowResult) phase {
	p := phase{tag: tag, index: i}
	var first, last *sample
	var rttSum float64
	var rttN int
	for k := range samples {
		s := &samples[k]
		if s.at < from || s.at > to {
			continue
		}
		if first == nil {
			first = s
		}
		last = s
		if s.rtt > 0 {
			rttSum += float64(s.rtt) / 1e6
			rttN++
		}
	}
	if first != nil && last != first {
		p.mbps = float64(last.acked-first.acked) * 8 / (last.at - first.at).Seconds() / 1e6
	}
	if rttN > 0 {
		p.rttMs = rttSum / float64(rttN)
	}
	var fcts []float64
	for _, f := range flows {
		if f.start < from || f.start >= to {
			continue
		}
		if f.err != nil {
			p.failed++
			continue
		}
		fcts = append(fcts, float64(f.fct)/1e6)
	}
	p.flows = len(fcts)
	if len(fcts) > 0 {
		sort.Float64s(fcts)
		p.fctP50 = fcts[len(fcts)/2]
		var s float64
		for _, v := range fcts {
			s += v
		}
		p.fctMean = s / float64(len(fcts))
	}
	return p
}

func shortFlow(addr string, size int, deadline time.Time) (time.Duration, error) {
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.(*net.TCPConn).SetLinger(0); c.Close() }()
	_ = c.SetDeadline(deadline)
	h := make([]byte, 9+size)
	h[0] = 'F'
	binary.LittleEndian.PutUint64(h[1:], uint64(size))
	if _, err := c.Write(h); err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
