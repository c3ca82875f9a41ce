/*
 * Copying a logical shard from one shard node to another while it serves, shared by the
 * leader's moves (balance.c) and its recovery of copies (recover.c); the steps are in
 * docs/CLUSTER.md, "Rebalancing". Internal to coordinator/.
 */
#ifndef OMEN_COORDINATOR_COPY_H
#define OMEN_COORDINATOR_COPY_H

#include "coordinator/internal.h"

/* A request of op to logical shard `shard` of collection name, with the token and the epoch. */
void mv_req(wire_req *q, coord *c, wire_op op, const char *name, uint32_t shard);
/* Sends q to p; on failure the status message names the node. r is freed by the caller. */
int mv_call(peer *p, const wire_req *q, uint32_t timeout_ms, wire_rep *r);
/* FENCE mode (wire_fence_mode) on p; mc (for FENCE_INCOMING) gives dim and metric; count
 * gets the reply's count (FENCE_FREEZE: the ids tracked). */
int mv_fence(coord *c, peer *p, const char *name, uint32_t shard, int mode, const meta_coll *mc,
             uint64_t *count);
/* Drops p's unit of the shard. */
int mv_drop(coord *c, peer *p, const char *name, uint32_t shard);
/* Copies every id a lists for the shard (mode 0: all; WIRE_IDS_TRACKED: those written since
 * tracking began) from a to b. */
int mv_copy_ids(coord *c, peer *a, peer *b, const meta_coll *mc, uint32_t shard, int mode,
                uint64_t *copied);
/* Builds on b the index a has for the shard, with the same parameters. */
int mv_copy_index(coord *c, peer *a, peer *b, const meta_coll *mc, uint32_t shard);

/* What a copy did, for the log. */
typedef struct mv_stats {
	uint64_t t0, t_index, t_freeze; /* mono_ms() at the start, the index, the freeze */
	uint64_t bulk, tracked, delta;  /* points copied, ids tracked, points copied again */
} mv_stats;

/* Steps 1-5 of a move: b gets an incoming copy of a's unit of the shard, a tracks, the points
 * and the index are copied, a freezes, the tracked ids are copied again. On success b holds
 * exactly what a holds and a is frozen (the caller switches the map, then accepts b and
 * releases or drops a); on failure a is released and b's unit dropped. */
int mv_copy(coord *c, peer *a, peer *b, const meta_coll *mc, uint32_t shard, mv_stats *ms);
/* Logs a finished copy (what: "moved", "copied"...). */
void mv_log(const char *what, const meta_coll *mc, uint32_t shard, uint64_t node,
            const mv_stats *ms, uint64_t epoch);

#endif
