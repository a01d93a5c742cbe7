// SPDX-License-Identifier: GPL-2.0
/*
 * lake_lftest.ko - on load, checks lake_liteflow.ko and prints one line per
 * step:
 *
 *   lake_lftest: PASS <step>
 *   lake_lftest: FAIL <step> err=<errno> <detail>
 *   lake_lftest: DONE pass=<n> fail=<m>
 *
 * mode=run (default), no laked needed: an app with no snapshot answers
 * -ENODATA; hand-checkable snapshots (built here, byte by byte) install
 * and answer exactly, 300- and 1024-wide ones included; corrupt,
 * mis-shaped and too-wide (beyond the format) images are refused
 * with the reason and the old snapshot keeps answering; a flow stays on
 * the snapshot it started with until it ends; lf_process calls the
 * collector and the enforcer (and the fallback without a snapshot); then
 * a stress run: query threads and an hrtimer (hard interrupt context,
 * interrupting the threads' queries) answer random flows while the main
 * thread replaces the snapshot hundreds of times, and every answer must be
 * exactly the answer of the version that reports it (no torn snapshot),
 * with no error and bounded query time.
 *
 * mode=fetch model=<id> expect=<gen>: an app on laked's model <id> must
 * get the snapshot of generation <gen> through the poller (model_info +
 * model_fetch), within 30 s; with refuse=1 it must instead report that
 * laked's image was refused and keep no snapshot.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/kthread.h>
#include <linux/delay.h>
#include <linux/random.h>
#include <linux/ktime.h>
#include <linux/atomic.h>
#include <linux/err.h>
#include <linux/hrtimer.h>

#include "lake_snapshot.h"
#include "lake_liteflow.h"

static char *mode = "run";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "run (local checks and stress) or fetch (a snapshot from laked)");
static uint model;
module_param(model, uint, 0444);
static unsigned long long expect;
module_param(expect, ullong, 0444);
static uint stress_ms = 2000;
module_param(stress_ms, uint, 0444);

static int passed, failed;

static void step(const char *name, bool ok, int err, const char *detail)
{
	if (ok) {
		passed++;
		pr_info("lake_lftest: PASS %s\n", name);
	} else {
		failed++;
		pr_info("lake_lftest: FAIL %s err=%d %s\n", name, err, detail ? detail : "");
	}
}

static void put16(u8 *p, u32 v) { p[0] = v; p[1] = v >> 8; }
static void put32(u8 *p, u32 v) { put16(p, v); put16(p + 2, v >> 16); }

#define IN 4
#define OUT 2

/*
 * build_layers writes an int8 snapshot of n identity layers (per-tensor,
 * all scales 1.0, zero points 0, multiplier 2^30 with shift 1: exactly
 * 1.0): q_out[o] = clamp(bias[o] + sum w[o][i] * q_in[i], -128, 127) per
 * layer. dims has n + 1 entries; w and bias hold the layers back to back.
 * Returns its length.
 */
static size_t build_layers(u8 *b, u32 n, const u32 *dims, const s8 *w, const s32 *bias, u64 gen)
{
	u32 len = 48 + 4, l, i;
	u8 *h;

	for (l = 0; l < n; l++)
		len += 32 + 12 + 4 * dims[l + 1] + ((dims[l] * dims[l + 1] + 3) & ~3u);
	memset(b, 0, len);
	memcpy(b, "LKSN", 4);
	put16(b + 4, 1);
	put16(b + 6, 48);
	put32(b + 8, len);
	put32(b + 16, (u32)gen);
	put32(b + 20, (u32)(gen >> 32));
	b[24] = 0; /* int8 */
	b[25] = n;
	put16(b + 26, dims[0]);
	put32(b + 28, 0x3f800000); /* 1.0f */
	put16(b + 36, dims[n]);
	h = b + 48;
	for (l = 0; l < n; l++) {
		u32 in = dims[l], out = dims[l + 1];
		u32 rec = 32 + 12 + 4 * out + ((in * out + 3) & ~3u);
		u8 *p = h + 32;

		put16(h, in);
		put16(h + 2, out);
		put32(h + 8, 0x3f800000);
		put32(h + 16, 0x3f800000);
		put32(h + 24, rec);
		put32(p, 0x3f800000); /* weight scale */
		put32(p + 4, 1u << 30);
		put32(p + 8, 1);
		p += 12;
		for (i = 0; i < out; i++)
			put32(p + 4 * i, (u32)bias[i]);
		p += 4 * out;
		for (i = 0; i < in * out; i++)
			p[i] = (u8)w[i];
		w += in * out;
		bias += out;
		h += rec;
	}
	put32(b + len - 4, lake_snap_crc32c(b, len - 4));
	return len;
}

static size_t build_image(u8 *b, u32 in, u32 out, const s8 *w, const s32 *bias, u64 gen)
{
	u32 dims[2] = { in, out };

	return build_layers(b, 1, dims, w, bias, gen);
}

static const s8 wA[IN * OUT] = { 1, 0, 0, 0, 0, 1, 0, 0 };
static const s32 bA[OUT] = { 0, 0 };
static const s8 wB[IN * OUT] = { 2, 1, 0, 0, 0, 0, -1, 0 };
static const s32 bB[OUT] = { 5, -3 };

static s32 clamp8(s64 v) { return v < -128 ? -128 : v > 127 ? 127 : (s32)v; }

/* expected answer of image A (which = 0) or B (which = 1) */
static void expected(int which, const s32 *q, s32 *o)
{
	const s8 *w = which ? wB : wA;
	const s32 *b = which ? bB : bA;
	u32 i, k;

	for (k = 0; k < OUT; k++) {
		s64 acc = b[k];

		for (i = 0; i < IN; i++)
			acc += (s64)w[k * IN + i] * clamp8(q[i]);
		o[k] = clamp8(acc);
	}
}

static u8 *imgA, *imgB, *scratch_img;
static size_t lenA, lenB;

struct io_ctx {
	s32 in[IN];
	int err;
	s32 out[OUT];
	int calls;
};

static int collect(void *ctx, const struct lf_answer *ans, s32 *q_in)
{
	struct io_ctx *c = ctx;

	memcpy(q_in, c->in, sizeof(c->in));
	return 0;
}

static void enforce(void *ctx, int err, const struct lf_answer *ans, const s32 *q_out)
{
	struct io_ctx *c = ctx;

	c->calls++;
	c->err = err;
	if (!err)
		memcpy(c->out, q_out, sizeof(c->out));
}

/* run_wide installs a 4 -> 300 -> 2 snapshot (wider than a stack frame
 * could hold; per-CPU scratch) whose answer depends on the last hidden
 * units: hidden[o] = clamp(q[o % 4]), out[0] = hidden[299] = q[3],
 * out[1] = hidden[298] + 1 = q[2] + 1 (clamped), and the widest the
 * format allows, 4 -> 1024 -> 2 (out[0] = hidden[1023] = q[3]). */
static void run_wide(void)
{
	struct lf_app_desc d = { .name = "lftest-wide", .in_dim = IN, .out_dim = OUT };
	static const u32 widths[2] = { 300, LAKE_SNAP_MAX_WIDTH };
	static s8 w[IN * LAKE_SNAP_MAX_WIDTH + LAKE_SNAP_MAX_WIDTH * OUT];
	static s32 b[LAKE_SNAP_MAX_WIDTH + OUT];
	s32 q[IN] = { 3, -7, 100, 200 }, o[OUT];
	struct io_ctx c = {};
	struct lf_answer ans;
	struct lf_app *app;
	char why[128] = "";
	int err, k;

	app = lf_register_model(&d);
	if (IS_ERR(app)) {
		step("install-wide", false, PTR_ERR(app), "register");
		return;
	}
	lf_register_io(app, collect, enforce);
	for (k = 0; k < 2; k++) {
		u32 h = widths[k], dims[3] = { IN, h, OUT }, i;
		u8 *img = kvzalloc(48 + 4 + 2 * (32 + 12) + 4 * (h + OUT) + IN * h + h * OUT + 8, GFP_KERNEL);
		size_t len;

		if (!img) {
			step("install-wide", false, -ENOMEM, "");
			break;
		}
		memset(w, 0, sizeof(w));
		memset(b, 0, sizeof(b));
		for (i = 0; i < h; i++)
			w[i * IN + i % IN] = 1;
		w[IN * h + (h - 1)] = 1;           /* out[0] = hidden[h - 1] */
		w[IN * h + h + (h - 2)] = 1;       /* out[1] = hidden[h - 2] + 1 */
		b[h + 1] = 1;
		len = build_layers(img, 2, dims, w, b, 20 + k);
		err = lf_install(app, img, len, 20 + k, why, sizeof(why));
		kvfree(img);
		step(k ? "install-wide-1024" : "install-wide", !err, err, why);
		err = lf_query_model(app, 0, q, o, &ans);
		step(k ? "answer-wide-1024" : "answer-wide",
		     !err && ans.version == 20 + k && o[0] == clamp8(q[(h - 1) % IN]) &&
		     o[1] == clamp8(clamp8(q[(h - 2) % IN]) + 1), err, "");
		memcpy(c.in, q, sizeof(q));
		c.calls = 0;
		err = lf_process(app, 5, &c);
		step(k ? "process-wide-1024" : "process-wide",
		     !err && c.calls == 1 && c.out[0] == o[0] && c.out[1] == o[1], err, "");
		lf_flow_end(app, 5);
	}
	lf_unregister_model(app);
}

/* ---- stress ---- */
struct stress {
	struct lf_app *app;
	atomic_t stop;
	atomic64_t queries, torn, errors, nodata;
	atomic64_t max_ns;
	u64 verA_parity; /* versions: odd = A, even = B */
	/* queries from hard interrupt context (an hrtimer), interrupting
	 * the threads' queries: they share the snapshot's per-CPU scratch,
	 * which a query holds with interrupts off */
	struct hrtimer timer;
	u32 seed;
	atomic64_t irq_queries, irq_torn, irq_errors;
};

static enum hrtimer_restart stress_irq(struct hrtimer *t)
{
	struct stress *st = container_of(t, struct stress, timer);
	s32 q[IN], o[OUT], e[OUT];
	struct lf_answer ans;
	u64 flow;
	int err, k;

	for (k = 0; k < IN; k++) {
		st->seed = st->seed * 1664525u + 1013904223u;
		q[k] = (s32)((st->seed >> 16) % 300) - 150;
	}
	flow = st->seed & 1 ? 0 : 5000 + (st->seed >> 8) % 64;
	err = lf_query_model(st->app, flow, q, o, &ans);
	atomic64_inc(&st->irq_queries);
	if (err) {
		atomic64_inc(&st->irq_errors);
	} else {
		expected(ans.version & 1 ? 0 : 1, q, e);
		if (o[0] != e[0] || o[1] != e[1] || ans.generation != ans.version)
			atomic64_inc(&st->irq_torn);
	}
	if (atomic_read(&st->stop))
		return HRTIMER_NORESTART;
	hrtimer_forward_now(t, ns_to_ktime(200 * NSEC_PER_USEC));
	return HRTIMER_RESTART;
}

static int stress_thread(void *arg)
{
	struct stress *st = arg;
	u32 n = 0;

	while (!atomic_read(&st->stop) && !kthread_should_stop()) {
		s32 q[IN], o[OUT], e[OUT];
		struct lf_answer ans;
		u64 flow = n % 3 == 0 ? 0 : 1 + get_random_u32() % 2000;
		ktime_t t0;
		s64 dt;
		int err, k;

		for (k = 0; k < IN; k++)
			q[k] = (s32)(get_random_u32() % 300) - 150;
		t0 = ktime_get();
		err = lf_query_model(st->app, flow, q, o, &ans);
		dt = ktime_to_ns(ktime_sub(ktime_get(), t0));
		if (dt > atomic64_read(&st->max_ns))
			atomic64_set(&st->max_ns, dt);
		atomic64_inc(&st->queries);
		if (err) {
			atomic64_inc(&st->errors);
		} else {
			expected(ans.version & 1 ? 0 : 1, q, e);
			if (o[0] != e[0] || o[1] != e[1] || ans.generation != ans.version)
				atomic64_inc(&st->torn);
		}
		if (++n % 64 == 0)
			cond_resched();
	}
	while (!kthread_should_stop())
		msleep(1);
	return 0;
}

static void run_stress(struct lf_app *app)
{
	struct stress *st = kzalloc(sizeof(*st), GFP_KERNEL);
	struct task_struct *t[2] = {};
	unsigned long end;
	u64 v = 100, installs = 0, inst_max = 0, during;
	char msg[200];
	int i, err = 0;

	if (!st) {
		step("stress-setup", false, -ENOMEM, "");
		return;
	}
	st->app = app;
	st->seed = 18;
	hrtimer_init(&st->timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	st->timer.function = stress_irq;
	hrtimer_start(&st->timer, ns_to_ktime(200 * NSEC_PER_USEC), HRTIMER_MODE_REL_HARD);
	for (i = 0; i < 2; i++) {
		t[i] = kthread_run(stress_thread, st, "lftest-q%d", i);
		if (IS_ERR(t[i])) {
			err = PTR_ERR(t[i]);
			t[i] = NULL;
		}
	}
	msleep(20);
	end = jiffies + msecs_to_jiffies(stress_ms);
	during = atomic64_read(&st->queries);
	while (time_before(jiffies, end) && !err) {
		/* version v (generation v) is A when odd, B when even */
		u8 *img = scratch_img;
		size_t len = v & 1 ? build_image(img, IN, OUT, wA, bA, v) : build_image(img, IN, OUT, wB, bB, v);
		ktime_t t0 = ktime_get();

		err = lf_install(app, img, len, v, NULL, 0);
		inst_max = max_t(u64, inst_max, ktime_to_ns(ktime_sub(ktime_get(), t0)));
		installs++;
		v++;
		if (installs % 4 == 0)
			msleep(1);
	}
	during = atomic64_read(&st->queries) - during;
	atomic_set(&st->stop, 1);
	hrtimer_cancel(&st->timer);
	for (i = 0; i < 2; i++)
		if (t[i])
			kthread_stop(t[i]);
	snprintf(msg, sizeof(msg), "installs=%llu queries=%lld during=%llu torn=%lld errors=%lld max_query_us=%lld max_install_us=%llu",
		 installs, (s64)atomic64_read(&st->queries), during, (s64)atomic64_read(&st->torn),
		 (s64)atomic64_read(&st->errors), (s64)atomic64_read(&st->max_ns) / 1000, inst_max / 1000);
	pr_info("lake_lftest: stress %s\n", msg);
	step("stress-no-torn-answer", !err && installs >= 50 && during >= 1000 && atomic64_read(&st->torn) == 0 &&
	     atomic64_read(&st->errors) == 0, err, msg);
	/* a query is a few microseconds of work; under TCG with preemption a
	 * generous bound still catches one that waited for an install */
	step("stress-queries-never-wait", atomic64_read(&st->max_ns) < 200 * NSEC_PER_MSEC, 0, msg);
	snprintf(msg, sizeof(msg), "queries=%lld torn=%lld errors=%lld", (s64)atomic64_read(&st->irq_queries),
		 (s64)atomic64_read(&st->irq_torn), (s64)atomic64_read(&st->irq_errors));
	pr_info("lake_lftest: stress-irq %s\n", msg);
	step("stress-irq-no-torn-answer", atomic64_read(&st->irq_queries) >= 100 && atomic64_read(&st->irq_torn) == 0 &&
	     atomic64_read(&st->irq_errors) == 0, 0, msg);
	kfree(st);
}

static void run_local(void)
{
	struct lf_app_desc d = { .name = "lftest", .in_dim = IN, .out_dim = OUT };
	struct lf_app *app, *dup;
	struct io_ctx c = {};
	struct lf_answer ans;
	s32 q[IN] = { 3, -7, 100, 200 }, o[OUT], e[OUT];
	u8 *bad;
	char why[128];
	int err;

	app = lf_register_model(&d);
	step("register", !IS_ERR(app), IS_ERR(app) ? PTR_ERR(app) : 0, "");
	if (IS_ERR(app))
		return;
	dup = lf_register_model(&d);
	step("register-duplicate-refused", IS_ERR(dup) && PTR_ERR(dup) == -EEXIST, 0, "");
	if (!IS_ERR(dup))
		lf_unregister_model(dup);
	d.name = "Bad Name";
	dup = lf_register_model(&d);
	step("register-bad-name-refused", IS_ERR(dup) && PTR_ERR(dup) == -EINVAL, 0, "");
	if (!IS_ERR(dup))
		lf_unregister_model(dup);

	err = lf_query_model(app, 0, q, o, &ans);
	step("no-snapshot-nodata", err == -ENODATA, err, "");
	lf_register_io(app, collect, enforce);
	memcpy(c.in, q, sizeof(q));
	err = lf_process(app, 0, &c);
	step("process-fallback-without-snapshot", err == -ENODATA && c.calls == 1 && c.err == -ENODATA, err, "");

	lenA = build_image(imgA, IN, OUT, wA, bA, 1);
	lenB = build_image(imgB, IN, OUT, wB, bB, 2);
	err = lf_install(app, imgA, lenA, 1, why, sizeof(why));
	step("install-A", err == 0, err, why);
	err = lf_query_model(app, 0, q, o, &ans);
	expected(0, q, e);
	step("answer-A", !err && o[0] == e[0] && o[1] == e[1] && ans.version == 1 && ans.generation == 1, err, "");

	/* bad images: each refused, A keeps answering */
	bad = scratch_img;
	memcpy(bad, imgB, lenB);
	bad[60] ^= 1; /* CRC catches it */
	err = lf_install(app, bad, lenB, 2, why, sizeof(why));
	step("refuse-bad-crc", err == -EBADMSG && strstr(why, "checksum"), err, why);
	memcpy(bad, imgB, lenB);
	put16(bad + 4, 2);
	put32(bad + lenB - 4, lake_snap_crc32c(bad, lenB - 4));
	err = lf_install(app, bad, lenB, 2, why, sizeof(why));
	step("refuse-version", err == -EINVAL && strstr(why, "version"), err, why);
	err = lf_install(app, imgB, lenB - 5, 2, why, sizeof(why));
	step("refuse-truncated", err == -EINVAL, err, why);
	{
		static const s8 w3[3 * OUT];
		static const s32 b3[OUT];
		size_t l3 = build_image(bad, 3, OUT, w3, b3, 9);

		err = lf_install(app, bad, l3, 2, why, sizeof(why));
		step("refuse-wrong-shape", err == -E2BIG && strstr(why, "app lftest"), err, why);
	}
	{
		/* a valid 4 -> 1025 -> 2 snapshot: right shape, wider than the
		 * format allows (LAKE_SNAP_MAX_WIDTH) */
		static const u32 dims[3] = { IN, LAKE_SNAP_MAX_WIDTH + 1, OUT };
		static s8 wide[IN * (LAKE_SNAP_MAX_WIDTH + 1) + (LAKE_SNAP_MAX_WIDTH + 1) * OUT];
		static s32 bw[LAKE_SNAP_MAX_WIDTH + 1 + OUT];
		size_t lw = build_layers(bad, 2, dims, wide, bw, 9);

		err = lf_install(app, bad, lw, 2, why, sizeof(why));
		step("refuse-too-wide", err == -EINVAL && strstr(why, "outside"), err, why);
	}
	err = lf_query_model(app, 0, q, o, &ans);
	step("old-snapshot-stays", !err && o[0] == e[0] && o[1] == e[1] && ans.version == 1, err, "");

	/* flow cache: flow 7 starts on A and stays there after B is installed */
	err = lf_query_model(app, 7, q, o, &ans);
	step("flow-7-on-A", !err && ans.version == 1, err, "");
	err = lf_install(app, imgB, lenB, 2, why, sizeof(why));
	step("install-B", err == 0, err, why);
	err = lf_query_model(app, 7, q, o, &ans);
	step("flow-7-stays-on-A", !err && ans.version == 1 && ans.pinned && o[0] == e[0] && o[1] == e[1], err, "");
	expected(1, q, e);
	err = lf_query_model(app, 8, q, o, &ans);
	step("flow-8-on-B", !err && ans.version == 2 && o[0] == e[0] && o[1] == e[1], err, "");
	lf_flow_end(app, 7);
	err = lf_query_model(app, 7, q, o, &ans);
	step("flow-7-ended-moves-to-B", !err && ans.version == 2 && o[0] == e[0] && o[1] == e[1], err, "");
	c.calls = 0;
	err = lf_process(app, 9, &c);
	step("process-collects-and-enforces", !err && c.calls == 1 && c.err == 0 && c.out[0] == e[0] && c.out[1] == e[1], err, "");

	run_wide();
	run_stress(app);
	lf_unregister_model(app);
	step("unregister", true, 0, "");
}

static void run_fetch(void)
{
	struct lf_app_desc d = { .name = "lftest-fetch", .lake_model = model, .in_dim = IN, .out_dim = OUT };
	struct lf_app *app = lf_register_model(&d);
	s32 q[IN] = { 3, -7, 100, 200 }, o[OUT];
	struct lf_answer ans;
	int i, err = -ENODATA;
	char msg[96];

	step("fetch-register", !IS_ERR(app), IS_ERR(app) ? PTR_ERR(app) : 0, "");
	if (IS_ERR(app))
		return;
	for (i = 0; i < 300; i++) {
		err = lf_query_model(app, 0, q, o, &ans);
		if (!err && ans.generation == expect)
			break;
		msleep(100);
	}
	snprintf(msg, sizeof(msg), "generation %llu version %llu, want generation %llu", err ? 0 : ans.generation,
		 err ? 0 : ans.version, expect);
	step("fetch-installed-from-laked", !err && ans.generation == expect && ans.version > 0, err, msg);
	lf_unregister_model(app);
}

static int __init lftest_init(void)
{
	imgA = kzalloc(4096, GFP_KERNEL);
	imgB = kzalloc(4096, GFP_KERNEL);
	scratch_img = kvzalloc(16384, GFP_KERNEL);
	if (!imgA || !imgB || !scratch_img) {
		kfree(imgA);
		kfree(imgB);
		kvfree(scratch_img);
		return -ENOMEM;
	}
	pr_info("lake_lftest: start mode=%s\n", mode);
	if (!strcmp(mode, "fetch"))
		run_fetch();
	else
		run_local();
	pr_info("lake_lftest: DONE pass=%d fail=%d\n", passed, failed);
	kfree(imgA);
	kfree(imgB);
	kvfree(scratch_img);
	return 0;
}

static void __exit lftest_exit(void)
{
}

module_init(lftest_init);
module_exit(lftest_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lake: LiteFlow kernel self-test");
