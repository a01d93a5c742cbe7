// Package laked is the lake daemon's core: it serves client regions
// (package shm) by reading their submission rings, copying and validating
// every slot, executing CUDA-driver-shaped operations on a backend
// (package backend), batching predict requests per model across clients,
// asking the placement policy where each batch runs, and posting exactly
// one completion for every submission it consumed.
//
// The pieces:
//
//   - Server: owns the backend, the model registry, the batchers, the
//     sessions and the statistics; Attach serves one Transport.
//   - session: one client region and a goroutine that owns its life
//     (drain, departure, teardown); completions are posted in batches,
//     and kept in laked's memory when the client's completion ring is
//     full (back-pressure: laked stops reading the client's submissions
//     until it reaps).
//   - poller (poller.go): one goroutine that serves the submission rings
//     of all userspace sessions, as io_uring's SQPOLL thread does: it
//     scans every ring in bounded passes (a light client's request is
//     consumed within one pass however many clients burst), runs the
//     operations that complete at once and hands predicts to the batchers,
//     running cheap CPU batches itself. A session with a device
//     operation is handed to its own goroutine until its ring runs dry;
//     the kernel's /dev/lake session always has its own reader. While
//     the poller is awake clients ring no doorbell; when it naps after
//     its idle window, the session goroutines sleep on their doorbells
//     and wake it. The completion doorbells of a bursting session are
//     rung once per visit, by a ringer goroutine, so that the thread a
//     ring wakes takes the ringer's CPU, not the poller's.
//   - batcher: one per served model; gathers what is queued, round robin
//     across sessions, up to a maximum batch size (waiting for more, an
//     adaptive wait, only when the GPU would take a larger batch), runs
//     it as one batch, and scatters the outputs. A request larger than
//     the maximum batch size runs one piece per batch, the other
//     sessions' requests riding the batches between its pieces; it
//     completes once, when its last piece has run.
//   - The GPU copy path (gpucopy.go): a client's region is registered
//     with the GPU backend (backend.HostRegisterer) while it is attached
//     (registered before the session joins the server, outside its
//     lock: pinning a large arena does not hold up other handshakes).
//     For a model whose GPU path copies runs (GPURunsModel: LinnOS and
//     the MLPs on the CUDA backend) a predict's inputs stay in the
//     client's arena until its batch runs; a GPU batch then moves them,
//     and the outputs, by DMA, one copy per stretch of records adjacent
//     in an arena (planRuns), every range checked against the region.
//     Regions not registered, and in-place predicts, are staged through
//     laked's buffers as for every other model (Stats.GPUStagedItems).
//     The model only ever computes on device memory the copies filled,
//     so a client rewriting its arena meanwhile changes its own answers
//     only.
//   - Transports: the unix-socket handshake with memfd regions (this
//     package, unix_linux.go) and the kernel's /dev/lake device
//     (devlake_linux.go).
//   - Model images (image.go): models with a portable integer image
//     (ImageExporter: LinnOS weight files, LiteFlow snapshots) are
//     copied to clients by model_fetch with the served version; the
//     version grows with ReplaceModel and TouchModel (liteflow/kapp,
//     the one LiteFlow installer, replaces the model on each install),
//     so a kernel consumer polls model_info and fetches only what
//     changed. Images are the consumer's to validate.
package laked
