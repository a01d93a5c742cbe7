/* Prints every offset and size of lake_shm.h as "name value" lines, for
 * shm's TestCLayoutMatches to compare with the Go constants. */
#include <stdio.h>
#include "lake_shm.h"

#define F(s, f) printf("%s.%s %zu\n", #s, #f, offsetof(struct s, f))
#define S(s) printf("sizeof.%s %zu\n", #s, sizeof(struct s))
#define C(n) printf("const.%s %llu\n", #n, (unsigned long long)(n))

int main(void)
{
	F(lake_region_header, magic); F(lake_region_header, version_major);
	F(lake_region_header, version_minor); F(lake_region_header, header_size);
	F(lake_region_header, flags); F(lake_region_header, region_size);
	F(lake_region_header, sq_entries); F(lake_region_header, cq_entries);
	F(lake_region_header, slot_size); F(lake_region_header, client_id);
	F(lake_region_header, sqes_off); F(lake_region_header, cqes_off);
	F(lake_region_header, arena_off); F(lake_region_header, arena_size);
	F(lake_region_header, features_off); F(lake_region_header, features_size);
	F(lake_region_header, daemon_epoch); F(lake_region_header, daemon_state);
	F(lake_region_header, sq_tail); F(lake_region_header, sq_head);
	F(lake_region_header, sq_wake_seq); F(lake_region_header, sq_need_wakeup);
	F(lake_region_header, cq_tail); F(lake_region_header, cq_head);
	F(lake_region_header, cq_wake_seq); F(lake_region_header, cq_waiters);
	S(lake_region_header);
	F(lake_sqe, seq); F(lake_sqe, opcode); F(lake_sqe, flags); F(lake_sqe, pad);
	F(lake_sqe, tag); F(lake_sqe, args); S(lake_sqe);
	F(lake_cqe, status); F(lake_cqe, tag); F(lake_cqe, results); S(lake_cqe);
	F(lake_launch_desc, grid); F(lake_launch_desc, block); F(lake_launch_desc, shared_mem);
	F(lake_launch_desc, param_bytes); F(lake_launch_desc, stream); S(lake_launch_desc);
	S(lake_hello); S(lake_reply);
	C(LAKE_MAGIC); C(LAKE_HELLO_MAGIC); C(LAKE_REPLY_MAGIC);
	C(LAKE_OP_NOP); C(LAKE_OP_MODEL_INFO); C(LAKE_OP_MODEL_FETCH); C(LAKE_OP_PREDICT); C(LAKE_OP_LAUNCH_KERNEL);
	C(LAKE_ERR_CONTEXT_DESTROYED); C(LAKE_ERR_SHUTDOWN); C(LAKE_ERR_BUFFER_TOO_SMALL); C(LAKE_VERSION_MAJOR); C(LAKE_VERSION_MINOR);
	C(LAKE_ERR_DEADLINE); C(LAKE_SQE_F_DEADLINE); C(LAKE_DEADLINE_BITS); C(LAKE_MAX_DEADLINE_AHEAD_US);
	{
		/* deadline encodings, compared bit for bit with shm.SetDeadline */
		static const lake_u64 ns[] = {0, 999, 1000, 123456789012ull, 8388607999ull, 8388608000ull, 0xffffffffffffffffull};
		unsigned i;
		for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
			struct lake_sqe e = {0};
			lake_sqe_set_deadline(&e, ns[i]);
			printf("deadline.%u %llu\n", i, (unsigned long long)e.flags << 16 | e.pad);
		}
	}
	return 0;
}
