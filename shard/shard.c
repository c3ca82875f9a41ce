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
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "net/net.h"
#include "shard/forward.h"
#include "shard/shard.h"

/* A logical shard's part in a move (docs/CLUSTER.md, "Rebalancing"). The state is also a
 * file, MOVE_MARK in the unit's directory, so that it outlives a restart: a frozen unit stays
 * frozen, and the ids tracked before a restart are known to be lost. */
typedef enum { MOVE_NONE = 0, MOVE_TRACKING, MOVE_FROZEN, MOVE_INCOMING } move_state;

#define MOVE_MARK "move"
static const char *const move_words[] = {"none", "tracking", "frozen", "incoming"};

/* One logical shard: its database and its only collection. Guarded by the node's mutex:
 * refs, writers, move and the tracked ids. */
typedef struct unit {
	char name[OMEN_MAX_NAME + 1];
	int32_t shard;
	omen_db *db;
	omen_collection *coll;
	int refs;    /* calls using it, plus one while it is in the table */
	int writers; /* upserts and deletes in flight */
	/* Orders the writes of a primary: held from its own commit until every copy it forwards
	 * to has answered, so that the copies apply the shard's writes in the primary's order. */
	pthread_mutex_t order;
	move_state move;
	int tracked_ok;    /* the tracked ids cover every write since FENCE_TRACK */
	uint64_t *tracked; /* ids written while tracking (sorted and unique once frozen) */
	size_t ntracked, cap;
	struct unit *next;
} unit;

struct shard_node {
	shard_config cfg;
	uint64_t id;         /* registering nodes: their id */
	pthread_t heartbeat; /* JOIN to the coordinators */
	int heartbeat_on, stopping;
	pthread_cond_t hb_cv;   /* wakes the heartbeat thread to stop (with mu) */
	_Atomic uint64_t epoch; /* the newest shard map epoch seen in a request */
	char *data;
	srv *srv;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when a unit's refs drop */
	unit *units;
	fwd *fwd; /* a primary's writes to the other copies */
};

static void unit_path(const shard_node *s, const char *name, int32_t shard, char *out, size_t len)
{
	snprintf(out, len, "%s/shards/%s@%d", s->data, name, (int)shard);
}

static void unit_free(unit *u)
{
	pthread_mutex_destroy(&u->order);
	omen_collection_close(u->coll);
	omen_close(u->db);
	free(u->tracked);
	free(u);
}

/* The move state recorded in a unit's directory (MOVE_NONE when there is no mark). */
static move_state mark_read(const char *unit_dir)
{
	char path[4200], word[16] = "";
	snprintf(path, sizeof path, "%s/" MOVE_MARK, unit_dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return MOVE_NONE;
	size_t n = fread(word, 1, sizeof word - 1, f);
	fclose(f);
	word[n] = '\0';
	for (int m = MOVE_TRACKING; m <= MOVE_INCOMING; m++)
		if (strcmp(word, move_words[m]) == 0)
			return (move_state)m;
	return MOVE_FROZEN; /* unreadable: the safe reading refuses writes until resolved */
}

/* Records the state durably (write, fsync, rename), or removes the mark for MOVE_NONE. */
static int mark_write(const char *unit_dir, move_state m)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/" MOVE_MARK, unit_dir);
	if (m == MOVE_NONE) {
		if (unlink(path) != 0 && errno != ENOENT)
			return status_set(OMEN_EIO, "cannot remove %s: %s", path, strerror(errno));
		return OMEN_OK;
	}
	return file_write_atomic(path, move_words[m]);
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
	pthread_mutex_init(&u->order, NULL);
	omen_open_options opt;
	omen_open_options_init(&opt);
	opt.no_create = 1;
	opt.durability = s->cfg.relaxed ? OMEN_DURABLE_RELAXED : OMEN_DURABLE_SYNC;
	int st = omen_open(path, &opt, &u->db);
	if (st == OMEN_OK)
		st = omen_collection_open(u->db, name, &u->coll);
	u->move = mark_read(path); /* tracked ids do not survive a restart: tracked_ok stays 0 */
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
	p.nprobe = q->nprobe;
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

/* ---- moves: tracking, freezing, listing ---- */

/* Admits a write: OMEN_ESTALE while the unit is frozen for a move. */
static int write_begin(shard_node *s, unit *u)
{
	pthread_mutex_lock(&s->mu);
	int frozen = u->move == MOVE_FROZEN;
	if (!frozen)
		u->writers++;
	pthread_mutex_unlock(&s->mu);
	if (frozen)
		return status_set(OMEN_ESTALE,
		                  "logical shard %d of '%s' is being moved: ask again with the "
		                  "newer shard map",
		                  (int)u->shard, u->name);
	return OMEN_OK;
}

/* Appends ids to the tracked ones. s->mu is held. */
static int track_add(unit *u, const uint64_t *ids, size_t n)
{
	if (u->ntracked + n > u->cap) {
		size_t cap = u->cap ? u->cap : 1024;
		while (cap < u->ntracked + n)
			cap *= 2;
		uint64_t *grown = realloc(u->tracked, cap * sizeof *grown);
		if (!grown)
			return OMEN_ENOMEM;
		u->tracked = grown;
		u->cap = cap;
	}
	memcpy(u->tracked + u->ntracked, ids, n * sizeof *ids);
	u->ntracked += n;
	return OMEN_OK;
}

/* Ends a write. While the unit is tracked, the ids it touched are recorded, whether or not it
 * succeeded (a write is all or nothing; recording an unchanged id only copies it again). */
static void write_end(shard_node *s, unit *u, const uint64_t *ids, size_t n)
{
	pthread_mutex_lock(&s->mu);
	if ((u->move == MOVE_TRACKING || u->move == MOVE_FROZEN) && u->tracked_ok && ids &&
	    track_add(u, ids, n) != OMEN_OK)
		u->tracked_ok = 0; /* out of memory: the move fails and is tried again later */
	u->writers--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Sorts the tracked ids and removes repeats. */
static void track_settle(unit *u)
{
	u->ntracked = ids_unique(u->tracked, u->ntracked);
}

/* IDS: the unit's ids from q->start on, or (WIRE_IDS_TRACKED) the ids tracked before the
 * freeze. */
static int do_ids(shard_node *s, unit *u, const wire_req *q, wire_rep *r)
{
	if (!(r->ids = malloc(q->n * sizeof *r->ids)))
		return status_set(OMEN_ENOMEM, "out of memory");
	if (q->mode != WIRE_IDS_TRACKED) {
		size_t n = 0;
		int st = omen_list_ids(u->coll, q->start, q->n, r->ids, &n);
		r->n = n;
		return st;
	}
	int st = OMEN_OK;
	pthread_mutex_lock(&s->mu);
	if (u->move != MOVE_FROZEN || !u->tracked_ok) {
		st = status_set(OMEN_EINVAL,
		                "logical shard %d of '%s': no complete set of tracked "
		                "ids (not frozen, or the node restarted)",
		                (int)u->shard, u->name);
	} else {
		size_t lo = 0, hi = u->ntracked; /* the first tracked id >= start */
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (u->tracked[mid] < q->start)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < u->ntracked && r->n < q->n; lo++)
			r->ids[r->n++] = u->tracked[lo];
	}
	pthread_mutex_unlock(&s->mu);
	return st;
}

/* TRACK, FREEZE, RELEASE and ACCEPT on an open unit whose directory is dir. s->mu is held. */
static int fence_unit(shard_node *s, unit *u, const char *dir, int mode, wire_rep *r)
{
	int st = OMEN_OK;
	switch (mode) {
	case FENCE_TRACK:
		if (u->move == MOVE_FROZEN || u->move == MOVE_INCOMING)
			return status_set(OMEN_EBUSY, "logical shard %d of '%s' is %s",
			                  (int)u->shard, u->name, move_words[u->move]);
		if ((st = mark_write(dir, MOVE_TRACKING)) == OMEN_OK) {
			u->move = MOVE_TRACKING;
			u->tracked_ok = 1;
			u->ntracked = 0;
		}
		return st;
	case FENCE_FREEZE:
		if (u->move != MOVE_TRACKING && u->move != MOVE_FROZEN)
			return status_set(OMEN_EINVAL,
			                  "logical shard %d of '%s' is not being tracked",
			                  (int)u->shard, u->name);
		if (u->move == MOVE_TRACKING && (st = mark_write(dir, MOVE_FROZEN)) != OMEN_OK)
			return st;
		u->move = MOVE_FROZEN;
		while (u->writers > 0)
			pthread_cond_wait(&s->cv, &s->mu);
		track_settle(u);
		r->count = u->ntracked;
		if (!u->tracked_ok)
			st = status_set(OMEN_EINVAL,
			                "logical shard %d of '%s': the tracked ids were "
			                "lost (restart or out of memory)",
			                (int)u->shard, u->name);
		return st;
	case FENCE_RELEASE:
	case FENCE_ACCEPT:
		if (mode == FENCE_RELEASE ? u->move != MOVE_TRACKING && u->move != MOVE_FROZEN
		                          : u->move != MOVE_INCOMING)
			return OMEN_OK; /* nothing of that kind to end */
		if ((st = mark_write(dir, MOVE_NONE)) == OMEN_OK) {
			u->move = MOVE_NONE;
			u->tracked_ok = 0;
			u->ntracked = 0;
		}
		return st;
	}
	return status_set(OMEN_EINVAL, "fence mode %d", mode);
}

/* Opens DATA/shards (its path into path): *d NULL when it does not exist yet. */
static int shards_dir_open(shard_node *s, char *path, size_t len, DIR **d)
{
	snprintf(path, len, "%s/shards", s->data);
	*d = opendir(path);
	if (!*d && errno != ENOENT)
		return status_set(OMEN_EIO, "%s: %s", path, strerror(errno));
	return OMEN_OK;
}

/* FENCE_QUERY: the units on disk that carry a move mark. */
static int marked_units(shard_node *s, wire_rep *r)
{
	char path[4096];
	DIR *d;
	int opened = shards_dir_open(s, path, sizeof path, &d);
	if (opened != OMEN_OK || !d)
		return opened;
	int st = OMEN_OK;
	struct dirent *e;
	while (st == OMEN_OK && (e = readdir(d))) {
		char *at = strrchr(e->d_name, '@'), dir[4400];
		if (!at || (size_t)(at - e->d_name) > OMEN_MAX_NAME)
			continue;
		snprintf(dir, sizeof dir, "%s/%s", path, e->d_name);
		move_state m = mark_read(dir);
		if (m == MOVE_NONE)
			continue;
		uint64_t n = r->n + 1;
		char **names = realloc(r->names, n * sizeof *names);
		r->names = names ? names : r->names;
		uint64_t *ids = realloc(r->ids, n * sizeof *ids);
		r->ids = ids ? ids : r->ids;
		uint8_t *found = realloc(r->found, n);
		r->found = found ? found : r->found;
		char *name =
		    names && ids && found ? strndup(e->d_name, (size_t)(at - e->d_name)) : NULL;
		if (!name) {
			st = status_set(OMEN_ENOMEM, "out of memory");
			break;
		}
		r->names[r->n] = name;
		r->ids[r->n] = strtoull(at + 1, NULL, 10);
		r->found[r->n] = m != MOVE_INCOMING;
		r->n = r->nnames = n;
	}
	closedir(d);
	return st;
}

static int do_fence(shard_node *s, const wire_req *q, wire_rep *r)
{
	if (q->mode == FENCE_QUERY)
		return marked_units(s, r);
	if (!q->name[0] || q->shard < 0)
		return status_set(OMEN_EINVAL, "fence: the request names no collection or shard");
	char dir[4096];
	unit_path(s, q->name, q->shard, dir, sizeof dir);
	if (q->mode == FENCE_INCOMING) { /* a fresh, empty unit: nothing left of an older one */
		int st = do_drop(s, q);
		if (st == OMEN_OK)
			st = do_create(s, q);
		return st == OMEN_OK ? mark_write(dir, MOVE_INCOMING) : st;
	}
	unit *u;
	int st = unit_get(s, q->name, q->shard, &u);
	if (st == OMEN_ENOTFOUND && (q->mode == FENCE_RELEASE || q->mode == FENCE_ACCEPT))
		return OMEN_OK;
	if (st != OMEN_OK)
		return st;
	pthread_mutex_lock(&s->mu);
	st = fence_unit(s, u, dir, (int)q->mode, r);
	pthread_mutex_unlock(&s->mu);
	unit_put(s, u);
	return st;
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
	p.nlist = q->nlist;
	if (q->bits) /* absent: the default */
		p.bits = q->bits;
	p.ram_budget = q->ram_budget;
	if (q->mode == WIRE_BUILD_BACKGROUND) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		p.threads = cores > 1 ? (int)(cores / 2) : 1;
	}
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
	if ((q->op == WIRE_UPSERT || q->op == WIRE_DELETE) && (st = write_begin(s, u)) != OMEN_OK) {
		unit_put(s, u);
		return st;
	}
	if (q->op == WIRE_UPSERT || q->op == WIRE_DELETE)
		pthread_mutex_lock(&u->order);
	switch (q->op) {
	case WIRE_UPSERT:
		st = do_upsert(u, q);
		break;
	case WIRE_IDS:
		st = do_ids(s, u, q, r);
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
	if (q->op == WIRE_UPSERT || q->op == WIRE_DELETE) {
		/* A primary forwards what it committed (only that: a copy never holds a write its
		 * primary refused), within half the caller's deadline so that the caller has time
		 * to take a silent copy out of the copies in sync before its own deadline. */
		uint32_t newer = 0;
		if (st == OMEN_OK && q->ncopies)
			r->failed = fwd_write(
			    s->fwd, q, q->deadline_ms ? q->deadline_ms / 2 + 1 : 2500, &newer);
		/* A copy routed by a newer map than the caller's: committed here, but the caller
		 * asks again (writes are idempotent) with its map brought up to date. */
		if (newer)
			st = status_set(
			    OMEN_ESTALE,
			    "a copy of logical shard %d of '%s' saw a newer shard map: ask "
			    "again",
			    (int)q->shard, q->name);
		pthread_mutex_unlock(&u->order);
		write_end(s, u, q->ids, q->n);
	}
	unit_put(s, u);
	return st;
}

/* Lists the units present on disk as "NAME@SHARD" strings. */
static int list_units(shard_node *s, wire_rep *r)
{
	char path[4096];
	DIR *d;
	int opened = shards_dir_open(s, path, sizeof path, &d);
	if (opened != OMEN_OK || !d)
		return opened;
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

void shard_handle(shard_node *s, const wire_req *q, wire_rep *r)
{
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
	case WIRE_FENCE:
		st = do_fence(s, q, r);
		break;
	case WIRE_JOIN:
		st = status_set(OMEN_ENOTSUP, "a shard node does not take 'join': send it to a "
		                              "coordinator");
		break;
	default:
		st = unit_call(s, q, r);
	}
	r->status = st;
	if (st != OMEN_OK)
		r->message = strdup(status_msg());
}

/* The server's callback: every decoded request goes to shard_handle. */
static void serve(void *ctx, const wire_req *q, wire_rep *r)
{
	shard_handle(ctx, q, r);
}

/* ---- registration ---- */

/* The node id kept in DATA/node.id, chosen at random in WIRE_NODE_ID_MIN..MAX the first time. */
static int node_id_load(const char *data, uint64_t *id)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/node.id", data);
	FILE *f = fopen(path, "r");
	unsigned long long v = 0;
	if (f) {
		int ok =
		    fscanf(f, "%llu", &v) == 1 && v >= WIRE_NODE_ID_MIN && v <= WIRE_NODE_ID_MAX;
		fclose(f);
		if (!ok)
			return status_set(OMEN_ECORRUPT, "%s does not hold a node id", path);
		*id = v;
		return OMEN_OK;
	}
	if (errno != ENOENT)
		return status_set(OMEN_EIO, "%s: %s", path, strerror(errno));
	if (getrandom(&v, sizeof v, 0) != sizeof v)
		return status_set(OMEN_EIO, "getrandom: %s", strerror(errno));
	v = WIRE_NODE_ID_MIN + v % (WIRE_NODE_ID_MAX - WIRE_NODE_ID_MIN + 1);
	char text[32];
	snprintf(text, sizeof text, "%llu\n", v);
	int st = file_write_atomic(path, text);
	if (st == OMEN_OK)
		*id = v;
	return st;
}

static void *heartbeat_main(void *arg)
{
	shard_node *s = arg;
	const char *addr = s->cfg.advertise ? s->cfg.advertise : s->cfg.listen;
	unsigned period = s->cfg.heartbeat_ms ? s->cfg.heartbeat_ms : 500;
	peer **to = calloc(s->cfg.ncoordinators, sizeof *to);
	size_t at = 0;
	int joined = 0, told = 0;
	pthread_mutex_lock(&s->mu);
	while (!s->stopping && to) {
		pthread_mutex_unlock(&s->mu);
		if (!to[at])
			peer_open(s->cfg.coordinators[at], s->cfg.max_message, &to[at]);
		wire_req q;
		wire_rep r;
		wire_req_init(&q);
		q.op = WIRE_JOIN;
		q.token = (char *)s->cfg.token;
		q.node = s->id;
		q.addr = (char *)addr;
		wire_rep_init(&r);
		int st = to[at] ? peer_request(to[at], &q, 2 * period, &r) : OMEN_EUNAVAIL;
		if (st == OMEN_OK && !joined)
			log_msg(LOG_INFO, "registered as shard node %llu (%s) through %s",
			        (unsigned long long)s->id, addr, s->cfg.coordinators[at]);
		else if (st != OMEN_OK && (joined || !told))
			log_msg(LOG_WARN, "heartbeat to %s: %s", s->cfg.coordinators[at],
			        r.message ? r.message : status_text(st));
		told |= st != OMEN_OK;
		joined = st == OMEN_OK;
		if (st != OMEN_OK)
			at = (at + 1) % s->cfg.ncoordinators;
		wire_rep_free(&r);
		pthread_mutex_lock(&s->mu);
		if (!s->stopping)
			cond_wait_ms(&s->hb_cv, &s->mu, period);
	}
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; to && i < s->cfg.ncoordinators; i++)
		peer_close(to[i]);
	free(to);
	return NULL;
}

uint64_t shard_id(const shard_node *s)
{
	return s->id;
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
	pthread_cond_init(&s->hb_cv, NULL);
	char path[4096];
	snprintf(path, sizeof path, "%s/shards", cfg->data);
	int st = dir_create(path);
	if (st == OMEN_OK)
		st = fwd_open(cfg->max_message, cfg->token, &s->fwd);
	if (st != OMEN_OK) {
		shard_stop(s);
		return st;
	}
	srv_config sc = {cfg->listen, cfg->workers, cfg->max_message, cfg->token, serve, s,
	                 "shard",     NULL};
	st = srv_start(&sc, &s->srv);
	if (st == OMEN_OK && cfg->ncoordinators)
		st = node_id_load(cfg->data, &s->id);
	if (st == OMEN_OK && cfg->ncoordinators) {
		if (pthread_create(&s->heartbeat, NULL, heartbeat_main, s) != 0)
			st = status_set(OMEN_ENOMEM, "cannot start the heartbeat thread");
		s->heartbeat_on = st == OMEN_OK;
	}
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
	if (s->heartbeat_on) { /* first: the coordinators see this node go quiet */
		pthread_mutex_lock(&s->mu);
		s->stopping = 1;
		pthread_cond_broadcast(&s->hb_cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->heartbeat, NULL);
	}
	srv_stop(s->srv);
	fwd_close(s->fwd);
	while (s->units) {
		unit *u = s->units;
		s->units = u->next;
		unit_free(u);
	}
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->hb_cv);
	pthread_mutex_destroy(&s->mu);
	free(s->data);
	free(s);
}
