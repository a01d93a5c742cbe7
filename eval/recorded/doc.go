// Package recorded turns a block trace recorded by eval/blktrace into LinnOS
// training and test samples, stores it as text, and replays its recorded
// latencies across replicas with revoke-and-retry.
//
// Replica model ("recorded replicas"): only one device is traced, so replica
// r of a test set of N reads is the same recorded stream rotated by r*N/R
// positions: read i sent to replica r sees the features and the latency
// that the recording had at position (i + r*N/R) mod N. The rotation keeps
// each replica's own history consistent (features and latency come from
// the same moment of the real device) while making the replicas'
// slow periods fall at different times, as on independent devices. It is
// open-loop: a redirected read does not add load to the replica it goes
// to. This is optimistic for hedging-like schemes, neutral for LinnOS
// (which redirects at most a few percent of reads).
package recorded
