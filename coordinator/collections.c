/*
 * The coordinator's collection operations: create, drop, list, stats, ids, build, check.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "base/base.h"
#include "coordinator/internal.h"
#include "coordinator/route.h"
#include "storage/storage.h"

/* ---- collections ---- */

/* Sends CREATE (or DROP) to every copy of every logical shard of ci. */
static int shards_call(coord *c, const wire_req *q, const coll_info *ci, const char *what)
{
	uint32_t n = 0;
	part *p = co_parts_copies(ci, q, 0, &n);
	int st = p ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (uint32_t s = 0; p && s < n; s++)
		p[s].req.metric = ci->metric;
	if (p && co_scatter(c, p, n, co_deadline(c, q)) > 0)
		st = co_gather_status(c, p, n, what);
	co_parts_free(p, n);
	return st;
}

/* The shard nodes the node table has up. */
static size_t up_shard_nodes(coord *c)
{
	meta_node *v;
	size_t n, up = 0;
	if (fsm_node_list(c->fsm, &v, &n) != OMEN_OK)
		return 0;
	for (size_t i = 0; i < n; i++)
		up += v[i].role == META_ROLE_SHARD && v[i].state == META_NODE_UP;
	free(v);
	return up;
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
	cmd.coll.replicas = want->replicas;
	fsm_result res;
	int st = rmeta_apply(c, &cmd, &res);
	if (st == OMEN_EUNAVAIL && res.status == OMEN_EUNAVAIL) { /* nodes not registered yet? */
		rmeta_register_now(c);
		st = rmeta_apply(c, &cmd, &res);
	}
	if (st == OMEN_EEXIST)
		return status_set(st, "collection '%s' already exists", want->name);
	if (st == OMEN_EUNAVAIL && res.status == OMEN_EUNAVAIL)
		return status_set(
		    st, "collection '%s': %u replica%s need%s %u shard node%s up, %zu %s",
		    want->name, want->replicas, want->replicas > 1 ? "s" : "",
		    want->replicas > 1 ? "" : "s", want->replicas, want->replicas > 1 ? "s" : "",
		    up_shard_nodes(c), up_shard_nodes(c) == 1 ? "is" : "are");
	coll_info ci;
	if (st == OMEN_OK)
		st = co_lookup(c, want->name, &ci);
	if (st == OMEN_OK && (st = shards_call(c, q, &ci, "create")) != OMEN_OK) {
		char why[1024]; /* the rollback below writes the thread's message too */
		snprintf(why, sizeof why, "%s", status_msg());
		cmd.kind = CMD_COLL_DROP;
		rmeta_apply(c, &cmd, &res);
		st = status_set(st, "%s", why);
	}
	return st;
}

int co_do_create(coord *c, const wire_req *q)
{
	coll_info ci = {0};
	snprintf(ci.name, sizeof ci.name, "%s", q->name);
	ci.dim = q->dim;
	ci.metric = q->metric;
	ci.nshards = q->nshards ? q->nshards : c->cfg.default_shards;
	ci.replicas = q->replicas ? q->replicas : 1;
	if (ci.dim < 1 || ci.dim > OMEN_MAX_DIM || ci.nshards > WIRE_MAX_SHARDS ||
	    ci.replicas > META_MAX_COPIES)
		return status_set(OMEN_EINVAL,
		                  "dimension must be 1 to %d, shards 1 to %d and replicas 1 to %d",
		                  OMEN_MAX_DIM, WIRE_MAX_SHARDS, META_MAX_COPIES);
	if (ci.replicas > 1 && !c->fsm)
		return status_set(OMEN_EINVAL,
		                  "collection '%s': replicas need coordinators on Raft "
		                  "(docs/CLUSTER.md)",
		                  q->name);
	if (c->fsm)
		return create_replicated(c, q, &ci);
	pthread_mutex_lock(&c->mu);
	coll_info old;
	int st = co_lookup(c, q->name, &old);
	if (st == OMEN_OK)
		st = status_set(OMEN_EEXIST, "collection '%s' already exists", q->name);
	else if (st == OMEN_ENOTFOUND) {
		part *p = co_parts_new(&ci, q);
		st = p ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
		for (uint32_t s = 0; p && s < ci.nshards; s++)
			p[s].req.metric = ci.metric;
		if (p && co_scatter(c, p, ci.nshards, co_deadline(c, q)) > 0)
			st = co_gather_status(c, p, ci.nshards, "create");
		if (st == OMEN_OK)
			st = meta_put(&c->meta, &ci);
		co_parts_free(p, ci.nshards);
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

int co_do_drop(coord *c, const wire_req *q)
{
	pthread_mutex_lock(&c->mu);
	coll_info ci;
	int st = co_lookup(c, q->name, &ci);
	uint32_t np = 0;
	part *p = st == OMEN_OK ? co_parts_copies(&ci, q, 0, &np) : NULL;
	if (st == OMEN_OK && !p)
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (p && co_scatter(c, p, np, co_deadline(c, q)) > 0)
		st = co_gather_status(c, p, np, "drop");
	if (st == OMEN_OK && c->fsm) {
		meta_cmd cmd = {.kind = CMD_COLL_DROP};
		snprintf(cmd.coll.name, sizeof cmd.coll.name, "%s", q->name);
		fsm_result res;
		st = rmeta_apply(c, &cmd, &res);
	} else if (st == OMEN_OK && (st = meta_del(&c->meta, q->name)) == OMEN_OK) {
		forget_next_id(c, q->name);
	}
	co_parts_free(p, np);
	pthread_mutex_unlock(&c->mu);
	return st;
}

int co_do_list(coord *c, wire_rep *r)
{
	coll_info *v;
	size_t n;
	int st = co_list_all(c, &v, &n);
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
int co_ask_all(coord *c, const wire_req *q, coll_info *ci, part **out)
{
	int st = co_lookup(c, q->name, ci);
	if (st != OMEN_OK)
		return st;
	part *p = co_parts_new(ci, q);
	if (!p)
		return status_set(OMEN_ENOMEM, "out of memory");
	if (co_scatter_reads(c, ci, p, ci->nshards, co_deadline(c, q)) > 0) {
		st = co_gather_status(c, p, ci->nshards, wire_op_name(q->op));
		co_parts_free(p, ci->nshards);
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
	int st = co_lookup(c, q->name, ci);
	if (st != OMEN_OK)
		return st;
	if (!(*out = co_parts_new(ci, q)))
		return status_set(OMEN_ENOMEM, "out of memory");
	return OMEN_OK;
}

/* STATS and COUNT sum the shards' figures. With partial set, shards that did not answer are
 * left out and shards_answered says so (the remote client opens collections this way, since
 * it needs only the dimension and metric). */
int co_do_stats(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	part *p;
	int st = coll_parts(c, q, &ci, &p);
	if (st != OMEN_OK)
		return st;
	uint32_t failed = co_scatter_reads(c, &ci, p, ci.nshards, co_deadline(c, q));
	for (uint32_t s = 0; failed && s < ci.nshards; s++)
		if (p[s].st != OMEN_OK && (p[s].st != OMEN_EUNAVAIL || !q->partial))
			st = co_gather_status(c, p, ci.nshards, wire_op_name(q->op));
	if (st != OMEN_OK) {
		co_parts_free(p, ci.nshards);
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
	t.replicas = ci.replicas ? ci.replicas : 1;
	for (uint32_t s = 0; ci.copies && s < ci.nshards; s++)
		for (uint32_t j = 0; j < ci.copies[s].n; j++)
			t.copies_stale += ci.copies[s].state[j] == META_COPY_STALE;
	if (q->op == WIRE_STATS)
		r->stats = t, r->has_stats = 1;
	co_parts_free(p, ci.nshards);
	return OMEN_OK;
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* IDS: each shard's first n ids from start, merged; the n smallest are the page. */
int co_do_ids(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	part *p;
	int st = coll_parts(c, q, &ci, &p);
	if (st != OMEN_OK)
		return st;
	for (uint32_t s = 0; s < ci.nshards; s++)
		p[s].req.n = q->n, p[s].req.start = q->start;
	if (co_scatter_reads(c, &ci, p, ci.nshards, co_deadline(c, q)) > 0)
		st = co_gather_status(c, p, ci.nshards, "list ids");
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
	co_parts_free(p, ci.nshards);
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
	int st = co_ask_all(c, &sq, &ci, &p);
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
		                        len ? "; " : "", s, peer_url(co_part_peer(c, &p[s])), why);
	}
	if (st == OMEN_OK)
		co_parts_free(p, ci.nshards);
	if (st == OMEN_OK && len)
		return status_set(OMEN_EINVAL, "build (no shard was changed): %s", msg);
	return st;
}

/* BUILD: on every copy in sync of every logical shard at once, with no deadline. */
int co_do_build(coord *c, const wire_req *q)
{
	coll_info ci;
	uint32_t n = 0;
	int st = q->index_type == OMEN_INDEX_IVF ? ivf_points_check(c, q) : OMEN_OK;
	if (st == OMEN_OK)
		st = co_lookup(c, q->name, &ci);
	part *p = st == OMEN_OK ? co_parts_copies(&ci, q, 1, &n) : NULL;
	if (st == OMEN_OK && !p)
		st = status_set(OMEN_ENOMEM, "out of memory");
	for (uint32_t s = 0; p && s < n; s++) {
		p[s].req.index_type = q->index_type;
		p[s].req.m = q->m;
		p[s].req.ef_construction = q->ef_construction;
		p[s].req.int8 = q->int8;
		p[s].req.nlist = q->nlist;
		p[s].req.bits = q->bits;
		p[s].req.ram_budget = q->ram_budget;
	}
	if (p && co_scatter(c, p, n, 0) > 0)
		st = co_gather_status(c, p, n, "build (the shards not named have their new index)");
	co_parts_free(p, n);
	return st;
}

/* Joins the check reports of n parts, one section per copy ("shard S:", or with copies
 * "shard S (URL):"), and a line for each shard whose copies in sync hold different numbers
 * of points (counts: each part's points, from a COUNT of the same parts); *differ gets
 * whether any do. */
static char *join_reports(coord *c, const part *p, uint32_t n, const uint64_t *counts, int copies,
                          int *differ)
{
	size_t len = 1;
	for (uint32_t s = 0; s < n; s++)
		len += 2 * WIRE_MAX_ADDR + 160 + (p[s].rep.report ? strlen(p[s].rep.report) : 0) +
		       (p[s].err ? strlen(p[s].err) : 0);
	char *out = malloc(len);
	size_t at = 0;
	for (uint32_t s = 0; out && s < n; s++) {
		const char *text = p[s].rep.report ? p[s].rep.report : p[s].err ? p[s].err : "ok";
		size_t tl = strlen(text);
		char who[WIRE_MAX_ADDR + 8] = "";
		if (copies)
			snprintf(who, sizeof who, " (%s)", peer_url(co_part_peer(c, &p[s])));
		at += (size_t)snprintf(out + at, len - at, "shard %u%s:%s%s%s", p[s].shard, who,
		                       strchr(text, '\n') ? "\n" : " ", text,
		                       tl && text[tl - 1] == '\n' ? "" : "\n");
		if (s > 0 && p[s].shard == p[s - 1].shard && counts[s] != counts[s - 1]) {
			*differ = 1;
			at += (size_t)snprintf(out + at, len - at,
			                       "shard %u: copies differ: %s holds %llu points, %s "
			                       "%llu\n",
			                       p[s].shard, peer_url(co_part_peer(c, &p[s - 1])),
			                       (unsigned long long)counts[s - 1],
			                       peer_url(co_part_peer(c, &p[s])),
			                       (unsigned long long)counts[s]);
		}
	}
	if (out)
		out[at] = 0;
	return out;
}

/* The points each copy in sync holds (COUNT to the same copies, in the same order, as the n
 * parts co_parts_copies gave the check), into counts. */
static int copy_counts(coord *c, const coll_info *ci, uint32_t n, uint32_t dl, uint64_t *counts)
{
	wire_req cq;
	wire_req_init(&cq);
	cq.op = WIRE_COUNT;
	uint32_t m = 0;
	part *cp = co_parts_copies(ci, &cq, 1, &m);
	if (!cp || m != n) {
		co_parts_free(cp, m);
		return status_set(OMEN_ENOMEM, "out of memory");
	}
	int st = co_scatter(c, cp, n, dl) > 0 ? co_gather_status(c, cp, n, "check") : OMEN_OK;
	for (uint32_t s = 0; st == OMEN_OK && s < n; s++)
		counts[s] = cp[s].rep.count;
	co_parts_free(cp, n);
	return st;
}

/* CHECK: every copy in sync of every shard: its index, and that the copies of a shard hold
 * as many points; OMEN_ECORRUPT when any index is damaged or copies differ, with every
 * report. */
int co_do_check(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	uint32_t n = 0;
	int st = co_lookup(c, q->name, &ci);
	part *p = st == OMEN_OK ? co_parts_copies(&ci, q, 1, &n) : NULL;
	uint64_t *counts = p ? calloc(n ? n : 1, sizeof *counts) : NULL;
	if (st == OMEN_OK && (!p || !counts))
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st != OMEN_OK) {
		co_parts_free(p, n);
		free(counts);
		return st;
	}
	co_scatter(c, p, n, co_deadline(c, q));
	int corrupt = 0, differ = 0;
	for (uint32_t s = 0; s < n; s++) {
		corrupt |= p[s].st == OMEN_ECORRUPT;
		if (p[s].st != OMEN_OK && p[s].st != OMEN_ECORRUPT)
			st = OMEN_EUNAVAIL;
	}
	if (st != OMEN_OK)
		st = co_gather_status(c, p, n, "check");
	else
		st = copy_counts(c, &ci, n, co_deadline(c, q), counts);
	if (st == OMEN_OK &&
	    !(r->report = join_reports(c, p, n, counts, ci.copies && ci.replicas > 1, &differ)))
		st = status_set(OMEN_ENOMEM, "out of memory");
	else if (st == OMEN_OK && (corrupt || differ))
		st =
		    status_set(OMEN_ECORRUPT, "collection '%s': %s", ci.name,
		               corrupt ? "a shard's index is damaged" : "copies of a shard differ");
	co_parts_free(p, n);
	free(counts);
	return st;
}
