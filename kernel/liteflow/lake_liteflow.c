// SPDX-License-Identifier: GPL-2.0
/*
 * lake_liteflow.ko - LiteFlow snapshots on the kernel datapath; the API is
 * in kernel/include/lake_liteflow.h, the engine in
 * lakelib/include/lake_snapshot.h (host-tested bit-exact against the Go
 * engine by liteflow/snapshot/c_engine_test.go).
 *
 * What it trusts: nothing that comes from laked. Every image is copied into
 * module memory by lake_model_fetch, validated and built into a private
 * copy (lake_snap_build) before any query sees it; a refused image leaves
 * the active snapshot in place.
 *
 * Concurrency: an app's active snapshot is an RCU pointer. Queries run in
 * an RCU read section and never take a lock other than their flow-cache
 * set's spinlock (held for a lookup, never during inference, never by
 * lf_install). A snapshot holds one reference for being active and one
 * per flow pinned to it; the last put frees it after a grace period, so a
 * query that found it keeps a whole, unchanging model until it is done.
 *
 * Scratch: each snapshot gets per-CPU scratch at install time, sized for
 * it (2 * max_width + out_dim int32s; up to the format's
 * LAKE_SNAP_MAX_WIDTH), so queries of any width use no stack for
 * activations. A query holds its CPU's scratch with local interrupts off
 * (the collector, the run and the enforcer), so a query from an
 * interrupt cannot reuse scratch a query it interrupted is using. Queries
 * from NMI context are not supported.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/spinlock.h>
#include <linux/mutex.h>
#include <linux/list.h>
#include <linux/hash.h>
#include <linux/jiffies.h>
#include <linux/workqueue.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/ktime.h>
#include <linux/err.h>

#include "lake_kapi.h"
#include "lake_snapshot.h"
#include "lake_liteflow.h"

static unsigned int poll_ms = 1000;
module_param(poll_ms, uint, 0644);
MODULE_PARM_DESC(poll_ms, "how often the model versions of apps are polled (ms; 0 stops polling)");

static unsigned int flow_ttl_ms = 10000;
module_param(flow_ttl_ms, uint, 0644);
MODULE_PARM_DESC(flow_ttl_ms, "a flow idle this long restarts on the active snapshot (ms)");

#define LF_SET_BITS 8
#define LF_SETS (1u << LF_SET_BITS)
#define LF_WAYS 4
#define LF_HIST 8
#define LF_MAX_IMAGE (256u << 10)

struct lf_snap {
	refcount_t ref; /* one for being active, one per pinned flow */
	struct rcu_head rcu;
	u64 version;
	struct lake_snap *s; /* in mem */
	void *mem;
	s32 __percpu *scratch; /* 2 * max_width + out_dim words per CPU */
};

struct lf_flow {
	u64 id;
	struct lf_snap *snap; /* NULL: free way */
	unsigned long last;   /* jiffies of the last query */
};

struct lf_set {
	spinlock_t lock;
	struct lf_flow way[LF_WAYS];
};

struct lf_hist {
	u64 seq, version, generation;
	u32 crc, len;
	int err;
	s64 at_ms; /* ktime_get_real, ms */
	char why[96];
};

struct lf_app {
	struct list_head node;
	char name[LF_NAME_LEN];
	u32 model, in_dim, out_dim;
	struct lf_snap __rcu *active;
	struct mutex install_lock; /* serialises installs; queries never take it */
	lf_input_fn input;
	lf_output_fn output;
	struct lf_set *sets;
	atomic64_t queries, pinned, nodata, newflows, evictions, expired, records, record_err;
	/* under install_lock */
	u64 installs, refused, nhist;
	struct lf_hist hist[LF_HIST];
	/* poller (under lf_apps_lock) */
	u64 polled_version;
	int poll_err;
	bool feat_ready; /* smp_store_release once feat is open */
	struct lake_feat_khandle feat;
};

static LIST_HEAD(lf_apps);
static DEFINE_MUTEX(lf_apps_lock);
static struct delayed_work lf_poll_work;
static bool lf_stopping;

static void lf_snap_free_rcu(struct rcu_head *h)
{
	struct lf_snap *sn = container_of(h, struct lf_snap, rcu);

	free_percpu(sn->scratch);
	kvfree(sn->mem);
	kfree(sn);
}

static void lf_snap_put(struct lf_snap *sn)
{
	if (sn && refcount_dec_and_test(&sn->ref))
		call_rcu(&sn->rcu, lf_snap_free_rcu);
}

static bool lf_name_ok(const char *n)
{
	size_t i, len;

	if (!n)
		return false;
	len = strnlen(n, LF_NAME_LEN);
	if (len == 0 || len >= LF_NAME_LEN)
		return false;
	for (i = 0; i < len; i++) {
		char c = n[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

struct lf_app *lf_register_model(const struct lf_app_desc *d)
{
	struct lf_app *app, *a;
	u32 i;

	BUILD_BUG_ON(LF_MAX_WIDTH != LAKE_SNAP_MAX_WIDTH);
	if (!d || !lf_name_ok(d->name) || d->in_dim < 1 || d->in_dim > LF_MAX_WIDTH ||
	    d->out_dim < 1 || d->out_dim > LF_MAX_WIDTH)
		return ERR_PTR(-EINVAL);
	app = kzalloc(sizeof(*app), GFP_KERNEL);
	if (!app)
		return ERR_PTR(-ENOMEM);
	app->sets = kvcalloc(LF_SETS, sizeof(*app->sets), GFP_KERNEL);
	if (!app->sets) {
		kfree(app);
		return ERR_PTR(-ENOMEM);
	}
	for (i = 0; i < LF_SETS; i++)
		spin_lock_init(&app->sets[i].lock);
	strscpy(app->name, d->name, sizeof(app->name));
	app->model = d->lake_model;
	app->in_dim = d->in_dim;
	app->out_dim = d->out_dim;
	mutex_init(&app->install_lock);
	mutex_lock(&lf_apps_lock);
	list_for_each_entry(a, &lf_apps, node) {
		if (!strcmp(a->name, app->name)) {
			mutex_unlock(&lf_apps_lock);
			kvfree(app->sets);
			kfree(app);
			return ERR_PTR(-EEXIST);
		}
	}
	list_add_tail(&app->node, &lf_apps);
	mutex_unlock(&lf_apps_lock);
	pr_info("lake_liteflow: app %s registered (model %u, %u -> %u)\n", app->name, app->model,
		app->in_dim, app->out_dim);
	if (app->model && poll_ms)
		mod_delayed_work(system_wq, &lf_poll_work, 0);
	return app;
}
EXPORT_SYMBOL_GPL(lf_register_model);

void lf_unregister_model(struct lf_app *app)
{
	u32 i, w;

	if (IS_ERR_OR_NULL(app))
		return;
	mutex_lock(&lf_apps_lock);
	list_del(&app->node);
	mutex_unlock(&lf_apps_lock);
	/* queries that started before are in RCU read sections */
	synchronize_rcu();
	for (i = 0; i < LF_SETS; i++) {
		for (w = 0; w < LF_WAYS; w++) {
			lf_snap_put(app->sets[i].way[w].snap);
			app->sets[i].way[w].snap = NULL;
		}
	}
	mutex_lock(&app->install_lock);
	lf_snap_put(rcu_dereference_protected(app->active, lockdep_is_held(&app->install_lock)));
	RCU_INIT_POINTER(app->active, NULL);
	mutex_unlock(&app->install_lock);
	pr_info("lake_liteflow: app %s unregistered\n", app->name);
	kvfree(app->sets);
	kfree(app);
}
EXPORT_SYMBOL_GPL(lf_unregister_model);

int lf_register_io(struct lf_app *app, lf_input_fn input, lf_output_fn output)
{
	if (IS_ERR_OR_NULL(app) || !input || !output)
		return -EINVAL;
	WRITE_ONCE(app->input, input);
	WRITE_ONCE(app->output, output);
	return 0;
}
EXPORT_SYMBOL_GPL(lf_register_io);

/* lf_flow_snap returns the snapshot flow is pinned to, pinning it to the
 * active one if it is new. Called in an RCU read section; the result stays
 * valid until the section ends. */
static struct lf_snap *lf_flow_snap(struct lf_app *app, u64 flow, bool *pinned)
{
	struct lf_set *set = &app->sets[hash_64(flow, LF_SET_BITS)];
	unsigned long now = jiffies, ttl = msecs_to_jiffies(READ_ONCE(flow_ttl_ms)), flags;
	struct lf_snap *sn = NULL, *drop = NULL, *drop2 = NULL, *act;
	struct lf_flow *victim = NULL;
	u32 w;

	spin_lock_irqsave(&set->lock, flags);
	for (w = 0; w < LF_WAYS; w++) {
		struct lf_flow *f = &set->way[w];

		if (!f->snap || f->id != flow)
			continue;
		if (time_after(now, f->last + ttl)) {
			drop = f->snap;
			f->snap = NULL;
			atomic64_inc(&app->expired);
			break;
		}
		f->last = now;
		sn = f->snap;
		*pinned = true;
		goto out;
	}
	act = rcu_dereference(app->active);
	if (!act)
		goto out;
	sn = act;
	if (!refcount_inc_not_zero(&act->ref))
		goto out; /* being replaced right now: answer unpinned */
	for (w = 0; w < LF_WAYS; w++) {
		struct lf_flow *f = &set->way[w];

		if (!f->snap) {
			victim = f;
			break;
		}
		if (time_after(now, f->last + ttl)) {
			victim = f;
			atomic64_inc(&app->expired);
			break;
		}
		if (!victim || time_before(f->last, victim->last))
			victim = f;
	}
	if (victim->snap) {
		if (!time_after(now, victim->last + ttl))
			atomic64_inc(&app->evictions);
		drop2 = victim->snap;
	}
	victim->id = flow;
	victim->snap = act;
	victim->last = now;
	atomic64_inc(&app->newflows);
out:
	spin_unlock_irqrestore(&set->lock, flags);
	lf_snap_put(drop);
	lf_snap_put(drop2);
	return sn;
}

static void lf_fill_answer(const struct lf_snap *sn, bool pinned, struct lf_answer *ans)
{
	const struct lake_snap *s = sn->s;

	ans->version = sn->version;
	ans->generation = s->generation;
	ans->in_scale_bits = s->in_scale_bits;
	ans->in_zero = s->in_zero;
	ans->out_scale_bits = s->out_scale_bits;
	ans->out_zero = s->out_zero;
	ans->lo = s->lo;
	ans->hi = s->hi;
	ans->pinned = pinned;
}

/* lf_answer_one finds the snapshot answering flow, lets input fill the
 * inputs for it (when input is set; else q_in is used), runs it, fills ans
 * and, when output is set, calls it with the answer (else the answer is
 * copied to q_out). The collector and the enforcer run in the RCU read
 * section with local interrupts off (they use this CPU's scratch of the
 * answering snapshot), so the collector quantizes for exactly the
 * snapshot that answers (a pinned flow's may differ from the active one). */
static int lf_answer_one(struct lf_app *app, u64 flow, lf_input_fn input, lf_output_fn output,
			 void *ctx, const s32 *q_in, s32 *q_out, struct lf_answer *ans)
{
	struct lf_snap *sn;
	bool pinned = false;
	unsigned long flags;
	s32 *scratch, *out;
	int err = 0;

	atomic64_inc(&app->queries);
	rcu_read_lock();
	sn = flow ? lf_flow_snap(app, flow, &pinned) : rcu_dereference(app->active);
	if (!sn) {
		rcu_read_unlock();
		atomic64_inc(&app->nodata);
		if (output)
			output(ctx, -ENODATA, NULL, NULL);
		return -ENODATA;
	}
	if (pinned)
		atomic64_inc(&app->pinned);
	lf_fill_answer(sn, pinned, ans);
	local_irq_save(flags);
	/* the inputs are staged in the first half of scratch: lake_snap_run
	 * copies q_in[i] to scratch[i] first, so they may alias */
	scratch = this_cpu_ptr(sn->scratch);
	out = scratch + lake_snap_scratch_words(sn->s);
	if (input) {
		err = input(ctx, ans, scratch);
		q_in = scratch;
	}
	if (!err)
		lake_snap_run(sn->s, q_in, output ? out : q_out, scratch);
	if (output)
		output(ctx, err, err ? NULL : ans, err ? NULL : out);
	local_irq_restore(flags);
	rcu_read_unlock();
	return err;
}

int lf_query_model(struct lf_app *app, u64 flow, const s32 *q_in, s32 *q_out, struct lf_answer *ans)
{
	struct lf_answer a;

	if (unlikely(!app || !q_in || !q_out))
		return -EINVAL;
	return lf_answer_one(app, flow, NULL, NULL, NULL, q_in, q_out, ans ? ans : &a);
}
EXPORT_SYMBOL_GPL(lf_query_model);

int lf_process(struct lf_app *app, u64 flow, void *ctx)
{
	struct lf_answer ans = {};
	lf_input_fn input;
	lf_output_fn output;

	if (unlikely(!app))
		return -EINVAL;
	input = READ_ONCE(app->input);
	output = READ_ONCE(app->output);
	if (!input || !output)
		return -EINVAL;
	return lf_answer_one(app, flow, input, output, ctx, NULL, NULL, &ans);
}
EXPORT_SYMBOL_GPL(lf_process);

void lf_flow_end(struct lf_app *app, u64 flow)
{
	struct lf_set *set;
	struct lf_snap *drop = NULL;
	unsigned long flags;
	u32 w;

	if (!app || !flow)
		return;
	set = &app->sets[hash_64(flow, LF_SET_BITS)];
	spin_lock_irqsave(&set->lock, flags);
	for (w = 0; w < LF_WAYS; w++) {
		if (set->way[w].snap && set->way[w].id == flow) {
			drop = set->way[w].snap;
			set->way[w].snap = NULL;
			break;
		}
	}
	spin_unlock_irqrestore(&set->lock, flags);
	lf_snap_put(drop);
}
EXPORT_SYMBOL_GPL(lf_flow_end);

static void lf_hist_add(struct lf_app *app, u64 version, const void *img, size_t len, int err,
			const char *why)
{
	struct lf_hist *h = &app->hist[app->nhist % LF_HIST];
	const u8 *b = img;

	memset(h, 0, sizeof(*h));
	h->seq = ++app->nhist;
	h->version = version;
	h->len = (u32)min_t(size_t, len, U32_MAX);
	if (len >= LAKE_SNAP_HEADER_SIZE + LAKE_SNAP_TRAILER) {
		h->generation = lake_snap__le64(b + 16);
		h->crc = lake_snap__le32(b + len - LAKE_SNAP_TRAILER);
	}
	h->err = err;
	h->at_ms = ktime_to_ms(ktime_get_real());
	strscpy(h->why, why ? why : "", sizeof(h->why));
}

int lf_install(struct lf_app *app, const void *img, size_t len, u64 version, char *why, size_t whylen)
{
	char reason[128] = "";
	struct lf_snap *sn = NULL, *old;
	struct lake_snap *s;
	void *mem = NULL;
	size_t need;
	int err;

	might_sleep();
	if (!app)
		return -EINVAL;
	err = lake_snap_check(img, len, &need, reason, sizeof(reason));
	if (err)
		goto refuse;
	mem = kvmalloc(need, GFP_KERNEL);
	sn = kzalloc(sizeof(*sn), GFP_KERNEL);
	if (!mem || !sn) {
		err = -ENOMEM;
		snprintf(reason, sizeof(reason), "no memory for %zu bytes", need);
		goto refuse;
	}
	err = lake_snap_build(img, len, mem, need, &s, reason, sizeof(reason));
	if (err)
		goto refuse;
	if (s->in_dim != app->in_dim || s->out_dim != app->out_dim) {
		err = -E2BIG;
		snprintf(reason, sizeof(reason), "snapshot is %u -> %u, app %s is %u -> %u", s->in_dim,
			 s->out_dim, app->name, app->in_dim, app->out_dim);
		goto refuse;
	}
	/* the format bounds max_width (LAKE_SNAP_MAX_WIDTH): scratch per CPU */
	sn->scratch = __alloc_percpu(sizeof(s32) * (lake_snap_scratch_words(s) + s->out_dim), sizeof(s32));
	if (!sn->scratch) {
		err = -ENOMEM;
		snprintf(reason, sizeof(reason), "no memory for per-CPU scratch (width %u)", s->max_width);
		goto refuse;
	}
	refcount_set(&sn->ref, 1);
	sn->version = version;
	sn->s = s;
	sn->mem = mem;
	mutex_lock(&app->install_lock);
	old = rcu_dereference_protected(app->active, lockdep_is_held(&app->install_lock));
	rcu_assign_pointer(app->active, sn);
	app->installs++;
	lf_hist_add(app, version, img, len, 0, "");
	mutex_unlock(&app->install_lock);
	lf_snap_put(old);
	pr_info_ratelimited("lake_liteflow: app %s: installed version %llu (generation %llu, %zu bytes, crc %08x)\n",
		app->name, version, s->generation, len, s->image_crc);
	return 0;
refuse:
	if (sn)
		free_percpu(sn->scratch);
	kvfree(mem);
	kfree(sn);
	mutex_lock(&app->install_lock);
	app->refused++;
	lf_hist_add(app, version, img, len, err, reason);
	mutex_unlock(&app->install_lock);
	pr_warn_ratelimited("lake_liteflow: app %s: refused snapshot version %llu: %s (err %d); the active snapshot stays\n",
		app->name, version, reason, err);
	if (why && whylen)
		strscpy(why, reason, whylen);
	return err;
}
EXPORT_SYMBOL_GPL(lf_install);

int lf_record(struct lf_app *app, u64 key, const void *rec, u32 size)
{
	int err;

	if (!app || !rec)
		return -EINVAL;
	if (!smp_load_acquire(&app->feat_ready))
		return -ENOENT;
	err = lake_feat_krecord(&app->feat, key, rec, size);
	if (err)
		atomic64_inc(&app->record_err);
	else
		atomic64_inc(&app->records);
	return err;
}
EXPORT_SYMBOL_GPL(lf_record);

u32 lf_record_size(struct lf_app *app)
{
	if (!app || !smp_load_acquire(&app->feat_ready))
		return 0;
	return lake_feat_krecord_size(&app->feat);
}
EXPORT_SYMBOL_GPL(lf_record_size);

u64 lf_active_version(struct lf_app *app)
{
	struct lf_snap *sn;
	u64 v = 0;

	rcu_read_lock();
	sn = rcu_dereference(app->active);
	if (sn)
		v = sn->version;
	rcu_read_unlock();
	return v;
}
EXPORT_SYMBOL_GPL(lf_active_version);

/* lf_poll_app fetches app's model when laked's version changed. */
static void lf_poll_app(struct lf_app *app)
{
	size_t len = 16u << 10, got = 0;
	u32 in_b, out_b;
	u64 ver = 0, fver = 0;
	void *buf;
	int err, tries;

	if (!smp_load_acquire(&app->feat_ready)) {
		char schema[LF_NAME_LEN + 16];

		snprintf(schema, sizeof(schema), "liteflow.%s", app->name);
		if (lake_feat_kopen(schema, &app->feat) == 0) {
			smp_store_release(&app->feat_ready, true);
			pr_info("lake_liteflow: app %s records into %s\n", app->name, schema);
		}
	}
	if (!app->model)
		return;
	err = lake_model_info(app->model, &in_b, &out_b, &ver);
	if (err) {
		if (err != app->poll_err)
			pr_info("lake_liteflow: app %s: model %u info: %d\n", app->name, app->model, err);
		app->poll_err = err;
		return;
	}
	if (ver == app->polled_version)
		return;
	for (tries = 0; tries < 3; tries++) {
		buf = kvmalloc(len, GFP_KERNEL);
		if (!buf)
			return;
		err = lake_model_fetch(app->model, buf, len, &got, &fver);
		if (err == -EMSGSIZE && got > len && got <= LF_MAX_IMAGE) {
			kvfree(buf);
			len = got;
			continue;
		}
		break;
	}
	if (err) {
		if (err != app->poll_err)
			pr_warn("lake_liteflow: app %s: fetching model %u: %d (needs %zu bytes)\n", app->name,
				app->model, err, got);
		app->poll_err = err;
		if (err == -EMSGSIZE || err == -EOPNOTSUPP)
			app->polled_version = ver; /* do not refetch until it changes */
		kvfree(buf);
		return;
	}
	app->poll_err = 0;
	/* a refused image is not refetched until laked changes the model */
	app->polled_version = fver;
	lf_install(app, buf, min(got, len), fver, NULL, 0);
	kvfree(buf);
}

static void lf_poll(struct work_struct *w)
{
	struct lf_app *app;
	unsigned int ms = READ_ONCE(poll_ms);

	mutex_lock(&lf_apps_lock);
	list_for_each_entry(app, &lf_apps, node)
		lf_poll_app(app);
	if (!lf_stopping && ms)
		mod_delayed_work(system_wq, &lf_poll_work, msecs_to_jiffies(ms));
	mutex_unlock(&lf_apps_lock);
}

static int lf_show(struct seq_file *m, void *v)
{
	struct lf_app *app;
	u64 i;

	mutex_lock(&lf_apps_lock);
	list_for_each_entry(app, &lf_apps, node) {
		struct lf_snap *sn;
		u64 ver = 0, gen = 0;
		u32 crc = 0;

		rcu_read_lock();
		sn = rcu_dereference(app->active);
		if (sn) {
			ver = sn->version;
			gen = sn->s->generation;
			crc = sn->s->image_crc;
		}
		rcu_read_unlock();
		mutex_lock(&app->install_lock);
		seq_printf(m,
			   "app %s model %u in %u out %u active_version %llu generation %llu crc %08x installs %llu refused %llu queries %lld pinned %lld nodata %lld newflows %lld evictions %lld expired %lld records %lld record_errors %lld poll_err %d\n",
			   app->name, app->model, app->in_dim, app->out_dim, ver, gen, crc, app->installs,
			   app->refused, (s64)atomic64_read(&app->queries), (s64)atomic64_read(&app->pinned),
			   (s64)atomic64_read(&app->nodata), (s64)atomic64_read(&app->newflows),
			   (s64)atomic64_read(&app->evictions), (s64)atomic64_read(&app->expired),
			   (s64)atomic64_read(&app->records), (s64)atomic64_read(&app->record_err),
			   app->poll_err);
		for (i = app->nhist > LF_HIST ? app->nhist - LF_HIST : 0; i < app->nhist; i++) {
			const struct lf_hist *h = &app->hist[i % LF_HIST];

			seq_printf(m, "install %s seq %llu version %llu generation %llu crc %08x bytes %u at_ms %lld %s%s\n",
				   app->name, h->seq, h->version, h->generation, h->crc, h->len, h->at_ms,
				   h->err ? "refused " : "ok", h->err ? h->why : "");
		}
		mutex_unlock(&app->install_lock);
	}
	mutex_unlock(&lf_apps_lock);
	return 0;
}

static int __init lf_init(void)
{
	INIT_DELAYED_WORK(&lf_poll_work, lf_poll);
	if (!proc_create_single("lake_liteflow", 0444, NULL, lf_show))
		return -ENOMEM;
	if (poll_ms)
		schedule_delayed_work(&lf_poll_work, msecs_to_jiffies(poll_ms));
	pr_info("lake_liteflow: loaded (poll %u ms, flow ttl %u ms)\n", poll_ms, flow_ttl_ms);
	return 0;
}

static void __exit lf_exit(void)
{
	mutex_lock(&lf_apps_lock);
	lf_stopping = true;
	mutex_unlock(&lf_apps_lock);
	cancel_delayed_work_sync(&lf_poll_work);
	remove_proc_entry("lake_liteflow", NULL);
	rcu_barrier(); /* snapshots freed by call_rcu */
}

module_init(lf_init);
module_exit(lf_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lake: LiteFlow integer snapshots on the kernel datapath, installed by laked");
