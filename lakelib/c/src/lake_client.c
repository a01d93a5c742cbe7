// SPDX-License-Identifier: (GPL-2.0 OR MIT)
/*
 * lake_client.c - the C userspace library for lake regions; see
 * lake_client.h. Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../lake_client.h"

static void client_zero(struct lake_client *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->sock = -1;
}

int lake_client_attach(struct lake_client *c, void *mem, size_t len)
{
	client_zero(c);
	if (!mem || ((unsigned long)mem & 63))
		return -EINVAL;
	if (lake_ring_init(&c->ring, mem, len))
		return -EPROTO;
	c->mem = mem;
	c->len = len;
	c->client_id = __atomic_load_n(&c->ring.hdr->client_id, __ATOMIC_RELAXED);
	if (pthread_mutex_init(&c->reap_mu, NULL))
		return -ENOMEM;
	return 0;
}

int lake_client_map_fd(struct lake_client *c, int fd, size_t len)
{
	struct stat st;
	void *mem;
	int err;

	if (fd < 0)
		return -EBADF;
	if (len == 0) {
		if (fstat(fd, &st))
			return -errno;
		if (st.st_size <= 0)
			return -EINVAL;
		len = (size_t)st.st_size;
	}
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED)
		return -errno;
	err = lake_client_attach(c, mem, len);
	if (err) {
		munmap(mem, len);
		return err;
	}
	c->fd = fd;
	c->owns_map = 1;
	return 0;
}

void lake_client_detach(struct lake_client *c)
{
	if (c->owns_map && c->mem)
		munmap(c->mem, c->len);
	if (c->fd >= 0)
		close(c->fd);
	if (c->sock >= 0)
		close(c->sock);
	if (c->mem)
		pthread_mutex_destroy(&c->reap_mu);
	client_zero(c);
}

static int full_io(int fd, void *buf, size_t n, int writing)
{
	unsigned char *p = buf;

	while (n) {
		ssize_t k = writing ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ECONNRESET;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int lake_client_connect(struct lake_client *c, const char *path, lake_u32 sq_entries,
			lake_u32 cq_entries, lake_u64 arena_size, lake_u64 features_size)
{
	struct sockaddr_un sa;
	struct lake_hello hello;
	struct lake_reply reply;
	struct msghdr msg;
	struct iovec iov;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct cmsghdr *cm;
	int s, fd = -1, err;
	ssize_t k;

	client_zero(c);
	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		goto fail;
	}
	memset(&hello, 0, sizeof(hello));
	hello.magic = LAKE_HELLO_MAGIC;
	hello.version_major = LAKE_VERSION_MAJOR;
	hello.version_minor = LAKE_VERSION_MINOR;
	hello.kind = LAKE_HELLO_NEW;
	hello.sq_entries = sq_entries ? sq_entries : 256;
	hello.cq_entries = cq_entries ? cq_entries : 512;
	hello.arena_size = arena_size ? arena_size : 16u << 20;
	hello.features_size = features_size;
	err = full_io(s, &hello, sizeof(hello), 1);
	if (err)
		goto fail;

	memset(&msg, 0, sizeof(msg));
	memset(&ctl, 0, sizeof(ctl));
	iov.iov_base = &reply;
	iov.iov_len = sizeof(reply);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	do
		k = recvmsg(s, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	while (k < 0 && errno == EINTR);
	if (k < 0) {
		err = -errno;
		goto fail;
	}
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)) && fd < 0)
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	}
	if ((size_t)k < sizeof(reply)) {
		err = full_io(s, (char *)&reply + k, sizeof(reply) - (size_t)k, 0);
		if (err)
			goto fail;
	}
	if (reply.magic != LAKE_REPLY_MAGIC) {
		err = -EPROTO;
		goto fail;
	}
	if (reply.status != LAKE_OK) {
		err = reply.status == LAKE_ERR_OUT_OF_MEMORY ? -ENOMEM :
		      reply.status == LAKE_ERR_BUSY ? -EBUSY : -ECONNREFUSED;
		goto fail;
	}
	if (fd < 0 || reply.region_size < LAKE_HEADER_SIZE || reply.region_size > SIZE_MAX) {
		err = -EPROTO;
		goto fail;
	}
	err = lake_client_map_fd(c, fd, (size_t)reply.region_size);
	if (err)
		goto fail;
	c->sock = s;
	c->client_id = reply.client_id;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	close(s);
	client_zero(c);
	return err;
}

static long futex(lake_u32 *w, int op, lake_u32 val, const struct timespec *ts)
{
	return syscall(SYS_futex, w, op, val, ts, NULL, 0);
}

/* futex_sleep waits on w while it holds val, up to timeout_ms (-1: no
 * limit). */
static int futex_sleep(lake_u32 *w, lake_u32 val, int timeout_ms)
{
	struct timespec ts, *tp = NULL;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tp = &ts;
	}
	if (futex(w, FUTEX_WAIT, val, tp) == 0)
		return 0;
	if (errno == EAGAIN)
		return 0; /* the word changed: rung */
	if (errno == ETIMEDOUT)
		return -ETIMEDOUT;
	return -errno;
}

static void futex_ring(lake_u32 *seq, lake_u32 *waiters)
{
	if (__atomic_load_n(waiters, __ATOMIC_SEQ_CST) == 0)
		return;
	__atomic_add_fetch(seq, 1, __ATOMIC_SEQ_CST);
	futex(seq, FUTEX_WAKE, INT_MAX, NULL);
}

int lake_client_submit(struct lake_client *c, const struct lake_sqe *sqe)
{
	if (lake_sq_submit(&c->ring, sqe))
		return -EAGAIN;
	futex_ring(&c->ring.hdr->sq_wake_seq, &c->ring.hdr->sq_need_wakeup);
	return 0;
}

unsigned lake_client_reap(struct lake_client *c, struct lake_cqe *out, unsigned max)
{
	unsigned n;

	pthread_mutex_lock(&c->reap_mu);
	n = lake_cq_reap(&c->ring, out, max);
	pthread_mutex_unlock(&c->reap_mu);
	return n;
}

static int cq_ready(struct lake_client *c)
{
	return __atomic_load_n(&c->ring.hdr->cq_tail, __ATOMIC_SEQ_CST) !=
	       __atomic_load_n(&c->ring.hdr->cq_head, __ATOMIC_SEQ_CST);
}

int lake_client_wait_cq(struct lake_client *c, int timeout_ms)
{
	struct lake_region_header *h = c->ring.hdr;
	lake_u32 v = __atomic_load_n(&h->cq_wake_seq, __ATOMIC_SEQ_CST);
	int err = 0;

	__atomic_add_fetch(&h->cq_waiters, 1, __ATOMIC_SEQ_CST);
	if (!cq_ready(c))
		err = futex_sleep(&h->cq_wake_seq, v, timeout_ms);
	__atomic_sub_fetch(&h->cq_waiters, 1, __ATOMIC_SEQ_CST);
	return err;
}

int lake_client_call(struct lake_client *c, const struct lake_sqe *sqe, struct lake_cqe *cqe, int timeout_ms)
{
	int err = lake_client_submit(c, sqe);

	if (err)
		return err;
	for (;;) {
		struct lake_cqe got[16];
		unsigned n = lake_client_reap(c, got, 16), i;

		for (i = 0; i < n; i++) {
			if (got[i].tag == sqe->tag) {
				*cqe = got[i];
				return 0;
			}
		}
		if (n)
			continue;
		err = lake_client_wait_cq(c, timeout_ms);
		if (err)
			return err;
	}
}

int lake_client_model_fetch(struct lake_client *c, lake_u32 model, lake_u64 off, lake_u64 len,
			    lake_u64 *out_len, lake_u64 *version, int timeout_ms)
{
	static lake_u64 tags;
	struct lake_sqe s;
	struct lake_cqe r;
	int err;

	if (!out_len || !version)
		return -EINVAL;
	if (!lake_arena_ok(&c->ring, off, len))
		return -ERANGE;
	memset(&s, 0, sizeof(s));
	s.opcode = LAKE_OP_MODEL_FETCH;
	s.tag = 0x4d46000000000000ull | (__atomic_add_fetch(&tags, 1, __ATOMIC_RELAXED) & 0xffffffffffffull);
	s.args[0] = model;
	s.args[1] = off;
	s.args[2] = len;
	err = lake_client_call(c, &s, &r, timeout_ms);
	if (err)
		return err;
	*version = r.results[1];
	switch (r.status) {
	case LAKE_OK:
		if (r.results[0] == 0 || r.results[0] > len)
			return -EPROTO;
		*out_len = r.results[0];
		return 0;
	case LAKE_ERR_BUFFER_TOO_SMALL:
		if (r.results[0] <= len)
			return -EPROTO;
		*out_len = r.results[0];
		return -EMSGSIZE;
	case LAKE_ERR_NOT_FOUND:
		return -ENOENT;
	case LAKE_ERR_NOT_SUPPORTED:
	case LAKE_ERR_BAD_OPCODE:
		return -EOPNOTSUPP;
	case LAKE_ERR_OUT_OF_BOUNDS:
		return -ERANGE;
	}
	return -EIO;
}

int lake_server_wait_sq(struct lake_client *c, lake_u32 head, int timeout_ms)
{
	struct lake_region_header *h = c->ring.hdr;
	struct lake_sqe *s = &c->ring.sqes[head & c->ring.sq_mask];
	lake_u32 v = __atomic_load_n(&h->sq_wake_seq, __ATOMIC_SEQ_CST);
	int err = 0;

	__atomic_add_fetch(&h->sq_need_wakeup, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&s->seq, __ATOMIC_SEQ_CST) != head + 1)
		err = futex_sleep(&h->sq_wake_seq, v, timeout_ms);
	__atomic_sub_fetch(&h->sq_need_wakeup, 1, __ATOMIC_SEQ_CST);
	return err;
}

void lake_server_ring_cq(struct lake_client *c)
{
	futex_ring(&c->ring.hdr->cq_wake_seq, &c->ring.hdr->cq_waiters);
}
