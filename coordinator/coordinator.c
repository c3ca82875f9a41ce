/*
 * The coordinator's routing, scatter and gather. A point's logical shard is a 64-bit hash of
 * its id (XXH3 of the id's 8 little-endian bytes) modulo the collection's number of logical
 * shards; logical shard s lives on shard node s mod (number of nodes). Writes are split by
 * shard and sent in parallel; searches go to every logical shard at once with a deadline and
 * each shard's top-k is merged into the global top-k, ties broken by the smaller id.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "base/base.h"
#include "coordinator/internal.h"
#include "storage/storage.h"

/* One request to one logical shard, and its answer. */
typedef struct part {
	uint32_t shard;
	wire_req req;
	wire_rep rep;
	int st;          /* transport status, then the reply's status */
	char *err;       /* detail of a failure */
	uint64_t *index; /* positions in the caller's arrays of the part's points */
	peer *to;        /* the node holding the logical shard */
} part;

static uint32_t shard_of(uint64_t id, uint32_t nshards)
{
	unsigned char b[8];
	le64_put(b, id);
	return (uint32_t)(XXH3_64bits(b, sizeof b) % nshards);
}

/* The node a part goes to: from the shard map, or shard s mod the configured nodes. */
static peer *part_peer(const coord *c, const part *p)
{
	return p->to ? p->to : c->nodes[p->shard % c->nnodes];
}

static uint32_t deadline(const coord *c, const wire_req *q)
{
	return q->deadline_ms ? q->deadline_ms : c->cfg.deadline_ms;
}

static part *parts_new(const coll_info *ci, const wire_req *q)
{
	part *p = calloc(ci->nshards, sizeof *p);
	for (uint32_t s = 0; p && s < ci->nshards; s++) {
		wire_req_init(&p[s].req);
		wire_rep_init(&p[s].rep);
		p[s].shard = s;
		p[s].req.op = q->op;
		p[s].req.shard = (int32_t)s;
		p[s].req.epoch = ci->epoch;
		p[s].to = ci->to ? ci->to[s] : NULL;
		strcpy(p[s].req.name, ci->name);
		p[s].req.dim = ci->dim;
	}
	return p;
}

static void parts_free(part *p, uint32_t n)
{
	for (uint32_t s = 0; p && s < n; s++) {
		wire_rep_free(&p[s].rep);
		free(p[s].err);
		free(p[s].index);
	}
	free(p);
}

/* Sends every part with a non-negative shard to its node at once and waits for all answers
 * (or the deadline). Parts with shard < 0 are skipped. Returns the number that failed. */
static uint32_t scatter(coord *c, part *p, uint32_t n, uint32_t timeout_ms)
{
	peer_call *calls = calloc(n, sizeof *calls);
	uint32_t failed = 0;
	for (uint32_t s = 0; s < n; s++) {
		if (p[s].req.shard < 0)
			continue;
		p[s].req.token = c->token;
		p[s].st =
		    calls ? peer_call_start(part_peer(c, &p[s]), &p[s].req, timeout_ms, &calls[s])
		          : status_set(OMEN_ENOMEM, "out of memory");
		if (p[s].st != OMEN_OK)
			p[s].err = strdup(status_msg());
	}
	for (uint32_t s = 0; s < n; s++) {
		if (p[s].req.shard < 0 || p[s].st != OMEN_OK)
			continue;
		p[s].st = peer_call_finish(&calls[s], &p[s].rep);
		if (p[s].st == OMEN_OK && p[s].rep.status != OMEN_OK)
			p[s].st = p[s].rep.status,
			p[s].err = strdup(p[s].rep.message ? p[s].rep.message : "");
		else if (p[s].st != OMEN_OK)
			p[s].err = strdup(status_msg());
	}
	for (uint32_t s = 0; s < n; s++)
		failed += p[s].req.shard >= 0 && p[s].st != OMEN_OK;
	free(calls);
	return failed;
}

/* The status of a scatter: OMEN_OK, or the first failure with a message naming every failed
 * shard and its node. */
static int gather_status(coord *c, const part *p, uint32_t n, const char *what)
{
	int st = OMEN_OK;
	char msg[1024] = "";
	size_t len = 0;
	for (uint32_t s = 0; s < n; s++) {
		if (p[s].req.shard < 0 || p[s].st == OMEN_OK)
			continue;
		if (st == OMEN_OK)
			st = p[s].st;
		if (len < sizeof msg - 1)
			len += (size_t)snprintf(msg + len, sizeof msg - len, "%sshard %u (%s): %s",
			                        len ? "; " : "", p[s].shard,
			                        peer_url(part_peer(c, &p[s])),
			                        p[s].err ? p[s].err : "failed");
	}
	if (st != OMEN_OK)
		return status_set(st, "%s: %s", what, msg);
	return OMEN_OK;
}

static int lookup(coord *c, const char *name, coll_info *ci)
{
	return c->fsm ? rmeta_lookup(c, name, ci) : meta_get(&c->meta, name, ci);
}

/* Every collection, in name order (routes not filled). */
static int list_all(coord *c, coll_info **out, size_t *n)
{
	return c->fsm ? rmeta_list(c, out, n) : meta_list(&c->meta, out, n);
}

/* ---- collections ---- */

/* Sends CREATE (or DROP) to every logical shard of ci. */
static int shards_call(coord *c, const wire_req *q, const coll_info *ci, const char *what)
{
	part *p = parts_new(ci, q);
	int st = p ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (uint32_t s = 0; p && s < ci->nshards; s++)
		p[s].req.metric = ci->metric;
	if (p && scatter(c, p, ci->nshards, deadline(c, q)) > 0)
		st = gather_status(c, p, ci->nshards, what);
	parts_free(p, ci->nshards);
	return st;
}

/* CREATE with Raft: the collection and its shard map are committed first (the state machine
 * assigns the logical shards), then created on the shards; if they fail, it is dropped
 * again. */
static int create_replicated(coord *c, const wire_req *q, const coll_info *want)
{
	meta_cmd cmd = {.kind = CMD_COLL_CREATE};
	snprintf(cmd.coll.name, sizeof cmd.coll.name, "%s", want->name);
	cmd.coll.dim = want->dim;
	cmd.coll.metric = want->metric;
	cmd.coll.nshards = want->nshards;
	fsm_result res;
	int st = rmeta_apply(c, &cmd, &res);
	if (st == OMEN_EUNAVAIL && res.status == OMEN_EUNAVAIL) { /* nodes not registered yet? */
		rmeta_register_now(c);
		st = rmeta_apply(c, &cmd, &res);
	}
	if (st == OMEN_EEXIST)
		return status_set(st, "collection '%s' already exists", want->name);
	if (st == OMEN_EUNAVAIL && res.status == OMEN_EUNAVAIL)
		return status_set(st, "no shard node is up to hold collection '%s'", want->name);
	coll_info ci;
	if (st == OMEN_OK)
		st = lookup(c, want->name, &ci);
	if (st == OMEN_OK && (st = shards_call(c, q, &ci, "create")) != OMEN_OK) {
		char why[1024]; /* the rollback below writes the thread's message too */
		snprintf(why, sizeof why, "%s", status_msg());
		cmd.kind = CMD_COLL_DROP;
		rmeta_apply(c, &cmd, &res);
		st = status_set(st, "%s", why);
	}
	return st;
}

static int do_create(coord *c, const wire_req *q)
{
	coll_info ci = {0};
	snprintf(ci.name, sizeof ci.name, "%s", q->name);
	ci.dim = q->dim;
	ci.metric = q->metric;
	ci.nshards = q->nshards ? q->nshards : c->cfg.default_shards;
	if (ci.dim < 1 || ci.dim > OMEN_MAX_DIM || ci.nshards > WIRE_MAX_SHARDS)
		return status_set(OMEN_EINVAL, "dimension must be 1 to %d and shards 1 to %d",
		                  OMEN_MAX_DIM, WIRE_MAX_SHARDS);
	if (c->fsm)
		return create_replicated(c, q, &ci);
	pthread_mutex_lock(&c->mu);
	coll_info old;
	int st = lookup(c, q->name, &old);
	if (st == OMEN_OK)
		st = status_set(OMEN_EEXIST, "collection '%s' already exists", q->name);
	else if (st == OMEN_ENOTFOUND) {
		part *p = parts_new(&ci, q);
		st = p ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
		for (uint32_t s = 0; p && s < ci.nshards; s++)
			p[s].req.metric = ci.metric;
		if (p && scatter(c, p, ci.nshards, deadline(c, q)) > 0)
			st = gather_status(c, p, ci.nshards, "create");
		if (st == OMEN_OK)
			st = meta_put(&c->meta, &ci);
		parts_free(p, ci.nshards);
	}
	pthread_mutex_unlock(&c->mu);
	return st;
}

static void forget_next_id(coord *c, const char *name)
{
	for (next_id **pp = &c->ids; *pp; pp = &(*pp)->link)
		if (strcmp((*pp)->name, name) == 0) {
			next_id *d = *pp;
			*pp = d->link;
			free(d);
			return;
		}
}

static int do_drop(coord *c, const wire_req *q)
{
	pthread_mutex_lock(&c->mu);
	coll_info ci;
	int st = lookup(c, q->name, &ci);
	part *p = st == OMEN_OK ? parts_new(&ci, q) : NULL;
	if (st == OMEN_OK && !p)
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (p && scatter(c, p, ci.nshards, deadline(c, q)) > 0)
		st = gather_status(c, p, ci.nshards, "drop");
	if (st == OMEN_OK && c->fsm) {
		meta_cmd cmd = {.kind = CMD_COLL_DROP};
		snprintf(cmd.coll.name, sizeof cmd.coll.name, "%s", q->name);
		fsm_result res;
		st = rmeta_apply(c, &cmd, &res);
	} else if (st == OMEN_OK && (st = meta_del(&c->meta, q->name)) == OMEN_OK) {
		forget_next_id(c, q->name);
	}
	parts_free(p, ci.nshards);
	pthread_mutex_unlock(&c->mu);
	return st;
}

static int do_list(coord *c, wire_rep *r)
{
	coll_info *v;
	size_t n;
	int st = list_all(c, &v, &n);
	if (st != OMEN_OK)
		return st;
	r->names = calloc(n + 1, sizeof *r->names);
	for (size_t i = 0; r->names && i < n; i++)
		if ((r->names[r->nnames] = strdup(v[i].name)))
			r->nnames++;
	free(v);
	return r->names && r->nnames == n ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
}

/* Asks every logical shard of a collection for op and checks that all answered. */
static int ask_all(coord *c, const wire_req *q, coll_info *ci, part **out)
{
	int st = lookup(c, q->name, ci);
	if (st != OMEN_OK)
		return st;
	part *p = parts_new(ci, q);
	if (!p)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (uint32_t s = 0; s < ci->nshards; s++) { /* BUILD's parameters */
		p[s].req.index_type = q->index_type;
		p[s].req.m = q->m;
		p[s].req.ef_construction = q->ef_construction;
		p[s].req.int8 = q->int8;
		p[s].req.nlist = q->nlist;
		p[s].req.bits = q->bits;
		p[s].req.ram_budget = q->ram_budget;
	}
	uint32_t timeout = q->op == WIRE_BUILD ? 0 : deadline(c, q);
	if (scatter(c, p, ci->nshards, timeout) > 0) {
		st = gather_status(c, p, ci->nshards,
		                   q->op == WIRE_BUILD
		                       ? "build (the shards not named have their new index)"
		                       : wire_op_name(q->op));
		parts_free(p, ci->nshards);
		return st;
	}
	*out = p;
	return OMEN_OK;
}

/* Adds one shard's statistics to the collection's t: counts and sizes are summed. The index
 * is "ivf" when any shard has IVF, else "hnsw" when any has HNSW. Each shard trains its own
 * lists on its own points, so IVF's figures differ by shard (docs/CLUSTER.md): ivf_nlist is
 * the smallest, the largest nprobe a search may pass (it goes to every shard as given, and a
 * shard refuses one above its lists); ivf_nprobe the largest calibrated default (at most that
 * ivf_nlist: do_stats clamps it), a value that reaches every shard's target recall when
 * passed explicitly. */
static void stats_add(omen_collection_stats *t, const omen_collection_stats *s)
{
	t->points += s->points;
	t->deleted += s->deleted;
	t->next_id = s->next_id > t->next_id ? s->next_id : t->next_id;
	t->segments += s->segments;
	t->vector_bytes += s->vector_bytes;
	t->indexed += s->indexed;
	t->index_bytes += s->index_bytes;
	if (strcmp(s->index, "hnsw") == 0) {
		t->index = strcmp(t->index, "ivf") == 0 ? t->index : "hnsw";
		t->hnsw_m = s->hnsw_m;
		t->hnsw_ef_construction = s->hnsw_ef_construction;
		t->hnsw_int8 = s->hnsw_int8;
	} else if (strcmp(s->index, "ivf") == 0) {
		t->index = "ivf";
		if (t->ivf_nlist == 0 || s->ivf_nlist < t->ivf_nlist)
			t->ivf_nlist = s->ivf_nlist;
		if (s->ivf_nprobe > t->ivf_nprobe)
			t->ivf_nprobe = s->ivf_nprobe;
		t->ivf_bits = s->ivf_bits;
	}
}

/* The collection q names and one part per logical shard (free with parts_free). */
static int coll_parts(coord *c, const wire_req *q, coll_info *ci, part **out)
{
	int st = lookup(c, q->name, ci);
	if (st != OMEN_OK)
		return st;
	if (!(*out = parts_new(ci, q)))
		return status_set(OMEN_ENOMEM, "out of memory");
	return OMEN_OK;
}

/* STATS and COUNT sum the shards' figures. With partial set, shards that did not answer are
 * left out and shards_answered says so (the remote client opens collections this way, since
 * it needs only the dimension and metric). */
static int do_stats(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	part *p;
	int st = coll_parts(c, q, &ci, &p);
	if (st != OMEN_OK)
		return st;
	uint32_t failed = scatter(c, p, ci.nshards, deadline(c, q));
	for (uint32_t s = 0; failed && s < ci.nshards; s++)
		if (p[s].st != OMEN_OK && (p[s].st != OMEN_EUNAVAIL || !q->partial))
			st = gather_status(c, p, ci.nshards, wire_op_name(q->op));
	if (st != OMEN_OK) {
		parts_free(p, ci.nshards);
		return st;
	}
	r->shards_total = ci.nshards;
	r->shards_answered = ci.nshards - failed;
	omen_collection_stats t = {0};
	snprintf(t.name, sizeof t.name, "%s", ci.name);
	t.dim = ci.dim;
	t.metric = ci.metric;
	t.index = "flat";
	for (uint32_t s = 0; s < ci.nshards; s++)
		if (p[s].st != OMEN_OK)
			continue;
		else if (q->op == WIRE_STATS)
			stats_add(&t, &p[s].rep.stats);
		else
			r->count += p[s].rep.count;
	if (t.ivf_nprobe > t.ivf_nlist) /* stats_add: valid for every shard */
		t.ivf_nprobe = t.ivf_nlist;
	if (q->op == WIRE_STATS)
		r->stats = t, r->has_stats = 1;
	parts_free(p, ci.nshards);
	return OMEN_OK;
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* IDS: each shard's first n ids from start, merged; the n smallest are the page. */
static int do_ids(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	part *p;
	int st = coll_parts(c, q, &ci, &p);
	if (st != OMEN_OK)
		return st;
	for (uint32_t s = 0; s < ci.nshards; s++)
		p[s].req.n = q->n, p[s].req.start = q->start;
	if (scatter(c, p, ci.nshards, deadline(c, q)) > 0)
		st = gather_status(c, p, ci.nshards, "list ids");
	uint64_t total = 0;
	for (uint32_t s = 0; st == OMEN_OK && s < ci.nshards; s++)
		total += p[s].rep.n;
	uint64_t *all = st == OMEN_OK ? malloc((total ? total : 1) * sizeof *all) : NULL;
	if (st == OMEN_OK && !all)
		st = status_set(OMEN_ENOMEM, "out of memory");
	uint64_t at = 0;
	for (uint32_t s = 0; st == OMEN_OK && s < ci.nshards; at += p[s].rep.n, s++)
		if (p[s].rep.n)
			memcpy(all + at, p[s].rep.ids, p[s].rep.n * sizeof *all);
	if (st == OMEN_OK) {
		qsort(all, total, sizeof *all, cmp_id);
		r->n = total < q->n ? total : q->n;
		r->ids = all;
		all = NULL;
	}
	free(all);
	parts_free(p, ci.nshards);
	return st;
}

/* The limits of an IVF build that depend on a logical shard's points (OMEN_IVF_MIN_POINTS,
 * nlist), checked on every shard before any builds, so that a build some shards would refuse
 * changes nothing. The message names each short shard as a failed build would. Points
 * deleted between the check and the build can still make a shard refuse; the build's
 * message then names it. */
static int ivf_points_check(coord *c, const wire_req *q)
{
	wire_req sq = *q;
	sq.op = WIRE_STATS;
	coll_info ci;
	part *p = NULL;
	int st = ask_all(c, &sq, &ci, &p);
	char msg[1024] = "";
	size_t len = 0;
	uint64_t need = q->nlist > OMEN_IVF_MIN_POINTS ? q->nlist : OMEN_IVF_MIN_POINTS;
	for (uint32_t s = 0; st == OMEN_OK && s < ci.nshards; s++) {
		uint64_t live = p[s].rep.stats.points;
		if (live >= need || len >= sizeof msg - 1)
			continue;
		char why[256];
		if (live < OMEN_IVF_MIN_POINTS)
			snprintf(why, sizeof why,
			         "collection '%s': an IVF index needs at least %d live points, it "
			         "has %llu",
			         ci.name, OMEN_IVF_MIN_POINTS, (unsigned long long)live);
		else
			snprintf(why, sizeof why, "nlist %u exceeds the live points (%llu)",
			         q->nlist, (unsigned long long)live);
		len += (size_t)snprintf(msg + len, sizeof msg - len, "%sshard %u (%s): %s",
		                        len ? "; " : "", s, peer_url(part_peer(c, &p[s])), why);
	}
	if (st == OMEN_OK)
		parts_free(p, ci.nshards);
	if (st == OMEN_OK && len)
		return status_set(OMEN_EINVAL, "build (no shard was changed): %s", msg);
	return st;
}

static int do_build(coord *c, const wire_req *q)
{
	coll_info ci;
	part *p = NULL;
	int st = q->index_type == OMEN_INDEX_IVF ? ivf_points_check(c, q) : OMEN_OK;
	if (st == OMEN_OK)
		st = ask_all(c, q, &ci, &p);
	if (st == OMEN_OK)
		parts_free(p, ci.nshards);
	return st;
}

/* Joins the shards' check reports, one section per shard. */
static char *join_reports(const part *p, uint32_t n)
{
	size_t len = 1;
	for (uint32_t s = 0; s < n; s++)
		len += 96 + (p[s].rep.report ? strlen(p[s].rep.report) : 0) +
		       (p[s].err ? strlen(p[s].err) : 0);
	char *out = malloc(len);
	size_t at = 0;
	for (uint32_t s = 0; out && s < n; s++) {
		const char *text = p[s].rep.report ? p[s].rep.report : p[s].err ? p[s].err : "ok";
		size_t tl = strlen(text);
		at += (size_t)snprintf(out + at, len - at, "shard %u:%s%s%s", s,
		                       strchr(text, '\n') ? "\n" : " ", text,
		                       tl && text[tl - 1] == '\n' ? "" : "\n");
	}
	if (out)
		out[at] = 0;
	return out;
}

/* CHECK: every shard's index; OMEN_ECORRUPT when any is damaged, with every report. */
static int do_check(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	part *p;
	int st = coll_parts(c, q, &ci, &p);
	if (st != OMEN_OK)
		return st;
	scatter(c, p, ci.nshards, deadline(c, q));
	int corrupt = 0;
	for (uint32_t s = 0; s < ci.nshards; s++) {
		corrupt |= p[s].st == OMEN_ECORRUPT;
		if (p[s].st != OMEN_OK && p[s].st != OMEN_ECORRUPT)
			st = OMEN_EUNAVAIL;
	}
	if (st != OMEN_OK)
		st = gather_status(c, p, ci.nshards, "check");
	else if (!(r->report = join_reports(p, ci.nshards)))
		st = status_set(OMEN_ENOMEM, "out of memory");
	else if (corrupt)
		st = status_set(OMEN_ECORRUPT, "collection '%s': a shard's index is damaged",
		                ci.name);
	parts_free(p, ci.nshards);
	return st;
}

/* ---- points ---- */

/* Checks a whole batch before any shard sees it, so that bad input writes nothing. */
static int batch_check(const coll_info *ci, const wire_req *q)
{
	if (q->dim != ci->dim)
		return status_set(OMEN_EINVAL, "collection '%s': dimension %u expected, got %u",
		                  ci->name, ci->dim, q->dim);
	for (uint64_t i = 0; i < q->n * q->dim; i++)
		if (!isfinite(q->vectors[i]))
			return status_set(OMEN_EINVAL, "point %llu: vector holds NaN or infinity",
			                  (unsigned long long)(i / q->dim));
	for (uint64_t i = 0; ci->metric == OMEN_METRIC_COSINE && i < q->n; i++) {
		uint32_t d = 0;
		while (d < q->dim && q->vectors[i * q->dim + d] == 0)
			d++;
		if (d == q->dim)
			return status_set(OMEN_EINVAL,
			                  "point %llu: a zero vector has no direction "
			                  "(cosine)",
			                  (unsigned long long)i);
	}
	for (uint64_t i = 0; q->meta && i < q->n; i++)
		if (q->meta[i] && meta_check_json(q->meta[i]) != OMEN_OK)
			return status_set(OMEN_EINVAL, "metadata of point %llu: %s",
			                  (unsigned long long)i, status_msg());
	return OMEN_OK;
}

/* The largest next id any shard of the collection reports. */
static int shards_next_id(coord *c, const coll_info *ci, uint64_t *out)
{
	wire_req q;
	wire_req_init(&q);
	q.op = WIRE_STATS;
	strcpy(q.name, ci->name);
	coll_info tmp;
	part *p = NULL;
	int st = ask_all(c, &q, &tmp, &p);
	if (st != OMEN_OK)
		return st;
	uint64_t m = 0;
	for (uint32_t s = 0; s < tmp.nshards; s++)
		if (p[s].rep.stats.next_id > m)
			m = p[s].rep.stats.next_id;
	parts_free(p, tmp.nshards);
	*out = m;
	return OMEN_OK;
}

/* The cached next id of a collection, learnt from its shards when unknown. Called with
 * c->mu held. */
static int next_id_get(coord *c, const coll_info *ci, next_id **out)
{
	for (next_id *e = c->ids; e; e = e->link)
		if (strcmp(e->name, ci->name) == 0)
			return *out = e, OMEN_OK;
	uint64_t m;
	int st = shards_next_id(c, ci, &m);
	if (st != OMEN_OK)
		return st;
	next_id *e = calloc(1, sizeof *e);
	if (!e)
		return status_set(OMEN_ENOMEM, "out of memory");
	e->next = m;
	strcpy(e->name, ci->name);
	e->link = c->ids;
	c->ids = e;
	*out = e;
	return OMEN_OK;
}

/* With Raft, on the leader: n ids from a range allocated through Raft, above every id the
 * shards hold (ids given by callers included). */
static int ids_replicated(coord *c, const coll_info *ci, const wire_req *q, uint64_t **ids)
{
	uint64_t floor, first;
	if (q->ids)
		return OMEN_OK;
	int st = shards_next_id(c, ci, &floor);
	if (st == OMEN_OK)
		st = rmeta_ids(c, ci->name, q->n, floor, &first);
	if (st == OMEN_OK && !(*ids = malloc(q->n * sizeof **ids)))
		st = status_set(OMEN_ENOMEM, "out of memory");
	for (uint64_t i = 0; st == OMEN_OK && i < q->n; i++)
		(*ids)[i] = first + i;
	return st;
}

/* Assigns n consecutive ids (into *ids, malloc'd), or records the largest id given. */
static int ids_assign(coord *c, const coll_info *ci, const wire_req *q, uint64_t **ids)
{
	if (c->fsm)
		return ids_replicated(c, ci, q, ids);
	pthread_mutex_lock(&c->mu);
	next_id *e = NULL;
	int st = next_id_get(c, ci, &e);
	if (st == OMEN_OK && !q->ids) {
		if (!(*ids = malloc(q->n * sizeof **ids)))
			st = status_set(OMEN_ENOMEM, "out of memory");
		for (uint64_t i = 0; st == OMEN_OK && i < q->n; i++)
			(*ids)[i] = e->next + i;
		if (st == OMEN_OK)
			e->next += q->n;
	}
	for (uint64_t i = 0; st == OMEN_OK && q->ids && i < q->n; i++)
		if (q->ids[i] >= e->next)
			e->next = q->ids[i] + 1;
	pthread_mutex_unlock(&c->mu);
	return st;
}

/* Splits n ids over the collection's shards: each part gets its ids (and, with vectors, its
 * rows; with meta, its entries, borrowed) and the positions they came from. */
static int split(const coll_info *ci, part *p, const uint64_t *ids, uint64_t n, const float *vec,
                 char **metas)
{
	uint32_t *sh = malloc((n ? n : 1) * sizeof *sh);
	if (!sh)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (uint64_t i = 0; i < n; i++)
		p[sh[i] = shard_of(ids[i], ci->nshards)].req.n++;
	int st = OMEN_OK;
	for (uint32_t s = 0; s < ci->nshards && st == OMEN_OK; s++) {
		uint64_t m = p[s].req.n ? p[s].req.n : 1;
		p[s].index = malloc(m * sizeof *p[s].index);
		p[s].req.ids = malloc(m * sizeof *p[s].req.ids);
		p[s].req.vectors = vec ? malloc(m * ci->dim * sizeof(float)) : NULL;
		p[s].req.meta = metas ? calloc(m, sizeof(char *)) : NULL;
		if (!p[s].index || !p[s].req.ids || (vec && !p[s].req.vectors) ||
		    (metas && !p[s].req.meta))
			st = status_set(OMEN_ENOMEM, "out of memory");
		if (!p[s].req.n)
			p[s].req.shard = -1; /* nothing to send */
		p[s].req.n = 0;
	}
	for (uint64_t i = 0; i < n && st == OMEN_OK; i++) {
		part *x = &p[sh[i]];
		uint64_t j = x->req.n++;
		x->index[j] = i;
		x->req.ids[j] = ids[i];
		if (vec)
			memcpy(x->req.vectors + j * ci->dim, vec + i * ci->dim,
			       ci->dim * sizeof(float));
		if (metas)
			x->req.meta[j] = metas[i];
	}
	free(sh);
	return st;
}

/* Frees what split allocated in the parts' requests. */
static void split_free(part *p, uint32_t n)
{
	for (uint32_t s = 0; p && s < n; s++) {
		free(p[s].req.ids);
		free(p[s].req.vectors);
		free(p[s].req.meta);
	}
}

static int do_upsert(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	int st = lookup(c, q->name, &ci);
	if (st == OMEN_OK)
		st = batch_check(&ci, q);
	if (st == OMEN_OK && q->ids)
		st = ids_check(q->ids, q->n);
	uint64_t *ids = NULL;
	if (st == OMEN_OK)
		st = ids_assign(c, &ci, q, &ids);
	const uint64_t *use = q->ids ? q->ids : ids;
	part *p = st == OMEN_OK ? parts_new(&ci, q) : NULL;
	if (st == OMEN_OK && !p)
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK)
		st = split(&ci, p, use, q->n, q->vectors, q->meta);
	if (st == OMEN_OK && scatter(c, p, ci.nshards, deadline(c, q)) > 0)
		st = gather_status(c, p, ci.nshards,
		                   "upsert (the shards not named committed their "
		                   "points; retrying the batch is safe)");
	if (st == OMEN_OK && !ids && !(ids = malloc(q->n * sizeof *ids)))
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK && q->ids)
		memcpy(ids, q->ids, q->n * sizeof *ids);
	if (st == OMEN_OK)
		r->ids = ids, r->n = q->n, ids = NULL;
	split_free(p, ci.nshards);
	parts_free(p, ci.nshards);
	free(ids);
	return st;
}

/* GET and DELETE: the ids split by shard, the parts sent in parallel. On success *out holds
 * the parts with their answers (free with split_free and parts_free). */
static int by_shard(coord *c, const wire_req *q, const char *what, coll_info *ci, part **out)
{
	int st = lookup(c, q->name, ci);
	part *p = st == OMEN_OK ? parts_new(ci, q) : NULL;
	if (st == OMEN_OK && !p)
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK)
		st = split(ci, p, q->ids, q->n, NULL, NULL);
	if (st == OMEN_OK && scatter(c, p, ci->nshards, deadline(c, q)) > 0)
		st = gather_status(c, p, ci->nshards, what);
	if (st != OMEN_OK) {
		split_free(p, p ? ci->nshards : 0);
		parts_free(p, p ? ci->nshards : 0);
		return st;
	}
	*out = p;
	return OMEN_OK;
}

/* Puts each part's found flags, vectors and metadata back in the caller's order. */
static int get_gather(const coll_info *ci, part *p, const wire_req *q, wire_rep *r)
{
	r->n = q->n;
	r->dim = ci->dim;
	r->found = calloc(q->n + 1, 1);
	r->vectors = calloc(q->n * ci->dim + 1, sizeof(float));
	r->meta = calloc(q->n + 1, sizeof(char *));
	if (!r->found || !r->vectors || !r->meta)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (uint32_t s = 0; s < ci->nshards; s++) {
		part *x = &p[s];
		if (x->req.shard < 0)
			continue;
		if (x->rep.n != x->req.n || x->rep.dim != ci->dim || !x->rep.found)
			return status_set(OMEN_EPROTO, "shard %u answered %llu points for %llu", s,
			                  (unsigned long long)x->rep.n,
			                  (unsigned long long)x->req.n);
		for (uint64_t j = 0; j < x->req.n; j++) {
			uint64_t i = x->index[j];
			r->found[i] = x->rep.found[j];
			memcpy(r->vectors + i * ci->dim, x->rep.vectors + j * ci->dim, ci->dim * 4);
			if (x->rep.meta)
				r->meta[i] = x->rep.meta[j], x->rep.meta[j] = NULL;
		}
	}
	return OMEN_OK;
}

static int do_get(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	part *p = NULL;
	int st = by_shard(c, q, "get", &ci, &p);
	if (st != OMEN_OK)
		return st;
	st = get_gather(&ci, p, q, r);
	split_free(p, ci.nshards);
	parts_free(p, ci.nshards);
	return st;
}

static int do_delete(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	part *p = NULL;
	int st = by_shard(c, q,
	                  "delete (the shards not named deleted their points; retrying is "
	                  "safe)",
	                  &ci, &p);
	if (st != OMEN_OK)
		return st;
	for (uint32_t s = 0; s < ci.nshards; s++)
		r->count += p[s].rep.count;
	split_free(p, ci.nshards);
	parts_free(p, ci.nshards);
	return OMEN_OK;
}

/* ---- search ---- */

/* Merges the answered shards' rows into the global top-k of each query (merge.c). */
static int merge(const part *p, uint32_t nshards, const wire_req *q, wire_rep *r)
{
	uint64_t nq = q->n, k = q->k;
	merge_src *src = calloc(nshards, sizeof *src);
	r->ids = malloc(nq * k * sizeof *r->ids);
	r->dists = malloc(nq * k * sizeof *r->dists);
	int st = src && r->ids && r->dists ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (uint32_t s = 0; st == OMEN_OK && s < nshards; s++)
		if (p[s].st == OMEN_OK)
			src[s] = (merge_src){p[s].rep.ids, p[s].rep.dists};
	if (st == OMEN_OK)
		st = merge_topk(src, nshards, nq, (uint32_t)k, r->ids, r->dists);
	free(src);
	if (st == OMEN_OK)
		r->n = nq, r->k = (uint32_t)k;
	return st;
}

static int do_search(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	int st = lookup(c, q->name, &ci);
	if (st == OMEN_OK && q->dim != ci.dim)
		st = status_set(OMEN_EINVAL, "collection '%s': dimension %u expected, got %u",
		                ci.name, ci.dim, q->dim);
	part *p = st == OMEN_OK ? parts_new(&ci, q) : NULL;
	if (st == OMEN_OK && !p)
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st != OMEN_OK)
		return st;
	for (uint32_t s = 0; s < ci.nshards; s++) {
		wire_req *x = &p[s].req;
		x->n = q->n, x->vectors = q->vectors, x->k = q->k, x->ef = q->ef;
		x->nprobe = q->nprobe, x->exact = q->exact, x->filter = q->filter;
	}
	uint32_t failed = scatter(c, p, ci.nshards, deadline(c, q));
	/* A shard that refused the request itself (bad filter, bad k) fails the search even
	 * when partial results are allowed. */
	for (uint32_t s = 0; failed && s < ci.nshards; s++)
		if (p[s].st != OMEN_OK && (p[s].st != OMEN_EUNAVAIL || !q->partial))
			st = OMEN_EUNAVAIL;
	uint64_t points = 0;
	for (uint32_t s = 0; s < ci.nshards; s++)
		if (p[s].st == OMEN_OK && (p[s].rep.n != q->n || p[s].rep.k != q->k))
			p[s].st = OMEN_EPROTO, st = OMEN_EUNAVAIL,
			p[s].err = strdup("answer of the wrong shape");
		else if (p[s].st == OMEN_OK)
			points += p[s].rep.count;
	if (st != OMEN_OK)
		st = gather_status(c, p, ci.nshards, "search");
	else if (!failed && q->k > points)
		st = status_set(OMEN_EINVAL, "k=%u exceeds the %llu points of collection '%s'",
		                q->k, (unsigned long long)points, ci.name);
	else
		st = merge(p, ci.nshards, q, r);
	r->count = points;
	r->shards_total = ci.nshards;
	r->shards_answered = ci.nshards - failed;
	for (uint32_t s = 0; s < ci.nshards; s++)
		p[s].req.vectors = NULL; /* borrowed */
	parts_free(p, ci.nshards);
	return st;
}

/* ---- nodes ---- */

/* Sends op to every shard node (not per logical shard): those the node table holds (Raft),
 * else those configured. *nodes receives how many were asked; returns how many answered. */
static uint32_t ask_nodes(coord *c, wire_op op, part **out, uint32_t *nodes)
{
	coll_info ci = {.nshards = (uint32_t)c->nnodes};
	size_t n = 0;
	if (c->fsm && rmeta_shard_peers(c, &ci.to, &n) == OMEN_OK)
		ci.nshards = (uint32_t)n;
	wire_req q;
	wire_req_init(&q);
	q.op = op;
	part *p = parts_new(&ci, &q);
	free(ci.to);
	*out = p;
	*nodes = ci.nshards;
	if (!p)
		return 0;
	for (uint32_t s = 0; s < ci.nshards; s++)
		p[s].req.name[0] = 0, p[s].req.shard = (int32_t)s, p[s].req.dim = 0;
	return ci.nshards - scatter(c, p, ci.nshards, c->cfg.deadline_ms);
}

static int do_nodes(coord *c, const wire_req *q, wire_rep *r)
{
	part *p = NULL;
	uint32_t n, up = ask_nodes(c, q->op, &p, &n);
	if (!p)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = OMEN_OK;
	if (q->op == WIRE_HEALTH) {
		r->count = up;
		r->shards_total = n;
		r->shards_answered = up;
	} else if (up < n) {
		st = gather_status(c, p, n, wire_op_name(q->op));
	} else if (q->op == WIRE_DBSTATS) {
		coll_info *v;
		size_t nc;
		if ((st = list_all(c, &v, &nc)) == OMEN_OK)
			free(v), r->dbstats.collections = nc;
		for (uint32_t s = 0; s < n; s++)
			r->dbstats.file_bytes += p[s].rep.dbstats.file_bytes,
			    r->dbstats.map_bytes += p[s].rep.dbstats.map_bytes;
		r->has_dbstats = st == OMEN_OK;
	}
	parts_free(p, n);
	return st;
}

/* ---- the coordinator ---- */

static void handle_once(coord *c, const wire_req *q, wire_rep *r);

/* An upsert that needs ids gets them once, before any attempt, so that a retry writes the same
 * points again instead of new copies under other ids. NULL when the request is refused (the
 * attempt reports why). */
static uint64_t *ids_up_front(coord *c, const wire_req *q)
{
	coll_info ci;
	uint64_t *ids = NULL;
	if (lookup(c, q->name, &ci) == OMEN_OK && batch_check(&ci, q) == OMEN_OK &&
	    ids_assign(c, &ci, q, &ids) != OMEN_OK)
		ids = NULL;
	return ids;
}

void coord_handle(coord *c, const wire_req *q, wire_rep *r)
{
	if (rmeta_must_forward(c, q) && rmeta_forward(c, q, r) == OMEN_OK)
		return; /* the leader's reply */
	wire_req once = *q;
	uint64_t *ids = NULL;
	if (c->fsm && q->op == WIRE_UPSERT && !q->ids && (ids = ids_up_front(c, q)))
		once.ids = ids;
	handle_once(c, &once, r);
	/* A shard saw a newer shard map than this coordinator's replica, or the logical shard is
	 * being moved: let the replica catch up, within the request's deadline. */
	uint64_t until = mono_ms() + deadline(c, q);
	struct timespec nap = {0, 20 * 1000 * 1000};
	while (c->fsm && r->status == OMEN_ESTALE && mono_ms() < until) {
		wire_rep_free(r);
		nanosleep(&nap, NULL);
		handle_once(c, &once, r);
	}
	free(ids);
}

static void handle_once(coord *c, const wire_req *q, wire_rep *r)
{
	int st;
	switch (q->op) {
	case WIRE_HEALTH:
	case WIRE_DBSTATS:
	case WIRE_FLUSH:
		st = do_nodes(c, q, r);
		break;
	case WIRE_CREATE:
		st = do_create(c, q);
		break;
	case WIRE_DROP:
		st = do_drop(c, q);
		break;
	case WIRE_LIST:
		st = do_list(c, r);
		break;
	case WIRE_STATS:
	case WIRE_COUNT:
		st = do_stats(c, q, r);
		break;
	case WIRE_UPSERT:
		st = do_upsert(c, q, r);
		break;
	case WIRE_GET:
		st = do_get(c, q, r);
		break;
	case WIRE_IDS:
		st = q->mode ? status_set(OMEN_EINVAL, "ids: mode is for shard nodes")
		             : do_ids(c, q, r);
		break;
	case WIRE_JOIN:
		st = c->fsm ? rmeta_join(c, q)
		            : status_set(OMEN_ENOTSUP, "this coordinator does not run Raft: list "
		                                       "the shard nodes in its 'shards'");
		break;
	case WIRE_FENCE:
		st = status_set(OMEN_ENOTSUP, "'fence' is for shard nodes");
		break;
	case WIRE_DELETE:
		st = do_delete(c, q, r);
		break;
	case WIRE_SEARCH:
		st = do_search(c, q, r);
		break;
	case WIRE_BUILD:
		st = do_build(c, q);
		break;
	case WIRE_CHECK:
		st = do_check(c, q, r);
		break;
	default:
		st = status_set(OMEN_ENOTSUP, "unknown call");
	}
	r->status = st;
	if (st != OMEN_OK && !r->message)
		r->message = strdup(status_msg());
}

static void serve(void *ctx, const wire_req *q, wire_rep *r)
{
	coord_handle(ctx, q, r);
}

static void observe(void *ctx, wire_op op, int status, double seconds)
{
	coord *c = ctx;
	metrics_observe(c->metrics, "nng", op, status, seconds);
}

int coord_shard_points(coord *c,
                       void (*fn)(void *ctx, const char *coll, uint32_t shard, const char *node,
                                  uint64_t points),
                       void *ctx)
{
	coll_info *v;
	size_t n;
	int st = list_all(c, &v, &n);
	if (st != OMEN_OK)
		return st;
	for (size_t i = 0; i < n; i++) {
		wire_req q;
		wire_req_init(&q);
		q.op = WIRE_COUNT;
		strcpy(q.name, v[i].name);
		part *p = parts_new(&v[i], &q);
		if (!p)
			break;
		scatter(c, p, v[i].nshards, c->cfg.deadline_ms);
		for (uint32_t s = 0; s < v[i].nshards; s++)
			fn(ctx, v[i].name, s, peer_url(part_peer(c, &p[s])),
			   p[s].st == OMEN_OK ? p[s].rep.count : UINT64_MAX);
		parts_free(p, v[i].nshards);
	}
	free(v);
	return OMEN_OK;
}

const char *coord_token(const coord *c)
{
	return c->token;
}

size_t coord_max_message(const coord *c)
{
	return c->cfg.max_message;
}

int coord_port(const coord *c)
{
	return srv_port(c->srv);
}

static int coord_connect(coord *c)
{
	c->nodes = calloc(c->cfg.nshards, sizeof *c->nodes);
	if (!c->nodes)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; i < c->cfg.nshards; i++) {
		int st = peer_open(c->cfg.shards[i], c->cfg.max_message, &c->nodes[i]);
		if (st != OMEN_OK)
			return st;
		c->nnodes++;
	}
	return OMEN_OK;
}

int coord_start(const coord_config *cfg, coord **out)
{
	if (!cfg || !cfg->data || !cfg->listen || (cfg->nshards == 0 && !cfg->raft_id))
		return status_set(OMEN_EINVAL, "a coordinator needs a data directory, a listen "
		                               "address and at least one shard node (or Raft, "
		                               "with which shard nodes register themselves)");
	coord *c = calloc(1, sizeof *c);
	if (!c)
		return status_set(OMEN_ENOMEM, "out of memory");
	c->cfg = *cfg;
	c->cfg.data = NULL; /* used during the start only (below) */
	c->cfg.peers = NULL;
	coord_peer *peers = cfg->npeers ? calloc(cfg->npeers, sizeof *peers) : NULL;
	if (cfg->npeers && !peers) {
		free(c);
		return status_set(OMEN_ENOMEM, "out of memory");
	}
	if (peers)
		memcpy(peers, cfg->peers,
		       cfg->npeers * sizeof *peers); /* strings stay the caller's */
	c->cfg.peers = peers;
	c->cfg.data = cfg->data;
	if (!c->cfg.deadline_ms)
		c->cfg.deadline_ms = 5000;
	if (!c->cfg.max_message)
		c->cfg.max_message = WIRE_MAX_MSG_DEFAULT;
	if (!c->cfg.workers)
		c->cfg.workers = 16;
	if (!c->cfg.default_shards)
		c->cfg.default_shards = COORD_DEFAULT_SHARDS;
	c->token = cfg->token && *cfg->token ? strdup(cfg->token) : NULL;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->rmu, NULL);
	int st = (c->metrics = metrics_new()) ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK)
		st = coord_connect(c);
	if (st == OMEN_OK)
		st = cfg->raft_id ? rmeta_start(c) : meta_open(&c->meta, cfg->data);
	srv_config sc = {cfg->listen,   c->cfg.workers, c->cfg.max_message, c->token, serve, c,
	                 "coordinator", observe};
	if (st == OMEN_OK)
		st = srv_start(&sc, &c->srv);
	if (st == OMEN_OK && cfg->http && *cfg->http)
		st = http_start(c, c->metrics, cfg->http, &c->http);
	if (st != OMEN_OK) {
		coord_stop(c);
		return st;
	}
	*out = c;
	return OMEN_OK;
}

void coord_stop(coord *c)
{
	if (!c)
		return;
	http_stop(c->http);
	srv_stop(c->srv);
	if (c->fsm || c->cons)
		rmeta_stop(c);
	for (size_t i = 0; i < c->nnodes; i++)
		peer_close(c->nodes[i]);
	free(c->nodes);
	while (c->ids) {
		next_id *e = c->ids;
		c->ids = e->link;
		free(e);
	}
	meta_close(&c->meta);
	metrics_free(c->metrics);
	pthread_mutex_destroy(&c->mu);
	free((void *)c->cfg.peers);
	free(c->token);
	free(c);
}
