package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

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

// errHelp ends a command that printed its --help (exit status 0).
var errHelp = errors.New("help shown")

// globals registers the global flags on fs, bound to c.
func (c *cli) globals(fs *pflag.FlagSet) {
	fs.StringVar(&c.admin, "admin", c.admin, "laked admin socket")
	fs.StringVar(&c.socket, "socket", c.socket, "laked client socket (bench)")
	fs.StringVar(&c.metrics, "metrics", c.metrics, "laked Prometheus endpoint (stats): a URL, or unix:/path for metrics_addr unix:/path")
	fs.BoolVar(&c.json, "json", c.json, "print JSON instead of tables")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "limit for each request to laked")
}

// command is one lakectl command: its name as typed, its arguments and
// what it does (the usage text and each command's --help).
type command struct{ name, args, about string }

var commands = []command{
	{"status", "", "version, uptime, sessions, policy, models"},
	{"models list", "", "served models (models alone lists them too)"},
	{"models load", "[--replace] ID KIND PATH", "serve a model file (KIND: mlp, linnos, liteflow)"},
	{"models unload", "ID", "stop serving a model"},
	{"policy show", "", "active policy, params, decision counts (policy alone shows it too)"},
	{"policy load", "FILE", "load a compiled BPF policy object"},
	{"policy shipped", "NAME", "switch to a shipped policy"},
	{"policy params", "[--gpu-min-batch N] [--gpu-max-util-pct P] [--gpu-min-mem-mib M] [--gpu-batch-ns NS] [--kernel-gpu-share-pct P]", "set placement parameters"},
	{"features list", "", "registered feature schemas (features alone lists them too)"},
	{"retrain", "", "LinnOS retraining per device: model, version, accuracy, last training"},
	{"liteflow", "[--proc PATH] [--trace]", "LiteFlow apps: laked's adaptation and shipped snapshots, the kernel's installs"},
	{"liteflow unpin", "[--restart] APP", "ship adapted snapshots again after a snapshot loaded by hand pinned APP"},
	{"stats", "", "counters and latencies from laked's /metrics"},
	{"bench", "[--model ID] [--n N] [--count C] [--concurrency K] [--busy-poll] [--rounds R] [--open-loop] [--burst K]", "round-trip (nop) and predict latency; --open-loop: capacity and Poisson arrivals; --burst: predict latency while K clients burst their rings"},
	{"burst", "[--model ID] [--clients K] [--ring R] [--pause P] [--duration D]", "K clients each resubmitting its whole ring of predicts as soon as it completed, until interrupted"},
	{"reload", "", "re-read laked's configuration and policy (what SIGHUP does)"},
}

func findCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// newFlagSet returns the flag set of the named command, with the global
// flags, which pflag accepts before, between and after positional
// arguments (lakectl models list --json); after "--" everything is
// positional.
func newFlagSet(name string, c *cli) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	c.globals(fs)
	return fs
}

// parse parses a command's args with fs; fs.Args() is then the
// positional arguments. --help prints the command's help to the output
// (errHelp); flag errors become usage errors.
func (c *cli) parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			c.help(fs)
			return errHelp
		}
		return usageErr("%s: %v", fs.Name(), err)
	}
	return nil
}

// help prints a command's usage, what it does and its flags.
func (c *cli) help(fs *pflag.FlagSet) {
	cmd, _ := findCommand(fs.Name())
	fmt.Fprintf(c.out, "usage: lakectl %s [flags]", fs.Name())
	if cmd.args != "" {
		fmt.Fprintf(c.out, " %s", cmd.args)
	}
	fmt.Fprintln(c.out)
	if cmd.about != "" {
		fmt.Fprintf(c.out, "\n%s\n", cmd.about)
	}
	fmt.Fprintf(c.out, "\nflags:\n%s", fs.FlagUsages())
}

// usageText is lakectl's usage, from commands.
var usageText = func() string {
	var b strings.Builder
	b.WriteString("usage: lakectl [--admin PATH] [--socket PATH] [--metrics URL] [--json] [--timeout D] <command>\n\ncommands:\n")
	for _, c := range commands {
		line := c.name
		if c.args != "" {
			line += " " + c.args
		}
		if len(line) > 30 {
			fmt.Fprintf(&b, "  %s\n  %-30s  %s\n", line, "", c.about)
		} else {
			fmt.Fprintf(&b, "  %-30s  %s\n", line, c.about)
		}
	}
	b.WriteString("\nlakectl COMMAND --help (or lakectl help COMMAND) shows a command's flags.\n")
	return b.String()
}()

// run is lakectl: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{
		admin: admin.DefaultSocket, socket: lakelib.DefaultSocket, metrics: DefaultMetricsURL,
		timeout: 30 * time.Second, out: stdout, errw: stderr,
	}
	fs := newFlagSet("lakectl", c)
	fs.SetInterspersed(false) // the global flags stop at the command name
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprint(stdout, usageText)
		return 0
	case err != nil:
		err = usageErr("%v", err)
	default:
		err = c.dispatch(ctx, fs.Args())
	}
	switch {
	case err == nil, errors.Is(err, errHelp):
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
	case "retrain":
		return c.retrain(ctx, rest)
	case "liteflow":
		return c.liteflow(ctx, rest)
	case "stats":
		return c.stats(ctx, rest)
	case "bench":
		return c.bench(ctx, rest)
	case "burst":
		return c.burst(ctx, rest)
	case "reload":
		return c.reload(ctx, rest)
	case "help":
		if len(rest) > 0 { // help models load: that command's --help
			return c.dispatch(ctx, append(slices.Clone(rest), "--help"))
		}
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
func noArgs(fs *pflag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageErr("%s: unexpected argument %q", fs.Name(), strings.Join(fs.Args(), " "))
	}
	return nil
}

// parseNoArgs parses args into fs and checks no positional arguments
// are left.
func (c *cli) parseNoArgs(fs *pflag.FlagSet, args []string) error {
	if err := c.parse(fs, args); err != nil {
		return err
	}
	return noArgs(fs)
}

// ask parses args into fs (no positional arguments), then asks laked's
// admin API one question q with a fresh client.
func ask[T any](ctx context.Context, c *cli, fs *pflag.FlagSet, args []string, q func(*admin.Client, context.Context) (T, error)) (T, error) {
	if err := c.parseNoArgs(fs, args); err != nil {
		var zero T
		return zero, err
	}
	cl := c.client()
	defer cl.Close()
	return q(cl, ctx)
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
