/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * lake_client.h - the C userspace library for lake regions
 * (shm/PROTOCOL.md). It shares its ring code with the kernel module
 * (lake_shm.h, lake_ring.h) and adds what userspace needs:
 *
 *   - attaching to a region: memory already mapped, a region fd (a memfd
 *     from laked, a file on /dev/shm), or a connection to laked's unix
 *     socket (the handshake, with the memfd passed by SCM_RIGHTS);
 *   - submitting from many threads (lock-free, lake_sq_submit) and
 *     ringing laked's futex doorbell;
 *   - reaping completions (serialised by the library) and sleeping on the
 *     completion futex doorbell;
 *   - the laked side of the same rings (wait for submissions, post
 *     completions, ring the client), for tests and tools.
 *
 * Functions return 0 or a negative errno unless documented otherwise.
 * The region is untrusted: its geometry is validated once at attach and
 * cached in struct lake_client; nothing below re-reads it.
 */
#ifndef LAKE_CLIENT_H
#define LAKE_CLIENT_H

#include <pthread.h>
#include <stddef.h>

#include "lake_ring.h"

struct lake_client {
	void *mem;          /* the mapping */
	size_t len;         /* its length */
	int fd;             /* region fd, or -1 */
	int sock;           /* connection to laked, or -1 */
	int owns_map;       /* detach unmaps mem */
	struct lake_ring ring;
	pthread_mutex_t reap_mu; /* serialises reapers (single CQ consumer) */
	lake_u32 client_id;
};

/* lake_client_attach validates a region already mapped at mem (len bytes,
 * 64-byte aligned). The client does not own the mapping. */
int lake_client_attach(struct lake_client *c, void *mem, size_t len);

/* lake_client_map_fd maps region fd (len bytes; 0: the file's size) and
 * attaches. The client owns the mapping and fd afterwards. */
int lake_client_map_fd(struct lake_client *c, int fd, size_t len);

/* lake_client_connect connects to laked's socket at path, asks for a new
 * region with these sizes (zero: laked's defaults), maps the memfd laked
 * sends and attaches. The connection stays open for the session. */
int lake_client_connect(struct lake_client *c, const char *path, lake_u32 sq_entries,
			lake_u32 cq_entries, lake_u64 arena_size, lake_u64 features_size);

/* lake_client_detach unmaps and closes what the client owns. */
void lake_client_detach(struct lake_client *c);

/* lake_client_submit publishes sqe (any thread) and rings laked's doorbell
 * if it sleeps. -EAGAIN when the ring is full. */
int lake_client_submit(struct lake_client *c, const struct lake_sqe *sqe);

/* lake_client_reap copies up to max completions out; returns how many. */
unsigned lake_client_reap(struct lake_client *c, struct lake_cqe *out, unsigned max);

/* lake_client_wait_cq sleeps on the completion doorbell until laked rings
 * it, a completion is already there, or timeout_ms passes (-1: no limit).
 * Returns 0 (check with lake_client_reap), -ETIMEDOUT or -EINTR. */
int lake_client_wait_cq(struct lake_client *c, int timeout_ms);

/* lake_client_call submits sqe and waits for the completion with its tag;
 * other completions reaped meanwhile are dropped, so use it only when
 * this thread is the region's only user (tools, tests). */
int lake_client_call(struct lake_client *c, const struct lake_sqe *sqe, struct lake_cqe *cqe, int timeout_ms);

/* lake_client_model_fetch copies model's portable integer image
 * (shm/PROTOCOL.md, model_fetch) into the arena range [off, off+len) of
 * c's region with a call (lake_client_call's rules) and returns its length
 * in *out_len and the model version in *version. len 0 asks for the size.
 * Errors: -ENOENT no such model, -EMSGSIZE the range is too small
 * (*out_len = the size needed), -EOPNOTSUPP no integer image (or a laked
 * older than protocol 1.1), -ERANGE the range is outside the arena,
 * -EPROTO sizes laked answered that do not add up, -EIO another status.
 * The image is in shared memory that laked can still write: copy it out,
 * then validate the copy. */
int lake_client_model_fetch(struct lake_client *c, lake_u32 model, lake_u64 off, lake_u64 len,
			    lake_u64 *out_len, lake_u64 *version, int timeout_ms);

/* ---- the laked side (tests and tools) ---- */

/* lake_server_wait_sq sleeps on the submission doorbell (announcing itself
 * in sq_need_wakeup) until a submission is at *head or timeout_ms passes
 * (-1: no limit). Returns 0, -ETIMEDOUT or -EINTR. */
int lake_server_wait_sq(struct lake_client *c, lake_u32 head, int timeout_ms);

/* lake_server_ring_cq wakes clients sleeping in lake_client_wait_cq. */
void lake_server_ring_cq(struct lake_client *c);

#endif /* LAKE_CLIENT_H */
