// fakecuda.c: a fake CUDA driver (libcuda.so.1) for tests on machines
// without a GPU. It implements the driver entry points package cuda uses
// with host memory and runs the built-in kernels of ../ptx/lake.cu,
// compiled for the host (../ptx/host_shim.h), in place of their PTX.
// gen.sh builds it into an ignored folder (make cuda-check: .whl/fake);
// it is never installed, and nothing but a test run loads it.
//
// What it models:
//   - one device (0); device memory is malloc'd host memory (not zeroed),
//     at most LAKE_FAKECUDA_MEM bytes in all (default 2 GiB): cuMemAlloc
//     beyond it is CUDA_ERROR_OUT_OF_MEMORY. Its CUdeviceptr is the host
//     address plus 2^48, outside the host's address space, so device and
//     host addresses cannot be mixed up unnoticed;
//   - contexts, current per thread (cuCtxSetCurrent); every call that
//     needs one without one is CUDA_ERROR_INVALID_CONTEXT;
//   - per context one worker thread that runs the context's queued work
//     (kernels, copies from and to page-locked host memory) in order:
//     a launch returns at once and cuStreamQuery says NOT_READY until the
//     work is done, as on a GPU. Async copies with pageable host memory
//     behave as the driver documents (HtoD staged, DtoH synchronous);
//   - sticky faults: a kernel given a pointer outside its context's
//     allocations (lake_fault does this on purpose) does not run; the
//     context's every later call returns CUDA_ERROR_ILLEGAL_ADDRESS until
//     cuCtxDestroy. Other contexts never notice;
//   - modules: cuModuleLoadData accepts PTX text (".version" and
//     ".entry NAME(" lines) and cuModuleGetFunction finds its entries;
//     only lake.cu's kernels can be launched (others: NOT_SUPPORTED);
//   - host registration: ranges recorded; an overlapping one is
//     CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED.
//
// Fault injection, from the environment at the first cuInit, then from
// lake_fakecuda_control (package cuda's FakeDriverControl) at any time:
//   LAKE_FAKECUDA_MEM=BYTES        device memory size
//   LAKE_FAKECUDA_FAULT=KERNEL     every launch of KERNEL faults
//                                  (CUDA_ERROR_ILLEGAL_ADDRESS, sticky)
//   LAKE_FAKECUDA_HANG=KERNEL      every launch of KERNEL never finishes
//                                  (until its context is destroyed)
//   LAKE_FAKECUDA_REFUSE_REGISTER=1  cuMemHostRegister fails
//                                  (CUDA_ERROR_NOT_PERMITTED)
// (lake_fakecuda_control keys: mem, fault, hang, refuse_register.)
//
// What it is not: a GPU. No PTX is executed (the host build of the same
// CUDA C is), no DMA happens, its memory protection is only the pointer
// check above, and its fault containment is its own bookkeeping.
#define LAKE_HOST 1
#define LAKE_HOST_FAKE 1
#define _GNU_SOURCE
#include <cuda.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__thread unsigned lake_host_tid, lake_host_ctaid;
unsigned lake_host_ntid, lake_host_nctaid;
pthread_barrier_t lake_host_barrier; // unused here: sync_threads is lake_host_sync


#include "../ptx/lake.cu"

#define EXPORT __attribute__((visibility("default")))

// --- state (all under mu) ---

struct op;

struct ctx {
	int dead;	   // destroyed (the struct is never freed: stale handles stay safe)
	CUresult sticky;   // CUDA_SUCCESS or the fault every call now returns
	int cancel;	   // cuCtxDestroy: drop queued work, end the running kernel
	unsigned pending;  // queued or running ops, all streams
	struct op *head, *tail;
	pthread_t worker;
	pthread_cond_t cv; // work queued, work done, cancel
};

struct stream {
	struct ctx *ctx;
	int dead;
	unsigned pending;
};

struct alloc {
	uintptr_t base; // the device address: host + DEV_OFFSET
	void *host;
	size_t size;
	struct ctx *ctx;
	struct alloc *next;
};

struct hostreg {
	uintptr_t base;
	size_t size;
	struct hostreg *next;
};

struct module {
	struct ctx *ctx;
	int dead;
	char **entries;
	int nentries;
};

struct function {
	struct module *mod;
	const char *name; // a known kernel's name (static), or NULL when only the PTX has it
	char *entry;
};

enum { OP_COPY, OP_MEMSET, OP_KERNEL };

struct op {
	int kind;
	struct stream *st; // NULL: the context's null stream
	struct op *next;
	// OP_COPY
	void *dst;
	const void *src;
	size_t n;
	void *staging; // freed after the copy
	unsigned char byte; // OP_MEMSET
	// OP_KERNEL
	const struct kernel *k;
	int fault; // a bad pointer: raises CUDA_ERROR_ILLEGAL_ADDRESS when run
	unsigned grid, block;
	u64 args[8];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t kmu = PTHREAD_MUTEX_INITIALIZER; // one kernel at a time (host_shim's globals)
static int initialised;
static size_t used;
static struct alloc *allocs;
static struct hostreg *hostregs;
static __thread struct ctx *current;
static __thread struct ctx *running; // the context whose kernel this thread runs

// The injected faults (under mu): from the LAKE_FAKECUDA_* variables at
// the first cuInit, then from lake_fakecuda_control. The driver never
// reads the environment after that: a test changing it while the
// driver's threads run would race with getenv.
static struct {
	size_t mem;
	char fault[64], hang[64];
	int refuse_register;
} inj = {.mem = (size_t)2 << 30};
static int inj_loaded;

static void inj_set(const char *key, const char *val)
{
	if (!strcmp(key, "mem"))
		inj.mem = *val ? (size_t)strtoull(val, NULL, 0) : (size_t)2 << 30;
	else if (!strcmp(key, "fault"))
		snprintf(inj.fault, sizeof inj.fault, "%s", val);
	else if (!strcmp(key, "hang"))
		snprintf(inj.hang, sizeof inj.hang, "%s", val);
	else if (!strcmp(key, "refuse_register"))
		inj.refuse_register = *val && strcmp(val, "0");
}

static void inj_load_env(void)
{
	static const char *const vars[][2] = {{"LAKE_FAKECUDA_MEM", "mem"},
					      {"LAKE_FAKECUDA_FAULT", "fault"},
					      {"LAKE_FAKECUDA_HANG", "hang"},
					      {"LAKE_FAKECUDA_REFUSE_REGISTER", "refuse_register"}};
	if (inj_loaded)
		return;
	inj_loaded = 1;
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		const char *v = getenv(vars[i][0]);
		if (v)
			inj_set(vars[i][1], v);
	}
}

static size_t mem_total(void) { return inj.mem; }

static int inj_is(const char *inj_name, const char *name) { return *inj_name && name && !strcmp(inj_name, name); }

// --- the kernels: name, parameter count, which parameters are pointers ---

struct kernel {
	const char *name;
	int nargs;
	unsigned ptrs; // bit i: parameter i is a device pointer
	int barriers;  // uses sync_threads: runs each block's threads as fibers
};

static const struct kernel kernels[] = {
	{"lake_vector_add", 4, 0x7, 0},	     {"lake_spin", 2, 0x1, 0},
	{"lake_fault", 2, 0x1, 0},	     {"lake_linnos_int0", 4, 0x7, 1},
	{"lake_linnos_int1", 4, 0x7, 1},     {"lake_linnos_int2", 4, 0x7, 1},
	{"lake_linnos_float0", 4, 0x7, 1},   {"lake_linnos_float1", 4, 0x7, 1},
	{"lake_linnos_float2", 4, 0x7, 1},   {"lake_mlp", 8, 0x3d, 0},
	{"lake_snapshot_build", 5, 0x15, 0}, {"lake_snapshot_run", 5, 0xf, 0},
};

static const struct kernel *kernel_named(const char *name)
{
	for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
		if (!strcmp(kernels[i].name, name))
			return &kernels[i];
	return NULL;
}

static void call_kernel(const struct kernel *k, const u64 *a)
{
	const char *n = k->name;
	if (!strcmp(n, "lake_vector_add"))
		lake_vector_add((const float *)a[0], (const float *)a[1], (float *)a[2], a[3]);
	else if (!strcmp(n, "lake_spin"))
		lake_spin((u64 *)a[0], a[1]);
	else if (!strcmp(n, "lake_fault"))
		lake_fault((int *)a[0], a[1]);
	else if (!strcmp(n, "lake_linnos_int0"))
		lake_linnos_int0((const i64 *)a[0], (const int *)a[1], (int *)a[2], a[3]);
	else if (!strcmp(n, "lake_linnos_int1"))
		lake_linnos_int1((const i64 *)a[0], (const int *)a[1], (int *)a[2], a[3]);
	else if (!strcmp(n, "lake_linnos_int2"))
		lake_linnos_int2((const i64 *)a[0], (const int *)a[1], (int *)a[2], a[3]);
	else if (!strcmp(n, "lake_linnos_float0"))
		lake_linnos_float0((const float *)a[0], (const int *)a[1], (int *)a[2], a[3]);
	else if (!strcmp(n, "lake_linnos_float1"))
		lake_linnos_float1((const float *)a[0], (const int *)a[1], (int *)a[2], a[3]);
	else if (!strcmp(n, "lake_linnos_float2"))
		lake_linnos_float2((const float *)a[0], (const int *)a[1], (int *)a[2], a[3]);
	else if (!strcmp(n, "lake_mlp"))
		lake_mlp((const unsigned *)a[0], a[1], (const float *)a[2], (const float *)a[3], (float *)a[4],
			 (float *)a[5], a[6], a[7]);
	else if (!strcmp(n, "lake_snapshot_build"))
		lake_snapshot_build((const void *)a[0], a[1], (void *)a[2], a[3], (i64 *)a[4]);
	else if (!strcmp(n, "lake_snapshot_run"))
		lake_snapshot_run((const struct lake_snap *)a[0], (const int32_t *)a[1], (int32_t *)a[2],
				  (int32_t *)a[3], a[4]);
}

// --- fibers: a block's threads for kernels with barriers ---
//
// lake.cu's LinnOS kernels call sync_threads between phases. Each of a
// block's threads runs as a fiber on the worker's OS thread; a barrier
// switches back to the scheduler, which runs every other live fiber up to
// the same barrier (or its end) before resuming the first: a barrier in
// round-robin order. On x86-64 the switch is a few instructions (callee-
// saved registers and the stack pointer); elsewhere ucontext, which makes
// a system call per switch.

#define FIBER_STACK (64 << 10)

static __thread char **fib_stacks;
static __thread unsigned fib_nstacks;
static __thread const struct kernel *fib_k;
static __thread const u64 *fib_args;
static __thread unsigned char *fib_done;

static void fiber_main(unsigned t)
{
	lake_host_tid = t;
	call_kernel(fib_k, fib_args);
	fib_done[t] = 1;
}

#if defined(__x86_64__)
// fib_switch(from, to): saves the callee-saved registers on the current
// stack, stores its pointer in *from and resumes the stack to.
void fib_switch(void **from, void *to);
__asm__(".text\n"
	".type fib_switch,@function\n"
	"fib_switch:\n"
	"\tpushq %rbp\n\tpushq %rbx\n\tpushq %r12\n\tpushq %r13\n\tpushq %r14\n\tpushq %r15\n"
	"\tmovq %rsp, (%rdi)\n"
	"\tmovq %rsi, %rsp\n"
	"\tpopq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\tpopq %rbx\n\tpopq %rbp\n"
	"\tret\n"
	".size fib_switch, .-fib_switch\n");

static __thread void *fib_sched_sp, **fib_sp;

static void fib_entry(void)
{
	unsigned t = lake_host_tid;
	fiber_main(t);
	fib_switch(&fib_sp[t], fib_sched_sp);
	__builtin_unreachable();
}

static void fib_init(unsigned t)
{
	// A stack that fib_switch "returns" into fib_entry from, with the
	// ABI's alignment at its entry (rsp+8 a multiple of 16).
	uintptr_t top = ((uintptr_t)fib_stacks[t] + FIBER_STACK) & ~(uintptr_t)15;
	void **sp = (void **)(top - 16);
	*sp = (void *)fib_entry;
	sp -= 6;
	memset(sp, 0, 6 * sizeof *sp);
	fib_sp[t] = sp;
}

static void fib_resume(unsigned t) { fib_switch(&fib_sched_sp, fib_sp[t]); }

void lake_host_sync(void)
{
	unsigned t = lake_host_tid;
	fib_switch(&fib_sp[t], fib_sched_sp);
}

static int fib_alloc(unsigned n)
{
	free(fib_sp);
	return (fib_sp = calloc(n, sizeof *fib_sp)) ? 0 : -1;
}
#else
#include <ucontext.h>
static __thread ucontext_t fib_sched, *fib_ctx;

static void fib_init(unsigned t)
{
	getcontext(&fib_ctx[t]);
	fib_ctx[t].uc_stack.ss_sp = fib_stacks[t];
	fib_ctx[t].uc_stack.ss_size = FIBER_STACK;
	fib_ctx[t].uc_link = &fib_sched;
	makecontext(&fib_ctx[t], (void (*)(void))fiber_main, 1, t);
}

static void fib_resume(unsigned t) { swapcontext(&fib_sched, &fib_ctx[t]); }

void lake_host_sync(void)
{
	unsigned t = lake_host_tid;
	swapcontext(&fib_ctx[t], &fib_sched);
}

static int fib_alloc(unsigned n)
{
	free(fib_ctx);
	return (fib_ctx = calloc(n, sizeof *fib_ctx)) ? 0 : -1;
}
#endif

unsigned long long lake_host_clock_skew(void)
{
	// A destroyed context's running kernel sees its clock jump, so that
	// lake_spin ends and the worker can be joined.
	struct ctx *c = running;
	return c && __atomic_load_n(&c->cancel, __ATOMIC_RELAXED) ? 1ull << 62 : 0;
}

// fib_free frees the calling worker's fibers.
static void fib_free(void)
{
	for (unsigned i = 0; i < fib_nstacks; i++)
		free(fib_stacks[i]);
	free(fib_stacks);
	free(fib_done);
	fib_alloc(0);
	fib_stacks = NULL;
	fib_done = NULL;
	fib_nstacks = 0;
}

static int run_block_fibers(const struct kernel *k, const u64 *a, unsigned block)
{
	if (fib_nstacks < block) {
		char **s = realloc(fib_stacks, block * sizeof *s);
		if (!s)
			return -1;
		fib_stacks = s;
		for (unsigned i = fib_nstacks; i < block; i++)
			if (!(fib_stacks[i] = malloc(FIBER_STACK)))
				return -1;
		fib_nstacks = block;
		free(fib_done);
		fib_done = calloc(block, 1);
		if (!fib_done || fib_alloc(block))
			return -1;
	}
	fib_k = k;
	fib_args = a;
	for (unsigned t = 0; t < block; t++) {
		fib_done[t] = 0;
		fib_init(t);
	}
	for (unsigned live = block; live;) {
		live = 0;
		for (unsigned t = 0; t < block; t++) {
			if (fib_done[t])
				continue;
			lake_host_tid = t;
			fib_resume(t);
			live += !fib_done[t];
		}
	}
	return 0;
}

static void run_kernel(struct op *o)
{
	pthread_mutex_lock(&kmu);
	lake_host_ntid = o->block;
	lake_host_nctaid = o->grid;
	for (unsigned b = 0; b < o->grid; b++) {
		lake_host_ctaid = b;
		if (o->k->barriers) {
			run_block_fibers(o->k, o->args, o->block);
		} else {
			for (unsigned t = 0; t < o->block; t++) {
				lake_host_tid = t;
				call_kernel(o->k, o->args);
			}
		}
	}
	pthread_mutex_unlock(&kmu);
}

// --- the per-context worker ---

static int faulting(const struct op *o)
{
	return o->kind == OP_KERNEL && (o->fault || inj_is(inj.fault, o->k->name));
}

static int hanging(const struct op *o)
{
	return o->kind == OP_KERNEL && inj_is(inj.hang, o->k->name);
}

static void *worker(void *p)
{
	struct ctx *c = p;
	running = c;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!c->head && !c->cancel)
			pthread_cond_wait(&c->cv, &mu);
		if (c->cancel)
			break;
		struct op *o = c->head;
		if (c->sticky == CUDA_SUCCESS) {
			if (faulting(o)) {
				c->sticky = CUDA_ERROR_ILLEGAL_ADDRESS;
			} else if (hanging(o)) {
				// Until the context is destroyed, or the injection is
				// cleared (then it runs): polled, control wakes nobody.
				while (!c->cancel && hanging(o)) {
					struct timespec ts;
					clock_gettime(CLOCK_REALTIME, &ts);
					ts.tv_nsec += 5000000;
					if (ts.tv_nsec >= 1000000000) {
						ts.tv_sec++;
						ts.tv_nsec -= 1000000000;
					}
					pthread_cond_timedwait(&c->cv, &mu, &ts);
				}
				if (c->cancel)
					break;
				continue; // the head op again, no longer hanging
			} else {
				pthread_mutex_unlock(&mu);
				if (o->kind == OP_COPY)
					memcpy(o->dst, o->src, o->n);
				else if (o->kind == OP_MEMSET)
					memset(o->dst, o->byte, o->n);
				else
					run_kernel(o);
				pthread_mutex_lock(&mu);
			}
		}
		// After a fault the rest of the queue is dropped unrun.
		c->head = o->next;
		if (!c->head)
			c->tail = NULL;
		c->pending--;
		if (o->st)
			o->st->pending--;
		free(o->staging);
		free(o);
		pthread_cond_broadcast(&c->cv);
	}
	// Cancelled: drop what is left.
	while (c->head) {
		struct op *o = c->head;
		c->head = o->next;
		c->pending--;
		if (o->st)
			o->st->pending--;
		free(o->staging);
		free(o);
	}
	c->tail = NULL;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&mu);
	fib_free();
	return NULL;
}

static void enqueue(struct ctx *c, struct op *o)
{
	o->next = NULL;
	if (c->tail)
		c->tail->next = o;
	else
		c->head = o;
	c->tail = o;
	c->pending++;
	if (o->st)
		o->st->pending++;
	pthread_cond_broadcast(&c->cv);
}

// drain waits (under mu) until st's work (st NULL: all the context's)
// is done or the context faulted, and returns the context's state.
static CUresult drain(struct ctx *c, struct stream *st)
{
	while (c->sticky == CUDA_SUCCESS && !c->cancel && (st ? st->pending : c->pending))
		pthread_cond_wait(&c->cv, &mu);
	return c->sticky;
}

// --- helpers ---

// cur checks (under mu) that there is a live, unfaulted current context.
static CUresult cur(struct ctx **out)
{
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	struct ctx *c = current;
	if (!c)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (c->dead)
		return CUDA_ERROR_CONTEXT_IS_DESTROYED;
	*out = c;
	return c->sticky;
}

// stream_of checks that h is NULL or a live stream of c.
static CUresult stream_of(struct ctx *c, CUstream h, struct stream **out)
{
	struct stream *s = (struct stream *)h;
	if (s && (s->dead || s->ctx != c))
		return CUDA_ERROR_INVALID_HANDLE;
	*out = s;
	return CUDA_SUCCESS;
}

// cur_stream: the current context (cur) and h, NULL or one of its live
// streams (stream_of).
static CUresult cur_stream(CUstream h, struct ctx **c, struct stream **s)
{
	CUresult r = cur(c);
	if (r != CUDA_SUCCESS)
		return r;
	return stream_of(*c, h, s);
}

// Device addresses are the host memory's plus DEV_OFFSET: outside the
// host's address space (non-canonical on x86-64), so a device address
// used as a host pointer, or a host pointer passed as a device address,
// fails as it would with a GPU, instead of working by accident.
#define DEV_OFFSET ((uintptr_t)1 << 48)

static void *host_of(uintptr_t dev) { return (void *)(dev - DEV_OFFSET); }

// device_range: n bytes at p lie in one allocation of c.
static int device_range(struct ctx *c, uintptr_t p, size_t n)
{
	for (struct alloc *a = allocs; a; a = a->next)
		if (a->ctx == c && p >= a->base && p - a->base < a->size)
			return n <= a->size - (p - a->base);
	return 0;
}

static int registered(const void *p, size_t n)
{
	uintptr_t u = (uintptr_t)p;
	for (struct hostreg *r = hostregs; r; r = r->next)
		if (u >= r->base && u - r->base < r->size)
			return n <= r->size - (u - r->base);
	return 0;
}

#define LOCKED(expr)                                                                                                   \
	do {                                                                                                           \
		pthread_mutex_lock(&mu);                                                                               \
		CUresult r_ = (expr);                                                                                  \
		pthread_mutex_unlock(&mu);                                                                             \
		return r_;                                                                                             \
	} while (0)

// --- initialisation and the device ---

EXPORT CUresult cuInit(unsigned int flags)
{
	if (flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&mu);
	initialised = 1;
	inj_load_env();
	pthread_mutex_unlock(&mu);
	return CUDA_SUCCESS;
}

// lake_fakecuda_control sets one injection (not a driver call: tests find
// it with dlsym, package cuda's FakeDriverControl): key "mem" (bytes),
// "fault" or "hang" (a kernel name), "refuse_register" ("1"); an empty
// value clears it. It returns 0, or -1 for an unknown key.
EXPORT int lake_fakecuda_control(const char *key, const char *val)
{
	if (!key || !val)
		return -1;
	if (strcmp(key, "mem") && strcmp(key, "fault") && strcmp(key, "hang") && strcmp(key, "refuse_register"))
		return -1;
	pthread_mutex_lock(&mu);
	inj_load_env(); // so that a later cuInit does not undo this
	inj_set(key, val);
	pthread_mutex_unlock(&mu);
	return 0;
}

EXPORT CUresult cuDriverGetVersion(int *v)
{
	if (!v)
		return CUDA_ERROR_INVALID_VALUE;
	*v = CUDA_VERSION;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetCount(int *n)
{
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!n)
		return CUDA_ERROR_INVALID_VALUE;
	*n = 1;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!d)
		return CUDA_ERROR_INVALID_VALUE;
	if (ordinal != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	*d = 0;
	return CUDA_SUCCESS;
}

// The name says what this is: tests look for "fake" in it.
#define FAKE_NAME "lake fake CUDA driver (host kernels)"

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice d)
{
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (d != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (!name || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	snprintf(name, (size_t)len, "%s", FAKE_NAME);
	return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceTotalMem(size_t *bytes, CUdevice d)
{
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (d != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	pthread_mutex_lock(&mu);
	*bytes = mem_total();
	pthread_mutex_unlock(&mu);
	return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice d)
{
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (d != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	switch (a) {
	case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
		*v = 1024;
		return CUDA_SUCCESS;
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
		*v = 9;
		return CUDA_SUCCESS;
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
		*v = 0;
		return CUDA_SUCCESS;
	case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
		*v = 1;
		return CUDA_SUCCESS;
	default:
		return CUDA_ERROR_NOT_SUPPORTED;
	}
}

// --- contexts ---

EXPORT CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice d)
{
	(void)flags;
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (d != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	struct ctx *c = calloc(1, sizeof *c);
	if (!c)
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&c->worker, NULL, worker, c)) {
		free(c);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	current = c;
	*pctx = (CUcontext)c;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxDestroy(CUcontext h)
{
	struct ctx *c = (struct ctx *)h;
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!c)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&mu);
	if (c->dead) {
		pthread_mutex_unlock(&mu);
		return CUDA_ERROR_INVALID_CONTEXT;
	}
	c->dead = 1;
	__atomic_store_n(&c->cancel, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&mu);
	pthread_join(c->worker, NULL); // a running kernel ends (its clock jumps); queued work is dropped
	pthread_mutex_lock(&mu);
	for (struct alloc **pa = &allocs; *pa;) {
		struct alloc *a = *pa;
		if (a->ctx == c) {
			*pa = a->next;
			used -= a->size;
			free(a->host);
			free(a);
		} else {
			pa = &a->next;
		}
	}
	pthread_mutex_unlock(&mu);
	if (current == c)
		current = NULL;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSetCurrent(CUcontext h)
{
	struct ctx *c = (struct ctx *)h;
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	pthread_mutex_lock(&mu);
	CUresult r = CUDA_SUCCESS;
	if (c && c->dead)
		r = CUDA_ERROR_INVALID_CONTEXT;
	else
		current = c;
	pthread_mutex_unlock(&mu);
	return r;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext *h)
{
	if (!initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	*h = (CUcontext)current;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetDevice(CUdevice *d)
{
	struct ctx *c;
	pthread_mutex_lock(&mu);
	CUresult r = cur(&c);
	pthread_mutex_unlock(&mu);
	if (r == CUDA_SUCCESS)
		*d = 0;
	return r;
}

EXPORT CUresult cuCtxGetApiVersion(CUcontext h, unsigned int *v)
{
	(void)h;
	*v = 3020;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSynchronize(void)
{
	struct ctx *c;
	pthread_mutex_lock(&mu);
	CUresult r = cur(&c);
	if (r == CUDA_SUCCESS)
		r = drain(c, NULL);
	pthread_mutex_unlock(&mu);
	return r;
}

// --- memory ---

EXPORT CUresult cuMemGetInfo(size_t *free_, size_t *total)
{
	struct ctx *c;
	pthread_mutex_lock(&mu);
	CUresult r = cur(&c);
	if (r == CUDA_SUCCESS) {
		size_t t = mem_total();
		*total = t;
		*free_ = used < t ? t - used : 0;
	}
	pthread_mutex_unlock(&mu);
	return r;
}

static CUresult mem_alloc(CUdeviceptr *dp, size_t n)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	if (!dp || n == 0)
		return CUDA_ERROR_INVALID_VALUE;
	size_t t = mem_total();
	if (n > t || used > t - n)
		return CUDA_ERROR_OUT_OF_MEMORY;
	struct alloc *a = malloc(sizeof *a);
	void *p = malloc(n);
	if (!a || !p) {
		free(a);
		free(p);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	memset(p, 0xa5, n); // device memory is not zeroed: the backend must clear it
	*a = (struct alloc){.base = (uintptr_t)p + DEV_OFFSET, .host = p, .size = n, .ctx = c, .next = allocs};
	allocs = a;
	used += n;
	*dp = (CUdeviceptr)a->base;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAlloc(CUdeviceptr *dp, size_t n) { LOCKED(mem_alloc(dp, n)); }

static CUresult mem_free(CUdeviceptr dp)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	// Work still queued may use the memory: wait for it, as the
	// driver's implicit synchronisation does.
	if ((r = drain(c, NULL)) != CUDA_SUCCESS)
		return r;
	for (struct alloc **pa = &allocs; *pa; pa = &(*pa)->next) {
		struct alloc *a = *pa;
		if (a->ctx == c && a->base == (uintptr_t)dp) {
			*pa = a->next;
			used -= a->size;
			free(a->host);
			free(a);
			return CUDA_SUCCESS;
		}
	}
	return CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuMemFree(CUdeviceptr dp) { LOCKED(mem_free(dp)); }

// memset_d8: as the driver documents for device memory, asynchronous
// with respect to the host: queued on the null stream (behind all of the
// context's work), and the call returns at once.
static CUresult memset_d8(CUdeviceptr dp, unsigned char v, size_t n)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	if (!device_range(c, (uintptr_t)dp, n))
		return CUDA_ERROR_INVALID_VALUE;
	struct op *o = calloc(1, sizeof *o);
	if (!o)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*o = (struct op){.kind = OP_MEMSET, .dst = host_of(dp), .n = n, .byte = v};
	enqueue(c, o);
	return CUDA_SUCCESS;
}

EXPORT CUresult cuMemsetD8(CUdeviceptr dp, unsigned char v, size_t n) { LOCKED(memset_d8(dp, v, n)); }

// copy: a synchronous copy waits for all of the context's work first (the
// legacy default stream), then copies.
static CUresult copy_sync(uintptr_t dev, size_t n, void *dst, const void *src)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	if (!device_range(c, dev, n))
		return CUDA_ERROR_INVALID_VALUE;
	if ((r = drain(c, NULL)) != CUDA_SUCCESS)
		return r;
	memcpy(dst, src, n);
	return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyHtoD(CUdeviceptr dst, const void *src, size_t n)
{
	LOCKED(copy_sync((uintptr_t)dst, n, host_of(dst), src));
}

EXPORT CUresult cuMemcpyDtoH(void *dst, CUdeviceptr src, size_t n)
{
	LOCKED(copy_sync((uintptr_t)src, n, dst, host_of(src)));
}

// copy_async: with page-locked host memory the copy is queued behind the
// stream's work and the call returns at once. With pageable memory, as
// the driver documents, HtoD is staged (the caller's buffer is read
// before the call returns) and DtoH waits for the stream and copies
// before returning.
static CUresult copy_async(uintptr_t dev, size_t n, void *dst, const void *src, const void *host, int htod, CUstream h)
{
	struct ctx *c;
	struct stream *st;
	CUresult r = cur_stream(h, &c, &st);
	if (r != CUDA_SUCCESS)
		return r;
	if (!device_range(c, dev, n))
		return CUDA_ERROR_INVALID_VALUE;
	int pinned = registered(host, n);
	if (!pinned && !htod) {
		if ((r = drain(c, st)) != CUDA_SUCCESS)
			return r;
		memcpy(dst, src, n);
		return CUDA_SUCCESS;
	}
	struct op *o = calloc(1, sizeof *o);
	if (!o)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*o = (struct op){.kind = OP_COPY, .st = st, .dst = dst, .src = src, .n = n};
	if (!pinned) {
		if (!(o->staging = malloc(n ? n : 1))) {
			free(o);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
		memcpy(o->staging, src, n);
		o->src = o->staging;
	}
	enqueue(c, o);
	return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyHtoDAsync(CUdeviceptr dst, const void *src, size_t n, CUstream h)
{
	LOCKED(copy_async((uintptr_t)dst, n, host_of(dst), src, src, 1, h));
}

EXPORT CUresult cuMemcpyDtoHAsync(void *dst, CUdeviceptr src, size_t n, CUstream h)
{
	LOCKED(copy_async((uintptr_t)src, n, dst, host_of(src), dst, 0, h));
}

// --- host registration ---

static CUresult host_register(void *p, size_t n)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	if (!p || n == 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (inj.refuse_register)
		return CUDA_ERROR_NOT_PERMITTED;
	uintptr_t u = (uintptr_t)p;
	for (struct hostreg *h = hostregs; h; h = h->next)
		if (u < h->base + h->size && h->base < u + n)
			return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
	struct hostreg *h = malloc(sizeof *h);
	if (!h)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*h = (struct hostreg){.base = u, .size = n, .next = hostregs};
	hostregs = h;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuMemHostRegister(void *p, size_t n, unsigned int flags)
{
	(void)flags;
	LOCKED(host_register(p, n));
}

static CUresult host_unregister(void *p)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	for (struct hostreg **ph = &hostregs; *ph; ph = &(*ph)->next) {
		if ((*ph)->base == (uintptr_t)p) {
			struct hostreg *h = *ph;
			*ph = h->next;
			free(h);
			return CUDA_SUCCESS;
		}
	}
	return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

EXPORT CUresult cuMemHostUnregister(void *p) { LOCKED(host_unregister(p)); }

// --- streams ---

static CUresult stream_create(CUstream *out)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	struct stream *s = calloc(1, sizeof *s);
	if (!s)
		return CUDA_ERROR_OUT_OF_MEMORY;
	s->ctx = c;
	*out = (CUstream)s;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamCreate(CUstream *out, unsigned int flags)
{
	(void)flags;
	LOCKED(stream_create(out));
}

static CUresult stream_destroy(CUstream h)
{
	struct ctx *c;
	struct stream *s;
	CUresult r = cur_stream(h, &c, &s);
	if (r != CUDA_SUCCESS)
		return r;
	if (!s)
		return CUDA_ERROR_INVALID_HANDLE;
	s->dead = 1; // its queued work still runs; the struct is kept for it
	return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamDestroy(CUstream h) { LOCKED(stream_destroy(h)); }

static CUresult stream_query(CUstream h)
{
	struct ctx *c;
	struct stream *s;
	CUresult r = cur_stream(h, &c, &s);
	if (r != CUDA_SUCCESS)
		return r;
	return (s ? s->pending : c->pending) ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}

EXPORT CUresult cuStreamQuery(CUstream h) { LOCKED(stream_query(h)); }

static CUresult stream_sync(CUstream h)
{
	struct ctx *c;
	struct stream *s;
	CUresult r = cur_stream(h, &c, &s);
	if (r != CUDA_SUCCESS)
		return r;
	return drain(c, s);
}

EXPORT CUresult cuStreamSynchronize(CUstream h) { LOCKED(stream_sync(h)); }

// --- modules and launches ---

static void module_free(struct module *m)
{
	for (int i = 0; i < m->nentries; i++)
		free(m->entries[i]);
	free(m->entries);
	free(m);
}

// parse_ptx finds the ".entry NAME(" lines of a PTX image.
static CUresult parse_ptx(const char *img, struct module *m)
{
	if (!strstr(img, ".version") || !strstr(img, ".target"))
		return CUDA_ERROR_INVALID_IMAGE;
	for (const char *p = img; (p = strstr(p, ".entry")); ) {
		p += 6;
		while (*p == ' ' || *p == '\t')
			p++;
		const char *e = p;
		while (*e && *e != '(' && *e != ' ' && *e != '\n' && *e != '\t')
			e++;
		if (e == p)
			return CUDA_ERROR_INVALID_PTX;
		char **ne = realloc(m->entries, (m->nentries + 1) * sizeof *ne);
		if (!ne)
			return CUDA_ERROR_OUT_OF_MEMORY;
		m->entries = ne;
		if (!(m->entries[m->nentries] = strndup(p, (size_t)(e - p))))
			return CUDA_ERROR_OUT_OF_MEMORY;
		m->nentries++;
		p = e;
	}
	return CUDA_SUCCESS;
}

static CUresult module_load(CUmodule *out, const void *img)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	if (!out || !img)
		return CUDA_ERROR_INVALID_VALUE;
	struct module *m = calloc(1, sizeof *m);
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->ctx = c;
	if ((r = parse_ptx(img, m)) != CUDA_SUCCESS) {
		module_free(m);
		return r;
	}
	*out = (CUmodule)m;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleLoadData(CUmodule *out, const void *img) { LOCKED(module_load(out, img)); }

static CUresult module_unload(CUmodule h)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	struct module *m = (struct module *)h;
	if (!m || m->dead || m->ctx != c)
		return CUDA_ERROR_INVALID_HANDLE;
	m->dead = 1; // kept: functions taken from it stay safe to look at
	return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleUnload(CUmodule h) { LOCKED(module_unload(h)); }

static CUresult get_function(CUfunction *out, CUmodule h, const char *name)
{
	struct ctx *c;
	CUresult r = cur(&c);
	if (r != CUDA_SUCCESS)
		return r;
	struct module *m = (struct module *)h;
	if (!m || m->dead || m->ctx != c)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!out || !name)
		return CUDA_ERROR_INVALID_VALUE;
	for (int i = 0; i < m->nentries; i++) {
		if (strcmp(m->entries[i], name))
			continue;
		struct function *f = calloc(1, sizeof *f);
		if (!f)
			return CUDA_ERROR_OUT_OF_MEMORY;
		const struct kernel *k = kernel_named(name);
		*f = (struct function){.mod = m, .name = k ? k->name : NULL, .entry = m->entries[i]};
		*out = (CUfunction)f;
		return CUDA_SUCCESS;
	}
	return CUDA_ERROR_NOT_FOUND;
}

EXPORT CUresult cuModuleGetFunction(CUfunction *out, CUmodule h, const char *name)
{
	LOCKED(get_function(out, h, name));
}

static CUresult launch(CUfunction fh, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
		       unsigned shared, CUstream h, void **params, void **extra)
{
	struct ctx *c;
	struct stream *st;
	CUresult r = cur_stream(h, &c, &st);
	if (r != CUDA_SUCCESS)
		return r;
	struct function *f = (struct function *)fh;
	if (!f || f->mod->dead || f->mod->ctx != c)
		return CUDA_ERROR_INVALID_HANDLE;
	if (extra || !params)
		return CUDA_ERROR_INVALID_VALUE;
	if (!gx || !gy || !gz || !bx || !by || !bz || (u64)bx * by * bz > 1024 || shared > 227 * 1024 ||
	    gx > 0x7fffffffu || gy > 65535 || gz > 65535)
		return CUDA_ERROR_INVALID_VALUE;
	if (!f->name)
		return CUDA_ERROR_NOT_SUPPORTED; // in the image, but no host build of it
	if (gy != 1 || gz != 1 || by != 1 || bz != 1)
		return CUDA_ERROR_NOT_SUPPORTED; // lake.cu's kernels are one-dimensional
	const struct kernel *k = kernel_named(f->name);
	struct op *o = calloc(1, sizeof *o);
	if (!o)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*o = (struct op){.kind = OP_KERNEL, .st = st, .k = k, .grid = gx, .block = bx};
	for (int i = 0; i < k->nargs; i++)
		memcpy(&o->args[i], params[i], 8);
	// A pointer outside the context's allocations faults the kernel (the
	// GPU's illegal address), as do the extents a kernel's count implies
	// where they are plain; the fault shows when the work would have run.
	int bad = 0;
	for (int i = 0; i < k->nargs; i++)
		if ((k->ptrs >> i & 1) && !device_range(c, (uintptr_t)o->args[i], 1))
			bad = 1;
	u64 *a = o->args;
	if (!bad && !strcmp(k->name, "lake_vector_add"))
		bad = a[3] > (1ull << 40) || !device_range(c, a[0], 4 * a[3]) || !device_range(c, a[1], 4 * a[3]) ||
		      !device_range(c, a[2], 4 * a[3]);
	else if (!bad && !strncmp(k->name, "lake_linnos_", 12))
		bad = a[3] > (1ull << 32) || !device_range(c, a[1], 4 * LINNOS_IN * a[3]) ||
		      !device_range(c, a[2], 4 * a[3]);
	else if (!bad && !strcmp(k->name, "lake_fault"))
		bad = !device_range(c, a[0], 4);
	else if (!bad && !strcmp(k->name, "lake_spin"))
		bad = !device_range(c, a[0], 8);
	o->fault = bad;
	if (!bad) // the kernel runs on the host: its pointers become host addresses
		for (int i = 0; i < k->nargs; i++)
			if (k->ptrs >> i & 1)
				a[i] = (u64)(uintptr_t)host_of(a[i]);
	enqueue(c, o);
	return CUDA_SUCCESS;
}

EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
			       unsigned int by, unsigned int bz, unsigned int shared, CUstream h, void **params,
			       void **extra)
{
	LOCKED(launch(f, gx, gy, gz, bx, by, bz, shared, h, params, extra));
}
