// Command lakectl inspects and controls a running laked.
//
//	lakectl [global flags] <command> [flags] [args]
//
//	status                         version, uptime, sessions, policy, models
//	models [list]                  served models
//	models load [--replace] ID KIND PATH
//	                               serve a model file (KIND: mlp, linnos,
//	                               liteflow; a liteflow snapshot replacing
//	                               a LiteFlow app's model pins the app)
//	models unload ID               stop serving a model
//	policy [show]                  active policy, params, decision counts
//	policy load FILE               load a compiled BPF policy object
//	policy shipped NAME            switch to a shipped policy
//	policy params [--gpu-min-batch N] [--gpu-max-util-pct P]
//	              [--gpu-min-mem-mib M] [--gpu-batch-ns NS]
//	              [--kernel-gpu-share-pct P]
//	features [list]                registered feature schemas
//	retrain                        LinnOS retraining per device (model,
//	                               version, held-out accuracy, last training)
//	liteflow [--proc PATH] [--trace]
//	                               LiteFlow apps, shipped snapshots, the
//	                               kernel's installs (--trace: per-batch
//	                               error of the served and initial snapshot)
//	liteflow unpin [--restart] APP let a pinned app ship again (--restart:
//	                               adapt from the snapshot loaded by hand)
//	stats                          counters and latency histograms from /metrics
//	bench [--model ID] [--n N] [--count C] [--concurrency K] [--busy-poll]
//	      [--rounds R] [--open-loop] [--burst K]
//	                               round-trip (nop) and predict latency,
//	                               laked's batch, model time and CPU per
//	                               request, the machine's own scheduling
//	                               gaps; --open-loop: capacity and Poisson
//	                               arrivals; --burst K: predict latency
//	                               unloaded and while K clients burst
//	                               their rings (lakectl burst, run as a
//	                               child process); --cpus/--nice and
//	                               --burst-cpus/--burst-nice place the
//	                               measuring and the bursting process
//	                               (bench --help: the rest)
//	burst [--model ID] [--clients K] [--ring R] [--pause P] [--duration D]
//	      [--cpus LIST] [--nice N]
//	                               K clients, each resubmitting its whole
//	                               ring of predicts as one batch as soon
//	                               as it completed (or --pause after it),
//	                               until SIGINT/SIGTERM
//	                               or --duration; with --json one line
//	                               when every client has cycled its ring
//	                               and one with what they did
//	reload                         what SIGHUP does: re-read config and policy
//
// Global flags (also accepted after the command): --admin PATH (laked's
// admin socket, default /run/lake/laked-admin.sock, root only), --socket
// PATH (laked's client socket for bench, default /run/lake/laked.sock),
// --metrics URL (default http://127.0.0.1:9477/metrics), --json (machine
// readable output instead of tables), --timeout D.
//
// Flags are GNU-style (pflag, like laked's): --name VALUE or --name=VALUE,
// anywhere on the line; "--" ends them. `lakectl COMMAND --help` (or
// `lakectl help COMMAND`) prints a command's usage and flags. pflag rather
// than cobra: lakectl's dozen commands need no command tree, and shell
// completion is not worth the dependency.
//
// Exit status: 0 on success, 1 when laked answered with an error or could
// not be reached, 2 for a usage error.
package main
