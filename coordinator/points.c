/*
 * The coordinator's point operations: upsert (ids assigned, batches split by shard), get,
 * delete, and search (every logical shard, merged).
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

/* ---- points ---- */

/* Checks a whole batch before any shard sees it, so that bad input writes nothing. */
int co_batch_check(const coll_info *ci, const wire_req *q)
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
	int st = co_ask_all(c, &q, &tmp, &p);
	if (st != OMEN_OK)
		return st;
	uint64_t m = 0;
	for (uint32_t s = 0; s < tmp.nshards; s++)
		if (p[s].rep.stats.next_id > m)
			m = p[s].rep.stats.next_id;
	co_parts_free(p, tmp.nshards);
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
int co_ids_assign(coord *c, const coll_info *ci, const wire_req *q, uint64_t **ids)
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
		p[sh[i] = co_shard_of(ids[i], ci->nshards)].req.n++;
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

int co_do_upsert(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	int st = co_lookup(c, q->name, &ci);
	if (st == OMEN_OK)
		st = co_batch_check(&ci, q);
	if (st == OMEN_OK && q->ids)
		st = ids_check(q->ids, q->n);
	uint64_t *ids = NULL;
	if (st == OMEN_OK)
		st = co_ids_assign(c, &ci, q, &ids);
	const uint64_t *use = q->ids ? q->ids : ids;
	part *p = st == OMEN_OK ? co_parts_new(&ci, q) : NULL;
	if (st == OMEN_OK && !p)
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK)
		st = split(&ci, p, use, q->n, q->vectors, q->meta);
	if (st == OMEN_OK && co_scatter_writes(c, &ci, p, ci.nshards, co_deadline(c, q)) > 0)
		st = co_gather_status(c, p, ci.nshards,
		                      "upsert (the shards not named committed their "
		                      "points; retrying the batch is safe)");
	if (st == OMEN_OK && !ids && !(ids = malloc(q->n * sizeof *ids)))
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK && q->ids)
		memcpy(ids, q->ids, q->n * sizeof *ids);
	if (st == OMEN_OK)
		r->ids = ids, r->n = q->n, ids = NULL;
	split_free(p, ci.nshards);
	co_parts_free(p, ci.nshards);
	free(ids);
	return st;
}

/* GET and DELETE: the ids split by shard, the parts sent in parallel. On success *out holds
 * the parts with their answers (free with split_free and parts_free). */
static int by_shard(coord *c, const wire_req *q, const char *what, coll_info *ci, part **out)
{
	int st = co_lookup(c, q->name, ci);
	part *p = st == OMEN_OK ? co_parts_new(ci, q) : NULL;
	if (st == OMEN_OK && !p)
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK)
		st = split(ci, p, q->ids, q->n, NULL, NULL);
	uint32_t dl = co_deadline(c, q);
	if (st == OMEN_OK &&
	    (q->op == WIRE_DELETE ? co_scatter_writes(c, ci, p, ci->nshards, dl)
	                          : co_scatter_reads(c, ci, p, ci->nshards, dl)) > 0)
		st = co_gather_status(c, p, ci->nshards, what);
	if (st != OMEN_OK) {
		split_free(p, p ? ci->nshards : 0);
		co_parts_free(p, p ? ci->nshards : 0);
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

int co_do_get(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	part *p = NULL;
	int st = by_shard(c, q, "get", &ci, &p);
	if (st != OMEN_OK)
		return st;
	st = get_gather(&ci, p, q, r);
	split_free(p, ci.nshards);
	co_parts_free(p, ci.nshards);
	return st;
}

int co_do_delete(coord *c, const wire_req *q, wire_rep *r)
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
	co_parts_free(p, ci.nshards);
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

int co_do_search(coord *c, const wire_req *q, wire_rep *r)
{
	coll_info ci;
	int st = co_lookup(c, q->name, &ci);
	if (st == OMEN_OK && q->dim != ci.dim)
		st = status_set(OMEN_EINVAL, "collection '%s': dimension %u expected, got %u",
		                ci.name, ci.dim, q->dim);
	part *p = st == OMEN_OK ? co_parts_new(&ci, q) : NULL;
	if (st == OMEN_OK && !p)
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st != OMEN_OK)
		return st;
	for (uint32_t s = 0; s < ci.nshards; s++) {
		wire_req *x = &p[s].req;
		x->n = q->n, x->vectors = q->vectors, x->k = q->k, x->ef = q->ef;
		x->nprobe = q->nprobe, x->exact = q->exact, x->filter = q->filter;
	}
	uint32_t failed = co_scatter_reads(c, &ci, p, ci.nshards, co_deadline(c, q));
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
		st = co_gather_status(c, p, ci.nshards, "search");
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
	co_parts_free(p, ci.nshards);
	return st;
}
