// SPDX-License-Identifier: GPL-2.0
/*
 * lake_selftest.ko - on load, runs a sequence through lakelib against the
 * laked serving /dev/lake and prints one line per step:
 *
 *   lake_selftest: PASS <step>
 *   lake_selftest: FAIL <step> err=<errno> <detail>
 *   lake_selftest: DONE pass=<n> fail=<m>
 *
 * mode=run (default): init, context, alloc, memcpy HtoD, launch vector_add
 * from the "lake_builtin" module, memcpy DtoH, check, free; LinnOS feature
 * records through the in-kernel registry producer; model_info and
 * lake_predict (sync, and async from atomic context) on model 1 (LinnOS);
 * a malformed predict that laked must refuse; lake_model_fetch of model
 * 1's image (size query, a buffer one byte short, the fetch, validated as
 * a LinnOS weight file by lake_linnos.h) and of an unknown model.
 *
 * mode=wait: one lake_predict that is expected to end with -EPIPE because
 * the test kills laked while it waits (the VM test stops laked first).
 *
 * mode=hostile: three model fetches whose answers lie about sizes, then
 * five calls, against a deliberately broken daemon ("fakelaked -evil"),
 * each expecting a specific error.
 *
 * The module stays loaded after the run (remove it with rmmod).
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/completion.h>
#include <linux/atomic.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/mm.h>
#include <linux/sort.h>
#include <linux/ktime.h>

#include "lake_kapi.h"
#include "lake_linnos.h"
#include "lake_feat_create.h"

static char *mode = "run";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "run (the full sequence), wait (expect -EPIPE when laked dies) or hostile (against fakelaked -evil)");

#define LINNOS_MODEL 1
#define LINNOS_INPUTS 31
#define VEC_N 300

static int passed, failed;

static void step(const char *name, bool ok, int err, const char *detail)
{
	if (ok) {
		passed++;
		pr_info("lake_selftest: PASS %s\n", name);
	} else {
		failed++;
		pr_info("lake_selftest: FAIL %s err=%d %s\n", name, err, detail ? detail : "");
	}
}

/* f32_bits returns the IEEE-754 single encoding of the integer k
 * (1 <= k < 2^24, exact), without using the FPU. */
static u32 f32_bits(u32 k)
{
	u32 e = fls(k) - 1;

	return (127 + e) << 23 | ((k << (23 - e)) & 0x7fffff);
}

struct async_ops {
	struct completion all;
	atomic_t left;
	int err;
};

static void async_op_done(void *arg, int err, const struct lake_predict_result *res)
{
	struct async_ops *w = arg;

	if (err && !w->err)
		w->err = err;
	if (atomic_dec_and_test(&w->left))
		complete(&w->all);
}

/* run_async_ops submits memcpy HtoD, launch vector_add and memcpy DtoH
 * with IRQs off (where nothing may sleep) and checks the result when all
 * three callbacks have run. */
static void run_async_ops(u64 ctx, u64 fn, u64 a, u64 b, u64 c, const u32 *ha, size_t bytes,
			  const u32 grid[3], const u32 block[3])
{
	u64 params[4] = { a, b, c, VEC_N };
	struct async_ops *w;
	u32 *hc;
	unsigned long fl;
	spinlock_t lock;
	int err = 0, i, bad = -1, submitted = 0;

	w = kzalloc(sizeof(*w), GFP_KERNEL);
	hc = kzalloc(bytes, GFP_KERNEL);
	if (!w || !hc) {
		step("async-ops", false, -ENOMEM, "");
		goto out;
	}
	init_completion(&w->all);
	atomic_set(&w->left, 3);
	spin_lock_init(&lock);
	spin_lock_irqsave(&lock, fl);
	err = lake_cuMemcpyHtoD_async(ctx, a, ha, bytes, async_op_done, w);
	if (!err) {
		submitted++;
		err = lake_cuLaunchKernel_async(ctx, fn, grid, block, 0, 0, params, 4, async_op_done, w);
	}
	if (!err) {
		submitted++;
		err = lake_cuMemcpyDtoH_async(ctx, hc, c, bytes, async_op_done, w);
	}
	if (!err)
		submitted++;
	spin_unlock_irqrestore(&lock, fl);
	/* count the calls never submitted as done */
	for (i = submitted; i < 3; i++)
		if (atomic_dec_and_test(&w->left))
			complete(&w->all);
	if (!wait_for_completion_timeout(&w->all, msecs_to_jiffies(20000))) {
		/* w and hc are still referenced by pending calls: leak them */
		step("async-ops", false, -ETIMEDOUT, "no callback");
		return;
	}
	if (!err)
		err = w->err;
	if (!err)
		for (i = 0; i < VEC_N && bad < 0; i++)
			if (hc[i] != f32_bits(3 * (i + 1)))
				bad = i;
	step("async-htod-launch-dtoh", !err && bad < 0, err, "want the vector_add result");
out:
	kfree(w);
	kfree(hc);
}

static void run_vector_add(void)
{
	static const char image[] = "lake_builtin";
	u64 ctx = 0, a = 0, b = 0, c = 0, mod = 0, fn = 0;
	u32 *ha, *hb, *hc;
	u32 grid[3] = { (VEC_N + 127) / 128, 1, 1 }, block[3] = { 128, 1, 1 };
	size_t bytes = VEC_N * sizeof(u32);
	int err, i, bad = -1;

	ha = kmalloc(bytes, GFP_KERNEL);
	hb = kmalloc(bytes, GFP_KERNEL);
	hc = kzalloc(bytes, GFP_KERNEL);
	if (!ha || !hb || !hc) {
		step("vector-alloc-host", false, -ENOMEM, "");
		goto out;
	}
	for (i = 0; i < VEC_N; i++) {
		ha[i] = f32_bits(i + 1);
		hb[i] = f32_bits(2 * (i + 1));
	}
	err = lake_cuInit();
	step("init", !err, err, "");
	if (err)
		goto out;
	err = lake_cuCtxCreate(&ctx);
	step("ctx-create", !err, err, "");
	if (err)
		goto out;
	err = lake_cuMemAlloc(ctx, &a, bytes);
	if (!err)
		err = lake_cuMemAlloc(ctx, &b, bytes);
	if (!err)
		err = lake_cuMemAlloc(ctx, &c, bytes);
	step("mem-alloc", !err && a && b && c, err, "");
	if (err)
		goto out_ctx;
	err = lake_cuMemcpyHtoD(ctx, a, ha, bytes);
	if (!err)
		err = lake_cuMemcpyHtoD(ctx, b, hb, bytes);
	step("memcpy-htod", !err, err, "");
	err = lake_cuModuleLoadData(ctx, &mod, image, sizeof(image) - 1);
	step("module-load", !err, err, "");
	if (err)
		goto out_mem;
	err = lake_cuModuleGetFunction(ctx, &fn, mod, "vector_add");
	step("get-function", !err, err, "");
	if (!err) {
		u64 params[4] = { a, b, c, VEC_N };

		err = lake_cuLaunchKernel(ctx, fn, grid, block, 0, 0, params, 4);
		step("launch-vector_add", !err, err, "");
		if (!err) {
			err = lake_cuCtxSynchronize(ctx);
			step("ctx-synchronize", !err, err, "");
		}
	}
	err = lake_cuMemcpyDtoH(ctx, hc, c, bytes);
	step("memcpy-dtoh", !err, err, "");
	if (!err) {
		for (i = 0; i < VEC_N && bad < 0; i++)
			if (hc[i] != f32_bits(3 * (i + 1)))
				bad = i;
		if (bad >= 0)
			pr_info("lake_selftest: c[%d] = 0x%08x, want 0x%08x\n", bad, hc[bad],
				f32_bits(3 * (bad + 1)));
		step("vector_add-check", bad < 0, 0, "result mismatch");
	}
	if (fn)
		run_async_ops(ctx, fn, a, b, c, ha, bytes, grid, block);
	err = lake_cuModuleUnload(ctx, mod);
	step("module-unload", !err, err, "");
out_mem:
	err = lake_cuMemFree(ctx, a);
	if (!err)
		err = lake_cuMemFree(ctx, b);
	if (!err)
		err = lake_cuMemFree(ctx, c);
	step("mem-free", !err, err, "");
	/* a freed pointer is an invalid handle now */
	err = lake_cuMemFree(ctx, a);
	step("mem-free-twice-refused", err == -EBADF, err, "want -EBADF");
out_ctx:
	err = lake_cuCtxDestroy(ctx);
	step("ctx-destroy", !err, err, "");
out:
	kfree(ha);
	kfree(hb);
	kfree(hc);
}

/* record_u32 records one sample whose named u32 field holds v. */
static int record_u32(struct lake_feat_khandle *h, const char *field, u64 key, u32 v)
{
	u64 payload[LAKE_FEAT_LIMIT_RECORD / 8 > 64 ? 64 : LAKE_FEAT_LIMIT_RECORD / 8];
	u32 size = lake_feat_krecord_size(h);
	int fi = lake_feat_field_index(&h->schema, field);

	if (fi < 0 || size > sizeof(payload) || h->schema.fields[fi].type != LAKE_FEAT_U32)
		return -EPROTO;
	memset(payload, 0, size);
	memcpy((u8 *)payload + h->schema.fields[fi].offset, &v, sizeof(v));
	return lake_feat_krecord(h, key, payload, size);
}

/* record_completion records one completed read (struct
 * lake_feat_linnos_completion) for key. */
static int record_completion(struct lake_feat_khandle *h, u64 key, u32 pending, u32 latency_us, u32 seq)
{
	struct lake_feat_linnos_completion c = {
		.latency_us = latency_us, .pending = pending, .arrive_seq = seq - 1, .done_seq = seq,
	};

	if (lake_feat_krecord_size(h) != sizeof(c))
		return -EPROTO;
	return lake_feat_krecord(h, key, &c, sizeof(c));
}

struct async_wait {
	struct completion done;
	int err;
	struct lake_predict_result res;
	s32 out[2];
};

static void async_done(void *arg, int err, const struct lake_predict_result *res)
{
	struct async_wait *w = arg;

	w->err = err;
	if (res)
		w->res = *res;
	complete(&w->done);
}

static bool outputs_are_classes(const s32 *out, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (out[i] != 0 && out[i] != 1)
			return false;
	return true;
}

/* run_model_fetch fetches model 1's integer image the way a kernel
 * consumer does (ask the size, fetch, validate before use); version is
 * what model_info said. */
static void run_model_fetch(u64 version)
{
	size_t need = 0, got = 0;
	const char *why = NULL;
	u64 ver = 0;
	u32 extra = 0;
	void *buf;
	int err;

	err = lake_model_fetch(LINNOS_MODEL, NULL, 0, &need, &ver);
	step("model-fetch-size", err == -EMSGSIZE && need > LAKE_LINNOS_HEADER_SIZE && ver == version, err,
	     "want -EMSGSIZE, the image size and model_info's version");
	if (err != -EMSGSIZE || need > (16u << 20))
		return;
	buf = kvmalloc(need, GFP_KERNEL);
	if (!buf) {
		step("model-fetch", false, -ENOMEM, "");
		return;
	}
	err = lake_model_fetch(LINNOS_MODEL, buf, need - 1, &got, &ver);
	step("model-fetch-short-refused", err == -EMSGSIZE && got == need, err, "want -EMSGSIZE and the same size");
	got = 0;
	err = lake_model_fetch(LINNOS_MODEL, buf, need, &got, &ver);
	if (!err)
		err = lake_linnos_image_check(buf, got, &extra, &why);
	step("model-fetch", !err && got == need && ver == version, err,
	     why ? why : "want a valid LinnOS weight file of the announced size and version");
	if (!err)
		pr_info("lake_selftest: fetched model %d: %zu bytes, %u extra layers, version %llu\n",
			LINNOS_MODEL, got, extra, ver);
	kvfree(buf);
	err = lake_model_fetch(99, NULL, 0, &got, &ver);
	step("model-fetch-unknown", err == -ENOENT, err, "want -ENOENT");
}

static void run_linnos(void)
{
	static const u32 pend_hist[4] = { 3, 12, 7, 1 }, lat_hist[4] = { 120, 4500, 80, 15000 };
	struct lake_feat_khandle *arr, *comp;
	struct lake_predict_result res;
	struct async_wait *w;
	const u64 dev = 0x800010; /* a device number, as the block layer keys it */
	u32 in_bytes = 0, out_bytes = 0;
	u64 version = 0;
	s32 *in, out[2] = { -1, -1 };
	unsigned long fl;
	spinlock_t lock;
	int err, i;

	arr = kzalloc(sizeof(*arr), GFP_KERNEL);
	comp = kzalloc(sizeof(*comp), GFP_KERNEL);
	in = kcalloc(2 * LINNOS_INPUTS, sizeof(*in), GFP_KERNEL);
	w = kzalloc(sizeof(*w), GFP_KERNEL);
	if (!arr || !comp || !in || !w) {
		step("linnos-alloc", false, -ENOMEM, "");
		goto out;
	}
	err = lake_feat_kopen("linnos.arrival", arr);
	if (!err)
		err = lake_feat_kopen("linnos.completion", comp);
	step("features-open", !err, err, "");
	if (!err) {
		for (i = 0; i < 4 && !err; i++) {
			err = record_u32(arr, "pending", dev, pend_hist[i]);
			if (!err)
				err = record_completion(comp, dev, pend_hist[i], lat_hist[i], i + 1);
		}
		step("features-record", !err, err, "");
	}

	err = lake_model_info(LINNOS_MODEL, &in_bytes, &out_bytes, &version);
	step("model-info", !err && in_bytes == LINNOS_INPUTS * 4 && out_bytes == 4, err,
	     "want 124/4 bytes per item");
	if (err)
		goto out;
	run_model_fetch(version);

	/* two items: the LinnOS vector (lake_linnos_features, the layout of
	 * linnos/features.go) for the recorded history, with a short and a
	 * long current queue */
	{
		struct lake_linnos_hist h = { { 0 } };
		int k;

		for (k = 0; k < 4; k++)
			lake_linnos_hist_complete(&h, pend_hist[k], lat_hist[k]);
		for (i = 0; i < 2; i++)
			lake_linnos_features(&h, i ? 950 : 2, in + i * LINNOS_INPUTS);
	}
	err = lake_predict(LINNOS_MODEL, 2, in, 2 * LINNOS_INPUTS * 4, out, sizeof(out), &res);
	step("predict", !err && outputs_are_classes(out, 2), err, "want outputs in {0,1}");
	if (!err)
		pr_info("lake_selftest: predict outputs %d %d (model version %llu, gpu %d)\n",
			out[0], out[1], res.model_version, res.on_gpu);

	err = lake_predict(LINNOS_MODEL, 2, in, LINNOS_INPUTS * 4, out, sizeof(out), NULL);
	step("predict-bad-length-refused", err == -EINVAL, err, "want -EINVAL");

	/* async, submitted where sleeping is not allowed */
	init_completion(&w->done);
	w->out[0] = -1;
	w->out[1] = -1;
	spin_lock_init(&lock);
	spin_lock_irqsave(&lock, fl);
	err = lake_predict_async(LINNOS_MODEL, 2, in, 2 * LINNOS_INPUTS * 4, w->out, sizeof(w->out),
				 async_done, w);
	spin_unlock_irqrestore(&lock, fl);
	if (!err) {
		if (!wait_for_completion_timeout(&w->done, msecs_to_jiffies(20000))) {
			/* w is still referenced by the pending call: leak it */
			step("predict-async", false, -ETIMEDOUT, "no callback");
			w = NULL;
			goto out;
		}
		err = w->err;
	}
	step("predict-async", !err && w->out[0] == out[0] && w->out[1] == out[1], err,
	     "want the sync outputs");
out:
	kfree(arr);
	kfree(comp);
	kfree(in);
	kfree(w);
}

static void run_wait(void)
{
	s32 in[LINNOS_INPUTS] = { 0 }, out[1];
	int err;

	pr_info("lake_selftest: waiting for laked\n");
	err = lake_predict(LINNOS_MODEL, 1, in, sizeof(in), out, sizeof(out), NULL);
	step("laked-gone-error", err == -EPIPE, err, "want -EPIPE");
}

/* run_hostile runs against "fakelaked -evil", which answers each
 * submission k by misbehaving in way k % 4 and then corrupts the ring
 * words for good (see kernel/tools/fakelaked.c). Every call must end with
 * the error that misbehaviour calls for, promptly and without harm (the
 * VM test sets lakelib's timeout_ms to 1000 for this). */
static void run_hostile(void)
{
	static const struct {
		const char *step;
		int want;
	} calls[] = {
		{ "hostile-unknown-tag", -ETIMEDOUT },
		{ "hostile-bad-status", -EPROTO },
		{ "hostile-runaway-cq-tail", -ETIMEDOUT },
		{ "hostile-scribbled-region", -ETIMEDOUT },
		{ "hostile-corrupt-ring-refused", -EBUSY },
	};
	static const struct {
		const char *step;
		u32 model;
	} fetches[] = {
		{ "hostile-fetch-overlong", 1 },    /* "ok", one byte more than the buffer */
		{ "hostile-fetch-short-claim", 2 }, /* "too small", asking for no more */
		{ "hostile-fetch-empty", 3 },       /* "ok", 0 bytes */
	};
	s32 in[LINNOS_INPUTS] = { 0 }, out[1];
	char detail[32];
	u8 *buf;
	int i, err;

	buf = kmalloc(64, GFP_KERNEL);
	for (i = 0; buf && i < ARRAY_SIZE(fetches); i++) {
		size_t got = 12345;
		u64 ver = 0;

		memset(buf, 0x5a, 64);
		err = lake_model_fetch(fetches[i].model, buf, 64, &got, &ver);
		step(fetches[i].step, err == -EPROTO && buf[0] == 0x5a && buf[63] == 0x5a, err,
		     "want -EPROTO and the buffer untouched");
	}
	kfree(buf);
	for (i = 0; i < ARRAY_SIZE(calls); i++) {
		err = lake_predict(LINNOS_MODEL, 1, in, sizeof(in), out, sizeof(out), NULL);
		snprintf(detail, sizeof(detail), "want %d", calls[i].want);
		step(calls[i].step, err == calls[i].want, err, detail);
	}
}

#define LAT_CALLS 200

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/* run_latency times LAT_CALLS lake_predict(n = 1) round trips against
 * LAT_CALLS lake_cuInit round trips (a no-op answered by laked: the
 * crossing alone), interleaved, and prints their percentiles; under qemu
 * TCG only the ratio means anything. Then it checks deadlines: one already
 * past fails with -ETIME without running, one 2 s ahead succeeds. */
static void run_latency(void)
{
	u64 *tp, *ti, t0;
	s32 *in, out[1];
	int err = 0, i;

	tp = kcalloc(2 * LAT_CALLS, sizeof(*tp), GFP_KERNEL);
	in = kcalloc(LINNOS_INPUTS, sizeof(*in), GFP_KERNEL);
	if (!tp || !in) {
		step("latency-alloc", false, -ENOMEM, "");
		goto out;
	}
	ti = tp + LAT_CALLS;
	for (i = 0; i < LAT_CALLS && !err; i++) {
		t0 = ktime_get_ns();
		err = lake_cuInit();
		ti[i] = ktime_get_ns() - t0;
		if (err)
			break;
		t0 = ktime_get_ns();
		err = lake_predict(LINNOS_MODEL, 1, in, LINNOS_INPUTS * 4, out, sizeof(out), NULL);
		tp[i] = ktime_get_ns() - t0;
	}
	step("latency", !err, err, "");
	if (!err) {
		u64 p50 = 0, p99 = 0, i50 = 0, i99 = 0, r;

		sort(tp, LAT_CALLS, sizeof(*tp), cmp_u64, NULL);
		sort(ti, LAT_CALLS, sizeof(*ti), cmp_u64, NULL);
		p50 = tp[LAT_CALLS / 2];
		p99 = tp[LAT_CALLS * 99 / 100];
		i50 = ti[LAT_CALLS / 2];
		i99 = ti[LAT_CALLS * 99 / 100];
		r = i50 ? p50 * 100 / i50 : 0;
		pr_info("lake_selftest: latency over %d calls: lake_predict n=1 p50 %llu ns p99 %llu ns; no-op (init) p50 %llu ns p99 %llu ns; predict/no-op p50 %llu.%02llux\n",
			LAT_CALLS, p50, p99, i50, i99, r / 100, r % 100);
	}
	err = lake_predict_deadline(LINNOS_MODEL, 1, in, LINNOS_INPUTS * 4, out, sizeof(out),
				    ktime_get_ns() - 1000, NULL);
	step("deadline-past", err == -ETIME, err, "");
	err = lake_predict_deadline(LINNOS_MODEL, 1, in, LINNOS_INPUTS * 4, out, sizeof(out),
				    ktime_get_ns() + 2000000000ull, NULL);
	step("deadline-ahead", !err, err, "");
out:
	kfree(in);
	kfree(tp);
}

static int __init lake_selftest_init(void)
{
	pr_info("lake_selftest: start mode=%s\n", mode);
	if (!strcmp(mode, "wait")) {
		run_wait();
	} else if (!strcmp(mode, "hostile")) {
		run_hostile();
	} else {
		run_vector_add();
		run_linnos();
		run_latency();
	}
	pr_info("lake_selftest: DONE pass=%d fail=%d\n", passed, failed);
	return 0;
}

static void __exit lake_selftest_exit(void)
{
}

module_init(lake_selftest_init);
module_exit(lake_selftest_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lake: self-test of lakelib against laked");
MODULE_AUTHOR("The lake authors");
