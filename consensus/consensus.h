/*
 * Cluster metadata replicated by Raft (canonical/raft over libuv) among the coordinators: the
 * nodes of the cluster, the collections, the shard map (each collection's logical shards
 * assigned to shard nodes) with its epoch, and id allocation. Internal to consensus/.
 *
 * Two parts:
 *  - the state machine (fsm.c and fsm_*.c, which share internal.h): deterministic, kept in its
 *    own LMDB environment with the last applied Raft index in the same transaction as each
 *    change, so that a restart neither loses nor applies an entry twice; snapshot and
 *    restore; reads from any thread;
 *  - the Raft node (raftnode.c): raft_uv on its own thread and libuv loop (raft is not
 *    thread-safe); other threads submit commands through a queue woken by uv_async_send and
 *    wait for the apply result.
 */
#ifndef OMEN_CONSENSUS_H
#define OMEN_CONSENSUS_H

#include <stddef.h>
#include <stdint.h>

#include "omendb/omendb.h"

/* ---- the state ---- */

#define META_MAX_ADDR 128

/* A draining shard node (docs/CLUSTER.md, "Draining") keeps serving what it holds, gets no new
 * logical shard or copy, and the leader moves what it holds to the others. */
enum { META_ROLE_COORDINATOR = 1, META_ROLE_SHARD = 2, META_ROLE_DRAINING = 3 };
enum { META_NODE_UP = 0, META_NODE_DOWN = 1 };

/* Copies of a logical shard (docs/CLUSTER.md, "Copies"): on distinct shard nodes, each in sync
 * (it has every acknowledged write; it serves reads) or stale (it missed a write: it serves
 * nothing until a full copy has brought it back). The primary, which orders the shard's writes,
 * is the first copy in sync. */
#define META_MAX_COPIES 5
enum { META_COPY_IN_SYNC = 0, META_COPY_STALE = 1 };

typedef struct meta_copies {
	uint32_t n;
	uint64_t node[META_MAX_COPIES];
	uint8_t state[META_MAX_COPIES]; /* META_COPY_* */
} meta_copies;

/* The index of the primary (the first copy in sync), or -1 when no copy is in sync. */
static inline int meta_copies_primary(const meta_copies *c)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->state[i] == META_COPY_IN_SYNC)
			return (int)i;
	return -1;
}

/* Whether role is a shard node's, draining or not. */
static inline int meta_is_shard(int role)
{
	return role == META_ROLE_SHARD || role == META_ROLE_DRAINING;
}

typedef struct meta_node {
	uint64_t id;
	char addr[META_MAX_ADDR]; /* nng URL: the coordinator's client endpoint, or the shard's */
	int role;                 /* META_ROLE_* */
	int state;                /* META_NODE_* */
} meta_node;

typedef struct meta_coll {
	char name[OMEN_MAX_NAME + 1];
	uint32_t dim;
	omen_metric metric;
	uint32_t nshards;
	uint32_t replicas; /* copies of each logical shard, 1..META_MAX_COPIES (0 reads as 1) */
	uint64_t next_id;  /* ids below are allocated */
} meta_coll;

/* ---- commands (fsm_cmd.c encodes them as msgpack with a version; one per Raft entry) ---- */

typedef enum {
	CMD_NODE_SET = 1, /* register a node or change its address/state (node) */
	CMD_COLL_CREATE,  /* coll (name, dim, metric, nshards, replicas): copy j of logical shard s
	                     goes to the ((s + j) mod U)-th of the U shard nodes that are up, in
	                     id order */
	CMD_COLL_DROP,    /* coll.name */
	CMD_SHARD_ASSIGN, /* coll.name, shard, node_id: moves a logical shard of one copy */
	CMD_IDS_ALLOC,    /* coll.name, count: result = first id of the range allocated */
	CMD_NOOP,         /* changes nothing (tests, barriers) */
	CMD_COPY_FAIL,    /* coll.name, shard, node_id (the primary as the caller saw it), failed
	                     (nfailed node ids): those copies become stale; a stale primary hands
	                     over to the next copy in sync. OMEN_ESTALE when node_id is no longer
	                     the primary, OMEN_EUNAVAIL when no copy in sync would remain */
	CMD_COPIES_SET    /* coll.name, shard, expect, copies: replaces the copies when they are
	                     still `expect` (else OMEN_ESTALE) */
} cmd_kind;

typedef struct meta_cmd {
	cmd_kind kind;
	meta_node node;
	meta_coll coll;
	uint32_t shard;
	uint64_t node_id;
	uint64_t count;
	uint64_t failed[META_MAX_COPIES];
	uint32_t nfailed;
	meta_copies expect, copies;
} meta_cmd;

/* Encodes into a buffer from raft_malloc (what raft_apply takes), or malloc when for_raft is 0. */
int cmd_encode(const meta_cmd *c, int for_raft, void **buf, size_t *len);
/* Decodes untrusted bytes: OMEN_EPROTO on anything malformed or of another version. */
int cmd_decode(const void *buf, size_t len, meta_cmd *c);

/* The outcome of applying one command: status (OMEN_OK, OMEN_EEXIST for an existing
 * collection, OMEN_ENOTFOUND, OMEN_EINVAL for a shard or node out of range, OMEN_EUNAVAIL when
 * no shard node is up to take a new collection's shards...), a value (CMD_IDS_ALLOC's first
 * id) and the map epoch after it. */
typedef struct fsm_result {
	int status;
	uint64_t value;
	uint64_t epoch;
} fsm_result;

/* ---- the state machine (fsm.c and fsm_*.c) ---- */

typedef struct fsm fsm;

/* Opens (creating) the state in directory dir (LMDB environment). */
int fsm_open(const char *dir, fsm **out);
void fsm_close(fsm *f);

/* Applies the command of Raft entry `index`. An index at or below the last applied one is
 * skipped (res->status OMEN_OK, nothing changes): replays after a restart are harmless. The
 * change and the new last applied index are one LMDB transaction. Returns OMEN_OK, or an
 * error when the state could not be written (then nothing changed); the command's own
 * outcome is in res. */
int fsm_apply(fsm *f, uint64_t index, const meta_cmd *c, fsm_result *res);

uint64_t fsm_last_applied(fsm *f);

/* The whole state as one buffer (malloc; includes the last applied index), and back. */
int fsm_snapshot(fsm *f, void **buf, size_t *len);
int fsm_restore(fsm *f, const void *buf, size_t len);

/* The last applied index recorded in a snapshot made by fsm_snapshot (OMEN_ECORRUPT when the
 * bytes are not one). raftnode.c skips restoring a snapshot this state is already past. */
int fsm_snapshot_applied(const void *buf, size_t len, uint64_t *applied);

/* Reads, from any thread, each in one read transaction. */
uint64_t fsm_epoch(fsm *f);
int fsm_coll_get(fsm *f, const char *name, meta_coll *out); /* OMEN_ENOTFOUND */
int fsm_coll_list(fsm *f, meta_coll **out, size_t *n);      /* malloc'd, name order */
/* The node id of each of the collection's nshards logical shards (its primary's, or its first
 * copy's when none is in sync; malloc'd) and the epoch. */
int fsm_shard_map(fsm *f, const char *name, uint64_t **nodes, uint32_t *nshards, uint64_t *epoch);
/* The copies of each of the collection's nshards logical shards (malloc'd) and the epoch. */
int fsm_shard_copies(fsm *f, const char *name, meta_copies **copies, uint32_t *nshards,
                     uint64_t *epoch);
int fsm_node_get(fsm *f, uint64_t id, meta_node *out); /* OMEN_ENOTFOUND */
int fsm_node_list(fsm *f, meta_node **out, size_t *n); /* malloc'd, id order */

/* ---- the Raft node (raftnode.c) ---- */

typedef struct cons_peer {
	uint64_t id;           /* Raft server id, >= 1 */
	const char *raft_addr; /* "host:port" of its Raft transport */
} cons_peer;

typedef struct cons_config {
	uint64_t id;
	const char *raft_addr;  /* this node's Raft "host:port" */
	const char *dir;        /* Raft log and snapshots (created if missing); the FSM's own
	                           directory is the caller's */
	const cons_peer *peers; /* the initial voters, this node included: bootstraps a new
	                           cluster (every first-time member passes the same list) */
	size_t npeers;
	unsigned election_ms;        /* default 1000 */
	unsigned heartbeat_ms;       /* default 100 */
	unsigned snapshot_threshold; /* entries between snapshots, default 1024 */
	unsigned snapshot_trailing;  /* entries kept after a snapshot, default 128 */
} cons_config;

typedef struct cons cons;

/* Starts the node on its own thread. */
int cons_start(const cons_config *cfg, fsm *f, cons **out);

/* Stops the loop thread and closes raft; the FSM stays open (the caller closes it). */
void cons_stop(cons *c);

/* Submits a command and waits (at most timeout_ms; 0: 10 s) until it is committed and applied
 * here. OMEN_OK with res filled; OMEN_ENOTLEADER-like failures return OMEN_EBUSY with *leader
 * set to the known leader's id (0 when none is known yet); OMEN_EUNAVAIL on timeout (the
 * command may still be applied later). Thread-safe; must not be called from the loop thread. */
int cons_apply(cons *c, const meta_cmd *cmd, uint32_t timeout_ms, fsm_result *res,
               uint64_t *leader);

/* The leader as this node knows it (0 when none), and whether it is this node. */
uint64_t cons_leader(cons *c);
int cons_is_leader(cons *c);

/* Membership, on the leader (OMEN_EBUSY otherwise, with *leader as above): add a voter, remove
 * a server, hand leadership to another voter (0: the most up-to-date one). Wait until done. */
int cons_add(cons *c, uint64_t id, const char *raft_addr, uint32_t timeout_ms, uint64_t *leader);
int cons_remove(cons *c, uint64_t id, uint32_t timeout_ms, uint64_t *leader);
int cons_transfer(cons *c, uint64_t to, uint32_t timeout_ms, uint64_t *leader);

/* ---- internal: the raft_fsm over an fsm (raftnode.c), shared with the tests that drive it
 * through raft's in-memory fixture ---- */

struct raft;
struct raft_fsm;

/* Fills rf (raft_fsm version 2: apply, snapshot, snapshot_finalize, restore) so that the
 * entries of raft instance r are applied to f, entry i as fsm_apply(f, i, ...). r must be the
 * instance that rf is given to (raft_init, raft_fixture_grow); only its address is taken here.
 * The result handed to raft_apply's callback is a `const fsm_result *` valid only during that
 * callback. Allocates rf->data: cons_fsm_close frees it (after raft is closed). */
int cons_fsm_init(struct raft_fsm *rf, fsm *f, struct raft *r);
void cons_fsm_close(struct raft_fsm *rf);

#endif
