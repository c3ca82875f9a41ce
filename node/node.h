/*
 * omendb-node: the server program. Internal to node/.
 */
#ifndef OMEN_NODE_H
#define OMEN_NODE_H

#include <stddef.h>
#include <stdint.h>

/* The configuration file (JSON; docs/CLUSTER.md). Strings are owned by the config. */
typedef struct node_config {
	char *name;         /* for logs; default "omendb-node" */
	char *data;         /* data directory (required) */
	int log_level;      /* LOG_* */
	char *token;        /* shared secret or NULL */
	size_t max_message; /* bytes per message */
	int workers;        /* requests served at once per endpoint */
	int coordinator;    /* nonzero: runs a coordinator */
	char *coord_listen; /* its nng URL */
	char *coord_http;   /* its HTTP URL or NULL */
	char **shards;      /* shard node URLs */
	size_t nshards;
	uint32_t deadline_ms;
	uint32_t default_shards;   /* logical shards of a new collection (0 = the default) */
	uint32_t replica_grace_ms; /* before a down node's copies are made again elsewhere */
	uint64_t raft_id;          /* 0: no Raft */
	char *raft;                /* this coordinator's Raft "host:port" */
	uint64_t *peer_ids;        /* the coordinators of the Raft group, this one included */
	char **peer_raft, **peer_listen;
	size_t npeers;
	uint32_t election_ms;
	int raft_join; /* joins a running group instead of bootstrapping one */
	int shard;     /* nonzero: runs a shard service */
	char *shard_listen;
	int relaxed;               /* shard durability "relaxed" */
	char **shard_coordinators; /* registers with these coordinators (Raft) */
	size_t nshard_coordinators;
	char *advertise; /* the URL the others reach this shard node at */
} node_config;

/* Reads and checks the file; on failure err holds a one-line reason. */
int node_config_load(const char *path, node_config *cfg, char *err, size_t errlen);
void node_config_free(node_config *cfg);

#endif
