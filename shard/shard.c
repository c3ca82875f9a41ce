/*
 * The shard service. A request names a collection and a logical shard; the node finds (or
 * opens) that shard's embedded database and runs the call on it through the public API. Units
 * are reference-counted so that a drop waits for the calls still using the unit.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "shard/shard.h"
#include "storage/storage.h"

/* One logical shard: its database and its only collection. */
typedef struct unit {
	char name[OMEN_MAX_NAME + 1];
	int32_t shard;
	omen_db *db;
	omen_collection *coll;
	int refs; /* calls using it, plus one while it is in the table */
	struct unit *next;
} unit;

struct shard_node {
	shard_config cfg;
	_Atomic uint64_t epoch; /* the newest shard map epoch seen in a request */
	char *data;
	srv *srv;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when a unit's refs drop */
	unit *units;
};

static void unit_path(const shard_node *s, const char *name, int32_t shard, char *out, size_t len)
{
	snprintf(out, len, "%s/shards/%s@%d", s->data, name, (int)shard);
}

static void unit_free(unit *u)
{
	omen_collection_close(u->coll);
	omen_close(u->db);
	free(u);
}

/* Opens the unit's database; OMEN_ENOTFOUND when the shard was never created here. */
static int unit_open(shard_node *s, const char *name, int32_t shard, unit **out)
{
	char path[4096];
	unit_path(s, name, shard, path, sizeof path);
	struct stat sb;
	if (stat(path, &sb) != 0)
		return status_set(OMEN_ENOTFOUND, "collection '%s' has no shard %d on this node",
		                  name, (int)shard);
	unit *u = calloc(1, sizeof *u);
	if (!u)
		return status_set(OMEN_ENOMEM, "out of memory");
	snprintf(u->name, sizeof u->name, "%s", name);
	u->shard = shard;
	omen_open_options opt;
	omen_open_options_init(&opt);
	opt.no_create = 1;
	opt.durability = s->cfg.relaxed ? OMEN_DURABLE_RELAXED : OMEN_DURABLE_SYNC;
	int st = omen_open(path, &opt, &u->db);
	if (st == OMEN_OK)
		st = omen_collection_open(u->db, name, &u->coll);
	if (st != OMEN_OK) {
		unit_free(u);
		return st;
	}
	*out = u;
	return OMEN_OK;
}

/* Finds the unit and takes a reference to it, opening it when needed. */
static int unit_get(shard_node *s, const char *name, int32_t shard, unit **out)
{
	if (shard < 0)
		return status_set(OMEN_EINVAL, "the request names no logical shard");
	pthread_mutex_lock(&s->mu);
	unit *u = s->units;
	while (u && !(u->shard == shard && strcmp(u->name, name) == 0))
		u = u->next;
	int st = OMEN_OK;
	if (!u && (st = unit_open(s, name, shard, &u)) == OMEN_OK) {
		u->refs = 1;
		u->next = s->units;
		s->units = u;
	}
	if (u)
		u->refs++;
	pthread_mutex_unlock(&s->mu);
	if (st == OMEN_OK)
		*out = u;
	return st;
}

static void unit_put(shard_node *s, unit *u)
{
	pthread_mutex_lock(&s->mu);
	u->refs--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Takes the unit out of the table once no call uses it, and closes it. */
static void unit_retire(shard_node *s, const char *name, int32_t shard)
{
	pthread_mutex_lock(&s->mu);
	for (unit **pp = &s->units; *pp; pp = &(*pp)->next) {
		unit *u = *pp;
		if (u->shard != shard || strcmp(u->name, name) != 0)
			continue;
		*pp = u->next;
		while (u->refs > 1)
			pthread_cond_wait(&s->cv, &s->mu);
		unit_free(u);
		break;
	}
	pthread_mutex_unlock(&s->mu);
}

/* ---- calls ---- */

static int do_create(shard_node *s, const wire_req *q)
{
	unit *u;
	int st = unit_get(s, q->name, q->shard, &u);
	if (st == OMEN_OK) { /* created before: the same settings make a retry succeed */
		omen_collection_stats cs;
		st = omen_collection_stats_get(u->coll, &cs);
		unit_put(s, u);
		if (st == OMEN_OK && (cs.dim != q->dim || cs.metric != q->metric))
			st = status_set(OMEN_EEXIST, "collection '%s' exists with other settings",
			                q->name);
		return st;
	}
	if (st != OMEN_ENOTFOUND)
		return st;
	char path[4096];
	unit_path(s, q->name, q->shard, path, sizeof path);
	omen_db *db;
	if ((st = omen_open(path, NULL, &db)) != OMEN_OK)
		return st;
	st = omen_create_collection(db, q->name, q->dim, q->metric);
	omen_close(db);
	return st;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int do_drop(shard_node *s, const wire_req *q)
{
	unit_retire(s, q->name, q->shard);
	char path[4096];
	unit_path(s, q->name, q->shard, path, sizeof path);
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
		return status_set(OMEN_EIO, "cannot remove %s: %s", path, strerror(errno));
	return OMEN_OK;
}

/* Searches with k clamped to the shard's points (a shard may hold fewer than k) and pads the
 * rows to k, so that the coordinator can merge any shard's answer. The common case (k points
 * or more) costs one search: the count is read only when the search finds too few points. */
static int do_search(unit *u, const wire_req *q, wire_rep *r)
{
	uint64_t n = q->n, k = q->k, points = 0;
	r->ids = malloc(n * k * sizeof *r->ids);
	r->dists = malloc(n * k * sizeof *r->dists);
	if (!r->ids || !r->dists)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; i < n * k; i++)
		r->ids[i] = OMEN_NO_ID, r->dists[i] = INFINITY;
	omen_search_params p;
	omen_search_params_init(&p);
	p.filter = q->filter;
	p.ef = q->ef;
	p.exact = q->exact;
	p.threads = n == 1 ? 1 : 0;
	p.k = k;
	int st = omen_search(u->coll, q->vectors, n, q->dim, &p, r->ids, r->dists);
	for (int attempt = 0; st == OMEN_EINVAL && attempt < 3; attempt++) {
		/* Perhaps fewer than k points here: search for all of them (points may change
		 * between the two calls, hence the attempts). */
		if ((st = omen_count(u->coll, &points)) != OMEN_OK || points >= k) {
			st = st == OMEN_OK
			         ? omen_search(u->coll, q->vectors, n, q->dim, &p, r->ids, r->dists)
			         : st;
			continue;
		}
		if (points == 0)
			break;
		p.k = points;
		uint64_t *ids = malloc(n * p.k * sizeof *ids);
		float *d = malloc(n * p.k * sizeof *d);
		st = ids && d ? omen_search(u->coll, q->vectors, n, q->dim, &p, ids, d)
		              : status_set(OMEN_ENOMEM, "out of memory");
		for (size_t i = 0; st == OMEN_OK && i < n; i++) {
			memcpy(r->ids + i * k, ids + i * p.k, p.k * sizeof *ids);
			memcpy(r->dists + i * k, d + i * p.k, p.k * sizeof *d);
		}
		free(ids);
		free(d);
		p.k = k;
	}
	if (st == OMEN_OK && !points)
		st = omen_count(u->coll, &points);
	r->n = n;
	r->k = (uint32_t)k;
	r->count = points;
	return st;
}

static int do_get(unit *u, const wire_req *q, wire_rep *r)
{
	omen_collection_stats cs;
	int st = omen_collection_stats_get(u->coll, &cs);
	if (st != OMEN_OK)
		return st;
	r->n = q->n;
	r->dim = cs.dim;
	r->found = calloc(q->n ? q->n : 1, 1);
	r->vectors = calloc(q->n * cs.dim + 1, sizeof *r->vectors);
	r->meta = calloc(q->n + 1, sizeof *r->meta);
	if (!r->found || !r->vectors || !r->meta)
		return status_set(OMEN_ENOMEM, "out of memory");
	return omen_get(u->coll, q->ids, q->n, r->vectors, r->meta, r->found);
}

static int do_upsert(unit *u, const wire_req *q)
{
	if (!q->ids)
		return status_set(OMEN_EINVAL, "a shard needs the ids of the points it stores");
	omen_batch b = {q->n, q->dim, q->ids, q->vectors, (const char *const *)q->meta};
	return omen_upsert(u->coll, &b, NULL);
}

static int do_build(unit *u, const wire_req *q)
{
	omen_index_params p;
	omen_index_params_init(&p);
	p.type = q->index_type;
	if (q->m)
		p.m = q->m;
	if (q->ef_construction)
		p.ef_construction = q->ef_construction;
	p.int8 = q->int8;
	return omen_build_index(u->coll, &p);
}

/* Calls on one unit. */
static int unit_call(shard_node *s, const wire_req *q, wire_rep *r)
{
	unit *u;
	int st = unit_get(s, q->name, q->shard, &u);
	if (st != OMEN_OK)
		return st;
	size_t deleted = 0;
	switch (q->op) {
	case WIRE_UPSERT:
		st = do_upsert(u, q);
		break;
	case WIRE_GET:
		st = do_get(u, q, r);
		break;
	case WIRE_DELETE:
		st = omen_delete(u->coll, q->ids, q->n, &deleted);
		r->count = deleted;
		break;
	case WIRE_COUNT:
		st = omen_count(u->coll, &r->count);
		break;
	case WIRE_STATS:
		st = omen_collection_stats_get(u->coll, &r->stats);
		r->has_stats = st == OMEN_OK;
		break;
	case WIRE_SEARCH:
		st = do_search(u, q, r);
		break;
	case WIRE_BUILD:
		st = do_build(u, q);
		break;
	case WIRE_CHECK:
		st = omen_check(u->coll, &r->report);
		break;
	default:
		st = status_set(OMEN_ENOTSUP, "a shard node does not serve '%s'",
		                wire_op_name(q->op));
	}
	unit_put(s, u);
	return st;
}

/* Lists the units present on disk as "NAME@SHARD" strings. */
static int list_units(shard_node *s, wire_rep *r)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/shards", s->data);
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? OMEN_OK
		                       : status_set(OMEN_EIO, "%s: %s", path, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strchr(e->d_name, '@'))
			continue;
		char **grown = realloc(r->names, (r->nnames + 1) * sizeof *grown);
		if (!grown || !(grown[r->nnames] = strdup(e->d_name))) {
			r->names = grown ? grown : r->names;
			closedir(d);
			return status_set(OMEN_ENOMEM, "out of memory");
		}
		r->names = grown;
		r->nnames++;
	}
	closedir(d);
	return OMEN_OK;
}

/* DBSTATS of a node: the bytes of its shards' data files. */
static int disk_bytes(shard_node *s, wire_rep *r)
{
	int st = list_units(s, r);
	for (uint64_t i = 0; st == OMEN_OK && i < r->nnames; i++) {
		char path[4096];
		struct stat sb;
		snprintf(path, sizeof path, "%s/shards/%s/data.mdb", s->data, r->names[i]);
		if (stat(path, &sb) == 0)
			r->dbstats.file_bytes += (uint64_t)sb.st_size;
	}
	for (uint64_t i = 0; i < r->nnames; i++)
		free(r->names[i]);
	free(r->names);
	r->names = NULL;
	r->dbstats.collections = r->nnames;
	r->dbstats.map_bytes = r->dbstats.file_bytes;
	r->nnames = 0;
	r->has_dbstats = st == OMEN_OK;
	return st;
}

/* Syncs every open unit (relaxed durability). */
static int flush_all(shard_node *s)
{
	int st = OMEN_OK;
	pthread_mutex_lock(&s->mu);
	for (unit *u = s->units; u; u = u->next)
		if (omen_flush(u->db) != OMEN_OK)
			st = OMEN_EIO;
	pthread_mutex_unlock(&s->mu);
	return st;
}

/* A request routed by an older shard map than one already seen is refused: the logical
 * shard may have moved since (the coordinator refreshes its map and retries). */
static int epoch_check(shard_node *s, uint64_t epoch)
{
	uint64_t seen = atomic_load(&s->epoch);
	while (epoch > seen && !atomic_compare_exchange_weak(&s->epoch, &seen, epoch))
		;
	if (epoch && epoch < seen)
		return status_set(OMEN_ESTALE, "shard map epoch %llu is older than %llu",
		                  (unsigned long long)epoch, (unsigned long long)seen);
	return OMEN_OK;
}

static void handle(void *ctx, const wire_req *q, wire_rep *r)
{
	shard_node *s = ctx;
	int st = epoch_check(s, q->epoch);
	if (st != OMEN_OK) {
		r->status = st;
		r->message = strdup(status_msg());
		return;
	}
	switch (q->op) {
	case WIRE_HEALTH:
		st = OMEN_OK;
		break;
	case WIRE_CREATE:
		st = do_create(s, q);
		break;
	case WIRE_DROP:
		st = do_drop(s, q);
		break;
	case WIRE_LIST:
		st = list_units(s, r);
		break;
	case WIRE_FLUSH:
		st = flush_all(s);
		break;
	case WIRE_DBSTATS:
		st = disk_bytes(s, r);
		break;
	default:
		st = unit_call(s, q, r);
	}
	r->status = st;
	if (st != OMEN_OK)
		r->message = strdup(status_msg());
}

int shard_start(const shard_config *cfg, shard_node **out)
{
	shard_node *s = calloc(1, sizeof *s);
	if (!s)
		return status_set(OMEN_ENOMEM, "out of memory");
	s->cfg = *cfg;
	s->data = strdup(cfg->data);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	char path[4096];
	snprintf(path, sizeof path, "%s/shards", cfg->data);
	int st = dir_create(path);
	if (st != OMEN_OK) {
		shard_stop(s);
		return st;
	}
	srv_config sc = {cfg->listen, cfg->workers, cfg->max_message, cfg->token, handle, s,
	                 "shard",     NULL};
	st = srv_start(&sc, &s->srv);
	if (st != OMEN_OK) {
		shard_stop(s);
		return st;
	}
	*out = s;
	return OMEN_OK;
}

int shard_port(const shard_node *s)
{
	return srv_port(s->srv);
}

void shard_stop(shard_node *s)
{
	if (!s)
		return;
	srv_stop(s->srv);
	while (s->units) {
		unit *u = s->units;
		s->units = u->next;
		unit_free(u);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->data);
	free(s);
}
