/*
 * The coordinator's requests to logical shards (one "part" each), shared by
 * coordinator/coordinator.c (nodes, the handler, start and stop), route.c (routing, scatter and
 * gather), collections.c (create, drop, list, stats, ids, build, check) and points.c (upsert,
 * get, delete, search), and by nothing else.
 */
#ifndef OMEN_COORDINATOR_ROUTE_H
#define OMEN_COORDINATOR_ROUTE_H

#include "coordinator/internal.h"

/* One request to one logical shard, and its answer. */
typedef struct part {
	uint32_t shard;
	wire_req req;
	wire_rep rep;
	int st;          /* transport status, then the reply's status */
	char *err;       /* detail of a failure */
	uint64_t *index; /* positions in the caller's arrays of the part's points */
	peer *to;        /* the node holding the logical shard */
	int replied;     /* the node answered (st is then its reply's status) */
	int done;        /* co_scatter skips the part: its answer is final */
	/* Copies (Raft): the copies a read may try, in order, and the next one; a write's copies
	 * to forward to (req.copies points at copy_urls) and their nodes */
	uint32_t ncand, next;
	peer *cand[META_MAX_COPIES];
	uint64_t primary; /* node id of the copy a write goes to */
	char *copy_urls[META_MAX_COPIES];
	uint64_t copy_node[META_MAX_COPIES];
} part;

uint32_t co_deadline(const coord *c, const wire_req *q);
int co_gather_status(coord *c, const part *p, uint32_t n, const char *what);
int co_list_all(coord *c, coll_info **out, size_t *n);
int co_lookup(coord *c, const char *name, coll_info *ci);
peer *co_part_peer(const coord *c, const part *p);
void co_parts_free(part *p, uint32_t n);
part *co_parts_new(const coll_info *ci, const wire_req *q);
part *co_parts_copies(const coll_info *ci, const wire_req *q, int in_sync_only, uint32_t *n);
uint32_t co_scatter(coord *c, part *p, uint32_t n, uint32_t timeout_ms);
uint32_t co_scatter_reads(coord *c, const coll_info *ci, part *p, uint32_t n, uint32_t deadline_ms);
uint32_t co_scatter_writes(coord *c, const coll_info *ci, part *p, uint32_t n,
                           uint32_t deadline_ms);
uint32_t co_shard_of(uint64_t id, uint32_t nshards);
int co_ask_all(coord *c, const wire_req *q, coll_info *ci, part **out);
int co_do_build(coord *c, const wire_req *q);
int co_do_check(coord *c, const wire_req *q, wire_rep *r);
int co_do_create(coord *c, const wire_req *q);
int co_do_drop(coord *c, const wire_req *q);
int co_do_ids(coord *c, const wire_req *q, wire_rep *r);
int co_do_list(coord *c, wire_rep *r);
int co_do_stats(coord *c, const wire_req *q, wire_rep *r);
int co_batch_check(const coll_info *ci, const wire_req *q);
int co_do_delete(coord *c, const wire_req *q, wire_rep *r);
int co_do_get(coord *c, const wire_req *q, wire_rep *r);
int co_do_search(coord *c, const wire_req *q, wire_rep *r);
int co_do_upsert(coord *c, const wire_req *q, wire_rep *r);
int co_ids_assign(coord *c, const coll_info *ci, const wire_req *q, uint64_t **ids);

#endif
