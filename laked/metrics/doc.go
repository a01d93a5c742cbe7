// Package metrics owns laked's Prometheus exposition: a Collector that
// reads the daemon's counters (laked.Server.Stats and Models, and the
// policy engine's decision counts when there is one) at scrape time, and
// Handler, the http.Handler laked serves on /metrics (loopback by
// default, see DefaultAddr).
//
// Nothing is counted here: the hot path keeps its own atomic counters and
// histograms (laked/stats.go) and this package only translates a snapshot
// into the exposition format: a scrape reads atomics and takes no lock a
// request takes.
//
// Exported series (all prefixed lake_):
//
//	lake_submissions_total                    counter
//	lake_completions_total{status}            counter, one series per protocol status
//	lake_batches_total                        counter
//	lake_batch_size                           histogram (items per predict batch)
//	lake_queue_wait_seconds                   histogram (predict accept to completion)
//	lake_service_time_seconds                 histogram (model run time per batch)
//	lake_decisions_total{side}                counter, side = cpu | gpu
//	lake_gpu_fallbacks_total                  counter (GPU chosen, ran on the CPU)
//	lake_completions_overflowed_total         counter (completions held back by a full ring)
//	lake_handshakes_refused_total             counter (max_clients, limits, unsafe re-attach fds)
//	lake_sessions                             gauge (attached clients)
//	lake_sessions_served_total                counter
//	lake_model_version{id,name}               gauge, one series per served model
//	lake_policy_info{active,kernel}           gauge = 1 (with a policy engine)
//	lake_policy_decisions_total{side}         counter (with a policy engine)
//	lake_policy_errors_total                  counter (with a policy engine)
//
// plus the standard go_* and process_* collectors.
package metrics
