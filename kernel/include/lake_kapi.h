/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lake_kapi.h - what lake_shm.ko and lakelib.ko export to other kernel
 * modules. Kernel callers use the lakelib functions (lake_cu*, lake_predict,
 * lake_feat_k*); the lake_shm_* functions are the transport lakelib is
 * built on.
 *
 * Errors are negative errnos:
 *   -ENOTCONN   no laked has /dev/lake open (the call was not submitted)
 *   -EPIPE      laked closed /dev/lake or died while the call was pending
 *   -ETIMEDOUT  no completion within lakelib's timeout_ms
 *   -EINTR      the sleeping caller was sent a fatal signal
 *   -EBUSY      too many calls in flight (retry later)
 *   -ENOMEM     no memory (kernel, or the region's data arena)
 *   others      laked's completion status, see lake_status_errno()
 */
#ifndef LAKE_KAPI_H
#define LAKE_KAPI_H

#include <linux/types.h>
#include "lake_shm.h"
#include "lake_features.h"

/* ---- lake_shm.ko: the region and the /dev/lake transport ---- */

/* lake_shm_done_fn is called exactly once per accepted submission: with
 * err 0 and laked's completion (copied out of the ring), or with err
 * -EPIPE and cqe NULL when laked detaches first. It runs in process
 * context (laked's ioctl or close) and must not sleep for long. */
typedef void (*lake_shm_done_fn)(void *arg, int err, const struct lake_cqe *cqe);

/* lake_shm_submit publishes sqe (its seq and tag are ignored: the module
 * assigns the tag) and arranges for done(arg, ...) to be called. Any
 * context, including hard interrupts. Returns 0, -ENOTCONN or -EBUSY; on
 * error done is never called. */
int lake_shm_submit(const struct lake_sqe *sqe, lake_shm_done_fn done, void *arg);

/* lake_shm_arena returns the kernel address and size of the region's data
 * arena. The memory stays mapped while lake_shm.ko is loaded; laked can
 * write any byte of it at any time. */
void *lake_shm_arena(u64 *size);

/* lake_shm_features returns the features area (NULL, size 0 if absent). */
void *lake_shm_features(u64 *size);

/* lake_shm_attached reports whether a laked has /dev/lake open. */
bool lake_shm_attached(void);

/* ---- lakelib.ko: the cuXXX-shaped API and predict ---- */

/* lake_status_errno maps a completion status (enum lake_status) to 0 or a
 * negative errno. */
int lake_status_errno(s32 status);

int lake_cuInit(void);
int lake_cuCtxCreate(u64 *ctx);
int lake_cuCtxDestroy(u64 ctx);
int lake_cuCtxSynchronize(u64 ctx);
int lake_cuMemAlloc(u64 ctx, u64 *dptr, u64 bytes);
int lake_cuMemFree(u64 ctx, u64 dptr);
int lake_cuMemcpyHtoD(u64 ctx, u64 dst, const void *src, size_t len);
int lake_cuMemcpyDtoH(u64 ctx, void *dst, u64 src, size_t len);
int lake_cuModuleLoadData(u64 ctx, u64 *mod, const void *image, size_t len);
int lake_cuModuleUnload(u64 ctx, u64 mod);
int lake_cuModuleGetFunction(u64 ctx, u64 *fn, u64 mod, const char *name);
/* lake_cuLaunchKernel launches fn with nparams 8-byte parameter words. */
int lake_cuLaunchKernel(u64 ctx, u64 fn, const u32 grid[3], const u32 block[3],
			u32 shared_mem, u64 stream, const u64 *params, u32 nparams);
int lake_cuStreamCreate(u64 ctx, u64 *stream);
int lake_cuStreamDestroy(u64 ctx, u64 stream);
int lake_cuStreamSynchronize(u64 ctx, u64 stream);

/* lake_model_info reads a model's per-item input and output sizes. */
int lake_model_info(u32 model, u32 *in_bytes, u32 *out_bytes, u64 *version);

/* lake_model_fetch copies model's portable integer image (a LinnOS int64
 * weight file or a LiteFlow snapshot; shm/PROTOCOL.md, model_fetch) into
 * buf (len bytes; len 0 with buf NULL asks for the size) and returns its
 * length in *out_len and the model version it belongs to in *version.
 * Process context (sleeps up to lakelib's timeout_ms). Errors: -ENOENT no
 * such model; -EMSGSIZE buf too small, *out_len = the bytes needed and
 * *version set; -EOPNOTSUPP the model has no integer image (*version
 * set); -EPROTO laked answered sizes that do not add up; and the errors of
 * every call. The image comes from laked: validate it (magic, dimensions,
 * CRC, value ranges) before building a model from it. */
int lake_model_fetch(u32 model, void *buf, size_t len, size_t *out_len, u64 *version);

/* struct lake_predict_result is what a predict completion reports. */
struct lake_predict_result {
	u64 model_version;
	bool on_gpu;
};

/* lake_predict runs n items through model: in holds n * input bytes per
 * item, out receives n * output bytes per item. Process context (sleeps
 * up to lakelib's timeout_ms). res may be NULL. */
int lake_predict(u32 model, u32 n, const void *in, size_t in_len, void *out, size_t out_len,
		 struct lake_predict_result *res);

/* lake_done_fn completes an async call: err is 0 or a negative errno;
 * res is valid when err is 0 (all zero for calls other than predict). */
typedef void (*lake_done_fn)(void *arg, int err, const struct lake_predict_result *res);

/* Async variants for contexts that cannot sleep (any context, hard
 * interrupts included). Each copies its input at once, returns 0 when
 * submitted (done will then be called exactly once, in process context,
 * after any output was written) or a negative errno (done is not called).
 * "Async" means completion by callback, not CUDA stream ordering: laked
 * runs each on the default stream when it arrives. No timeout: done runs
 * when laked answers or detaches (-EPIPE). */
int lake_cuMemcpyHtoD_async(u64 ctx, u64 dst, const void *src, size_t len, lake_done_fn done, void *arg);
int lake_cuMemcpyDtoH_async(u64 ctx, void *dst, u64 src, size_t len, lake_done_fn done, void *arg);
int lake_cuLaunchKernel_async(u64 ctx, u64 fn, const u32 grid[3], const u32 block[3],
			      u32 shared_mem, u64 stream, const u64 *params, u32 nparams,
			      lake_done_fn done, void *arg);

/* lake_predict_async is lake_predict for contexts that cannot sleep (any
 * context, hard interrupts included): it copies in, returns at once, and
 * later writes out (which must stay valid until then) and calls
 * done(arg, err, res) in process context. Returns 0 when submitted (done
 * will be called exactly once) or a negative errno (done is not called).
 * There is no timeout: done is called when laked completes the call or
 * when laked detaches (-EPIPE). */
int lake_predict_async(u32 model, u32 n, const void *in, size_t in_len, void *out, size_t out_len,
		       lake_done_fn done, void *arg);

/* The _deadline variants carry a deadline (shm/PROTOCOL.md, "Deadlines"):
 * deadline_ns is a ktime_get_ns() time, at most 4.19 s ahead (0: none).
 * laked answers a predict that cannot finish by then at once, without
 * running it: the call fails with -ETIME. */
int lake_predict_deadline(u32 model, u32 n, const void *in, size_t in_len, void *out, size_t out_len,
			  u64 deadline_ns, struct lake_predict_result *res);
int lake_predict_async_deadline(u32 model, u32 n, const void *in, size_t in_len, void *out,
				size_t out_len, u64 deadline_ns, lake_done_fn done, void *arg);

/* ---- lakelib.ko: the in-kernel feature registry producer ---- */

/* struct lake_feat_khandle is a kernel producer's handle on one schema of
 * the region's feature registry (shm/PROTOCOL.md, "Feature registry area"). Opaque; the
 * geometry it caches was validated once by lake_feat_kopen; the shared
 * area is never re-read for offsets afterwards. */
struct lake_feat_khandle {
	struct lake_feat_view view;
	struct lake_feat_sdesc schema;
};

/* lake_feat_kopen finds schema name in the region's registry (laked
 * formats the registry and registers schemas). -ENOENT if the region has
 * no registry or no such schema yet, -EPROTO if it is corrupt. */
int lake_feat_kopen(const char *name, struct lake_feat_khandle *h);

/* lake_feat_krecord appends one sample (size must equal the schema's
 * record size) for key. Never sleeps or waits; any context. */
int lake_feat_krecord(struct lake_feat_khandle *h, u64 key, const void *payload, u32 size);

/* lake_feat_krecord_size returns the schema's record size in bytes. */
u32 lake_feat_krecord_size(const struct lake_feat_khandle *h);

#endif /* LAKE_KAPI_H */
