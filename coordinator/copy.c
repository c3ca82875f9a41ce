/*
 * Copying a logical shard between shard nodes (copy.h): the calls the leader makes to shard
 * nodes for a move (balance.c) and for bringing a copy back in sync (recover.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "coordinator/copy.h"

#define COPY_BYTES       (8u << 20)     /* points per page: this many bytes of vectors at most */
#define BUILD_TIMEOUT_MS (600u * 1000u) /* a coordinator stopping meanwhile waits */

void mv_req(wire_req *q, coord *c, wire_op op, const char *name, uint32_t shard)
{
	wire_req_init(q);
	q->op = op;
	q->token = c->token;
	q->epoch = fsm_epoch(c->fsm);
	q->shard = (int32_t)shard;
	snprintf(q->name, sizeof q->name, "%s", name);
}

/* Sends q to p; on failure the status message names the node. r is freed by the caller. */
int mv_call(peer *p, const wire_req *q, uint32_t timeout_ms, wire_rep *r)
{
	wire_rep_init(r);
	int st = peer_request(p, q, timeout_ms, r);
	if (st != OMEN_OK)
		return status_set(st, "%s on %s: %s", wire_op_name(q->op), peer_url(p),
		                  r->message ? r->message : status_msg());
	return OMEN_OK;
}

int mv_fence(coord *c, peer *p, const char *name, uint32_t shard, int mode, const meta_coll *mc,
             uint64_t *count)
{
	wire_req q;
	wire_rep r;
	mv_req(&q, c, WIRE_FENCE, name, shard);
	q.mode = (uint32_t)mode;
	if (mc)
		q.dim = mc->dim, q.metric = mc->metric;
	int st = mv_call(p, &q, c->cfg.deadline_ms, &r);
	if (count)
		*count = r.count;
	wire_rep_free(&r);
	return st;
}

int mv_drop(coord *c, peer *p, const char *name, uint32_t shard)
{
	wire_req q;
	wire_rep r;
	mv_req(&q, c, WIRE_DROP, name, shard);
	int st = mv_call(p, &q, c->cfg.deadline_ms, &r);
	wire_rep_free(&r);
	return st;
}

/* Copies the points of ids[0..n) from a to b: those a holds are written to b, the others
 * deleted from b. */
static int copy_points(coord *c, peer *a, peer *b, const meta_coll *mc, uint32_t shard,
                       const uint64_t *ids, uint64_t n, uint64_t *copied)
{
	wire_req q;
	wire_rep got;
	mv_req(&q, c, WIRE_GET, mc->name, shard);
	q.n = n;
	q.ids = (uint64_t *)ids;
	int st = mv_call(a, &q, c->cfg.deadline_ms, &got);
	if (st == OMEN_OK && (got.n != n || !got.found || !got.vectors || got.dim != mc->dim))
		st = status_set(OMEN_EPROTO, "get on %s: a reply of the wrong shape", peer_url(a));
	/* compact: the points found first, then the ids to delete */
	uint64_t *put = st == OMEN_OK ? malloc(n * sizeof *put) : NULL;
	uint64_t *del = st == OMEN_OK ? malloc(n * sizeof *del) : NULL;
	char **metas = st == OMEN_OK ? calloc(n, sizeof *metas) : NULL;
	if (st == OMEN_OK && (!put || !del || !metas))
		st = status_set(OMEN_ENOMEM, "out of memory");
	uint64_t np = 0, nd = 0;
	for (uint64_t i = 0; st == OMEN_OK && i < n; i++) {
		if (!got.found[i]) {
			del[nd++] = ids[i];
			continue;
		}
		memmove(got.vectors + np * mc->dim, got.vectors + i * mc->dim, mc->dim * 4);
		metas[np] = got.meta ? got.meta[i] : NULL;
		put[np++] = ids[i];
	}
	wire_rep r;
	if (st == OMEN_OK && np) {
		mv_req(&q, c, WIRE_UPSERT, mc->name, shard);
		q.n = np;
		q.dim = mc->dim;
		q.ids = put;
		q.vectors = got.vectors;
		q.meta = metas;
		st = mv_call(b, &q, c->cfg.deadline_ms, &r);
		wire_rep_free(&r);
	}
	if (st == OMEN_OK && nd) {
		mv_req(&q, c, WIRE_DELETE, mc->name, shard);
		q.n = nd;
		q.ids = del;
		st = mv_call(b, &q, c->cfg.deadline_ms, &r);
		wire_rep_free(&r);
	}
	if (st == OMEN_OK)
		*copied += np;
	free(put);
	free(del);
	free(metas); /* the strings belong to got */
	wire_rep_free(&got);
	return st;
}

/* Copies every id a lists for the shard (mode 0: all of them; WIRE_IDS_TRACKED: those written
 * since tracking began) from a to b. */
int mv_copy_ids(coord *c, peer *a, peer *b, const meta_coll *mc, uint32_t shard, int mode,
                uint64_t *copied)
{
	uint64_t page = COPY_BYTES / (mc->dim * 4u), start = 0;
	page = page < 64 ? 64 : page > 8192 ? 8192 : page;
	for (;;) {
		wire_req q;
		wire_rep r;
		mv_req(&q, c, WIRE_IDS, mc->name, shard);
		q.n = page;
		q.start = start;
		q.mode = (uint32_t)mode;
		int st = mv_call(a, &q, c->cfg.deadline_ms, &r);
		uint64_t n = r.n;
		if (st == OMEN_OK && n)
			st = copy_points(c, a, b, mc, shard, r.ids, n, copied);
		if (st == OMEN_OK && n)
			start = r.ids[n - 1] + 1;
		wire_rep_free(&r);
		if (st != OMEN_OK || n < page || start == 0)
			return st;
		if (c->stopping)
			return status_set(OMEN_EUNAVAIL, "the coordinator is stopping");
	}
}

/* Builds on b the index a has for the shard, with the same parameters (IVF's nprobe is
 * calibrated again on b, on the same points). */
int mv_copy_index(coord *c, peer *a, peer *b, const meta_coll *mc, uint32_t shard)
{
	wire_req q;
	wire_rep r;
	mv_req(&q, c, WIRE_STATS, mc->name, shard);
	int st = mv_call(a, &q, c->cfg.deadline_ms, &r);
	const char *kind = st == OMEN_OK && r.has_stats && r.stats.index ? r.stats.index : "flat";
	int hnsw = strcmp(kind, "hnsw") == 0, ivf = strcmp(kind, "ivf") == 0;
	omen_collection_stats s = r.stats;
	wire_rep_free(&r);
	if (st != OMEN_OK || (!hnsw && !ivf))
		return st;
	mv_req(&q, c, WIRE_BUILD, mc->name, shard);
	q.index_type = hnsw ? OMEN_INDEX_HNSW : OMEN_INDEX_IVF;
	q.m = s.hnsw_m;
	q.ef_construction = s.hnsw_ef_construction;
	q.int8 = s.hnsw_int8;
	q.nlist = s.ivf_nlist;
	q.bits = s.ivf_bits;
	q.mode = WIRE_BUILD_BACKGROUND; /* half the target's cores: its other shards stay served */
	st = mv_call(b, &q, BUILD_TIMEOUT_MS, &r);
	wire_rep_free(&r);
	return st;
}

/* ---- the copy ---- */

static double secs_since(uint64_t t0)
{
	return (double)(mono_ms() - t0) / 1000.0;
}

int mv_copy(coord *c, peer *a, peer *b, const meta_coll *mc, uint32_t shard, mv_stats *ms)
{
	const char *name = mc->name;
	memset(ms, 0, sizeof *ms);
	ms->t0 = mono_ms();
	int st = mv_fence(c, b, name, shard, FENCE_INCOMING, mc, NULL);
	if (st == OMEN_OK)
		st = mv_fence(c, a, name, shard, FENCE_TRACK, NULL, NULL);
	if (st == OMEN_OK)
		st = mv_copy_ids(c, a, b, mc, shard, 0, &ms->bulk);
	ms->t_index = mono_ms();
	if (st == OMEN_OK)
		st = mv_copy_index(c, a, b, mc, shard);
	ms->t_freeze = mono_ms();
	if (st == OMEN_OK)
		st = mv_fence(c, a, name, shard, FENCE_FREEZE, NULL, &ms->tracked);
	if (st == OMEN_OK)
		st = mv_copy_ids(c, a, b, mc, shard, WIRE_IDS_TRACKED, &ms->delta);
	if (st != OMEN_OK) {
		char why[512];
		snprintf(why, sizeof why, "%s", status_msg());
		mv_fence(c, a, name, shard, FENCE_RELEASE, NULL, NULL);
		mv_drop(c, b, name, shard);
		return status_set(st, "copying %s@%u from %s to %s: %s (aborted)", name, shard,
		                  peer_url(a), peer_url(b), why);
	}
	return OMEN_OK;
}

void mv_log(const char *what, const meta_coll *mc, uint32_t shard, uint64_t node,
            const mv_stats *ms, uint64_t epoch)
{
	log_msg(LOG_INFO,
	        "%s %s@%u to node %llu in %.2f s: %llu points, then %llu written meanwhile "
	        "(%llu present); writes waited %.3f s; map epoch %llu; copy %.2f s, index %.2f s",
	        what, mc->name, shard, (unsigned long long)node, secs_since(ms->t0),
	        (unsigned long long)ms->bulk, (unsigned long long)ms->tracked,
	        (unsigned long long)ms->delta, secs_since(ms->t_freeze), (unsigned long long)epoch,
	        (double)(ms->t_index - ms->t0) / 1000.0,
	        (double)(ms->t_freeze - ms->t_index) / 1000.0);
}
