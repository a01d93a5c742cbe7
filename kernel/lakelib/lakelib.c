// SPDX-License-Identifier: GPL-2.0
/*
 * lakelib.ko - the lake API for kernel callers: cuXXX-shaped calls,
 * lake_predict (sync and async) and the in-kernel feature registry
 * producer, on top of lake_shm.ko's region and transport.
 *
 * Each call owns a struct lake_call: a completion for the sync waiter,
 * the data-arena buffers the operation uses, and a reference count shared
 * by the waiter and lake_shm's done callback. A sync waiter that times
 * out drops its reference and returns -ETIMEDOUT; the arena buffers stay
 * allocated until laked completes the operation or detaches, so a late
 * laked never writes into memory that another call reuses.
 *
 * Arena buffers come from a genalloc pool over the data arena (64-byte
 * granules; usable in atomic context). Nothing is read back from the
 * region except the outputs a call asked for, copied out after its
 * completion and bounded by the caller's length.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/genalloc.h>
#include <linux/completion.h>
#include <linux/refcount.h>
#include <linux/string.h>
#include <linux/jiffies.h>
#include <linux/errno.h>

#include "lake_kapi.h"

static unsigned int timeout_ms = 10000;
module_param(timeout_ms, uint, 0644);
MODULE_PARM_DESC(timeout_ms, "how long a sync call waits for laked (ms)");

#define LAKE_CALL_BUFS 2

struct lake_call {
	struct completion done;
	refcount_t ref;
	int err;
	struct lake_cqe cqe;
	unsigned long buf[LAKE_CALL_BUFS];
	size_t buf_len[LAKE_CALL_BUFS];
	/* async calls: done callback, and where the result is copied */
	lake_done_fn user_done;
	void *user_arg;
	void *out;
	size_t out_len;
	int out_buf;     /* arena buffer the result comes from */
	bool is_predict; /* fill a lake_predict_result */
};

static struct gen_pool *arena_pool;
static unsigned char *arena_base;

int lake_status_errno(s32 status)
{
	switch (status) {
	case LAKE_OK: return 0;
	case LAKE_ERR_BAD_OPCODE: return -EOPNOTSUPP;
	case LAKE_ERR_INVALID_VALUE: return -EINVAL;
	case LAKE_ERR_OUT_OF_BOUNDS: return -ERANGE;
	case LAKE_ERR_INVALID_HANDLE: return -EBADF;
	case LAKE_ERR_OUT_OF_MEMORY: return -ENOMEM;
	case LAKE_ERR_NOT_FOUND: return -ENOENT;
	case LAKE_ERR_LAUNCH_FAILED: return -EIO;
	case LAKE_ERR_NOT_SUPPORTED: return -EOPNOTSUPP;
	case LAKE_ERR_BUSY: return -EBUSY;
	case LAKE_ERR_SHUTDOWN: return -ESHUTDOWN;
	case LAKE_ERR_INTERNAL: return -EREMOTEIO;
	case LAKE_ERR_MODEL_FAILED: return -EIO;
	case LAKE_ERR_CONTEXT_DESTROYED: return -ENODEV;
	case LAKE_ERR_BUFFER_TOO_SMALL: return -EMSGSIZE;
	case LAKE_ERR_DEADLINE: return -ETIME;
	default: return -EPROTO;
	}
}
EXPORT_SYMBOL_GPL(lake_status_errno);

static struct lake_call *call_alloc(gfp_t gfp)
{
	struct lake_call *c;

	/* every call pins lakelib until its last reference is gone: a call
	 * whose waiter timed out still has lake_shm's callback to run */
	if (!try_module_get(THIS_MODULE))
		return NULL;
	c = kzalloc(sizeof(*c), gfp);
	if (!c) {
		module_put(THIS_MODULE);
		return NULL;
	}
	init_completion(&c->done);
	refcount_set(&c->ref, 1);
	return c;
}

static void call_put(struct lake_call *c)
{
	int i;

	if (!refcount_dec_and_test(&c->ref))
		return;
	for (i = 0; i < LAKE_CALL_BUFS; i++)
		if (c->buf[i])
			gen_pool_free(arena_pool, c->buf[i], c->buf_len[i]);
	kfree(c);
	module_put(THIS_MODULE);
}

/* call_buf allocates arena buffer i of len bytes and returns its arena
 * offset through off. */
static int call_buf(struct lake_call *c, int i, size_t len, u64 *off)
{
	if (len == 0 || len > U32_MAX)
		return -EINVAL;
	c->buf[i] = gen_pool_alloc(arena_pool, len);
	if (!c->buf[i])
		return -ENOMEM;
	c->buf_len[i] = len;
	*off = (u64)((unsigned char *)c->buf[i] - arena_base);
	return 0;
}

static void *call_ptr(struct lake_call *c, int i)
{
	return (void *)c->buf[i];
}

/* call_done is lake_shm's done callback for every lakelib call. */
static void call_done(void *arg, int err, const struct lake_cqe *cqe)
{
	struct lake_call *c = arg;

	c->err = err;
	if (cqe)
		c->cqe = *cqe;
	if (c->user_done) {
		struct lake_predict_result res = { 0 };

		if (!err)
			err = lake_status_errno(c->cqe.status);
		if (!err) {
			if (c->out)
				memcpy(c->out, call_ptr(c, c->out_buf), c->out_len);
			if (c->is_predict) {
				res.model_version = c->cqe.results[0];
				res.on_gpu = c->cqe.results[1] == 1;
			}
		}
		c->user_done(c->user_arg, err, err ? NULL : &res);
	} else {
		complete(&c->done);
	}
	call_put(c);
}

/* call_sync submits sqe for c, waits, and returns 0 or an errno. On
 * success c->cqe holds the completion. The caller still owns its
 * reference and puts it. */
static int call_sync(struct lake_call *c, struct lake_sqe *sqe)
{
	long left;
	int err;

	might_sleep();
	refcount_inc(&c->ref); /* the callback's */
	err = lake_shm_submit(sqe, call_done, c);
	if (err) {
		refcount_dec(&c->ref);
		return err;
	}
	/* killable: a process stuck behind a hung laked can still be killed;
	 * like a timeout, the call stays in flight and is cleaned up later */
	left = wait_for_completion_killable_timeout(&c->done, msecs_to_jiffies(READ_ONCE(timeout_ms)));
	if (left < 0)
		return -EINTR;
	if (!left)
		return -ETIMEDOUT;
	if (c->err)
		return c->err;
	return lake_status_errno(c->cqe.status);
}

/* simple_op runs an operation that uses no arena buffer. */
static int simple_op(u8 op, u64 a0, u64 a1, u64 a2, u64 *r0, u64 *r1)
{
	struct lake_sqe sqe = { .opcode = op, .args = { a0, a1, a2 } };
	struct lake_call *c = call_alloc(GFP_KERNEL);
	int err;

	if (!c)
		return -ENOMEM;
	err = call_sync(c, &sqe);
	if (!err) {
		if (r0)
			*r0 = c->cqe.results[0];
		if (r1)
			*r1 = c->cqe.results[1];
	}
	call_put(c);
	return err;
}

int lake_cuInit(void)
{
	u64 version;
	int err = simple_op(LAKE_OP_INIT, 0, 0, 0, &version, NULL);

	if (err)
		return err;
	if (version >> 16 != LAKE_VERSION_MAJOR)
		return -EPROTO;
	return 0;
}
EXPORT_SYMBOL_GPL(lake_cuInit);

int lake_cuCtxCreate(u64 *ctx)
{
	return simple_op(LAKE_OP_CTX_CREATE, 0, 0, 0, ctx, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuCtxCreate);

int lake_cuCtxDestroy(u64 ctx)
{
	return simple_op(LAKE_OP_CTX_DESTROY, ctx, 0, 0, NULL, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuCtxDestroy);

int lake_cuCtxSynchronize(u64 ctx)
{
	return simple_op(LAKE_OP_CTX_SYNCHRONIZE, ctx, 0, 0, NULL, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuCtxSynchronize);

int lake_cuMemAlloc(u64 ctx, u64 *dptr, u64 bytes)
{
	return simple_op(LAKE_OP_MEM_ALLOC, ctx, bytes, 0, dptr, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuMemAlloc);

int lake_cuMemFree(u64 ctx, u64 dptr)
{
	return simple_op(LAKE_OP_MEM_FREE, ctx, dptr, 0, NULL, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuMemFree);

int lake_cuStreamCreate(u64 ctx, u64 *stream)
{
	return simple_op(LAKE_OP_STREAM_CREATE, ctx, 0, 0, stream, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuStreamCreate);

int lake_cuStreamDestroy(u64 ctx, u64 stream)
{
	return simple_op(LAKE_OP_STREAM_DESTROY, ctx, stream, 0, NULL, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuStreamDestroy);

int lake_cuStreamSynchronize(u64 ctx, u64 stream)
{
	return simple_op(LAKE_OP_STREAM_SYNCHRONIZE, ctx, stream, 0, NULL, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuStreamSynchronize);

int lake_cuModuleUnload(u64 ctx, u64 mod)
{
	return simple_op(LAKE_OP_MODULE_UNLOAD, ctx, mod, 0, NULL, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuModuleUnload);

int lake_model_info(u32 model, u32 *in_bytes, u32 *out_bytes, u64 *version)
{
	u64 sizes, ver;
	int err = simple_op(LAKE_OP_MODEL_INFO, model, 0, 0, &sizes, &ver);

	if (err)
		return err;
	if (in_bytes)
		*in_bytes = (u32)sizes;
	if (out_bytes)
		*out_bytes = (u32)(sizes >> 32);
	if (version)
		*version = ver;
	return 0;
}
EXPORT_SYMBOL_GPL(lake_model_info);

int lake_model_fetch(u32 model, void *buf, size_t len, size_t *out_len, u64 *version)
{
	struct lake_sqe sqe = { .opcode = LAKE_OP_MODEL_FETCH, .args = { model } };
	struct lake_call *c;
	u64 off = 0, n;
	int err;

	if (!out_len || !version || (len && !buf))
		return -EINVAL;
	c = call_alloc(GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	if (len) {
		err = call_buf(c, 0, len, &off);
		if (err)
			goto out;
	}
	sqe.args[1] = off;
	sqe.args[2] = len;
	err = call_sync(c, &sqe);
	if (err && err != -EMSGSIZE && err != -EOPNOTSUPP)
		goto out;
	n = c->cqe.results[0];
	*version = c->cqe.results[1];
	if (err == -EOPNOTSUPP) {
		*out_len = 0;
		goto out;
	}
	if (err == -EMSGSIZE) {
		/* laked must ask for more than it was given */
		if (n <= len || n > U32_MAX) {
			err = -EPROTO;
			goto out;
		}
		*out_len = n;
		goto out;
	}
	if (n == 0 || n > len) {
		err = -EPROTO;
		goto out;
	}
	/* one copy out of the shared arena: the caller validates buf, never
	 * the arena that laked can still write */
	memcpy(buf, call_ptr(c, 0), n);
	*out_len = n;
out:
	call_put(c);
	return err;
}
EXPORT_SYMBOL_GPL(lake_model_fetch);

/* buf_op runs an operation with one input arena buffer holding src[0:len)
 * (copied in) or one output buffer copied to dst after completion. The
 * sqe's arguments at arg_off (arena offset) and arg_len (length) are
 * filled in. */
static int buf_op(struct lake_sqe *sqe, int arg_off, int arg_len, const void *src, void *dst,
		  size_t len, u64 *r0)
{
	struct lake_call *c = call_alloc(GFP_KERNEL);
	u64 off;
	int err;

	if (!c)
		return -ENOMEM;
	err = call_buf(c, 0, len, &off);
	if (err)
		goto out;
	if (src)
		memcpy(call_ptr(c, 0), src, len);
	sqe->args[arg_off] = off;
	sqe->args[arg_len] = len;
	err = call_sync(c, sqe);
	if (!err && dst)
		memcpy(dst, call_ptr(c, 0), len);
	if (!err && r0)
		*r0 = c->cqe.results[0];
out:
	call_put(c);
	return err;
}

/* async_buf_op is buf_op for contexts that cannot sleep: src is copied
 * into the arena now, dst (which must stay valid) is filled just before
 * done(arg, err, res) runs, in process context. */
static int async_buf_op(struct lake_sqe *sqe, int arg_off, int arg_len, const void *src,
			void *dst, size_t len, lake_done_fn done, void *arg)
{
	struct lake_call *c;
	u64 off;
	int err;

	if (!done)
		return -EINVAL;
	c = call_alloc(GFP_ATOMIC);
	if (!c)
		return -ENOMEM;
	err = call_buf(c, 0, len, &off);
	if (err) {
		call_put(c);
		return err;
	}
	if (src)
		memcpy(call_ptr(c, 0), src, len);
	sqe->args[arg_off] = off;
	sqe->args[arg_len] = len;
	c->user_done = done;
	c->user_arg = arg;
	c->out = dst;
	c->out_len = dst ? len : 0;
	c->out_buf = 0;
	/* the one reference passes to the done callback */
	err = lake_shm_submit(sqe, call_done, c);
	if (err)
		call_put(c);
	return err;
}

int lake_cuMemcpyHtoD_async(u64 ctx, u64 dst, const void *src, size_t len, lake_done_fn done, void *arg)
{
	struct lake_sqe sqe = { .opcode = LAKE_OP_MEMCPY_HTOD, .args = { ctx, dst } };

	if (!src)
		return -EINVAL;
	return async_buf_op(&sqe, 2, 3, src, NULL, len, done, arg);
}
EXPORT_SYMBOL_GPL(lake_cuMemcpyHtoD_async);

int lake_cuMemcpyDtoH_async(u64 ctx, void *dst, u64 src, size_t len, lake_done_fn done, void *arg)
{
	struct lake_sqe sqe = { .opcode = LAKE_OP_MEMCPY_DTOH, .args = { ctx, 0, src } };

	if (!dst)
		return -EINVAL;
	return async_buf_op(&sqe, 1, 3, NULL, dst, len, done, arg);
}
EXPORT_SYMBOL_GPL(lake_cuMemcpyDtoH_async);

int lake_cuMemcpyHtoD(u64 ctx, u64 dst, const void *src, size_t len)
{
	struct lake_sqe sqe = { .opcode = LAKE_OP_MEMCPY_HTOD, .args = { ctx, dst } };

	if (!src)
		return -EINVAL;
	return buf_op(&sqe, 2, 3, src, NULL, len, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuMemcpyHtoD);

int lake_cuMemcpyDtoH(u64 ctx, void *dst, u64 src, size_t len)
{
	struct lake_sqe sqe = { .opcode = LAKE_OP_MEMCPY_DTOH, .args = { ctx, 0, src } };

	if (!dst)
		return -EINVAL;
	return buf_op(&sqe, 1, 3, NULL, dst, len, NULL);
}
EXPORT_SYMBOL_GPL(lake_cuMemcpyDtoH);

int lake_cuModuleLoadData(u64 ctx, u64 *mod, const void *image, size_t len)
{
	struct lake_sqe sqe = { .opcode = LAKE_OP_MODULE_LOAD, .args = { ctx } };

	if (!image || !mod)
		return -EINVAL;
	return buf_op(&sqe, 1, 2, image, NULL, len, mod);
}
EXPORT_SYMBOL_GPL(lake_cuModuleLoadData);

int lake_cuModuleGetFunction(u64 ctx, u64 *fn, u64 mod, const char *name)
{
	struct lake_sqe sqe = { .opcode = LAKE_OP_MODULE_GET_FUNCTION, .args = { ctx, mod } };

	if (!name || !fn)
		return -EINVAL;
	return buf_op(&sqe, 2, 3, name, NULL, strlen(name), fn);
}
EXPORT_SYMBOL_GPL(lake_cuModuleGetFunction);

/* launch_desc builds a launch descriptor (freed by the caller). */
static struct lake_launch_desc *launch_desc(gfp_t gfp, const u32 grid[3], const u32 block[3],
					    u32 shared_mem, u64 stream, const u64 *params,
					    u32 nparams, size_t *len)
{
	struct lake_launch_desc *d;

	if (nparams > LAKE_MAX_LAUNCH_PARAMS / 8 || (nparams && !params) || !grid || !block)
		return NULL;
	*len = LAKE_LAUNCH_DESC_HEADER + (size_t)nparams * 8;
	d = kzalloc(*len, gfp);
	if (!d)
		return NULL;
	memcpy(d->grid, grid, sizeof(d->grid));
	memcpy(d->block, block, sizeof(d->block));
	d->shared_mem = shared_mem;
	d->param_bytes = nparams * 8;
	d->stream = stream;
	if (nparams)
		memcpy((u8 *)d + LAKE_LAUNCH_DESC_HEADER, params, (size_t)nparams * 8);
	return d;
}

int lake_cuLaunchKernel(u64 ctx, u64 fn, const u32 grid[3], const u32 block[3],
			u32 shared_mem, u64 stream, const u64 *params, u32 nparams)
{
	struct lake_sqe sqe = { .opcode = LAKE_OP_LAUNCH_KERNEL, .args = { ctx, fn } };
	struct lake_launch_desc *d;
	size_t len;
	int err;

	d = launch_desc(GFP_KERNEL, grid, block, shared_mem, stream, params, nparams, &len);
	if (!d)
		return -EINVAL;
	err = buf_op(&sqe, 2, 3, d, NULL, len, NULL);
	kfree(d);
	return err;
}
EXPORT_SYMBOL_GPL(lake_cuLaunchKernel);

int lake_cuLaunchKernel_async(u64 ctx, u64 fn, const u32 grid[3], const u32 block[3],
			      u32 shared_mem, u64 stream, const u64 *params, u32 nparams,
			      lake_done_fn done, void *arg)
{
	struct lake_sqe sqe = { .opcode = LAKE_OP_LAUNCH_KERNEL, .args = { ctx, fn } };
	struct lake_launch_desc *d;
	size_t len;
	int err;

	d = launch_desc(GFP_ATOMIC, grid, block, shared_mem, stream, params, nparams, &len);
	if (!d)
		return -EINVAL;
	err = async_buf_op(&sqe, 2, 3, d, NULL, len, done, arg);
	kfree(d);
	return err;
}
EXPORT_SYMBOL_GPL(lake_cuLaunchKernel_async);

/* predict_prepare builds a predict call with its input copied in. */
static int predict_prepare(gfp_t gfp, u32 model, u32 n, const void *in, size_t in_len,
			   size_t out_len, struct lake_call **cp, struct lake_sqe *sqe)
{
	struct lake_call *c;
	u64 in_off, out_off;
	int err;

	if (n == 0 || n > 65536 || !in || !in_len || !out_len)
		return -EINVAL;
	c = call_alloc(gfp);
	if (!c)
		return -ENOMEM;
	err = call_buf(c, 0, in_len, &in_off);
	if (!err)
		err = call_buf(c, 1, out_len, &out_off);
	if (err) {
		call_put(c);
		return err;
	}
	memcpy(call_ptr(c, 0), in, in_len);
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = LAKE_OP_PREDICT;
	sqe->args[0] = model;
	sqe->args[1] = n;
	sqe->args[2] = in_off;
	sqe->args[3] = in_len;
	sqe->args[4] = out_off;
	sqe->args[5] = out_len;
	*cp = c;
	return 0;
}

int lake_predict(u32 model, u32 n, const void *in, size_t in_len, void *out, size_t out_len,
		 struct lake_predict_result *res)
{
	return lake_predict_deadline(model, n, in, in_len, out, out_len, 0, res);
}
EXPORT_SYMBOL_GPL(lake_predict);

int lake_predict_deadline(u32 model, u32 n, const void *in, size_t in_len, void *out, size_t out_len,
			  u64 deadline_ns, struct lake_predict_result *res)
{
	struct lake_call *c;
	struct lake_sqe sqe;
	int err;

	if (!out)
		return -EINVAL;
	err = predict_prepare(GFP_KERNEL, model, n, in, in_len, out_len, &c, &sqe);
	if (err)
		return err;
	if (deadline_ns)
		lake_sqe_set_deadline(&sqe, deadline_ns);
	err = call_sync(c, &sqe);
	if (!err) {
		memcpy(out, call_ptr(c, 1), out_len);
		if (res) {
			res->model_version = c->cqe.results[0];
			res->on_gpu = c->cqe.results[1] == 1;
		}
	}
	call_put(c);
	return err;
}
EXPORT_SYMBOL_GPL(lake_predict_deadline);

int lake_predict_async(u32 model, u32 n, const void *in, size_t in_len, void *out, size_t out_len,
		       lake_done_fn done, void *arg)
{
	return lake_predict_async_deadline(model, n, in, in_len, out, out_len, 0, done, arg);
}
EXPORT_SYMBOL_GPL(lake_predict_async);

int lake_predict_async_deadline(u32 model, u32 n, const void *in, size_t in_len, void *out,
				size_t out_len, u64 deadline_ns, lake_done_fn done, void *arg)
{
	struct lake_call *c;
	struct lake_sqe sqe;
	int err;

	if (!out || !done)
		return -EINVAL;
	err = predict_prepare(GFP_ATOMIC, model, n, in, in_len, out_len, &c, &sqe);
	if (err)
		return err;
	if (deadline_ns)
		lake_sqe_set_deadline(&sqe, deadline_ns);
	c->user_done = done;
	c->user_arg = arg;
	c->out = out;
	c->out_len = out_len;
	c->out_buf = 1;
	c->is_predict = true;
	/* the one reference passes to the done callback */
	err = lake_shm_submit(&sqe, call_done, c);
	if (err)
		call_put(c);
	return err;
}
EXPORT_SYMBOL_GPL(lake_predict_async_deadline);

int lake_feat_kopen(const char *name, struct lake_feat_khandle *h)
{
	u64 size;
	void *mem = lake_shm_features(&size);
	int err;

	if (!name || !h)
		return -EINVAL;
	if (!mem)
		return -ENOENT;
	err = lake_feat_attach(&h->view, mem, size);
	if (err == -EPROTO &&
	    ((struct lake_feat_header *)mem)->magic != LAKE_FEAT_MAGIC)
		return -ENOENT; /* laked has not formatted the registry yet */
	if (err)
		return err;
	return lake_feat_schema_find(&h->view, name, &h->schema);
}
EXPORT_SYMBOL_GPL(lake_feat_kopen);

int lake_feat_krecord(struct lake_feat_khandle *h, u64 key, const void *payload, u32 size)
{
	return lake_feat_record(&h->view, &h->schema, key, payload, size);
}
EXPORT_SYMBOL_GPL(lake_feat_krecord);

u32 lake_feat_krecord_size(const struct lake_feat_khandle *h)
{
	return h->schema.record_size;
}
EXPORT_SYMBOL_GPL(lake_feat_krecord_size);

static int __init lakelib_init(void)
{
	u64 size;
	int err;

	arena_base = lake_shm_arena(&size);
	arena_pool = gen_pool_create(6, -1); /* 64-byte granules */
	if (!arena_pool)
		return -ENOMEM;
	err = gen_pool_add(arena_pool, (unsigned long)arena_base, size, -1);
	if (err) {
		gen_pool_destroy(arena_pool);
		return err;
	}
	pr_info("lakelib: ready, arena %llu bytes, timeout %u ms\n", size, timeout_ms);
	return 0;
}

static void __exit lakelib_exit(void)
{
	/* Every call holds a module reference until it is freed, so no call
	 * and no arena buffer is left here. */
	gen_pool_destroy(arena_pool);
}

module_init(lakelib_init);
module_exit(lakelib_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lake: cuXXX-shaped API, predict and feature producer for kernel callers");
MODULE_AUTHOR("The lake authors");
