/*
 * The coordinator: routes each call of the public API to the shard nodes that hold the
 * collection's logical shards, gathers and merges their answers, and serves clients over nng
 * (the wire protocol) and over HTTP with JSON. Internal to coordinator/.
 */
#ifndef OMEN_COORDINATOR_H
#define OMEN_COORDINATOR_H

#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

typedef struct coord coord;

/* A coordinator of a Raft group: its Raft id, Raft transport and client endpoint. */
typedef struct coord_peer {
	uint64_t id;
	const char *raft;   /* "host:port" */
	const char *listen; /* nng URL */
} coord_peer;

typedef struct coord_config {
	const char *data;   /* directory of the coordinator's metadata (created if missing) */
	const char *listen; /* nng URL for clients, e.g. "tcp://127.0.0.1:7700" */
	const char *http;   /* HTTP URL, e.g. "http://127.0.0.1:7780", or NULL for none */
	const char *const *shards; /* shard node URLs; logical shard s of a collection lives on
	                              shards[s % nshards] */
	size_t nshards;
	const char *token;       /* shared secret required on both endpoints, or NULL */
	uint32_t deadline_ms;    /* default search/write deadline (default 5000) */
	size_t max_message;      /* bytes per message / HTTP body (default WIRE_MAX_MSG_DEFAULT) */
	int workers;             /* concurrent client requests served (default 16) */
	uint32_t default_shards; /* logical shards of a collection created without a number
	                            (default COORD_DEFAULT_SHARDS, 8) */
	/* Raft (docs/CONSENSUS.md): with raft_id set, the collections, the shard map and id
	 * allocation are replicated among the coordinators of peers (this one included). */
	uint64_t raft_id;
	const char *raft_addr;
	const coord_peer *peers; /* copied by coord_start; the strings must outlive the
	                            coordinator */
	size_t npeers;
	unsigned election_ms;      /* default 1000 */
	int join;                  /* a new member of a running group: peers are not bootstrapped */
	uint32_t replica_grace_ms; /* how long a shard node may be down before the leader makes
	                              its copies again on other nodes (docs/CLUSTER.md) */
} coord_config;

/* Opens the metadata, connects to the shard nodes (connections are retried in the
 * background) and starts listening. On success *out runs until coord_stop. */
int coord_start(const coord_config *cfg, coord **out);

/* Stops accepting requests, lets those in flight finish, closes everything. NULL is fine. */
void coord_stop(coord *c);

/* The bound TCP port of the nng endpoint (useful with port 0). */
int coord_port(const coord *c);

/* Handles one request (its token already checked) and fills rep; what rep's pointers hold is
 * malloc'd and released by wire_rep_free. Thread-safe; blocks until the shards answer or the
 * deadline passes. Does not record metrics: each endpoint records its own requests. */
void coord_handle(coord *c, const wire_req *req, wire_rep *rep);

/* Raft role: -1 without Raft, 0 follower (or candidate), 1 leader; *leader receives the
 * leader's id (0 when unknown). */
int coord_raft_role(coord *c, uint64_t *leader);

/* Hands the Raft leadership to coordinator `to` (0: the most up-to-date other one) and waits
 * for it; *leader receives the new leader's id. OMEN_EBUSY (naming the leader) when this
 * coordinator is not the leader, OMEN_ENOTSUP without Raft. */
int coord_raft_transfer(coord *c, uint64_t to, uint64_t *leader);

/* A node of the cluster as this coordinator's replica records it (Raft). */
typedef struct coord_node_info {
	uint64_t id;
	char addr[128];
	int coordinator; /* 1: a coordinator, 0: a shard node */
	int draining;    /* a shard node being drained (coord_drain) */
	int up;
	uint32_t shards; /* logical shards it is the primary of, over every collection */
	uint32_t copies; /* copies of logical shards it holds (primaries included) */
	uint32_t stale;  /* of those, the stale ones */
} coord_node_info;

typedef struct coord_cluster_info {
	uint64_t epoch;                    /* of the shard map */
	uint64_t moves_done, moves_failed; /* shard moves by this coordinator as leader */
	uint64_t cleanups;                 /* its cleanups of marked copies as leader */
	int balanced;                      /* no collection's shards need moving */
} coord_cluster_info;

/* The nodes (malloc'd, id order) and the cluster's state; OMEN_ENOTSUP without Raft. */
int coord_nodes(coord *c, coord_node_info **out, size_t *n, coord_cluster_info *info);

/* Drains shard node id (on the leader; OMEN_EBUSY naming the leader elsewhere): it gets no new
 * logical shard or copy, and the leader moves what it holds to the other shard nodes that are
 * up (GET /admin/nodes shows its shards and copies go to 0). Idempotent. */
int coord_drain(coord *c, uint64_t id);

/* The copies of one logical shard: each copy's node and whether it is in sync (the first in
 * sync is the primary). */
typedef struct coord_shard_copies {
	char coll[OMEN_MAX_NAME + 1];
	uint32_t shard, n;
	uint64_t node[WIRE_MAX_REPLICAS];
	int in_sync[WIRE_MAX_REPLICAS];
} coord_shard_copies;

/* Every logical shard of every collection with more than one copy, with its copies (malloc'd;
 * collections in name order, shards in order); OMEN_ENOTSUP without Raft. */
int coord_copies(coord *c, coord_shard_copies **out, size_t *n);

/* Membership, on the leader (OMEN_EBUSY naming the leader elsewhere): adds coordinator id
 * (its Raft "host:port" and client URL) as a voter, or removes one (not the leader itself:
 * transfer the leadership first). */
int coord_raft_add(coord *c, uint64_t id, const char *raft, const char *listen);
int coord_raft_remove(coord *c, uint64_t id);

/* The configured token, or NULL when none is required. */
const char *coord_token(const coord *c);

/* The configured per-message byte cap. */
size_t coord_max_message(const coord *c);

/* Calls fn once per logical shard of every collection with its live points as reported by
 * its shard node (points is UINT64_MAX when the node did not answer). For /metrics. */
int coord_shard_points(coord *c,
                       void (*fn)(void *ctx, const char *coll, uint32_t shard, const char *node,
                                  uint64_t points),
                       void *ctx);

/* ---- metrics (metrics.c) ---- */

typedef struct metrics metrics;

metrics *metrics_new(void);
void metrics_free(metrics *m);

/* Records one request: its op, its status (OMEN_OK or an error) and how long it took. Endpoint
 * is "nng" or "http". Thread-safe and lock-free enough to call on every request. */
void metrics_observe(metrics *m, const char *endpoint, wire_op op, int status, double seconds);

/* Appends the Prometheus text exposition (format 0.0.4) of every counter and histogram to a
 * malloc'd string *out (free with free()). */
int metrics_text(metrics *m, char **out);

/* ---- HTTP endpoint (http.c; its files share http.h) ---- */

typedef struct http_srv http_srv;

/* Starts nng's HTTP server on url serving the JSON API of docs/HTTP.md through coord_handle. */
int http_start(coord *c, metrics *m, const char *url, http_srv **out);
void http_stop(http_srv *h);

#endif
