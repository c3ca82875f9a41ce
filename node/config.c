/*
 * The node's configuration file: JSON read with jansson, every key checked for its type and
 * range by the coordinator's strict field readers (coordinator/jsonf.h), unknown keys refused
 * (a typo must not silently change a node's role).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/jsonf.h"
#include "net/net.h"
#include "node/node.h"

/* Writes the reason into err and returns -1. */
#define bad(err, len, ...) err_set(err, len, -1, __VA_ARGS__)

/* A reader of the object o whose reasons start with where (e.g. "shard: "). */
static jf reader(const json_t *o, const char *where, char *err, size_t len)
{
	return (jf){o, where, err, len};
}

/* Copies the string at key into *out (absent or null: leaves *out as it was). */
static int get_str(const jf *f, const char *key, char **out)
{
	const char *s = NULL;
	if (jf_str(f, key, &s) != OMEN_OK)
		return -1;
	if (s && (!*s || strlen(s) > 4000))
		return bad(f->err, f->errlen, "%s'%s' must be a string of 1 to 4000 bytes",
		           f->where ? f->where : "", key);
	if (s && !(*out = strdup(s)))
		return bad(f->err, f->errlen, "out of memory");
	return 0;
}

/* One Raft peer: {"id": N, "raft": "host:port", "listen": "tcp://..."}. */
static int load_peer(json_t *p, node_config *c, size_t i, char *err, size_t len)
{
	static const char *const keys[] = {"id", "raft", "listen", NULL};
	char where[64];
	snprintf(where, sizeof where, "coordinator: peers[%zu]: ", i);
	jf f = reader(p, where, err, len);
	uint64_t id = 0;
	if (!json_is_object(p))
		return bad(err, len, "%smust be an object", where);
	if (jf_keys(&f, keys) || jf_uint(&f, "id", 1, 999, &id) ||
	    get_str(&f, "raft", &c->peer_raft[i]) || get_str(&f, "listen", &c->peer_listen[i]))
		return -1;
	if (!id || !c->peer_raft[i] || !c->peer_listen[i])
		return bad(err, len, "each Raft peer needs 'id', 'raft' and 'listen'");
	c->peer_ids[i] = id;
	return 0;
}

/* The optional Raft keys of a coordinator: "id", "raft", "peers", "election_ms", "join". A
 * first-time member bootstraps the group from "peers", which lists it; with "join": true it
 * is a new member of a running group instead ("peers" lists members to find the leader by, and
 * an operator adds it: POST /admin/coordinators). */
static int load_raft(const jf *f, node_config *c)
{
	char *err = f->err;
	size_t len = f->errlen;
	uint64_t id = 0, el = 1000;
	json_t *peers = jf_get(f, "peers");
	if (jf_bool(f, "join", &c->raft_join) || jf_uint(f, "id", 1, 999, &id) ||
	    get_str(f, "raft", &c->raft) || jf_uint(f, "election_ms", 100, 60000, &el))
		return -1;
	if (!id && !c->raft && !peers)
		return 0;
	if (!id || !c->raft || !json_is_array(peers) || json_array_size(peers) == 0 ||
	    json_array_size(peers) > 9)
		return bad(err, len, "Raft needs 'id', 'raft' and 'peers' (1 to 9 coordinators)");
	size_t n = json_array_size(peers), self = 0;
	c->peer_ids = calloc(n, sizeof *c->peer_ids);
	c->peer_raft = calloc(n, sizeof *c->peer_raft);
	c->peer_listen = calloc(n, sizeof *c->peer_listen);
	if (!c->peer_ids || !c->peer_raft || !c->peer_listen)
		return bad(err, len, "out of memory");
	c->npeers = n;
	for (size_t i = 0; i < n; i++) {
		if (load_peer(json_array_get(peers, i), c, i, err, len))
			return -1;
		self += c->peer_ids[i] == id;
	}
	if (self > 1 || (self == 0 && !c->raft_join))
		return bad(err, len,
		           "'peers' must list this coordinator (id %" PRIu64 ") once, unless it "
		           "joins a running group (\"join\": true)",
		           id);
	c->raft_id = id;
	c->election_ms = (uint32_t)el;
	return 0;
}

/* A list of 1..4096 URL strings. */
static int get_urls(json_t *a, const char *key, char ***out, size_t *n, char *err, size_t len)
{
	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > 4096)
		return bad(err, len, "'%s' must be a list of 1 to 4096 URLs", key);
	*out = calloc(json_array_size(a), sizeof **out);
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || !*json_string_value(v))
			return bad(err, len, "'%s' holds something other than a URL string", key);
		(*out)[(*n)++] = strdup(json_string_value(v));
	}
	return 0;
}

static int load_coordinator(json_t *o, node_config *c, char *err, size_t len)
{
	static const char *const keys[] = {
	    "listen", "http",  "shards",      "deadline_ms", "default_shards",   "id",
	    "raft",   "peers", "election_ms", "join",        "replica_grace_ms", NULL};
	if (!json_is_object(o))
		return bad(err, len, "'coordinator' must be an object");
	jf f = reader(o, "coordinator: ", err, len);
	uint64_t d = 5000, ds = 8, grace = 60000;
	if (jf_keys(&f, keys) || get_str(&f, "listen", &c->coord_listen) ||
	    get_str(&f, "http", &c->coord_http) || jf_uint(&f, "deadline_ms", 1, 3600000, &d) ||
	    jf_uint(&f, "default_shards", 1, WIRE_MAX_SHARDS, &ds) ||
	    jf_uint(&f, "replica_grace_ms", 0, 86400000, &grace) || load_raft(&f, c))
		return -1;
	c->deadline_ms = (uint32_t)d;
	c->replica_grace_ms = (uint32_t)grace;
	c->default_shards = (uint32_t)ds;
	json_t *sh = jf_get(&f, "shards");
	if (!c->coord_listen)
		return bad(err, len, "'coordinator' needs 'listen'");
	if (!sh && c->raft_id) { /* the shard nodes register themselves */
		c->coordinator = 1;
		return 0;
	}
	if (get_urls(sh, "shards", &c->shards, &c->nshards, err, len))
		return bad(err, len,
		           "'coordinator' needs 'shards': a list of 1 to 4096 URLs "
		           "(optional with Raft, where shard nodes register themselves)");
	c->coordinator = 1;
	return 0;
}

/* Refuses a shard node that listens on every interface without saying where it is reached. */
static int check_advertise(const node_config *c, bool registers, char *err, size_t len)
{
	if (c->advertise && strlen(c->advertise) > WIRE_MAX_ADDR)
		return bad(err, len, "'advertise' is longer than %d bytes", WIRE_MAX_ADDR);
	if (registers && !c->advertise && c->shard_listen &&
	    (strstr(c->shard_listen, "://0.0.0.0") || strstr(c->shard_listen, "://*") ||
	     strstr(c->shard_listen, "://[::]")))
		return bad(err, len,
		           "'shard' listens on every interface: 'advertise' must give the URL the "
		           "coordinators reach it at");
	return 0;
}

static int load_shard(json_t *o, node_config *c, char *err, size_t len)
{
	static const char *const keys[] = {"listen", "durability", "coordinators", "advertise",
	                                   NULL};
	if (!json_is_object(o))
		return bad(err, len, "'shard' must be an object");
	jf f = reader(o, "shard: ", err, len);
	const char *dur = "sync";
	json_t *co = jf_get(&f, "coordinators");
	if (jf_keys(&f, keys) || get_str(&f, "listen", &c->shard_listen) ||
	    get_str(&f, "advertise", &c->advertise) || jf_str(&f, "durability", &dur) ||
	    (co && get_urls(co, "coordinators", &c->shard_coordinators, &c->nshard_coordinators,
	                    err, len)) ||
	    check_advertise(c, co != NULL, err, len))
		return -1;
	if (strcmp(dur, "sync") != 0 && strcmp(dur, "relaxed") != 0)
		return bad(err, len, "'durability' must be \"sync\" or \"relaxed\"");
	c->relaxed = strcmp(dur, "relaxed") == 0;
	if (!c->shard_listen)
		return bad(err, len, "'shard' needs 'listen'");
	c->shard = 1;
	return 0;
}

static int load_top(json_t *o, node_config *c, char *err, size_t len)
{
	static const char *const keys[] = {
	    "name",    "data",        "log_level", "token", "max_message_bytes",
	    "workers", "coordinator", "shard",     NULL};
	jf f = reader(o, NULL, err, len);
	const char *level = "info";
	uint64_t maxm = WIRE_MAX_MSG_DEFAULT, workers = 16;
	if (jf_keys(&f, keys) || get_str(&f, "name", &c->name) || get_str(&f, "data", &c->data) ||
	    get_str(&f, "token", &c->token) || jf_str(&f, "log_level", &level) ||
	    jf_uint(&f, "max_message_bytes", 4096, 1ull << 31, &maxm) ||
	    jf_uint(&f, "workers", 1, 1024, &workers))
		return -1;
	if ((c->log_level = log_level_parse(level)) < 0)
		return bad(err, len, "'log_level' must be error, warn, info or debug");
	c->max_message = (size_t)maxm;
	c->workers = (int)workers;
	if (!c->data)
		return bad(err, len, "'data' (the data directory) is required");
	json_t *co = jf_get(&f, "coordinator"), *sh = jf_get(&f, "shard");
	if (!co && !sh)
		return bad(err, len, "a node needs a 'coordinator' or a 'shard' section, or both");
	if ((co && load_coordinator(co, c, err, len)) || (sh && load_shard(sh, c, err, len)))
		return -1;
	if (!c->name && !(c->name = strdup("omendb-node")))
		return bad(err, len, "out of memory");
	return 0;
}

int node_config_load(const char *path, node_config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	json_error_t je;
	json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return bad(err, errlen, "%s:%d: %s", path, je.line, je.text);
	int rc = json_is_object(o)
	             ? load_top(o, cfg, err, errlen)
	             : bad(err, errlen, "%s: the configuration is a JSON object", path);
	json_decref(o);
	if (rc != 0)
		node_config_free(cfg);
	return rc;
}

void node_config_free(node_config *c)
{
	free(c->name);
	free(c->data);
	free(c->token);
	free(c->coord_listen);
	free(c->coord_http);
	for (size_t i = 0; i < c->nshards; i++)
		free(c->shards[i]);
	free(c->shards);
	for (size_t i = 0; i < c->nshard_coordinators; i++)
		free(c->shard_coordinators[i]);
	free(c->shard_coordinators);
	free(c->advertise);
	free(c->shard_listen);
	free(c->raft);
	for (size_t i = 0; i < c->npeers; i++)
		free(c->peer_raft[i]), free(c->peer_listen[i]);
	free(c->peer_ids);
	free(c->peer_raft);
	free(c->peer_listen);
	memset(c, 0, sizeof *c);
}
