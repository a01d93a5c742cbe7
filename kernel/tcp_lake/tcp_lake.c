// SPDX-License-Identifier: GPL-2.0
/*
 * tcp_lake.ko - TCP congestion control "lake" (sysctl
 * net.ipv4.tcp_congestion_control=lake) whose sending rate comes from an
 * Aurora-style LiteFlow snapshot answering in the kernel (lake_liteflow.ko
 * app "aurora", model app_model in laked; liteflow/apps/aurora is the same
 * policy in simulation).
 *
 * Every monitor interval (one smoothed RTT, at least mi_min_us) the flow
 * computes Aurora's three statistics - latency gradient, latency ratio - 1
 * and sending ratio - 1, in Q10 fixed point - keeps the last 10 intervals
 * (30 inputs), and asks the snapshot for an action a in [-1, 1]: the rate
 * becomes rate * (1 + 0.3 a) (a >= 0) or rate / (1 - 0.3 a). Guardrails:
 * the rate stays in [min_rate_kbps, max_rate_mbps], the congestion window
 * is 2 * rate * srtt (at least 4 segments, at most snd_cwnd_clamp), pacing
 * enforces the rate. The flow falls back to Reno (slow start, AIMD, Reno's
 * ssthresh) while there is no snapshot, during its first interval, and in
 * any interval whose statistics are out of range (beyond oor_mult times
 * Aurora's clip bounds: a path the policy was not trained for).
 *
 * Each interval is also a training sample for laked (lf_record: the 30
 * inputs and a hindsight label, "move to 95% of the delivery-rate
 * capacity minus draining the queue in two RTTs"), which adapts the float
 * model and ships new snapshots; a flow keeps the snapshot it started on
 * (the flow cache) until it ends.
 *
 * Where decisions come from is chosen at run time (parameter decide):
 * "snapshot" (default) asks the kernel snapshot (lf_process, no
 * crossing); "userspace" is the userspace-only mode LiteFlow is compared
 * against: every decision is a lake_predict_async_deadline call to laked's
 * model app_model (the same policy, served and adapted by laked: input the
 * flow id and the 30 statistics as float32, output the action as
 * float32), due when the next decision is (one monitor interval after
 * the interval ends; up_deadline_us sets a fixed budget). The flow keeps its
 * current behaviour while the answer is on its way, applies it when it
 * arrives in time, and on a miss (laked answered -ETIME, the answer came
 * after the deadline, or a newer interval ended first) or an error falls
 * back to Reno for the interval. Misses are counted (stats).
 *
 * No floating point: snapshot quantization goes through
 * lake_snap_quantize_fx / lake_snap_dequantize_fx, samples through
 * lake_snap_fx_to_f32.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/math64.h>
#include <linux/slab.h>
#include <linux/refcount.h>
#include <linux/wait.h>
#include <linux/siphash.h>
#include <linux/random.h>
#include <asm/unaligned.h>
#include <net/tcp.h>

#include "lake_kapi.h"

#include "lake_snapshot.h"
#include "lake_liteflow.h"

static uint app_model = 3;
module_param(app_model, uint, 0444);
MODULE_PARM_DESC(app_model, "laked model id serving the Aurora snapshot (0: none, Reno only)");
static uint min_rate_kbps = 1000;
module_param(min_rate_kbps, uint, 0644);
MODULE_PARM_DESC(min_rate_kbps, "lowest sending rate the policy may set (kbit/s)");
static uint max_rate_mbps = 1000;
module_param(max_rate_mbps, uint, 0644);
MODULE_PARM_DESC(max_rate_mbps, "highest sending rate the policy may set (Mbit/s)");
static uint mi_min_us = 10000;
module_param(mi_min_us, uint, 0644);
MODULE_PARM_DESC(mi_min_us, "shortest monitor interval (us)");
static bool record = true;
module_param(record, bool, 0644);
MODULE_PARM_DESC(record, "record every interval as a training sample for laked");
static uint oor_mult = 4;
module_param(oor_mult, uint, 0644);
MODULE_PARM_DESC(oor_mult, "an interval whose statistics exceed this many times Aurora's clip bounds is decided by Reno");
static bool use_model = true;
module_param(use_model, bool, 0644);
MODULE_PARM_DESC(use_model, "decide with the snapshot (false: Reno only, the same statistics recorded)");

static uint up_deadline_us;
module_param(up_deadline_us, uint, 0644);
MODULE_PARM_DESC(up_deadline_us, "userspace mode: an answer from laked later than this after the interval ends is a miss (us; 0: the monitor interval, when the next decision is due)");

enum { DECIDE_SNAPSHOT, DECIDE_USERSPACE };
static int decide = DECIDE_SNAPSHOT;

static int decide_set(const char *val, const struct kernel_param *kp)
{
	if (sysfs_streq(val, "snapshot"))
		WRITE_ONCE(decide, DECIDE_SNAPSHOT);
	else if (sysfs_streq(val, "userspace"))
		WRITE_ONCE(decide, DECIDE_USERSPACE);
	else
		return -EINVAL;
	return 0;
}

static int decide_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", READ_ONCE(decide) == DECIDE_USERSPACE ? "userspace" : "snapshot");
}

static const struct kernel_param_ops decide_ops = { .set = decide_set, .get = decide_get };
module_param_cb(decide, &decide_ops, NULL, 0644);
MODULE_PARM_DESC(decide, "where decisions come from: snapshot (the kernel snapshot) or userspace (laked, per decision)");

#define HIST 10
#define FEAT 3
#define NIN (HIST * FEAT)
#define FX 10                  /* statistics and actions in Q10 */
#define ONE (1 << FX)
#define DELTA_FX 307           /* 0.3 in Q10 */

/* a userspace decision on its way: one reference for the flow, one for
 * the completion callback; the last put frees it */
struct lake_up {
	refcount_t ref;
	atomic_t state;    /* UP_PENDING, then UP_DONE or UP_FAILED */
	int err;
	u64 asked_ns, deadline_ns; /* ktime_get_ns() */
	u64 done_ns;       /* when the completion ran */
	u32 out;           /* laked's answer: the action, binary32, little-endian */
	u8 in[8 + 4 * NIN];
};

enum { UP_PENDING, UP_DONE, UP_FAILED };

/* per-flow state; must fit icsk_ca_priv */
struct lake_ca {
	u64 rate;          /* bytes/s; 0 before the first interval ends */
	struct lake_up *up; /* userspace decision on its way, or NULL */
	u32 mi_start;      /* us (tcp_mstamp) */
	u32 first_rtt, last_rtt;
	u32 delivered0, sent0;
	u32 bw_max;        /* max delivery rate in the interval, bytes/s */
	s16 hist[NIN];     /* newest interval first */
	u8 intervals;      /* intervals seen, saturating */
	u8 model_mode;     /* the last decision came from the snapshot */
	u8 lost;           /* a loss in this interval */
};

static struct lf_app *app;
static atomic64_t n_decisions, n_fallback, n_oor, n_records;
/* userspace mode: asked, answered in time, missed the deadline, failed */
static atomic64_t n_up_asked, n_up_answered, n_up_missed, n_up_errors;
/* completion latency of the answers that came (in time or not), us */
static atomic64_t n_up_lat_n, n_up_lat_sum, n_up_lat_max;
static atomic_t n_up_inflight;
/* flow ids sent to laked are keyed hashes, not socket addresses */
static siphash_key_t up_key;
static DECLARE_WAIT_QUEUE_HEAD(up_inflight_wq);

static u64 min_rate(void) { return (u64)READ_ONCE(min_rate_kbps) * 125; }
static u64 max_rate(void) { return (u64)READ_ONCE(max_rate_mbps) * 125000; }

static u32 lake_ssthresh(struct sock *sk)
{
	return tcp_reno_ssthresh(sk);
}

static void lake_mi_start(struct sock *sk, struct lake_ca *ca)
{
	struct tcp_sock *tp = tcp_sk(sk);

	ca->mi_start = (u32)tp->tcp_mstamp;
	ca->first_rtt = 0;
	ca->last_rtt = 0;
	ca->delivered0 = tp->delivered;
	ca->sent0 = tp->data_segs_out;
	ca->bw_max = 0;
	ca->lost = 0;
}

static void lake_init(struct sock *sk)
{
	struct lake_ca *ca = inet_csk_ca(sk);

	BUILD_BUG_ON(sizeof(struct lake_ca) > ICSK_CA_PRIV_SIZE);
	memset(ca, 0, sizeof(*ca));
	lake_mi_start(sk, ca);
	cmpxchg(&sk->sk_pacing_status, SK_PACING_NONE, SK_PACING_NEEDED);
}

static void lake_up_put(struct lake_up *u)
{
	if (u && refcount_dec_and_test(&u->ref))
		kfree(u);
}

static void lake_release(struct sock *sk)
{
	struct lake_ca *ca = inet_csk_ca(sk);

	lake_up_put(ca->up);
	ca->up = NULL;
	if (app)
		lf_flow_end(app, (u64)(unsigned long)sk);
}

/* decision context passed through lf_process */
struct lake_dec {
	const struct lake_ca *ca;
	bool ok;
	s32 action; /* Q10, [-ONE, ONE] */
};

static int lake_collect(void *ctx, const struct lf_answer *ans, s32 *q_in)
{
	struct lake_dec *d = ctx;
	int i;

	for (i = 0; i < NIN; i++)
		q_in[i] = lake_snap_quantize_fx(ans->in_scale_bits, ans->in_zero, ans->lo, ans->hi,
						d->ca->hist[i], FX);
	return 0;
}

static void lake_enforce(void *ctx, int err, const struct lf_answer *ans, const s32 *q_out)
{
	struct lake_dec *d = ctx;
	s64 a;

	if (err)
		return;
	a = lake_snap_dequantize_fx(ans->out_scale_bits, ans->out_zero, q_out[0], FX);
	d->action = (s32)clamp_t(s64, a, -ONE, ONE);
	d->ok = true;
}

static s32 clip(s64 v, s32 lo, s32 hi, bool *oor)
{
	/* far beyond the clip range: out of what the policy knows */
	s64 m = max_t(u32, READ_ONCE(oor_mult), 1);

	if (v < m * lo || v > m * hi)
		*oor = true;
	return (s32)clamp_t(s64, v, lo, hi);
}

/* label is Aurora's hindsight action for the interval (Q10): move to 95%
 * of the capacity seen minus draining the queue in two RTTs. Delivery
 * rate only shows capacity up to the sending rate, so an interval without
 * queueing or loss counts capacity as 25% above what was delivered. */
static s32 lake_label(const struct lake_ca *ca, u64 rate, u32 mean_rtt, u32 min_rtt)
{
	u64 cap = ca->bw_max, queue, goal, g;
	s64 a;

	if (!cap || !rate || !min_rtt)
		return 0;
	if (!ca->lost && (u64)mean_rtt * 10 < (u64)min_rtt * 11)
		cap = cap * 5 / 4;
	queue = div_u64(cap * (mean_rtt > min_rtt ? mean_rtt - min_rtt : 0), USEC_PER_SEC);
	g = div_u64(queue * USEC_PER_SEC, 2 * min_rtt);
	goal = cap * 95 / 100;
	goal = goal > g ? goal - g : 0;
	goal = max(goal, cap / 10);
	if (!goal)
		return 0;
	if (goal >= rate)
		a = div64_u64((goal - rate) * ONE * ONE, rate * DELTA_FX);
	else
		a = -(s64)div64_u64((rate - goal) * ONE * ONE, goal * DELTA_FX);
	return (s32)clamp_t(s64, a, -ONE, ONE);
}

static void lake_record(struct sock *sk, const struct lake_ca *ca, s32 label)
{
	u8 rec[4 * (NIN + 1) + 8] __aligned(8);
	u32 size, i;

	if (!app || !READ_ONCE(record))
		return;
	size = lf_record_size(app);
	if (size < 4 * (NIN + 1) || size > sizeof(rec))
		return;
	memset(rec, 0, sizeof(rec));
	for (i = 0; i < NIN; i++) {
		u32 b = lake_snap_fx_to_f32(ca->hist[i], FX);

		memcpy(rec + 4 * i, &b, 4);
	}
	i = lake_snap_fx_to_f32(label, FX);
	memcpy(rec + 4 * NIN, &i, 4);
	if (!lf_record(app, hash_ptr(sk, 2), rec, size))
		atomic64_inc(&n_records);
}

static void lake_set_rate(struct sock *sk, struct lake_ca *ca)
{
	struct tcp_sock *tp = tcp_sk(sk);
	u32 srtt = max(tp->srtt_us >> 3, 1U), mss = max_t(u32, tp->mss_cache, 1);
	u64 cwnd;

	ca->rate = clamp_t(u64, ca->rate, min_rate(), max_rate());
	WRITE_ONCE(sk->sk_pacing_rate, min_t(u64, ca->rate, READ_ONCE(sk->sk_max_pacing_rate)));
	if (inet_csk(sk)->icsk_ca_state > TCP_CA_Disorder)
		return; /* recovery sets the window (PRR) */
	cwnd = div_u64(2 * ca->rate * srtt, USEC_PER_SEC * mss);
	tcp_snd_cwnd_set(tp, (u32)clamp_t(u64, cwnd, 4, tp->snd_cwnd_clamp));
}

/* fallback pacing: Reno's window over the RTT, with headroom (the stack's
 * own rule: 200% in slow start, 120% after) */
static void lake_reno_pacing(struct sock *sk, struct lake_ca *ca)
{
	struct tcp_sock *tp = tcp_sk(sk);
	u32 srtt = tp->srtt_us >> 3;
	u64 r;

	if (!srtt)
		return;
	r = div_u64((u64)tcp_snd_cwnd(tp) * tp->mss_cache * USEC_PER_SEC, srtt);
	ca->rate = r;
	r = tcp_in_slow_start(tp) ? 2 * r : r * 6 / 5;
	WRITE_ONCE(sk->sk_pacing_rate, min_t(u64, r, READ_ONCE(sk->sk_max_pacing_rate)));
}

/* lake_apply_action moves the rate by the policy's action (Q10, [-1, 1])
 * and sets the window and pacing (guardrails in lake_set_rate). */
static void lake_apply_action(struct sock *sk, struct lake_ca *ca, s32 action)
{
	u64 r = ca->rate;

	if (action >= 0)
		r = (r * ((u64)ONE * ONE + (u64)DELTA_FX * action)) >> (2 * FX);
	else
		r = div64_u64(r << (2 * FX), (u64)ONE * ONE + (u64)DELTA_FX * (u64)(-action));
	ca->rate = r;
	ca->model_mode = 1;
	atomic64_inc(&n_decisions);
	lake_set_rate(sk, ca);
}

/* lake_up_done completes a userspace decision (process context). */
static void lake_up_done(void *arg, int err, const struct lake_predict_result *res)
{
	struct lake_up *u = arg;
	u64 now = ktime_get_ns();
	s64 lat = div_u64(now - u->asked_ns, NSEC_PER_USEC), max;

	rcu_read_lock();
	atomic64_inc(&n_up_lat_n);
	atomic64_add(lat, &n_up_lat_sum);
	max = atomic64_read(&n_up_lat_max);
	while (lat > max && !atomic64_try_cmpxchg(&n_up_lat_max, &max, lat))
		;
	u->err = err;
	u->done_ns = now;
	atomic_set_release(&u->state, err ? UP_FAILED : UP_DONE);
	lake_up_put(u);
	if (atomic_dec_and_test(&n_up_inflight))
		wake_up(&up_inflight_wq);
	rcu_read_unlock();
}

/* lake_up_submit asks laked for this interval's decision; 0 when asked
 * (ca->up holds it), else the flow falls back for the interval. */
static int lake_up_submit(struct sock *sk, struct lake_ca *ca, u32 mi_us)
{
	u64 flow = siphash_1u64((u64)(unsigned long)sk, &up_key) | 1, budget = READ_ONCE(up_deadline_us);
	struct lake_up *u;
	int err, i;

	u = kmalloc(sizeof(*u), GFP_ATOMIC);
	if (!u) {
		atomic64_inc(&n_up_errors);
		return -ENOMEM;
	}
	refcount_set(&u->ref, 2);
	atomic_set(&u->state, UP_PENDING);
	u->err = 0;
	u->out = 0;
	/* laked's LiteFlow model: flow id, then the inputs as float32, all
	 * little-endian */
	put_unaligned_le64(flow, u->in);
	for (i = 0; i < NIN; i++)
		put_unaligned_le32(lake_snap_fx_to_f32(ca->hist[i], FX), u->in + 8 + 4 * i);
	u->asked_ns = ktime_get_ns();
	/* the ring carries deadlines up to 4.19 s ahead */
	u->deadline_ns = u->asked_ns + min_t(u64, budget ? budget : mi_us, 4000000) * NSEC_PER_USEC;
	atomic_inc(&n_up_inflight);
	atomic64_inc(&n_up_asked);
	err = lake_predict_async_deadline(app_model, 1, u->in, sizeof(u->in), &u->out, sizeof(u->out),
					  u->deadline_ns, lake_up_done, u);
	if (err) {
		atomic_dec(&n_up_inflight);
		atomic64_inc(&n_up_errors);
		kfree(u);
		return err;
	}
	ca->up = u;
	return 0;
}

/* lake_up_poll applies laked's answer once it is there (on time), or
 * falls back to Reno when the deadline passed or the call failed. */
static void lake_up_poll(struct sock *sk, struct lake_ca *ca)
{
	struct lake_up *u = ca->up;
	int st = atomic_read_acquire(&u->state);
	bool late = st == UP_PENDING ? ktime_get_ns() > u->deadline_ns : u->done_ns > u->deadline_ns;
	s64 a;

	if (st == UP_PENDING && !late)
		return;
	if (st == UP_DONE && !late && !lake_snap_f32_to_fx(le32_to_cpu((__force __le32)u->out), FX, &a)) {
		atomic64_inc(&n_up_answered);
		lake_apply_action(sk, ca, (s32)clamp_t(s64, a, -ONE, ONE));
	} else {
		/* -ETIME (laked could not make it), late, or an answer that
		 * is not a number: a miss; other errors: failures */
		if (st == UP_FAILED && u->err != -ETIME)
			atomic64_inc(&n_up_errors);
		else
			atomic64_inc(&n_up_missed);
		ca->model_mode = 0;
		atomic64_inc(&n_fallback);
	}
	ca->up = NULL;
	lake_up_put(u);
}

static void lake_interval_end(struct sock *sk, struct lake_ca *ca, u32 dur)
{
	struct tcp_sock *tp = tcp_sk(sk);
	u32 min_rtt = tcp_min_rtt(tp), mean = (ca->first_rtt + ca->last_rtt) / 2;
	u32 sent = tp->data_segs_out - ca->sent0, delivered = tp->delivered - ca->delivered0;
	s32 f[FEAT], label;
	bool oor = false;
	struct lake_dec d = { .ca = ca };

	if (min_rtt == ~0U || !min_rtt)
		min_rtt = mean ? mean : 1;
	f[0] = clip(div_s64(((s64)ca->last_rtt - ca->first_rtt) * ONE, dur), -2 * ONE, 2 * ONE, &oor);
	f[1] = clip(div_u64((u64)mean * ONE, min_rtt) - ONE, 0, 4 * ONE, &oor);
	f[2] = clip(div_u64(((u64)sent + 1) * ONE, (u64)delivered + 1) - ONE, 0, 4 * ONE, &oor);
	memmove(ca->hist + FEAT, ca->hist, sizeof(ca->hist[0]) * (NIN - FEAT));
	ca->hist[0] = f[0];
	ca->hist[1] = f[1];
	ca->hist[2] = f[2];
	if (ca->intervals < 255)
		ca->intervals++;
	if (oor)
		atomic64_inc(&n_oor);
	if (!ca->rate)
		ca->rate = max_t(u64, ca->bw_max, min_rate());
	label = lake_label(ca, ca->rate, mean, min_rtt);
	lake_record(sk, ca, label);
	if (ca->up) {
		/* a newer interval ended before laked's answer was used */
		atomic64_inc(&n_up_missed);
		lake_up_put(ca->up);
		ca->up = NULL;
		ca->model_mode = 0;
	}
	if (app && READ_ONCE(use_model) && !oor && ca->intervals > 1 &&
	    READ_ONCE(decide) == DECIDE_USERSPACE) {
		/* the decision comes later (lake_up_poll); until then the
		 * flow keeps what it does */
		if (!lake_up_submit(sk, ca, max(tcp_sk(sk)->srtt_us >> 3, READ_ONCE(mi_min_us))))
			goto out;
		ca->model_mode = 0;
	} else {
		ca->model_mode = 0;
		if (app && READ_ONCE(use_model) && !oor && ca->intervals > 1) {
			lf_process(app, (u64)(unsigned long)sk, &d);
			if (d.ok)
				lake_apply_action(sk, ca, d.action);
		}
	}
	if (!ca->model_mode)
		atomic64_inc(&n_fallback);
out:
	lake_mi_start(sk, ca);
}

static void lake_cong_control(struct sock *sk, const struct rate_sample *rs)
{
	struct tcp_sock *tp = tcp_sk(sk);
	struct lake_ca *ca = inet_csk_ca(sk);
	u32 now = (u32)tp->tcp_mstamp, dur, srtt = tp->srtt_us >> 3;

	if (ca->up)
		lake_up_poll(sk, ca);
	if (rs->rtt_us > 0) {
		if (!ca->first_rtt)
			ca->first_rtt = (u32)rs->rtt_us;
		ca->last_rtt = (u32)rs->rtt_us;
	}
	if (rs->losses > 0)
		ca->lost = 1;
	if (rs->delivered > 0 && rs->interval_us > 0) {
		u64 bw = div_u64((u64)rs->delivered * tp->mss_cache * USEC_PER_SEC, (u32)rs->interval_us);

		ca->bw_max = (u32)min_t(u64, max_t(u64, bw, ca->bw_max), U32_MAX);
	}
	if (!ca->model_mode) {
		if (rs->acked_sacked)
			tcp_reno_cong_avoid(sk, 0, rs->acked_sacked);
		lake_reno_pacing(sk, ca);
	} else {
		lake_set_rate(sk, ca);
	}
	dur = now - ca->mi_start;
	if (ca->first_rtt && dur >= max(srtt, READ_ONCE(mi_min_us)))
		lake_interval_end(sk, ca, dur);
}

static u32 lake_undo_cwnd(struct sock *sk)
{
	return tcp_reno_undo_cwnd(sk);
}

static void lake_state(struct sock *sk, u8 new_state)
{
	struct lake_ca *ca = inet_csk_ca(sk);

	/* a timeout: distrust the policy's rate until the next interval */
	if (new_state == TCP_CA_Loss) {
		ca->model_mode = 0;
		ca->lost = 1;
	}
}

static struct tcp_congestion_ops tcp_lake_ops __read_mostly = {
	.flags = TCP_CONG_NON_RESTRICTED,
	.name = "lake",
	.owner = THIS_MODULE,
	.init = lake_init,
	.release = lake_release,
	.ssthresh = lake_ssthresh,
	.cong_control = lake_cong_control,
	.undo_cwnd = lake_undo_cwnd,
	.set_state = lake_state,
};

static int stats_get(char *buf, const struct kernel_param *kp)
{
	s64 n = atomic64_read(&n_up_lat_n);

	return sysfs_emit(buf, "decisions %lld fallback %lld out_of_range %lld records %lld active_version %llu up_asked %lld up_answered %lld up_missed %lld up_errors %lld up_lat_mean_us %lld up_lat_max_us %lld\n",
			  (s64)atomic64_read(&n_decisions), (s64)atomic64_read(&n_fallback),
			  (s64)atomic64_read(&n_oor), (s64)atomic64_read(&n_records),
			  app ? lf_active_version(app) : 0, (s64)atomic64_read(&n_up_asked),
			  (s64)atomic64_read(&n_up_answered), (s64)atomic64_read(&n_up_missed),
			  (s64)atomic64_read(&n_up_errors), n ? div64_s64(atomic64_read(&n_up_lat_sum), n) : 0,
			  (s64)atomic64_read(&n_up_lat_max));
}

/* writing 0 zeroes the counters (one line per mode in the VM test) */
static int stats_set(const char *val, const struct kernel_param *kp)
{
	if (!sysfs_streq(val, "0"))
		return -EINVAL;
	atomic64_set(&n_decisions, 0);
	atomic64_set(&n_fallback, 0);
	atomic64_set(&n_oor, 0);
	atomic64_set(&n_records, 0);
	atomic64_set(&n_up_asked, 0);
	atomic64_set(&n_up_answered, 0);
	atomic64_set(&n_up_missed, 0);
	atomic64_set(&n_up_errors, 0);
	atomic64_set(&n_up_lat_n, 0);
	atomic64_set(&n_up_lat_sum, 0);
	atomic64_set(&n_up_lat_max, 0);
	return 0;
}

static const struct kernel_param_ops stats_ops = { .get = stats_get, .set = stats_set };
module_param_cb(stats, &stats_ops, NULL, 0644);
MODULE_PARM_DESC(stats, "intervals decided by the policy, by the Reno fallback, out of range, samples recorded; userspace decisions asked, answered in time, missed, failed (write 0 to zero)");

static int __init tcp_lake_init(void)
{
	struct lf_app_desc d = { .name = "aurora", .lake_model = app_model, .in_dim = NIN, .out_dim = 1 };
	int err;

	get_random_bytes(&up_key, sizeof(up_key));
	app = lf_register_model(&d);
	if (IS_ERR(app))
		return PTR_ERR(app);
	err = lf_register_io(app, lake_collect, lake_enforce);
	if (!err)
		err = tcp_register_congestion_control(&tcp_lake_ops);
	if (err) {
		lf_unregister_model(app);
		app = NULL;
		return err;
	}
	pr_info("tcp_lake: congestion control \"lake\" registered (app aurora, model %u)\n", app_model);
	return 0;
}

static void __exit tcp_lake_exit(void)
{
	tcp_unregister_congestion_control(&tcp_lake_ops);
	/* sockets hold a module reference while they use "lake": none left;
	 * userspace decisions still on their way complete when laked answers
	 * or detaches */
	wait_event(up_inflight_wq, atomic_read(&n_up_inflight) == 0);
	synchronize_rcu(); /* lake_up_done has left its read section */
	lf_unregister_model(app);
}

module_init(tcp_lake_init);
module_exit(tcp_lake_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lake: TCP congestion control from an Aurora LiteFlow snapshot in the kernel");
