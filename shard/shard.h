/*
 * The shard service: serves the wire protocol for the logical shards a node holds. Each
 * logical shard of a collection is an embedded database of its own (one LMDB environment, one
 * collection) under DATA/shards/NAME@SHARD, so that a whole logical shard can later be moved
 * between nodes. Internal to shard/.
 */
#ifndef OMEN_SHARD_H
#define OMEN_SHARD_H

#include <stddef.h>

typedef struct shard_node shard_node;

typedef struct shard_config {
	const char *data;   /* directory holding this node's shards (created if missing) */
	const char *listen; /* nng URL, e.g. "tcp://127.0.0.1:7701" */
	const char *token;  /* required in every request, or NULL */
	size_t max_message; /* bytes per message */
	int workers;        /* requests handled at once */
	int relaxed;        /* nonzero: OMEN_DURABLE_RELAXED for the shards' databases */
	/* Registration with a Raft group of coordinators (none: a coordinator's configuration
	 * lists this node): JOIN is sent every heartbeat_ms to one of them, the next one after a
	 * failure. */
	const char *const *coordinators;
	size_t ncoordinators;
	const char *advertise; /* the URL they reach this node at (default: listen) */
	unsigned heartbeat_ms; /* default 500 */
} shard_config;

/* Creates the data directory, starts serving on cfg->listen and, with coordinators, starts
 * registering (the node id is loaded or chosen first). On success *out runs until shard_stop. */
int shard_start(const shard_config *cfg, shard_node **out);
/* The bound TCP port of the node's endpoint (useful with port 0). */
int shard_port(const shard_node *s);
/* The node's id: WIRE_NODE_ID_MIN.. when it registers itself (kept in DATA/node.id), else 0. */
uint64_t shard_id(const shard_node *s);

/* Handles one decoded request as the server does for each message (its token already checked):
 * the epoch check first (OMEN_ESTALE for a shard map older than one seen), then the call on
 * the node (health, create, drop, list, flush, dbstats, fence) or on the logical shard the
 * request names (q->name, q->shard), whose writes a freeze refuses with OMEN_ESTALE. Fills r,
 * r->status and, on failure, r->message; what r's pointers hold is malloc'd and released by
 * wire_rep_free. Thread-safe; for the server and for tests, which drive a node without a
 * socket. */
void shard_handle(shard_node *s, const wire_req *q, wire_rep *r);

/* Stops serving (requests in flight finish) and closes every shard's database. */
void shard_stop(shard_node *s);

#endif
