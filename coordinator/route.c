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

part *co_parts_new(const coll_info *ci, const wire_req *q)
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
 * (or the deadline). Parts with shard < 0 are skipped. Returns the number that failed. */
uint32_t co_scatter(coord *c, part *p, uint32_t n, uint32_t timeout_ms)
{
	peer_call *calls = calloc(n, sizeof *calls);
	uint32_t failed = 0;
	for (uint32_t s = 0; s < n; s++) {
		if (p[s].req.shard < 0)
			continue;
		p[s].req.token = c->token;
		p[s].st = calls ? peer_call_start(co_part_peer(c, &p[s]), &p[s].req, timeout_ms,
		                                  &calls[s])
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
