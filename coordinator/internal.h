/*
 * Internals shared by the files of coordinator/: the metadata store and the coordinator's
 * state.
 */
#ifndef OMEN_COORDINATOR_INTERNAL_H
#define OMEN_COORDINATOR_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "consensus/consensus.h"
#include "coordinator/coordinator.h"
#include "net/net.h"

#define COORD_DEFAULT_SHARDS 8

/* The copies of one logical shard as routes (Raft): each copy's node, state (META_COPY_*) and
 * peer, in the state's order (the primary is the first in sync). */
typedef struct route_copies {
	uint32_t n;
	uint64_t node[META_MAX_COPIES];
	uint8_t state[META_MAX_COPIES];
	peer *to[META_MAX_COPIES];
} route_copies;

/* A collection as the coordinator knows it. */
typedef struct coll_info {
	char name[OMEN_MAX_NAME + 1];
	uint32_t dim;
	omen_metric metric;
	uint32_t nshards;
	uint64_t epoch; /* of the shard map it was read with (0 without Raft) */
	peer **to;      /* the node of each logical shard (Raft: its primary), or NULL: shard s
	                   mod nodes */
	const route_copies *copies; /* each logical shard's copies (Raft), or NULL */
	uint32_t replicas;          /* copies a shard should have (1 without Raft) */
} coll_info;

typedef struct meta {
	MDB_env *env;
	MDB_dbi dbi;
} meta;

int meta_open(meta *m, const char *data);
void meta_close(meta *m);
/* OMEN_ENOTFOUND (with a message) when there is no such collection. */
int meta_get(meta *m, const char *name, coll_info *out);
int meta_put(meta *m, const coll_info *ci);
int meta_del(meta *m, const char *name);
/* Every collection in name order; *out is malloc'd. */
int meta_list(meta *m, coll_info **out, size_t *n_out);

/* The next id to assign in a collection (ids given by no caller), kept in memory: learnt from
 * the shards at first use, then advanced under the coordinator's lock. */
typedef struct next_id {
	char name[OMEN_MAX_NAME + 1];
	uint64_t next;
	struct next_id *link;
} next_id;

/* A shard map as routes (replicated.c): kept until the coordinator stops, so that a lookup's
 * routes stay valid however the map changes meanwhile. */
typedef struct route_map {
	char name[OMEN_MAX_NAME + 1];
	uint64_t epoch;
	uint32_t nshards;
	peer **to;
	route_copies *copies;
	struct route_map *next;
} route_map;

/* Peers by URL, opened on demand and kept (replicated.c). */
typedef struct peer_ref {
	peer *p;
	struct peer_ref *next;
} peer_ref;

/* An id range allocated through Raft, handed out by the leader (replicated.c). */
typedef struct id_range {
	char name[OMEN_MAX_NAME + 1];
	uint64_t next, end;
	struct id_range *link;
} id_range;

/* A registered shard node's last heartbeat, as the leader heard it (replicated.c). */
typedef struct heard {
	uint64_t id;
	uint64_t at_ms; /* mono_ms() */
	struct heard *next;
} heard;

struct coord {
	coord_config cfg;
	char *token;
	meta meta;
	peer **nodes; /* one per shard node */
	size_t nnodes;
	pthread_mutex_t mu; /* guards ids and serialises collection changes */
	next_id *ids;
	srv *srv;
	metrics *metrics;
	http_srv *http;
	/* Raft (replicated.c); fsm == NULL without it */
	fsm *fsm;
	cons *cons;
	pthread_mutex_t rmu; /* guards routes, peers, ranges */
	route_map *routes;
	peer_ref *peers;
	id_range *ranges;
	pthread_t keeper; /* registers nodes and watches the shard nodes (leader only) */
	int keeper_on;
	pthread_mutex_t kmu;
	pthread_cond_t kcv;
	int stopping;
	heard *heard;          /* registered shard nodes' last heartbeats (leader; under rmu) */
	uint64_t leader_since; /* mono_ms() when this coordinator last became the leader */
	pthread_t balancer;    /* moves logical shards to balance the nodes (balance.c) */
	int balancer_on;
	uint64_t moves_done, moves_failed; /* by this coordinator as the leader */
	uint64_t cleanups;                 /* of marked copies, done by it as the leader */
	_Atomic uint32_t rr;               /* spreads reads over the copies in sync */
};

/* ---- replicated metadata (replicated.c) ---- */

int rmeta_start(coord *c);
void rmeta_stop(coord *c);
/* The collection and its routes from the replicated state. */
int rmeta_lookup(coord *c, const char *name, coll_info *ci);
int rmeta_list(coord *c, coll_info **out, size_t *n);
/* Applies a command through Raft on this coordinator; OMEN_EBUSY when it is not the leader
 * (the caller forwards the request). */
int rmeta_apply(coord *c, const meta_cmd *cmd, fsm_result *res);
/* Whether the request must go to the leader: metadata changes and id allocation. */
int rmeta_must_forward(coord *c, const wire_req *q);
/* Sends the request to the leader coordinator and copies its reply. */
int rmeta_forward(coord *c, const wire_req *q, wire_rep *r);
/* On the leader: registers the configured nodes and their states now (the keeper does it
 * every half second), e.g. before a first collection right after an election. */
void rmeta_register_now(coord *c);
/* n fresh ids of a collection (leader only): at least floor. */
int rmeta_ids(coord *c, const char *name, uint64_t n, uint64_t floor, uint64_t *first);
/* Takes the copies on nodes failed[0..nfailed) of a logical shard out of the copies in sync
 * (CMD_COPY_FAIL through Raft; a follower asks the leader with COPYFAIL), primary being the
 * shard's primary as the caller routed by; waits until this coordinator's replica shows the
 * change. OMEN_ESTALE when primary is no longer the primary, OMEN_EUNAVAIL when no copy in
 * sync would remain. */
int rmeta_copy_fail(coord *c, const char *name, uint32_t shard, uint64_t primary,
                    const uint64_t *failed, uint32_t nfailed);
/* COPYFAIL on the leader: r->count gets the epoch of the change. */
int rmeta_copy_fail_req(coord *c, const wire_req *q, wire_rep *r);
/* JOIN on the leader: registers the shard node or records its heartbeat. */
int rmeta_join(coord *c, const wire_req *q);
/* Every shard node of the node table (up or down), as peers (*out malloc'd, n of them). */
int rmeta_shard_peers(coord *c, peer ***out, size_t *n);
/* The peer of a node's URL, opened on first use and kept. */
peer *rmeta_peer(coord *c, const char *url);
/* Registers (or updates) a node through Raft when the replica differs. */
void rmeta_node_ensure(coord *c, uint64_t id, const char *addr, int role, int state);

/* ---- merging search answers (merge.c) ---- */

/* One logical shard's answer to a search of nq queries: nq rows of k ids and distances, each
 * row closest first and padded with OMEN_NO_ID / INFINITY when the shard holds fewer than k
 * matching points. ids NULL: the shard did not answer, and is left out. */
typedef struct merge_src {
	const uint64_t *ids;
	const float *dists;
} merge_src;

/* Merges the answers of nsrc shards into the global top k of each query: ids and dists (nq x k,
 * the caller's) receive, row by row, the k closest candidates of every answering shard, ties
 * broken by the smaller id, padded with OMEN_NO_ID / INFINITY when fewer than k exist.
 * OMEN_OK, or OMEN_ENOMEM (the output is then unspecified). */
int merge_topk(const merge_src *src, uint32_t nsrc, uint64_t nq, uint32_t k, uint64_t *ids,
               float *dists);

/* ---- recovery of copies (recover.c), by the leader's balancer thread ---- */

#define RECOVER_MAX_NODES 1024
/* The shard nodes this leader has seen down, and since when (mono_ms()). */
typedef struct recover_state {
	size_t n;
	uint64_t id[RECOVER_MAX_NODES], since[RECOVER_MAX_NODES];
} recover_state;

/* Does the first thing the copies need (a stale copy made again, a copy on a node down past
 * the grace period taken out of the copies in sync): 1 when it did one, 0 when nothing is
 * needed, -1 on a failure (logged). */
int recover_step(coord *c, recover_state *rs);
/* Moves one copy from the shard node holding the most copies of a collection to the one
 * holding the fewest (a node that just joined holds none): 1 when it moved one, 0 when the
 * copies are spread evenly, -1 on a failure (logged). */
int recover_spread(coord *c);
/* Whether every collection's copies are spread evenly over the shard nodes that are up. */
int recover_spread_even(coord *c);

/* ---- rebalancing (balance.c): the leader moves logical shards to new shard nodes ---- */

int balance_start(coord *c);
/* Which node of nodes[0..n) (holding count[] shards or copies of a collection) gives one to
 * which: a draining node holding any, else the node holding the most when it holds two or more
 * more than the one holding the fewest; never to a draining node. Whether there is a move. */
int balance_pick(const meta_node *nodes, const uint32_t *count, size_t n, size_t *hi, size_t *lo);
/* Whether every collection's shards are spread evenly over the shard nodes that are up. */
int balance_even(coord *c);
void balance_stop(coord *c);

#endif
