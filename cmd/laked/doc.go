// Command laked is the lake daemon: it serves client regions handed out
// over a unix socket (userspace clients) and the kernel's /dev/lake
// region, batches predict requests across clients, asks the placement
// policy where each batch runs, and runs them and CUDA-driver-shaped
// operations on its backends.
//
// Configuration comes from /etc/lake/laked.yaml (or --config), LAKED_*
// environment variables and flags, in that order of precedence (viper
// layers them; config.go says how to add a key);
// --print-config shows the result. SIGHUP reloads the config's policy
// settings (and warns, naming them, about other changed keys, which take
// effect at the next restart); SIGTERM and SIGINT drain and stop. Started by systemd with
// deploy/laked.socket and deploy/laked-admin.socket, it serves the sockets
// systemd passes (package sdactivate) instead of creating its own, so
// clients queue while it restarts.
//
// With --demo it runs its embedded default job instead: a laked on a
// private socket serving a LinnOS model to a replayed SSD trace.
package main
