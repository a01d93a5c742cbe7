// SPDX-License-Identifier: GPL-2.0
/*
 * dm-linnos.c - device-mapper target "linnos": a read mirror over 2 to 4
 * replicas whose reads are steered by LinnOS predictions.
 *
 *   dmsetup create NAME --table "0 SECTORS linnos DEV0 DEV1 [DEV2 DEV3] [OPTION...]"
 *
 * Writes, flushes and discards go to every replica (a write completes when
 * all replicas completed it; any replica error fails it). Each read goes to
 * one replica: the primary (DEV0) unless the model predicts it slow, in
 * which case the read is revoked before it is issued and sent to the first
 * other replica predicted fast (one revoke at most; all slow: primary). A
 * read that fails on a replica is retried on each other replica in turn
 * (counted as a failover).
 *
 * Modes (option mode=, message "mode ..."):
 *   off    every read to the primary, no prediction
 *   fast   the kernel fast path: the integer LinnOS model of each replica
 *          (lake_linnos.h, shared with and host-tested against Go) runs here
 *   laked  the read is held and its replicas' feature vectors go to laked
 *          (lake_predict_async through /dev/lake; laked batches concurrent
 *          reads); past deadline_us, with no laked, a dead laked or a bad
 *          answer, the fast path decides. I/O never waits longer than the
 *          deadline and never fails because laked is absent. Path policy:
 *          while laked's measured answer time (EWMA) exceeds the deadline,
 *          the fast path decides at once and one read in 16 probes laked.
 *   hedge  no prediction: the read goes to the primary and, if it has not
 *          completed after hedge_us, a second copy goes to the next replica
 *          (both read into private buffers; the first to complete wins)
 *
 * Options (key=value, after the devices; also messages "KEY VALUE"):
 *   mode=off|fast|laked|hedge   (fast)
 *   deadline_us=N    laked path deadline, 1..1000000 (50)
 *   hedge_us=N       hedge delay, 1..10000000 (2000)
 *   slow_us=N        a read slower than this was "slow", for the accuracy
 *                    guardrail; 0 = the model's training threshold (0)
 *   revoke_cap=N     at most N per mille of each window of 1024 reads are
 *                    revoked, 0..1000 (300)
 *   hist_ttl_us=N    history time-to-live: a replica's history reads (the
 *                    last 4 completed reads) that completed more than N us
 *                    before a read arrives are read as zeros, as a device
 *                    with no history has them, so that reads long ago do
 *                    not drive a prediction; 0..60000000, 0 = none (1000000)
 *   acc_min=N        bypass the model (primary only) while its accuracy on
 *                    the last window of 256 checked reads is below N per
 *                    mille, 0..1000 (0 = never)
 *   laked_model=ID   laked's model id for the laked path (1)
 *   all_slow_to=primary|least  where a read goes when every replica is
 *                    predicted slow: the primary (LinnOS's rule), or the
 *                    replica with the fewest I/Os pending (primary)
 * Messages only:
 *   model R|all ID   fetch laked model ID (lake_model_fetch), validate it
 *                    and install it for replica R (0..3) or all; it is
 *                    re-fetched whenever laked's version of it changes
 *   model R|all none drop the model (that replica is never predicted slow)
 *   reset            zero the counters
 *
 * Models are swapped with RCU: a read uses the model it started with, a
 * bad model is refused with the reason in the kernel log and the message's
 * error, and the old one stays. Every read's arrival (pending count) and
 * completion (latency) is recorded in the feature registry schemas
 * linnos.arrival and linnos.completion (features/linnos.go) keyed by the
 * replica's dev_t (MAJOR << 20 | MINOR), once laked has registered them.
 *
 * The counters are also published once a second into the registry's
 * statistics schemas stats.dm_linnos (key: the mapped device's number) and
 * stats.dm_linnos_dev (key: each replica's number), lake_feat_create.h,
 * which laked exports on /metrics (laked/kernelstats); "stats=1" in the
 * status says the last publication succeeded.
 *
 * Nothing here trusts laked: predictions other than 0 or 1 are counted
 * (laked_bad) and the fast path decides; model images are re-validated.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/device-mapper.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/percpu.h>
#include <linux/rcupdate.h>
#include <linux/spinlock.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>
#include <linux/hrtimer.h>
#include <linux/refcount.h>
#include <linux/ktime.h>
#include <linux/kdev_t.h>
#include <linux/string.h>
#include <linux/wait_bit.h>
#include <linux/interrupt.h>

#include "lake_kapi.h"
#include "lake_linnos.h"
#include "lake_feat_create.h" /* struct lake_feat_linnos_completion */

#define DM_MSG_PREFIX "linnos"
#define LN_MAX_REPLICAS 4
#define LN_REVOKE_WINDOW 1024
#define LN_ACC_WINDOW 256
#define LN_POLL_MS 1000
#define LN_STATS_KEYS 64 /* targets (and replicas) the statistics schemas hold */

enum ln_mode { LN_OFF, LN_FAST, LN_LAKED, LN_HEDGE, LN_NR_MODES };
static const char *const ln_mode_names[LN_NR_MODES] = { "off", "fast", "laked", "hedge" };

struct ln_model {
	struct rcu_head rcu;
	u64 version;
	u32 id;
	struct lake_linnos_model *m; /* points just past this header */
};

struct ln_replica {
	struct dm_dev *dev;
	u64 key; /* feature registry key: the device number */
	atomic_t pending; /* reads and writes in flight on this replica */
	spinlock_t lock;  /* hist, done_seq */
	struct lake_linnos_hist hist;
	u32 done_seq; /* completed reads, for the feature registry */
	struct ln_model __rcu *model;
	u32 model_id; /* laked model to follow, 0 = none (under model_lock) */
	atomic64_t reads, errors;
};

enum {
	C_READS, C_WRITES, C_FLUSHES, C_DISCARDS, C_REVOKES, C_ALL_SLOW, C_CAPPED, C_BYPASSED,
	C_FAILOVERS, C_READ_ERRORS, C_WRITE_ERRORS, C_PREDICTIONS, C_LAKED_OK, C_DEADLINE_MISS,
	C_LAKED_SKIPPED, C_LAKED_ERR, C_LAKED_BAD, C_LAKED_ABSENT, C_FALLBACKS, C_HEDGES, C_HEDGE_WINS,
	C_NOMEM, C_MODEL_INSTALLS, C_MODEL_REJECTS, C_FEAT_LOST, C_NR
};
static const char *const ln_counter_names[C_NR] = {
	"reads", "writes", "flushes", "discards", "revokes", "all_slow", "capped", "bypassed",
	"failovers", "read_errors", "write_errors", "predictions", "laked_ok", "deadline_miss",
	"laked_skipped", "laked_err", "laked_bad", "laked_absent", "fallbacks", "hedges", "hedge_wins",
	"nomem", "model_installs", "model_rejects", "feat_lost",
};

struct ln_c {
	struct dm_target *ti;
	unsigned int nr;
	struct ln_replica r[LN_MAX_REPLICAS];
	struct bio_set bs;
	struct workqueue_struct *wq;
	struct work_struct retry_work;
	spinlock_t retry_lock;
	struct bio_list retry; /* originals whose read failed, to retry */
	struct delayed_work poll;
	struct mutex model_lock;

	int mode;
	bool all_slow_least;
	u32 deadline_us, hedge_us, slow_us, revoke_cap, acc_min, laked_model, hist_ttl_us;

	/* guardrails */
	atomic_t win_reads, win_revokes;
	atomic_t acc_n, acc_ok;
	int acc_last; /* per mille, -1 = not measured yet */
	bool bypass;

	/* feature registry handles (opened by the poll work) */
	bool feat_ok;
	struct lake_feat_khandle feat_arr, feat_comp;
	/* statistics for laked's /metrics (the poll work publishes them) */
	u64 stats_key;
	struct lake_feat_khandle st_tgt, st_dev;
	bool stats_ok; /* the last publication succeeded */

	/* laked's measured answer time (EWMA, ns; a deadline miss counts as
	 * twice the deadline) and a counter for probing a slow laked */
	atomic64_t laked_ns;
	atomic_t laked_probe;

	/* hedge contexts alive (they outlive their original bio) */
	atomic_t hedges_alive;

	atomic64_t c[C_NR];
};

/* Per original bio. */
struct ln_io {
	struct ln_c *lc;
	u64 start_ns;
	u32 pending_at; /* pending on the replica it went to, at issue, itself included */
	u32 arrive_seq; /* that replica's done_seq at issue */
	u8 stale;       /* its history entries past hist_ttl_us at issue */
	u8 replica;
	u8 tried; /* bitmask of replicas tried */
	s8 pred;  /* prediction for the replica it went to: -1 none, 0 fast, 1 slow */
	bool failed_over;
	atomic_t remaining; /* write fan-out */
	blk_status_t status;
};

static inline void cnt(struct ln_c *lc, int i)
{
	atomic64_inc(&lc->c[i]);
}

/* inference scratch; used with bottom halves off, so a softirq that maps
 * a bio on the same CPU cannot share it */
static DEFINE_PER_CPU(s64[LAKE_LINNOS_SCRATCH], ln_scratch);

/* ---- prediction ---- */

static inline u64 ln_ttl_ns(struct ln_c *lc)
{
	return (u64)READ_ONCE(lc->hist_ttl_us) * NSEC_PER_USEC;
}

static void ln_features(struct ln_c *lc, unsigned int i, s32 *x)
{
	struct ln_replica *r = &lc->r[i];
	struct lake_linnos_hist h;
	unsigned long flags;

	spin_lock_irqsave(&r->lock, flags);
	h = r->hist;
	spin_unlock_irqrestore(&r->lock, flags);
	/* LinnOS counts the arriving read in the pending number; history
	 * past the time-to-live reads as zeros */
	lake_linnos_features_stale(&h, lake_linnos_hist_stale(&h, ktime_get_ns(), ln_ttl_ns(lc)),
				   (u32)atomic_read(&r->pending) + 1, x);
}

/* ln_predict returns 1 slow, 0 fast, -1 no model for replica i. */
static int ln_predict(struct ln_c *lc, unsigned int i, const s32 *x)
{
	struct ln_model *m;
	int slow = -1;

	rcu_read_lock();
	m = rcu_dereference(lc->r[i].model);
	if (m) {
		local_bh_disable();
		slow = lake_linnos_slow(m->m, x, *this_cpu_ptr(&ln_scratch));
		local_bh_enable();
	}
	rcu_read_unlock();
	if (slow >= 0)
		cnt(lc, C_PREDICTIONS);
	return slow;
}

/* ln_may_revoke applies the guardrails to one revoke. */
static bool ln_may_revoke(struct ln_c *lc)
{
	if (READ_ONCE(lc->bypass)) {
		cnt(lc, C_BYPASSED);
		return false;
	}
	if ((u32)atomic_read(&lc->win_revokes) * 1000u >= READ_ONCE(lc->revoke_cap) * LN_REVOKE_WINDOW) {
		cnt(lc, C_CAPPED);
		return false;
	}
	atomic_inc(&lc->win_revokes);
	return true;
}

static void ln_count_read(struct ln_c *lc)
{
	if (atomic_inc_return(&lc->win_reads) >= LN_REVOKE_WINDOW) {
		atomic_set(&lc->win_reads, 0);
		atomic_set(&lc->win_revokes, 0);
	}
}

/*
 * ln_choose picks the replica for a read from predictions: slow[i] is 1
 * slow, 0 fast, -1 unknown (no model: never slow). Returns the replica and
 * sets *pred to the prediction for it.
 */
static unsigned int ln_choose(struct ln_c *lc, const int *slow, s8 *pred)
{
	unsigned int i;

	*pred = (s8)slow[0];
	if (slow[0] != 1)
		return 0;
	for (i = 1; i < lc->nr; i++) {
		if (slow[i] != 1) {
			if (!ln_may_revoke(lc))
				return 0;
			cnt(lc, C_REVOKES);
			*pred = (s8)slow[i];
			return i;
		}
	}
	cnt(lc, C_ALL_SLOW);
	if (READ_ONCE(lc->all_slow_least)) {
		unsigned int best = 0;
		int least = atomic_read(&lc->r[0].pending);

		for (i = 1; i < lc->nr; i++) {
			int p = atomic_read(&lc->r[i].pending);

			if (p < least) {
				least = p;
				best = i;
			}
		}
		if (best && ln_may_revoke(lc)) {
			cnt(lc, C_REVOKES);
			*pred = 1;
			return best;
		}
	}
	return 0;
}

/* ln_fast_decide runs the kernel fast path: the primary's model first, the
 * others only if the primary is predicted slow. */
static unsigned int ln_fast_decide(struct ln_c *lc, s8 *pred)
{
	s32 x[LAKE_LINNOS_INPUTS];
	int slow[LN_MAX_REPLICAS];
	unsigned int i;

	ln_features(lc, 0, x);
	slow[0] = ln_predict(lc, 0, x);
	if (slow[0] == 1) {
		for (i = 1; i < lc->nr; i++) {
			ln_features(lc, i, x);
			slow[i] = ln_predict(lc, i, x);
		}
	}
	return ln_choose(lc, slow, pred);
}

/* ---- read issue and completion ---- */

static void ln_record(struct ln_c *lc, struct lake_feat_khandle *h, u64 key, u32 v)
{
	/* linnos.arrival: the u32 "pending" at offset 0 of an 8-byte record
	 * (record sizes are multiples of 8, lake_features.h) */
	u8 rec[8] = { 0 };

	if (!READ_ONCE(lc->feat_ok))
		return;
	memcpy(rec, &v, sizeof(v));
	if (lake_feat_krecord(h, key, rec, sizeof(rec)))
		cnt(lc, C_FEAT_LOST);
}

static void ln_read_endio(struct bio *clone);

/* ln_clone returns a clone of orig for the target's replicas (device set
 * by ln_issue_clone). Process context: it may sleep (GFP_NOIO), and from
 * the bio set's mempool it cannot fail. */
static struct bio *ln_clone(struct ln_c *lc, struct bio *orig)
{
	return bio_alloc_clone(lc->r[0].dev->bdev, orig, GFP_NOIO, &lc->bs);
}

/* ln_issue_clone sends clone (from ln_clone; NULL: made here, which may
 * sleep) of the original read to replica i. With a clone it allocates
 * nothing and does not sleep itself, so it runs in laked's completion
 * context too. */
static void ln_issue_clone(struct ln_c *lc, struct bio *orig, unsigned int i, struct bio *clone)
{
	struct ln_io *io = dm_per_bio_data(orig, sizeof(struct ln_io));
	struct ln_replica *r = &lc->r[i];
	unsigned long flags;
	u64 now;

	if (!clone)
		clone = ln_clone(lc, orig);
	if (clone->bi_bdev != r->dev->bdev)
		bio_set_dev(clone, r->dev->bdev);
	clone->bi_iter.bi_sector = dm_target_offset(lc->ti, orig->bi_iter.bi_sector);
	clone->bi_end_io = ln_read_endio;
	clone->bi_private = orig;
	io->replica = (u8)i;
	io->tried |= 1u << i;
	io->pending_at = (u32)atomic_inc_return(&r->pending);
	now = ktime_get_ns();
	/* the history the read arrives to, as linnos/retrain rebuilds it */
	spin_lock_irqsave(&r->lock, flags);
	io->arrive_seq = r->done_seq;
	io->stale = (u8)lake_linnos_hist_stale(&r->hist, now, ln_ttl_ns(lc));
	spin_unlock_irqrestore(&r->lock, flags);
	io->start_ns = now;
	atomic64_inc(&r->reads);
	ln_record(lc, &lc->feat_arr, r->key, io->pending_at);
	submit_bio_noacct(clone);
}

/* ln_issue_read sends a new clone of the original read to replica i.
 * Process context (the map function, a work item). */
static void ln_issue_read(struct ln_c *lc, struct bio *orig, unsigned int i)
{
	ln_issue_clone(lc, orig, i, NULL);
}

static void ln_check_accuracy(struct ln_c *lc, struct ln_io *io, u64 lat_us)
{
	u32 slow_us = READ_ONCE(lc->slow_us);
	struct ln_model *m;
	bool was_slow;
	int n;

	if (io->pred < 0)
		return;
	if (!slow_us) {
		rcu_read_lock();
		m = rcu_dereference(lc->r[io->replica].model);
		slow_us = m ? m->m->threshold_us : 0;
		rcu_read_unlock();
		if (!slow_us)
			return;
	}
	was_slow = lat_us > slow_us;
	if (was_slow == (io->pred == 1))
		atomic_inc(&lc->acc_ok);
	n = atomic_inc_return(&lc->acc_n);
	if (n == LN_ACC_WINDOW) {
		int ok = atomic_xchg(&lc->acc_ok, 0);
		int acc = ok * 1000 / LN_ACC_WINDOW;

		atomic_set(&lc->acc_n, 0);
		WRITE_ONCE(lc->acc_last, acc);
		WRITE_ONCE(lc->bypass, acc < (int)READ_ONCE(lc->acc_min));
	}
}

static void ln_read_endio(struct bio *clone)
{
	struct bio *orig = clone->bi_private;
	struct ln_io *io = dm_per_bio_data(orig, sizeof(struct ln_io));
	struct ln_c *lc = io->lc;
	struct ln_replica *r = &lc->r[io->replica];
	blk_status_t st = clone->bi_status;
	u64 now = ktime_get_ns();
	u64 lat_us = (now - io->start_ns) / 1000;
	struct lake_feat_linnos_completion comp;
	unsigned long flags;

	bio_put(clone);
	atomic_dec(&r->pending);
	if (st) {
		atomic64_inc(&r->errors);
		cnt(lc, C_READ_ERRORS);
		if (io->tried != (1u << lc->nr) - 1) {
			/* retry on another replica from process context */
			spin_lock_irqsave(&lc->retry_lock, flags);
			bio_list_add(&lc->retry, orig);
			spin_unlock_irqrestore(&lc->retry_lock, flags);
			queue_work(lc->wq, &lc->retry_work);
			return;
		}
		orig->bi_status = st;
		bio_endio(orig);
		return;
	}
	spin_lock_irqsave(&r->lock, flags);
	lake_linnos_hist_complete_at(&r->hist, io->pending_at, (u32)min_t(u64, lat_us, U32_MAX), now);
	comp.done_seq = ++r->done_seq;
	spin_unlock_irqrestore(&r->lock, flags);
	comp.latency_us = (u32)min_t(u64, lat_us, U32_MAX);
	comp.pending = io->pending_at;
	comp.arrive_seq = io->arrive_seq;
	comp.stale = io->stale;
	comp.zero = 0;
	if (READ_ONCE(lc->feat_ok) && lake_feat_krecord(&lc->feat_comp, r->key, &comp, sizeof(comp)))
		cnt(lc, C_FEAT_LOST);
	if (!io->failed_over)
		ln_check_accuracy(lc, io, lat_us);
	bio_endio(orig);
}

static void ln_retry_work(struct work_struct *w)
{
	struct ln_c *lc = container_of(w, struct ln_c, retry_work);
	struct bio_list list;
	struct bio *orig;
	unsigned long flags;

	spin_lock_irqsave(&lc->retry_lock, flags);
	list = lc->retry;
	bio_list_init(&lc->retry);
	spin_unlock_irqrestore(&lc->retry_lock, flags);
	while ((orig = bio_list_pop(&list))) {
		struct ln_io *io = dm_per_bio_data(orig, sizeof(struct ln_io));
		unsigned int i;

		for (i = 0; i < lc->nr; i++)
			if (!(io->tried & (1u << i)))
				break;
		cnt(lc, C_FAILOVERS);
		io->failed_over = true;
		ln_issue_read(lc, orig, i);
	}
}

/* ---- the laked path ---- */

struct ln_lk {
	u64 start_ns;
	refcount_t ref;   /* the done callback's and the decision's */
	atomic_t decided; /* 0 waiting; set once by the done callback or the timer */
	struct ln_c *lc;  /* valid while the decision is not made */
	struct bio *orig;
	/* the clone the decision issues, made before the predict: laked's
	 * completion context must not allocate (it may not sleep for long) */
	struct bio *clone;
	struct hrtimer timer;
	struct work_struct work;
	unsigned int nr;
	s32 out[LN_MAX_REPLICAS];
	s32 in[LN_MAX_REPLICAS * LAKE_LINNOS_INPUTS];
};

static void ln_lk_put(struct ln_lk *lk)
{
	if (refcount_dec_and_test(&lk->ref)) {
		kfree(lk);
		module_put(THIS_MODULE);
	}
}

/* the deadline passed first: the fast path decides, in process context */
static void ln_lk_work(struct work_struct *w)
{
	struct ln_lk *lk = container_of(w, struct ln_lk, work);
	struct ln_io *io = dm_per_bio_data(lk->orig, sizeof(struct ln_io));
	unsigned int i;

	hrtimer_cancel(&lk->timer); /* the callback that queued us has returned */
	i = ln_fast_decide(lk->lc, &io->pred);
	ln_issue_clone(lk->lc, lk->orig, i, lk->clone);
	ln_lk_put(lk);
}

/* ln_laked_time folds one answer time into laked's EWMA (1/8 weight). */
static void ln_laked_time(struct ln_c *lc, u64 ns)
{
	s64 old = atomic64_read(&lc->laked_ns);

	atomic64_set(&lc->laked_ns, old ? old + ((s64)ns - old) / 8 : (s64)ns);
}

static enum hrtimer_restart ln_lk_timer(struct hrtimer *t)
{
	struct ln_lk *lk = container_of(t, struct ln_lk, timer);

	if (atomic_cmpxchg(&lk->decided, 0, 1) == 0) {
		ln_laked_time(lk->lc, 2000ull * READ_ONCE(lk->lc->deadline_us));
		cnt(lk->lc, C_DEADLINE_MISS);
		cnt(lk->lc, C_FALLBACKS);
		queue_work(lk->lc->wq, &lk->work);
	}
	return HRTIMER_NORESTART;
}

static void ln_lk_done(void *arg, int err, const struct lake_predict_result *res)
{
	struct ln_lk *lk = arg;
	struct ln_c *lc;
	struct ln_io *io;
	int slow[LN_MAX_REPLICAS];
	unsigned int i;
	bool bad = false;

	if (atomic_cmpxchg(&lk->decided, 0, 1) != 0) {
		/* too late: the fast path decided (lk->lc may be gone) */
		ln_lk_put(lk);
		return;
	}
	hrtimer_cancel(&lk->timer);
	lc = lk->lc;
	io = dm_per_bio_data(lk->orig, sizeof(struct ln_io));
	ln_laked_time(lc, ktime_get_ns() - lk->start_ns);
	if (err) {
		cnt(lc, C_LAKED_ERR);
		bad = true;
	} else {
		for (i = 0; i < lk->nr; i++) {
			if (lk->out[i] != 0 && lk->out[i] != 1) {
				cnt(lc, C_LAKED_BAD);
				bad = true;
				break;
			}
			slow[i] = lk->out[i];
		}
	}
	if (bad) {
		cnt(lc, C_FALLBACKS);
		i = ln_fast_decide(lc, &io->pred);
	} else {
		cnt(lc, C_LAKED_OK);
		i = ln_choose(lc, slow, &io->pred);
		io->pred = -1; /* laked's model: the accuracy check is for the kernel's */
	}
	ln_issue_clone(lc, lk->orig, i, lk->clone);
	/* the decision's reference and the callback's */
	ln_lk_put(lk);
	ln_lk_put(lk);
}

/* ln_laked_read holds orig and asks laked; returns false if it did not
 * (the caller takes the fast path at once). */
static bool ln_laked_read(struct ln_c *lc, struct bio *orig)
{
	struct ln_lk *lk;
	unsigned int i;
	int err;

	if (!lake_shm_attached()) {
		cnt(lc, C_LAKED_ABSENT);
		cnt(lc, C_FALLBACKS);
		return false;
	}
	/* the path policy: while laked's measured answer time exceeds the
	 * deadline, the fast path decides at once, and one read in 16
	 * probes laked so the measurement follows it */
	if ((u64)atomic64_read(&lc->laked_ns) > 1000ull * READ_ONCE(lc->deadline_us) &&
	    (atomic_inc_return(&lc->laked_probe) & 15) != 0) {
		cnt(lc, C_LAKED_SKIPPED);
		return false;
	}
	lk = kmalloc(sizeof(*lk), GFP_NOWAIT | __GFP_NOWARN);
	if (!lk) {
		cnt(lc, C_NOMEM);
		cnt(lc, C_FALLBACKS);
		return false;
	}
	refcount_set(&lk->ref, 2);
	atomic_set(&lk->decided, 0);
	lk->start_ns = ktime_get_ns();
	lk->lc = lc;
	lk->orig = orig;
	lk->clone = ln_clone(lc, orig); /* the map function's context may sleep */
	lk->nr = lc->nr;
	INIT_WORK(&lk->work, ln_lk_work);
	hrtimer_init(&lk->timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	lk->timer.function = ln_lk_timer;
	for (i = 0; i < lc->nr; i++) {
		ln_features(lc, i, lk->in + i * LAKE_LINNOS_INPUTS);
		lk->out[i] = -1;
	}
	__module_get(THIS_MODULE); /* the done callback is our code */
	/* the deadline runs from before the submission: laked may answer
	 * before lake_predict_async returns */
	hrtimer_start(&lk->timer, ns_to_ktime((u64)READ_ONCE(lc->deadline_us) * 1000), HRTIMER_MODE_REL);
	err = lake_predict_async(READ_ONCE(lc->laked_model), lc->nr, lk->in,
				 lc->nr * LAKE_LINNOS_INPUTS * sizeof(s32), lk->out, lc->nr * sizeof(s32),
				 ln_lk_done, lk);
	if (err) {
		cnt(lc, err == -ENOTCONN ? C_LAKED_ABSENT : C_LAKED_ERR);
		if (atomic_cmpxchg(&lk->decided, 0, 1) == 0) {
			cnt(lc, C_FALLBACKS);
			hrtimer_cancel(&lk->timer);
			bio_put(lk->clone);
			kfree(lk);
			module_put(THIS_MODULE);
			return false;
		}
		/* the deadline already passed: its work issues the read */
		ln_lk_put(lk);
	}
	return true;
}

/* ---- hedging ---- */

/*
 * A hedged read reads into private pages on every copy, so that the copy
 * that loses can finish later without touching the caller's pages; the
 * winner's data is copied into the original bio.
 */
struct ln_hedge {
	refcount_t ref; /* one per copy in flight + the timer's */
	atomic_t won;
	struct ln_c *lc;
	struct bio *orig;
	struct hrtimer timer;
	struct work_struct work;
	unsigned int size;
};

struct ln_hcopy {
	struct ln_hedge *h;
	unsigned int replica;
	u64 start_ns;
	u32 pending_at;
	struct bio *bio;
};

static void ln_hedge_put(struct ln_hedge *h)
{
	struct ln_c *lc = h->lc;

	if (refcount_dec_and_test(&h->ref)) {
		kfree(h);
		/* wake_up_var only hashes the address: lc may be freed once
		 * the count is zero */
		if (atomic_dec_and_test(&lc->hedges_alive))
			wake_up_var(&lc->hedges_alive);
		module_put(THIS_MODULE);
	}
}

static void ln_hcopy_free(struct ln_hcopy *hc)
{
	bio_free_pages(hc->bio);
	bio_put(hc->bio);
	kfree(hc);
}

static void ln_hcopy_endio(struct bio *b)
{
	struct ln_hcopy *hc = b->bi_private;
	struct ln_hedge *h = hc->h;
	struct ln_c *lc = h->lc;
	struct ln_replica *r = &lc->r[hc->replica];
	u64 now = ktime_get_ns();
	u64 lat_us = (now - hc->start_ns) / 1000;
	unsigned long flags;

	atomic_dec(&r->pending);
	if (!b->bi_status) {
		spin_lock_irqsave(&r->lock, flags);
		lake_linnos_hist_complete_at(&r->hist, hc->pending_at, (u32)min_t(u64, lat_us, U32_MAX), now);
		spin_unlock_irqrestore(&r->lock, flags);
	} else {
		atomic64_inc(&r->errors);
		cnt(lc, C_READ_ERRORS);
	}
	if (b->bi_status && atomic_cmpxchg(&h->won, 0, 1) == 0) {
		/* the first copy to finish failed: the original fails over
		 * like a plain read (the other copy, if any, loses) */
		struct ln_io *io = dm_per_bio_data(h->orig, sizeof(struct ln_io));

		io->tried = 1u << hc->replica;
		spin_lock_irqsave(&lc->retry_lock, flags);
		bio_list_add(&lc->retry, h->orig);
		spin_unlock_irqrestore(&lc->retry_lock, flags);
		queue_work(lc->wq, &lc->retry_work);
	} else if (atomic_cmpxchg(&h->won, 0, 1) == 0) {
		{
			struct bvec_iter it = b->bi_iter;

			/* the iterator was consumed by the read: rewind it */
			it.bi_sector = 0;
			it.bi_size = h->size;
			it.bi_idx = 0;
			it.bi_bvec_done = 0;
			b->bi_iter = it;
			bio_copy_data(h->orig, b);
			if (hc->replica)
				cnt(lc, C_HEDGE_WINS);
		}
		bio_endio(h->orig);
	}
	ln_hcopy_free(hc);
	ln_hedge_put(h);
}

/* ln_hedge_copy reads h's range from replica i into private pages. */
static int ln_hedge_copy(struct ln_hedge *h, unsigned int i, gfp_t gfp)
{
	struct ln_c *lc = h->lc;
	struct ln_replica *r = &lc->r[i];
	unsigned int left = h->size, npages = DIV_ROUND_UP(h->size, PAGE_SIZE);
	struct ln_hcopy *hc;
	struct bio *b;

	hc = kmalloc(sizeof(*hc), gfp);
	if (!hc)
		return -ENOMEM;
	b = bio_alloc_bioset(r->dev->bdev, npages, REQ_OP_READ | (h->orig->bi_opf & REQ_SYNC), gfp, &lc->bs);
	if (!b) {
		kfree(hc);
		return -ENOMEM;
	}
	while (left) {
		struct page *p = alloc_page(gfp);
		unsigned int n = min_t(unsigned int, left, PAGE_SIZE);

		if (!p || bio_add_page(b, p, n, 0) != n) {
			if (p)
				__free_page(p);
			bio_free_pages(b);
			bio_put(b);
			kfree(hc);
			return -ENOMEM;
		}
		left -= n;
	}
	b->bi_iter.bi_sector = dm_target_offset(lc->ti, h->orig->bi_iter.bi_sector);
	b->bi_end_io = ln_hcopy_endio;
	b->bi_private = hc;
	hc->h = h;
	hc->bio = b;
	hc->replica = i;
	hc->pending_at = (u32)atomic_inc_return(&r->pending);
	hc->start_ns = ktime_get_ns();
	atomic64_inc(&r->reads);
	refcount_inc(&h->ref);
	submit_bio_noacct(b);
	return 0;
}

static void ln_hedge_work(struct work_struct *w)
{
	struct ln_hedge *h = container_of(w, struct ln_hedge, work);

	hrtimer_cancel(&h->timer);
	if (!atomic_read(&h->won) && ln_hedge_copy(h, 1, GFP_NOIO) == 0)
		cnt(h->lc, C_HEDGES);
	ln_hedge_put(h); /* the timer's */
}

static enum hrtimer_restart ln_hedge_timer(struct hrtimer *t)
{
	struct ln_hedge *h = container_of(t, struct ln_hedge, timer);

	if (!atomic_read(&h->won)) {
		queue_work(h->lc->wq, &h->work);
		return HRTIMER_NORESTART;
	}
	ln_hedge_put(h);
	return HRTIMER_NORESTART;
}

/* ln_hedge_read returns false when it could not start (plain read then). */
static bool ln_hedge_read(struct ln_c *lc, struct bio *orig)
{
	struct ln_hedge *h;

	if (bio_sectors(orig) == 0 || bio_sectors(orig) > (256u << 10) >> SECTOR_SHIFT)
		return false;
	h = kmalloc(sizeof(*h), GFP_NOWAIT | __GFP_NOWARN);
	if (!h) {
		cnt(lc, C_NOMEM);
		return false;
	}
	refcount_set(&h->ref, 1); /* the timer's, taken below; copies add theirs */
	atomic_set(&h->won, 0);
	h->lc = lc;
	h->orig = orig;
	h->size = orig->bi_iter.bi_size;
	INIT_WORK(&h->work, ln_hedge_work);
	hrtimer_init(&h->timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	h->timer.function = ln_hedge_timer;
	atomic_inc(&lc->hedges_alive);
	__module_get(THIS_MODULE);
	if (ln_hedge_copy(h, 0, GFP_NOIO)) {
		cnt(lc, C_NOMEM);
		ln_hedge_put(h);
		return false;
	}
	/* after the first copy is out, orig may complete at any moment: from
	 * here on only h (which holds no pointer use after won) is touched */
	hrtimer_start(&h->timer, ns_to_ktime((u64)READ_ONCE(lc->hedge_us) * 1000), HRTIMER_MODE_REL);
	return true;
}

/* ---- writes ---- */

static void ln_write_endio(struct bio *clone)
{
	struct bio *orig = clone->bi_private;
	struct ln_io *io = dm_per_bio_data(orig, sizeof(struct ln_io));
	blk_status_t st = clone->bi_status;
	unsigned int i;

	for (i = 0; i < io->lc->nr; i++) {
		if (clone->bi_bdev == io->lc->r[i].dev->bdev) {
			atomic_dec(&io->lc->r[i].pending);
			break;
		}
	}

	if (st) {
		cnt(io->lc, C_WRITE_ERRORS);
		cmpxchg(&io->status, 0, st);
	}
	bio_put(clone);
	if (atomic_dec_and_test(&io->remaining)) {
		orig->bi_status = io->status;
		bio_endio(orig);
	}
}

static int ln_write(struct ln_c *lc, struct bio *orig)
{
	struct ln_io *io = dm_per_bio_data(orig, sizeof(struct ln_io));
	unsigned int i;

	atomic_set(&io->remaining, lc->nr);
	io->status = 0;
	for (i = 0; i < lc->nr; i++) {
		struct bio *clone = bio_alloc_clone(lc->r[i].dev->bdev, orig, GFP_NOIO, &lc->bs);

		clone->bi_iter.bi_sector = dm_target_offset(lc->ti, orig->bi_iter.bi_sector);
		clone->bi_end_io = ln_write_endio;
		clone->bi_private = orig;
		atomic_inc(&lc->r[i].pending); /* LinnOS counts writes as pending */
		submit_bio_noacct(clone);
	}
	return DM_MAPIO_SUBMITTED;
}

/* ---- map ---- */

static int ln_map(struct dm_target *ti, struct bio *bio)
{
	struct ln_c *lc = ti->private;
	struct ln_io *io = dm_per_bio_data(bio, sizeof(struct ln_io));
	unsigned int i;
	int mode;

	io->lc = lc;
	io->tried = 0;
	io->pred = -1;
	io->failed_over = false;

	/* flushes and discards: dm core sends one per replica (num_*_bios) */
	if (op_is_flush(bio->bi_opf) && !bio_sectors(bio)) {
		cnt(lc, C_FLUSHES);
		bio_set_dev(bio, lc->r[dm_bio_get_target_bio_nr(bio) % lc->nr].dev->bdev);
		return DM_MAPIO_REMAPPED;
	}
	if (bio_op(bio) == REQ_OP_DISCARD || bio_op(bio) == REQ_OP_WRITE_ZEROES) {
		cnt(lc, C_DISCARDS);
		bio_set_dev(bio, lc->r[dm_bio_get_target_bio_nr(bio) % lc->nr].dev->bdev);
		bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
		return DM_MAPIO_REMAPPED;
	}
	if (bio_data_dir(bio) == WRITE) {
		cnt(lc, C_WRITES);
		return ln_write(lc, bio);
	}

	cnt(lc, C_READS);
	ln_count_read(lc);
	mode = READ_ONCE(lc->mode);
	switch (mode) {
	case LN_OFF:
		i = 0;
		break;
	case LN_HEDGE:
		if (ln_hedge_read(lc, bio))
			return DM_MAPIO_SUBMITTED;
		i = 0;
		break;
	case LN_LAKED:
		if (ln_laked_read(lc, bio))
			return DM_MAPIO_SUBMITTED;
		fallthrough;
	default:
		i = ln_fast_decide(lc, &io->pred);
		break;
	}
	ln_issue_read(lc, bio, i);
	return DM_MAPIO_SUBMITTED;
}

/* ---- models ---- */

static void ln_model_free_rcu(struct rcu_head *h)
{
	kvfree(container_of(h, struct ln_model, rcu));
}

static void ln_set_model(struct ln_c *lc, unsigned int i, struct ln_model *m)
{
	struct ln_model *old;

	old = rcu_replace_pointer(lc->r[i].model, m, lockdep_is_held(&lc->model_lock));
	if (old)
		call_rcu(&old->rcu, ln_model_free_rcu);
}

/*
 * ln_fetch fetches laked model id, validates it and returns a new model
 * (NULL and *err on failure, with the reason logged). Process context;
 * model_lock held.
 */
static struct ln_model *ln_fetch(struct ln_c *lc, u32 id, int *err)
{
	size_t cap = lake_linnos_image_size(LAKE_LINNOS_MAX_EXTRA), len = 0;
	struct ln_model *m = NULL;
	const char *why = NULL;
	u64 version = 0;
	u32 extra;
	void *img;
	int rc;

	img = kvmalloc(cap, GFP_KERNEL);
	if (!img) {
		*err = -ENOMEM;
		return NULL;
	}
	rc = lake_model_fetch(id, img, cap, &len, &version);
	if (rc) {
		DMWARN("%s: fetching laked model %u failed: %d", dm_table_device_name(lc->ti->table), id, rc);
		goto out;
	}
	if (len > cap) {
		rc = -EPROTO;
		DMWARN("laked model %u: laked reported %zu bytes for a %zu-byte buffer", id, len, cap);
		goto out;
	}
	/* img is our private copy: validated here, not re-read from laked */
	rc = lake_linnos_image_check(img, len, &extra, &why);
	if (!rc) {
		size_t ms = lake_linnos_model_size(extra);

		m = kvmalloc(sizeof(*m) + ms, GFP_KERNEL);
		if (!m) {
			rc = -ENOMEM;
			goto out;
		}
		m->m = (struct lake_linnos_model *)(m + 1);
		m->id = id;
		m->version = version;
		rc = lake_linnos_load(m->m, ms, img, len, &why);
		if (!rc && m->m->pending_unit != LAKE_LINNOS_PENDING_IOS) {
			/* the target counts I/Os, not pages */
			rc = -EOPNOTSUPP;
			why = "the model counts pending pages; dm-linnos counts pending I/Os";
		}
	}
	if (rc) {
		DMWARN("laked model %u (version %llu) refused: %s", id, version, why ? why : "invalid");
		kvfree(m);
		m = NULL;
		cnt(lc, C_MODEL_REJECTS);
		goto out;
	}
	cnt(lc, C_MODEL_INSTALLS);
	DMINFO("laked model %u version %llu installed (+%u layers, threshold %u us)", id, version, extra,
	       m->m->threshold_us);
out:
	kvfree(img);
	*err = rc;
	return m;
}

/* ln_install fetches model id for the replicas in mask (one fetch). */
static int ln_install(struct ln_c *lc, unsigned int mask, u32 id)
{
	struct ln_model *m, *first = NULL;
	unsigned int i;
	int err = 0;

	mutex_lock(&lc->model_lock);
	for (i = 0; i < lc->nr; i++) {
		if (!(mask & (1u << i)))
			continue;
		if (!id) {
			lc->r[i].model_id = 0;
			ln_set_model(lc, i, NULL);
			continue;
		}
		if (!first) {
			first = ln_fetch(lc, id, &err);
			if (!first)
				break;
			m = first;
		} else {
			size_t sz = sizeof(*m) + lake_linnos_model_size(first->m->extra);

			m = kvmalloc(sz, GFP_KERNEL);
			if (!m) {
				err = -ENOMEM;
				break;
			}
			memcpy(m, first, sz);
			m->m = (struct lake_linnos_model *)(m + 1);
		}
		lc->r[i].model_id = id;
		ln_set_model(lc, i, m);
	}
	mutex_unlock(&lc->model_lock);
	return err;
}

/*
 * ln_stats_open finds (or registers) the statistics schemas; the handles
 * are re-opened on every publication, so a registry laked left corrupt and
 * the kernel re-created is followed within one poll.
 */
static bool ln_stats_open(struct ln_c *lc)
{
	struct lake_feat_view v;
	void *mem;
	u64 size;

	if (lake_feat_kopen(LAKE_FEAT_DM_LINNOS_STATS, &lc->st_tgt) ||
	    lake_feat_kopen(LAKE_FEAT_DM_LINNOS_DEV_STATS, &lc->st_dev)) {
		mem = lake_shm_features(&size);
		/* registering writes only inside the area: lake_feat_register
		 * bounds every offset by the geometry attach validated */
		if (!mem || lake_feat_attach(&v, mem, size) ||
		    lake_feat_register_dm_linnos_stats(&v, LN_STATS_KEYS, LAKE_FEAT_KERNEL_OWNER) ||
		    lake_feat_kopen(LAKE_FEAT_DM_LINNOS_STATS, &lc->st_tgt) ||
		    lake_feat_kopen(LAKE_FEAT_DM_LINNOS_DEV_STATS, &lc->st_dev))
			return false;
	}
	/* a schema of that name with another layout is not ours to fill */
	return lake_feat_krecord_size(&lc->st_tgt) == sizeof(struct lake_feat_dm_linnos_stats) &&
	       lake_feat_krecord_size(&lc->st_dev) == sizeof(struct lake_feat_dm_linnos_dev_stats);
}

/* ln_stats_publish records the counters once (process context, model_lock
 * held): laked exports the newest record of each key on /metrics. */
static void ln_stats_publish(struct ln_c *lc)
{
	struct lake_feat_dm_linnos_stats st;
	unsigned int i;
	bool ok;

	ok = lake_shm_attached() && ln_stats_open(lc);
	if (ok) {
		memset(&st, 0, sizeof(st));
		st.reads = atomic64_read(&lc->c[C_READS]);
		st.predictions = atomic64_read(&lc->c[C_PREDICTIONS]);
		st.revokes = atomic64_read(&lc->c[C_REVOKES]);
		st.capped = atomic64_read(&lc->c[C_CAPPED]);
		st.bypassed = atomic64_read(&lc->c[C_BYPASSED]);
		st.all_slow = atomic64_read(&lc->c[C_ALL_SLOW]);
		st.fallbacks = atomic64_read(&lc->c[C_FALLBACKS]);
		st.deadline_miss = atomic64_read(&lc->c[C_DEADLINE_MISS]);
		st.laked_ok = atomic64_read(&lc->c[C_LAKED_OK]);
		st.laked_err = atomic64_read(&lc->c[C_LAKED_ERR]);
		st.laked_bad = atomic64_read(&lc->c[C_LAKED_BAD]);
		st.read_errors = atomic64_read(&lc->c[C_READ_ERRORS]);
		st.write_errors = atomic64_read(&lc->c[C_WRITE_ERRORS]);
		st.failovers = atomic64_read(&lc->c[C_FAILOVERS]);
		st.accuracy = READ_ONCE(lc->acc_last);
		st.bypass = READ_ONCE(lc->bypass) ? 1 : 0;
		ok = !lake_feat_krecord(&lc->st_tgt, lc->stats_key, &st, sizeof(st));
	}
	for (i = 0; ok && i < lc->nr; i++) {
		struct ln_replica *r = &lc->r[i];
		struct lake_feat_dm_linnos_dev_stats d;
		struct ln_model *m = rcu_dereference_protected(r->model, lockdep_is_held(&lc->model_lock));

		memset(&d, 0, sizeof(d));
		d.reads = atomic64_read(&r->reads);
		d.errors = atomic64_read(&r->errors);
		d.version = m ? m->version : 0;
		d.pending = (u32)atomic_read(&r->pending);
		d.model = m ? m->id : 0;
		ok = !lake_feat_krecord(&lc->st_dev, r->key, &d, sizeof(d));
	}
	WRITE_ONCE(lc->stats_ok, ok);
}

/* the poll work: re-fetch models whose laked version changed, open the
 * feature registry schemas once laked has registered them, publish the
 * statistics */
static void ln_poll(struct work_struct *w)
{
	struct ln_c *lc = container_of(to_delayed_work(w), struct ln_c, poll);
	unsigned int i;

	if (!READ_ONCE(lc->feat_ok) && lake_shm_attached() &&
	    lake_feat_kopen("linnos.arrival", &lc->feat_arr) == 0 &&
	    lake_feat_kopen("linnos.completion", &lc->feat_comp) == 0 &&
	    lake_feat_krecord_size(&lc->feat_arr) == 8 &&
	    lake_feat_krecord_size(&lc->feat_comp) == sizeof(struct lake_feat_linnos_completion))
		WRITE_ONCE(lc->feat_ok, true);

	mutex_lock(&lc->model_lock);
	for (i = 0; i < lc->nr && lake_shm_attached(); i++) {
		struct ln_replica *r = &lc->r[i];
		struct ln_model *cur, *m;
		u32 in_b, out_b;
		u64 ver;
		int err;

		if (!r->model_id)
			continue;
		if (lake_model_info(r->model_id, &in_b, &out_b, &ver))
			continue;
		cur = rcu_dereference_protected(r->model, lockdep_is_held(&lc->model_lock));
		if (cur && cur->version == ver)
			continue;
		m = ln_fetch(lc, r->model_id, &err);
		if (m)
			ln_set_model(lc, i, m);
	}
	ln_stats_publish(lc);
	mutex_unlock(&lc->model_lock);
	queue_delayed_work(lc->wq, &lc->poll, msecs_to_jiffies(LN_POLL_MS));
}

/* ---- table and messages ---- */

static int ln_set_option(struct ln_c *lc, const char *key, const char *val, char **error)
{
	static const struct {
		const char *name;
		size_t off;
		u32 min, max;
	} opts[] = {
		{ "deadline_us", offsetof(struct ln_c, deadline_us), 1, 1000000 },
		{ "hedge_us", offsetof(struct ln_c, hedge_us), 1, 10000000 },
		{ "slow_us", offsetof(struct ln_c, slow_us), 0, 100000000 },
		{ "revoke_cap", offsetof(struct ln_c, revoke_cap), 0, 1000 },
		{ "acc_min", offsetof(struct ln_c, acc_min), 0, 1000 },
		{ "laked_model", offsetof(struct ln_c, laked_model), 1, U32_MAX },
		{ "hist_ttl_us", offsetof(struct ln_c, hist_ttl_us), 0, 60000000 },
	};
	unsigned int i;
	u32 v;

	if (!strcmp(key, "all_slow_to")) {
		if (strcmp(val, "primary") && strcmp(val, "least")) {
			*error = "linnos: all_slow_to must be primary or least";
			return -EINVAL;
		}
		WRITE_ONCE(lc->all_slow_least, !strcmp(val, "least"));
		return 0;
	}
	if (!strcmp(key, "mode")) {
		for (i = 0; i < LN_NR_MODES; i++) {
			if (!strcmp(val, ln_mode_names[i])) {
				WRITE_ONCE(lc->mode, (int)i);
				return 0;
			}
		}
		*error = "linnos: mode must be off, fast, laked or hedge";
		return -EINVAL;
	}
	for (i = 0; i < ARRAY_SIZE(opts); i++) {
		if (strcmp(key, opts[i].name))
			continue;
		if (kstrtou32(val, 10, &v) || v < opts[i].min || v > opts[i].max) {
			*error = "linnos: option value is not a number in its range (see dm-linnos.c)";
			return -EINVAL;
		}
		WRITE_ONCE(*(u32 *)((char *)lc + opts[i].off), v);
		if (!strcmp(key, "acc_min") && v == 0)
			WRITE_ONCE(lc->bypass, false);
		return 0;
	}
	*error = "linnos: unknown option (mode, deadline_us, hedge_us, slow_us, revoke_cap, acc_min, laked_model, hist_ttl_us, all_slow_to)";
	return -EINVAL;
}

static void ln_put_devs(struct ln_c *lc)
{
	unsigned int i;

	for (i = 0; i < lc->nr; i++)
		if (lc->r[i].dev)
			dm_put_device(lc->ti, lc->r[i].dev);
}

/* linnos DEV0 DEV1 [DEV2 [DEV3]] [key=value ...] */
static int ln_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct ln_c *lc;
	unsigned int i, ndev = 0;
	int err;

	while (ndev < argc && !strchr(argv[ndev], '='))
		ndev++;
	if (ndev < 2 || ndev > LN_MAX_REPLICAS) {
		ti->error = "linnos: want 2 to 4 replica devices, then key=value options";
		return -EINVAL;
	}
	lc = kzalloc(sizeof(*lc), GFP_KERNEL);
	if (!lc) {
		ti->error = "linnos: out of memory";
		return -ENOMEM;
	}
	lc->ti = ti;
	lc->mode = LN_FAST;
	lc->deadline_us = 50;
	lc->hedge_us = 2000;
	lc->revoke_cap = 300;
	lc->laked_model = 1;
	lc->hist_ttl_us = 1000000;
	lc->acc_last = -1;
	mutex_init(&lc->model_lock);
	spin_lock_init(&lc->retry_lock);
	bio_list_init(&lc->retry);
	INIT_WORK(&lc->retry_work, ln_retry_work);
	INIT_DELAYED_WORK(&lc->poll, ln_poll);
	for (i = ndev; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		*eq = '\0';
		err = ln_set_option(lc, argv[i], eq + 1, &ti->error);
		*eq = '=';
		if (err)
			goto bad;
	}
	for (i = 0; i < ndev; i++) {
		struct ln_replica *r = &lc->r[i];

		err = dm_get_device(ti, argv[i], dm_table_get_mode(ti->table), &r->dev);
		if (err) {
			ti->error = "linnos: cannot open a replica device";
			goto bad;
		}
		lc->nr = i + 1;
		if (bdev_nr_sectors(r->dev->bdev) < ti->begin + ti->len) {
			ti->error = "linnos: a replica is smaller than the target";
			err = -EINVAL;
			goto bad;
		}
		r->key = r->dev->bdev->bd_dev; /* MAJOR << 20 | MINOR, what laked's retrain.linnos_devices names */
		spin_lock_init(&r->lock);
	}
	/* the statistics key: the mapped device's number (a target that does
	 * not start at sector 0 adds its start, capped, in the high half) */
	lc->stats_key = disk_devt(dm_disk(dm_table_get_md(ti->table))) |
			((u64)min_t(sector_t, ti->begin, U32_MAX) << 32);
	err = bioset_init(&lc->bs, BIO_POOL_SIZE, 0, BIOSET_NEED_BVECS);
	if (err) {
		ti->error = "linnos: cannot create the bio set";
		goto bad;
	}
	lc->wq = alloc_workqueue("dm-linnos", WQ_MEM_RECLAIM, 0);
	if (!lc->wq) {
		ti->error = "linnos: cannot create the workqueue";
		err = -ENOMEM;
		goto bad_bs;
	}
	ti->private = lc;
	ti->per_io_data_size = sizeof(struct ln_io);
	ti->num_flush_bios = lc->nr;
	ti->num_discard_bios = lc->nr;
	ti->num_write_zeroes_bios = lc->nr;
	queue_delayed_work(lc->wq, &lc->poll, msecs_to_jiffies(LN_POLL_MS));
	return 0;
bad_bs:
	bioset_exit(&lc->bs);
bad:
	ln_put_devs(lc);
	kfree(lc);
	return err;
}

static void ln_dtr(struct dm_target *ti)
{
	struct ln_c *lc = ti->private;
	unsigned int i;

	cancel_delayed_work_sync(&lc->poll);
	/* hedge copies that lost may still be in flight */
	wait_var_event(&lc->hedges_alive, !atomic_read(&lc->hedges_alive));
	destroy_workqueue(lc->wq);
	mutex_lock(&lc->model_lock);
	for (i = 0; i < lc->nr; i++)
		ln_set_model(lc, i, NULL);
	mutex_unlock(&lc->model_lock);
	rcu_barrier(); /* the models' call_rcu frees */
	bioset_exit(&lc->bs);
	ln_put_devs(lc);
	kfree(lc);
}

static int ln_message(struct dm_target *ti, unsigned int argc, char **argv, char *result,
		      unsigned int maxlen)
{
	struct ln_c *lc = ti->private;
	unsigned int i, mask;
	u32 id;
	int err;

	if (argc == 1 && !strcmp(argv[0], "reset")) {
		for (i = 0; i < C_NR; i++)
			atomic64_set(&lc->c[i], 0);
		atomic64_set(&lc->laked_ns, 0);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[0], "model")) {
		if (!strcmp(argv[1], "all")) {
			mask = (1u << lc->nr) - 1;
		} else if (!kstrtouint(argv[1], 10, &i) && i < lc->nr) {
			mask = 1u << i;
		} else {
			DMWARN("model: replica must be 0..%u or all", lc->nr - 1);
			return -EINVAL;
		}
		if (!strcmp(argv[2], "none")) {
			id = 0;
		} else if (kstrtou32(argv[2], 10, &id) || !id) {
			DMWARN("model: the laked model id must be a positive number or none");
			return -EINVAL;
		}
		err = ln_install(lc, mask, id);
		if (err)
			scnprintf(result, maxlen, "model %s: error %d (see the kernel log)", argv[2], err);
		return err;
	}
	if (argc == 2) {
		char *error = NULL;

		err = ln_set_option(lc, argv[0], argv[1], &error);
		if (err)
			DMWARN("%s", error);
		return err;
	}
	DMWARN("unknown message (mode, deadline_us, hedge_us, slow_us, revoke_cap, acc_min, laked_model, hist_ttl_us, all_slow_to, model, reset)");
	return -EINVAL;
}

static void ln_status(struct dm_target *ti, status_type_t type, unsigned int status_flags, char *result,
		      unsigned int maxlen)
{
	struct ln_c *lc = ti->private;
	unsigned int sz = 0, i;

	switch (type) {
	case STATUSTYPE_INFO:
		DMEMIT("mode=%s bypass=%d accuracy=%d laked_us=%lld", ln_mode_names[READ_ONCE(lc->mode)],
		       READ_ONCE(lc->bypass) ? 1 : 0, READ_ONCE(lc->acc_last),
		       (long long)atomic64_read(&lc->laked_ns) / 1000);
		for (i = 0; i < C_NR; i++)
			DMEMIT(" %s=%llu", ln_counter_names[i], (unsigned long long)atomic64_read(&lc->c[i]));
		rcu_read_lock();
		for (i = 0; i < lc->nr; i++) {
			struct ln_model *m = rcu_dereference(lc->r[i].model);

			DMEMIT(" r%u=%s,reads=%llu,errors=%llu,pending=%d,model=%u,version=%llu,extra=%d", i,
			       lc->r[i].dev->name, (unsigned long long)atomic64_read(&lc->r[i].reads),
			       (unsigned long long)atomic64_read(&lc->r[i].errors), atomic_read(&lc->r[i].pending),
			       m ? m->id : 0, m ? (unsigned long long)m->version : 0ull, m ? (int)m->m->extra : -1);
		}
		rcu_read_unlock();
		DMEMIT(" features=%d stats=%d", READ_ONCE(lc->feat_ok) ? 1 : 0, READ_ONCE(lc->stats_ok) ? 1 : 0);
		break;
	case STATUSTYPE_TABLE:
		for (i = 0; i < lc->nr; i++)
			DMEMIT("%s ", lc->r[i].dev->name);
		DMEMIT("mode=%s deadline_us=%u hedge_us=%u slow_us=%u revoke_cap=%u acc_min=%u laked_model=%u hist_ttl_us=%u all_slow_to=%s",
		       ln_mode_names[READ_ONCE(lc->mode)], lc->deadline_us, lc->hedge_us, lc->slow_us, lc->revoke_cap,
		       lc->acc_min, lc->laked_model, lc->hist_ttl_us, READ_ONCE(lc->all_slow_least) ? "least" : "primary");
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

static int ln_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct ln_c *lc = ti->private;
	unsigned int i;
	int ret = 0;

	for (i = 0; !ret && i < lc->nr; i++)
		ret = fn(ti, lc->r[i].dev, ti->begin, ti->len, data);
	return ret;
}

static struct target_type ln_target = {
	.name = "linnos",
	.version = { 1, 0, 0 },
	.module = THIS_MODULE,
	.ctr = ln_ctr,
	.dtr = ln_dtr,
	.map = ln_map,
	.status = ln_status,
	.message = ln_message,
	.iterate_devices = ln_iterate_devices,
};

static int __init ln_init(void)
{
	return dm_register_target(&ln_target);
}

static void __exit ln_exit(void)
{
	dm_unregister_target(&ln_target);
}

module_init(ln_init);
module_exit(ln_exit);
MODULE_DESCRIPTION("device-mapper read mirror steered by LinnOS predictions (lake)");
MODULE_LICENSE("GPL");
