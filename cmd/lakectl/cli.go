package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lakeos/lake/laked/admin"
	"github.com/lakeos/lake/laked/metrics"
	"github.com/lakeos/lake/lakelib"
)

// DefaultMetricsURL is where laked serves Prometheus metrics by default.
const DefaultMetricsURL = "http://" + metrics.DefaultAddr + metrics.Path

// errUsage marks errors caused by the command line (exit status 2).
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// cli holds the global options and the output streams.
type cli struct {
	admin   string
	socket  string
	metrics string
	json    bool
	timeout time.Duration
	out     io.Writer
	errw    io.Writer
}

// globals registers the global flags on fs, bound to c.
func (c *cli) globals(fs *flag.FlagSet) {
	fs.StringVar(&c.admin, "admin", c.admin, "laked admin socket")
	fs.StringVar(&c.socket, "socket", c.socket, "laked client socket (bench)")
	fs.StringVar(&c.metrics, "metrics", c.metrics, "laked Prometheus endpoint (stats)")
	fs.BoolVar(&c.json, "json", c.json, "print JSON instead of tables")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "limit for each request to laked")
}

func newFlagSet(name string, c *cli) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.globals(fs)
	return fs
}

// parse parses a command's args with fs, accepting flags before, between
// and after positional arguments (lakectl models list --json); after
// "--" everything is positional. fs.Args() is then the positional
// arguments. Flag errors become usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		dashes := -1
		for i, a := range args {
			if a == "--" {
				dashes = i
				break
			}
		}
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		rest := fs.Args()
		if dashes >= 0 && len(rest) == len(args)-dashes-1 {
			// Parse stopped at our "--": the rest is positional.
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return parseFlags(fs, append([]string{"--"}, pos...))
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usageErr("%s: see lakectl help", fs.Name())
		}
		return usageErr("%s: %v", fs.Name(), err)
	}
	return nil
}

const usageText = `usage: lakectl [--admin PATH] [--socket PATH] [--metrics URL] [--json] <command>

commands:
  status                          version, uptime, sessions, policy, models
  models [list]                   served models
  models load [--replace] ID KIND PATH
  models unload ID
  policy [show]
  policy load FILE                load a compiled BPF policy object
  policy shipped NAME             switch to a shipped policy
  policy params [--gpu-min-batch N] [--gpu-max-util-pct P] [--gpu-min-mem-mib M] [--gpu-batch-ns NS]
  features [list]
  stats                           counters and latencies from laked's /metrics
  bench [--model ID] [--n N] [--count C] [--concurrency K] [--busy-poll]
  reload                          re-read laked's configuration and policy
`

// run is lakectl: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{
		admin: admin.DefaultSocket, socket: lakelib.DefaultSocket, metrics: DefaultMetricsURL,
		timeout: 30 * time.Second, out: stdout, errw: stderr,
	}
	fs := newFlagSet("lakectl", c)
	err := parseFlags(fs, args) // stops at the command name
	if err == nil {
		err = c.dispatch(ctx, fs.Args())
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "lakectl: %v\n\n%s", err, usageText)
		return 2
	default:
		fmt.Fprintf(stderr, "lakectl: %v\n", err)
		return 1
	}
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("no command")
	}
	if c.timeout <= 0 {
		return usageErr("--timeout must be positive")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "status":
		return c.status(ctx, rest)
	case "models":
		return c.models(ctx, rest)
	case "policy":
		return c.policy(ctx, rest)
	case "features":
		return c.features(ctx, rest)
	case "stats":
		return c.stats(ctx, rest)
	case "bench":
		return c.bench(ctx, rest)
	case "reload":
		return c.reload(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(c.out, usageText)
		return nil
	}
	return usageErr("unknown command %q", cmd)
}

// sub splits "models list ..." style arguments: the first non-flag word,
// if it is one of verbs, is the verb (def when absent).
func sub(args []string, def string, verbs ...string) (string, []string) {
	if len(args) > 0 {
		for _, v := range verbs {
			if args[0] == v {
				return v, args[1:]
			}
		}
	}
	return def, args
}

func (c *cli) client() *admin.Client { return admin.NewClient(c.admin, c.timeout) }

// emitJSON prints v as indented JSON.
func (c *cli) emitJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns a tabwriter on the output; call Flush when done.
func (c *cli) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
}

// noArgs checks a command got no positional arguments.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageErr("%s: unexpected argument %q", fs.Name(), strings.Join(fs.Args(), " "))
	}
	return nil
}

// fmtDuration prints a duration in seconds at a readable precision.
func fmtSeconds(s float64) string {
	if s != s { // NaN: no observations
		return "-"
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
