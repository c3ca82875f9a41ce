/*
 * Routing, scatter and gather (route.h): a point's logical shard, the node holding it, and
 * parallel requests to logical shards with a deadline.
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

uint32_t co_shard_of(uint64_t id, uint32_t nshards)
{
	unsigned char b[8];
	le64_put(b, id);
	return (uint32_t)(XXH3_64bits(b, sizeof b) % nshards);
}

/* The node a part goes to: from the shard map, or shard s mod the configured nodes. */
peer *co_part_peer(const coord *c, const part *p)
{
	return p->to ? p->to : c->nodes[p->shard % c->nnodes];
}

uint32_t co_deadline(const coord *c, const wire_req *q)
{
	return q->deadline_ms ? q->deadline_ms : c->cfg.deadline_ms;
}

/* A part of request q for logical shard s of ci, to node `to` (NULL: by co_part_peer). */
static void part_init(part *p, const coll_info *ci, const wire_req *q, uint32_t s, peer *to)
{
	wire_req_init(&p->req);
	wire_rep_init(&p->rep);
	p->shard = s;
	p->req.op = q->op;
	p->req.shard = (int32_t)s;
	p->req.epoch = ci->epoch;
	p->to = to;
	strcpy(p->req.name, ci->name);
	p->req.dim = ci->dim;
}

part *co_parts_new(const coll_info *ci, const wire_req *q)
{
	part *p = calloc(ci->nshards, sizeof *p);
	for (uint32_t s = 0; p && s < ci->nshards; s++)
		part_init(&p[s], ci, q, s, ci->to ? ci->to[s] : NULL);
	return p;
}

/* One part per copy of each logical shard (in_sync_only: per copy in sync), in shard order;
 * without copies (no Raft), one per shard as co_parts_new. *n gets the number of parts. */
part *co_parts_copies(const coll_info *ci, const wire_req *q, int in_sync_only, uint32_t *n)
{
	if (!ci->copies) {
		*n = ci->nshards;
		return co_parts_new(ci, q);
	}
	uint32_t m = 0;
	for (uint32_t s = 0; s < ci->nshards; s++)
		for (uint32_t j = 0; j < ci->copies[s].n; j++)
			m += !in_sync_only || ci->copies[s].state[j] == META_COPY_IN_SYNC;
	part *p = calloc(m ? m : 1, sizeof *p);
	uint32_t at = 0;
	for (uint32_t s = 0; p && s < ci->nshards; s++)
		for (uint32_t j = 0; j < ci->copies[s].n; j++)
			if (!in_sync_only || ci->copies[s].state[j] == META_COPY_IN_SYNC)
				part_init(&p[at++], ci, q, s, ci->copies[s].to[j]);
	*n = m;
	return p;
}

void co_parts_free(part *p, uint32_t n)
{
	for (uint32_t s = 0; p && s < n; s++) {
		wire_rep_free(&p[s].rep);
		free(p[s].err);
		free(p[s].index);
	}
	free(p);
}

/* Sends every part with a non-negative shard to its node at once and waits for all answers
 * (or the deadline). Parts with shard < 0 or done are skipped. Returns the number that
 * failed (done parts included). */
uint32_t co_scatter(coord *c, part *p, uint32_t n, uint32_t timeout_ms)
{
	peer_call *calls = calloc(n, sizeof *calls);
	uint32_t failed = 0;
	for (uint32_t s = 0; s < n; s++) {
		if (p[s].req.shard < 0 || p[s].done)
			continue;
		p[s].replied = 0;
		p[s].req.token = c->token;
		p[s].st = calls ? peer_call_start(co_part_peer(c, &p[s]), &p[s].req, timeout_ms,
		                                  &calls[s])
		                : status_set(OMEN_ENOMEM, "out of memory");
		if (p[s].st != OMEN_OK)
			p[s].err = strdup(status_msg());
	}
	for (uint32_t s = 0; s < n; s++) {
		if (p[s].req.shard < 0 || p[s].done || p[s].st != OMEN_OK)
			continue;
		p[s].st = peer_call_finish(&calls[s], &p[s].rep);
		p[s].replied = p[s].st == OMEN_OK;
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
int co_gather_status(coord *c, const part *p, uint32_t n, const char *what)
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
			                        peer_url(co_part_peer(c, &p[s])),
			                        p[s].err ? p[s].err : "failed");
	}
	if (st != OMEN_OK)
		return status_set(st, "%s: %s", what, msg);
	return OMEN_OK;
}

int co_lookup(coord *c, const char *name, coll_info *ci)
{
	return c->fsm ? rmeta_lookup(c, name, ci) : meta_get(&c->meta, name, ci);
}

/* Every collection, in name order (routes not filled). */
int co_list_all(coord *c, coll_info **out, size_t *n)
{
	return c->fsm ? rmeta_list(c, out, n) : meta_list(&c->meta, out, n);
}

/* ---- copies: reads fail over, writes go through the primary ---- */

/* Whether node id is down in the node table nodes[0..n). */
static int node_down(const meta_node *nodes, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (nodes[i].id == id)
			return nodes[i].state == META_NODE_DOWN;
	return 0;
}

/* The copies in sync a read of part p may try, in order: spread by the coordinator's
 * round-robin counter, copies on nodes the node table has down last. */
static void read_candidates(coord *c, const route_copies *rc, const meta_node *nodes, size_t nn,
                            part *p)
{
	uint32_t in[META_MAX_COPIES], k = 0;
	for (uint32_t j = 0; j < rc->n; j++)
		if (rc->state[j] == META_COPY_IN_SYNC)
			in[k++] = j;
	uint32_t start = k ? atomic_fetch_add(&c->rr, 1) % k : 0;
	p->ncand = 0;
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < k; i++) {
			uint32_t j = in[(start + i) % k];
			if (node_down(nodes, nn, rc->node[j]) == pass)
				p->cand[p->ncand++] = rc->to[j];
		}
	p->next = 1;
	if (p->ncand)
		p->to = p->cand[0];
}

/* Clears a part's answer before it is sent again. */
static void part_reset(part *p)
{
	wire_rep_free(&p->rep);
	free(p->err);
	p->err = NULL;
	p->st = OMEN_OK;
}

uint32_t co_scatter_reads(coord *c, const coll_info *ci, part *p, uint32_t n, uint32_t deadline_ms)
{
	if (!ci->copies)
		return co_scatter(c, p, n, deadline_ms);
	meta_node *nodes = NULL;
	size_t nn = 0;
	if (fsm_node_list(c->fsm, &nodes, &nn) != OMEN_OK)
		nodes = NULL, nn = 0;
	uint32_t most = 1;
	for (uint32_t i = 0; i < n; i++) {
		if (p[i].req.shard < 0)
			continue;
		read_candidates(c, &ci->copies[p[i].shard], nodes, nn, &p[i]);
		most = p[i].ncand > most ? p[i].ncand : most;
	}
	free(nodes);
	/* A copy that does not answer (paused, cut off) leaves time for another: each try gets
	 * an equal share of the deadline. */
	uint64_t end = mono_ms() + deadline_ms;
	uint32_t failed = 0;
	for (;;) {
		uint64_t now = mono_ms();
		uint32_t left = now < end ? (uint32_t)(end - now) : 1;
		uint32_t share = deadline_ms / most;
		failed = co_scatter(c, p, n, share < left ? share : left);
		int again = 0, late = mono_ms() >= end;
		for (uint32_t i = 0; i < n; i++) {
			if (p[i].req.shard < 0 || p[i].done)
				continue;
			if (late || p[i].st == OMEN_OK || p[i].replied || p[i].next >= p[i].ncand) {
				p[i].done = 1; /* its answer, or its failure, is final */
				continue;
			}
			part_reset(&p[i]);
			p[i].to = p[i].cand[p[i].next++];
			again = 1;
		}
		if (!again)
			break;
	}
	return failed;
}

/* Prepares the write parts: each goes to its shard's primary with the URLs of the other copies
 * in sync, which the primary forwards the write to. Returns the number of copies in sync of
 * the shard that has the most. */
static uint32_t writes_prepare(const coll_info *ci, part *p, uint32_t n)
{
	uint32_t most = 1;
	for (uint32_t i = 0; i < n; i++) {
		if (p[i].req.shard < 0)
			continue;
		const route_copies *rc = &ci->copies[p[i].shard];
		int pi = -1;
		uint32_t k = 0, in = 0;
		for (uint32_t j = 0; j < rc->n; j++) {
			if (rc->state[j] != META_COPY_IN_SYNC)
				continue;
			in++;
			if (pi < 0) {
				pi = (int)j;
				continue;
			}
			p[i].copy_urls[k] = (char *)peer_url(rc->to[j]);
			p[i].copy_node[k++] = rc->node[j];
		}
		p[i].primary = pi >= 0 ? rc->node[pi] : 0;
		p[i].to = pi >= 0 ? rc->to[pi] : p[i].to;
		p[i].req.copies = k ? p[i].copy_urls : NULL;
		p[i].req.ncopies = k;
		most = in > most ? in : most;
	}
	return most;
}

/* After a write's scatter: copies that did not take it leave the copies in sync before the
 * write is acknowledged, and a primary that did not answer hands over to the next copy in sync
 * (its part then fails with OMEN_ESTALE, so that the caller's retry goes to the new primary).
 * A part whose change through Raft fails takes that change's status. */
static void writes_settle(coord *c, const coll_info *ci, part *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		part *x = &p[i];
		if (x->req.shard < 0 || !x->primary)
			continue;
		uint64_t failed[META_MAX_COPIES];
		uint32_t k = 0;
		if (x->st == OMEN_OK) {
			for (uint32_t j = 0; j < x->req.ncopies; j++)
				if (x->rep.failed & (1u << j))
					failed[k++] = x->copy_node[j];
		} else if (!x->replied && x->req.ncopies) {
			failed[k++] = x->primary;
		}
		if (!k)
			continue;
		int st = rmeta_copy_fail(c, ci->name, x->shard, x->primary, failed, k);
		if (st == OMEN_OK && x->st == OMEN_OK)
			continue;
		if (st == OMEN_OK)
			st = status_set(OMEN_ESTALE,
			                "the primary did not answer; another copy took over");
		free(x->err);
		x->err = strdup(status_msg());
		x->st = st;
	}
}

uint32_t co_scatter_writes(coord *c, const coll_info *ci, part *p, uint32_t n, uint32_t deadline_ms)
{
	if (!ci->copies)
		return co_scatter(c, p, n, deadline_ms);
	/* With a copy to hand over to, a silent primary must leave time for the retry. */
	uint32_t t = writes_prepare(ci, p, n) > 1 ? deadline_ms / 2 : deadline_ms;
	for (uint32_t i = 0; i < n; i++)
		p[i].req.deadline_ms = t;
	co_scatter(c, p, n, t);
	writes_settle(c, ci, p, n);
	uint32_t failed = 0;
	for (uint32_t i = 0; i < n; i++)
		failed += p[i].req.shard >= 0 && p[i].st != OMEN_OK;
	return failed;
}
