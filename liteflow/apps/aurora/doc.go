// Package aurora is a LiteFlow example application: Aurora-style
// learning-based congestion control in a small fluid link simulator whose
// capacity and base RTT change over time.
//
// The policy is an MLP with 30 inputs (the last 10 monitor intervals ×
// latency gradient, latency ratio − 1, send ratio − 1), hidden layers of 32
// and 16 tanh units and one output, the rate change a ∈ [−1, 1]: the
// sending rate is multiplied by 1+δa (a ≥ 0) or divided by 1−δa (a < 0).
//
// Training samples pair each interval's features with a hindsight target
// computed by the userspace trainer: the action that would have moved the
// rate to 95% of the capacity observed over that interval, less what is
// needed to drain the standing queue within two RTTs. In the simulator the
// trainer reads the capacity and queue from the link model; on a real host
// it would estimate them from delivery-rate samples. The pre-trained model
// sees only the first environment, so it learns that environment's prior for
// states where the features cannot tell how far below capacity the sender
// is (no queue, no loss).
//
// Run compares static snapshot, LiteFlow adaptation and the slow path
// (every decision answered by the freshest userspace float model after a
// modelled kernel/user crossing) and reports goodput, queueing delay and
// loss.
package aurora
