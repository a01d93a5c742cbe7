// Package kapp is laked's side of LiteFlow apps whose snapshots answer in
// the kernel (kernel/liteflow, lake_liteflow.ko): it serves an app's
// snapshot as a laked model that the kernel fetches with model_fetch
// (NewModel, LoadFile: also what `lakectl models load ID liteflow FILE`
// uses), and runs the app's online adaptation (App): it drains the
// samples the kernel app records in the region's feature registry (schema
// "liteflow.<app>", fields x and y as float32), trains the float model on
// them (liteflow/adapt) and, when the adapter decides to ship, replaces
// the served model with the new snapshot, which bumps its version; the
// kernel's poller then fetches, validates and installs it. Every
// snapshot the app's model serves goes through App (its one installer):
// the initial one, the adapter's, and one loaded by hand (App.Load, what
// `lakectl models load --replace ID liteflow FILE` does for the app's
// model id), which pins the app: the adapter keeps training but its
// snapshots are withheld until App.Unpin (`lakectl liteflow unpin
// [--restart] APP`; restart begins adaptation again from the loaded
// snapshot). Each batch adds a Point to the status trace: the error of
// the served and the initial snapshot on the batch's labels, how
// recovery after a change in conditions is measured.
//
// What it trusts: snapshot files and samples are untrusted (files are
// decoded and validated by liteflow/snapshot; samples that are not finite
// are dropped and counted). The kernel validates every image again.
package kapp
