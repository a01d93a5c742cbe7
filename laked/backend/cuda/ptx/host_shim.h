// Host emulation of the few device facilities lake.cu uses, so that the
// kernels' logic runs (and is checked against the Go CPU models) on a
// machine without a GPU: host_test.cc runs each block as blockDim host
// threads. Not the GPU's memory model or scheduling: what it checks is
// the arithmetic, the indexing and the barrier structure.
#include <pthread.h>

#define GLOBAL
#define SHARED static
#define DEVICE

extern __thread unsigned lake_host_tid, lake_host_ctaid;
extern unsigned lake_host_ntid, lake_host_nctaid;
extern pthread_barrier_t lake_host_barrier;

static inline unsigned tid_x(void) { return lake_host_tid; }
static inline unsigned ntid_x(void) { return lake_host_ntid; }
static inline unsigned ctaid_x(void) { return lake_host_ctaid; }
static inline unsigned nctaid_x(void) { return lake_host_nctaid; }
#ifdef LAKE_HOST_FAKE
// The fake CUDA driver (../fake/fakecuda.c) runs a block's threads as
// fibers on one OS thread: a barrier is a switch back to its scheduler,
// and a kernel whose context is destroyed sees its clock jump forward.
void lake_host_sync(void);
unsigned long long lake_host_clock_skew(void);
static inline void sync_threads(void) { lake_host_sync(); }
#else
static inline void sync_threads(void) { pthread_barrier_wait(&lake_host_barrier); }
#endif
// Compiled with -ffp-contract=off: a product and a sum each round once.
static inline float fmul(float a, float b) { return a * b; }
static inline float fadd(float a, float b) { return a + b; }
static inline double dmul(double a, double b) { return a * b; }
static inline double dadd(double a, double b) { return a + b; }
static inline double ddiv(double a, double b) { return a / b; }
static inline double bits2d(unsigned long long b)
{
	union {
		unsigned long long u;
		double d;
	} v = {.u = b};
	return v.d;
}
// A monotonic cycle count for lake_spin (nanoseconds on the host).
#include <time.h>
static inline unsigned long long clock64_(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long t = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
#ifdef LAKE_HOST_FAKE
	t += lake_host_clock_skew();
#endif
	return t;
}
