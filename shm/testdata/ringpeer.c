#define _DEFAULT_SOURCE
/* A C client of a region file: attaches with lake_ring_init, submits n
 * NOPs with tags 1000+i through lake_sq_submit, then reaps n completions
 * (posted by the Go test) and prints "tag status" per completion. Used by
 * shm's TestCRingPeer to show that C and Go run the same ring. */
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include "lake_shm.h"

static unsigned reap(struct lake_ring *r)
{
	struct lake_cqe c[16];
	unsigned k = lake_cq_reap(r, c, 16);
	for (unsigned j = 0; j < k; j++)
		printf("%llu %d\n", (unsigned long long)c[j].tag, c[j].status);
	if (!k)
		usleep(20);
	return k;
}

int main(int argc, char **argv)
{
	struct lake_ring r;
	struct stat st;
	int fd, n, i, got = 0;
	void *mem;
	if (argc != 3)
		return 2;
	n = atoi(argv[2]);
	fd = open(argv[1], O_RDWR);
	if (fd < 0 || fstat(fd, &st) < 0)
		return 3;
	mem = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED)
		return 4;
	if (lake_ring_init(&r, mem, st.st_size) != 0) {
		fprintf(stderr, "bad region\n");
		return 5;
	}
	/* Submit n NOPs; whenever the submission ring is full, reap: the
	 * completion ring holds fewer than n, so a client that only submits
	 * would deadlock against a consumer that never drops completions. */
	for (i = 0; i < n; i++) {
		struct lake_sqe s = {0};
		s.opcode = LAKE_OP_NOP;
		s.tag = 1000 + i;
		s.args[0] = i;
		while (lake_sq_submit(&r, &s) != 0)
			got += reap(&r);
	}
	for (int spins = 0; got < n && spins < 200000; spins++) {
		unsigned k = reap(&r);
		got += k;
		if (!k)
			usleep(50);
	}
	return got == n ? 0 : 6;
}
