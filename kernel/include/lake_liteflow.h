/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lake_liteflow.h - the LiteFlow API lake_liteflow.ko exports to other
 * kernel modules, in the spirit of LiteFlow's lf_register_model /
 * lf_query_model / lf_register_io. An app (a kernel datapath: a TCP
 * congestion controller, a flow scheduler) registers its input and output
 * sizes; its model is an integer snapshot (liteflow/SNAPSHOT.md) that is
 * data, not code: laked serves it as a model (model id in the app's
 * description) and lake_liteflow.ko polls the model's version with
 * lake_model_info and fetches a changed image with lake_model_fetch,
 * validates it with lake_snapshot.h, builds a private copy and makes it
 * active (RCU). A refused image leaves the old snapshot active and is
 * reported (dmesg, /proc/lake_liteflow).
 *
 * Queries run in any context (hard interrupts included, NMI excluded),
 * never sleep and never wait for an install. A query runs with local
 * interrupts off (it uses its CPU's scratch of the answering snapshot):
 * its cost, up to a 1024-wide snapshot's million multiply-adds per
 * layer, is interrupt latency on that CPU; keep datapath snapshots
 * small. A query with a non-zero flow id is answered
 * by the snapshot the flow started on (the flow cache) until the flow
 * ends (lf_flow_end), idles past flow_ttl_ms or is evicted from its cache
 * set (then it restarts on the active snapshot).
 *
 * All errors are negative errnos. Values are quantized integers in the
 * snapshot's domains; lf_query_model reports the quantization of the
 * input and output so the caller can convert with lake_snap_quantize_fx /
 * lake_snap_dequantize_fx (lake_snapshot.h).
 */
#ifndef LAKE_LITEFLOW_H
#define LAKE_LITEFLOW_H

#include <linux/types.h>

/* The widest stage (inputs included) a kernel snapshot may have: the
 * format's limit (LAKE_SNAP_MAX_WIDTH in lake_snapshot.h). Queries use
 * per-CPU scratch allocated for each snapshot when it is installed, not
 * the stack. */
#define LF_MAX_WIDTH 1024
#define LF_NAME_LEN 32

struct lf_app;

/* struct lf_app_desc describes an app to lf_register_model. */
struct lf_app_desc {
	const char *name; /* [a-z0-9_.-], < LF_NAME_LEN; feature schema "liteflow.<name>" */
	u32 lake_model;   /* laked model id carrying the snapshots; 0: lf_install only */
	u32 in_dim;       /* 1..LF_MAX_WIDTH */
	u32 out_dim;      /* 1..LF_MAX_WIDTH */
};

/* struct lf_answer says which snapshot answered and how to read it. */
struct lf_answer {
	u64 version;        /* install version (laked's model version, or lf_install's) */
	u64 generation;     /* the snapshot's producer generation */
	u32 in_scale_bits;  /* binary32 bits of the input scale */
	s32 in_zero;
	u32 out_scale_bits; /* binary32 bits of the output scale */
	s32 out_zero;
	s32 lo, hi;         /* integer range of inputs and outputs */
	bool pinned;        /* answered by the flow's pinned snapshot */
};

/* lf_input_fn fills q_in (in_dim values) for one decision; ans describes
 * the snapshot that will answer (for a pinned flow, its pinned snapshot).
 * It runs inside the query's RCU read section with local interrupts off:
 * it must not sleep. Return
 * 0, or a negative errno to skip the query (the enforcer is then called
 * with that error). */
typedef int (*lf_input_fn)(void *ctx, const struct lf_answer *ans, s32 *q_in);

/* lf_output_fn applies a decision: err 0, ans and q_out (out_dim values),
 * or err < 0 (-ENODATA: no snapshot; the collector's error) with ans and
 * q_out NULL, when the enforcer must fall back to its classic behaviour.
 * With an answer it runs inside the query's section with local
 * interrupts off (q_out is per-CPU scratch): it must not sleep. */
typedef void (*lf_output_fn)(void *ctx, int err, const struct lf_answer *ans, const s32 *q_out);

/* lf_register_model registers an app; returns it or an ERR_PTR
 * (-EINVAL bad description, -EEXIST name taken, -ENOMEM). Process
 * context. */
struct lf_app *lf_register_model(const struct lf_app_desc *d);

/* lf_unregister_model removes the app and frees its snapshots once no
 * query uses them. Process context; no query on app may start after. */
void lf_unregister_model(struct lf_app *app);

/* lf_register_io sets the app's input collector and output enforcer for
 * lf_process. Process context. */
int lf_register_io(struct lf_app *app, lf_input_fn input, lf_output_fn output);

/* lf_query_model answers one decision: q_in (in_dim values, clamped to
 * [lo, hi]) to q_out (out_dim values). Any context; never sleeps or
 * waits. -ENODATA when no snapshot is installed. ans may be NULL. */
int lf_query_model(struct lf_app *app, u64 flow, const s32 *q_in, s32 *q_out, struct lf_answer *ans);

/* lf_process runs the registered collector, the query and the enforcer
 * for one decision of flow (ctx is passed to both). Any context. Returns
 * the query's result (the enforcer has been called either way), -EINVAL
 * if no I/O is registered. */
int lf_process(struct lf_app *app, u64 flow, void *ctx);

/* lf_flow_end unpins a flow (its next query starts on the active
 * snapshot). Any context. */
void lf_flow_end(struct lf_app *app, u64 flow);

/* lf_install validates img (a snapshot codec image), builds it and makes
 * it active under version. Process context. On a refusal the active
 * snapshot is unchanged, the reason is in why (if why) and the result is
 * -EINVAL/-EBADMSG (bad image, a stage wider than LF_MAX_WIDTH
 * included), -E2BIG (shape differs from the app) or -ENOMEM. */
int lf_install(struct lf_app *app, const void *img, size_t len, u64 version, char *why, size_t whylen);

/* lf_record hands one sample to laked through the region's feature
 * registry, schema "liteflow.<app name>" (laked registers it; the record
 * layout is the app's). Any context; never waits. -ENOENT while the
 * schema is not there yet (the poller looks for it every poll_ms). */
int lf_record(struct lf_app *app, u64 key, const void *rec, u32 size);

/* lf_record_size is the record size lf_record wants (0 while the schema
 * is not there). */
u32 lf_record_size(struct lf_app *app);

/* lf_active_version returns the active snapshot's version (0: none). */
u64 lf_active_version(struct lf_app *app);

#endif /* LAKE_LITEFLOW_H */
