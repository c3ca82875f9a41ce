/*
 * The node's configuration file: JSON read with jansson, every key checked for its type and
 * range, unknown keys refused (a typo must not silently change a node's role).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "node/node.h"

/* Writes the reason into err and returns -1. */
#define bad(err, len, ...) err_set(err, len, -1, __VA_ARGS__)

/* Copies the string at key (absent: leaves *out NULL). */
static int get_str(json_t *o, const char *key, char **out, char *err, size_t len)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4000)
		return bad(err, len, "'%s' must be a non-empty string", key);
	*out = strdup(json_string_value(v));
	return 0;
}

static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out,
                   char *err, size_t len)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return bad(err, len, "'%s' must be an integer from %lld to %lld", key, lo, hi);
	*out = json_integer_value(v);
	return 0;
}

static int only_keys(json_t *o, const char *const *keys, const char *where, char *err, size_t len)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		int known = 0;
		for (const char *const *p = keys; *p; p++)
			known |= strcmp(*p, k) == 0;
		if (!known)
			return bad(err, len, "unknown key '%s'%s", k, where);
	}
	return 0;
}

/* One Raft peer: {"id": N, "raft": "host:port", "listen": "tcp://..."}. */
static int load_peer(json_t *p, node_config *c, size_t i, char *err, size_t len)
{
	static const char *const keys[] = {"id", "raft", "listen", NULL};
	long long id = 0;
	if (!json_is_object(p) || only_keys(p, keys, " in a Raft peer", err, len) ||
	    get_int(p, "id", 1, 999, &id, err, len) ||
	    get_str(p, "raft", &c->peer_raft[i], err, len) ||
	    get_str(p, "listen", &c->peer_listen[i], err, len))
		return -1;
	if (!id || !c->peer_raft[i] || !c->peer_listen[i])
		return bad(err, len, "each Raft peer needs 'id', 'raft' and 'listen'");
	c->peer_ids[i] = (uint64_t)id;
	return 0;
}

/* The optional Raft keys of a coordinator: "id", "raft", "peers", "election_ms", "join". A
 * first-time member bootstraps the group from "peers", which lists it; with "join": true it
 * is a new member of a running group instead ("peers" lists members to find the leader by, and
 * an operator adds it: POST /admin/coordinators). */
static int load_raft(json_t *o, node_config *c, char *err, size_t len)
{
	long long id = 0, el = 1000;
	json_t *peers = json_object_get(o, "peers"), *join = json_object_get(o, "join");
	if (join && !json_is_boolean(join))
		return bad(err, len, "'join' must be true or false");
	c->raft_join = json_is_true(join);
	if (get_int(o, "id", 1, 999, &id, err, len) || get_str(o, "raft", &c->raft, err, len) ||
	    get_int(o, "election_ms", 100, 60000, &el, err, len))
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
	c->npeers = n;
	for (size_t i = 0; i < n; i++) {
		if (load_peer(json_array_get(peers, i), c, i, err, len))
			return -1;
		self += c->peer_ids[i] == (uint64_t)id;
	}
	if (self > 1 || (self == 0 && !c->raft_join))
		return bad(err, len,
		           "'peers' must list this coordinator (id %lld) once, unless it "
		           "joins a running group (\"join\": true)",
		           id);
	c->raft_id = (uint64_t)id;
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
	static const char *const keys[] = {"listen",         "http", "shards", "deadline_ms",
	                                   "default_shards", "id",   "raft",   "peers",
	                                   "election_ms",    "join", NULL};
	if (!json_is_object(o))
		return bad(err, len, "'coordinator' must be an object");
	long long d = 5000, ds = 8;
	if (only_keys(o, keys, " in 'coordinator'", err, len) ||
	    get_str(o, "listen", &c->coord_listen, err, len) ||
	    get_str(o, "http", &c->coord_http, err, len) ||
	    get_int(o, "deadline_ms", 1, 3600000, &d, err, len) ||
	    get_int(o, "default_shards", 1, WIRE_MAX_SHARDS, &ds, err, len))
		return -1;
	c->deadline_ms = (uint32_t)d;
	c->default_shards = (uint32_t)ds;
	if (load_raft(o, c, err, len))
		return -1;
	json_t *sh = json_object_get(o, "shards");
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

static int load_shard(json_t *o, node_config *c, char *err, size_t len)
{
	static const char *const keys[] = {"listen", "durability", "coordinators", "advertise",
	                                   NULL};
	if (!json_is_object(o))
		return bad(err, len, "'shard' must be an object");
	char *dur = NULL;
	json_t *co = json_object_get(o, "coordinators");
	if (only_keys(o, keys, " in 'shard'", err, len) ||
	    get_str(o, "listen", &c->shard_listen, err, len) ||
	    get_str(o, "advertise", &c->advertise, err, len) ||
	    get_str(o, "durability", &dur, err, len) ||
	    (co && get_urls(co, "coordinators", &c->shard_coordinators, &c->nshard_coordinators,
	                    err, len)))
		return free(dur), -1;
	if (c->advertise && strlen(c->advertise) > WIRE_MAX_ADDR)
		return free(dur),
		       bad(err, len, "'advertise' is longer than %d bytes", WIRE_MAX_ADDR);
	if (co && !c->advertise && c->shard_listen &&
	    (strstr(c->shard_listen, "://0.0.0.0") || strstr(c->shard_listen, "://*") ||
	     strstr(c->shard_listen, "://[::]")))
		return free(dur), bad(err, len,
		                      "'shard' listens on every interface: 'advertise' "
		                      "must give the URL the coordinators reach it at");
	if (dur && strcmp(dur, "sync") != 0 && strcmp(dur, "relaxed") != 0)
		return free(dur), bad(err, len, "'durability' must be \"sync\" or \"relaxed\"");
	c->relaxed = dur && strcmp(dur, "relaxed") == 0;
	free(dur);
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
	char *level = NULL;
	long long maxm = WIRE_MAX_MSG_DEFAULT, workers = 16;
	if (only_keys(o, keys, "", err, len) || get_str(o, "name", &c->name, err, len) ||
	    get_str(o, "data", &c->data, err, len) || get_str(o, "token", &c->token, err, len) ||
	    get_str(o, "log_level", &level, err, len) ||
	    get_int(o, "max_message_bytes", 4096, 1ll << 31, &maxm, err, len) ||
	    get_int(o, "workers", 1, 1024, &workers, err, len))
		return free(level), -1;
	c->log_level = level ? log_level_parse(level) : LOG_INFO;
	free(level);
	if (c->log_level < 0)
		return bad(err, len, "'log_level' must be error, warn, info or debug");
	c->max_message = (size_t)maxm;
	c->workers = (int)workers;
	if (!c->data)
		return bad(err, len, "'data' (the data directory) is required");
	json_t *co = json_object_get(o, "coordinator"), *sh = json_object_get(o, "shard");
	if (!co && !sh)
		return bad(err, len, "a node needs a 'coordinator' or a 'shard' section, or both");
	if ((co && load_coordinator(co, c, err, len)) || (sh && load_shard(sh, c, err, len)))
		return -1;
	if (!c->name)
		c->name = strdup("omendb-node");
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
