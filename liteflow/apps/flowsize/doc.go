// Package flowsize is a LiteFlow example application: flow-size prediction
// for scheduling. A 5-5-5-1 ReLU MLP predicts each arriving flow's size
// from its features; a single bottleneck link serves flows preemptively,
// shortest predicted size first. The workload's size distribution shifts
// over time (which flow class is large changes), so a model trained on the
// first phase misorders flows afterwards.
//
// Run compares three ways of serving the model and reports mean flow
// completion time (FCT):
//   - static: the int8 snapshot of the pre-trained model, never updated;
//   - liteflow: the snapshot served by a router.Router on the fast path,
//     with an adapt.Adapter training the float model on completed flows and
//     installing new snapshots under its stability, fidelity and rate
//     rules;
//   - slowpath: every prediction is answered by the freshest userspace
//     float model and pays a kernel/user crossing (CrossingCost, default
//     20 µs) before the flow can be scheduled; the userspace daemon answers
//     crossings one at a time.
package flowsize
