/*
 * Recovery of copies (docs/CLUSTER.md, "Copies"), run by the leader's balancer thread: a copy
 * that missed writes (stale) is made again from the shard's primary, on its own node when that
 * node is up, else, once the node has been down for the grace period, on another node; a copy
 * in sync on a node down that long leaves the copies in sync first (a primary hands over).
 * One copy at a time, with the move's copy (copy.h): the primary tracks, the points and the
 * index are copied, the primary freezes for the delta, CMD_COPIES_SET marks the new copy in
 * sync (only if the copies did not change meanwhile), and the primary is released.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "coordinator/copy.h"
#include "coordinator/internal.h"

/* When shard node id was first seen down by this leader (mono_ms()), 0 when it is not. */
static uint64_t down_since(const recover_state *rs, uint64_t id)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->id[i] == id)
			return rs->since[i];
	return 0;
}

/* Records which shard nodes are down and since when; forgets those up again. */
static void downs_update(recover_state *rs, const meta_node *nodes, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < rs->n; i++) /* keep those still down */
		for (size_t j = 0; j < n; j++)
			if (nodes[j].id == rs->id[i] && nodes[j].state == META_NODE_DOWN) {
				rs->id[k] = rs->id[i], rs->since[k++] = rs->since[i];
				break;
			}
	rs->n = k;
	for (size_t j = 0; j < n && rs->n < RECOVER_MAX_NODES; j++) {
		if (nodes[j].role != META_ROLE_SHARD || nodes[j].state != META_NODE_DOWN ||
		    down_since(rs, nodes[j].id))
			continue;
		rs->id[rs->n] = nodes[j].id;
		rs->since[rs->n++] = mono_ms() | 1; /* never 0 */
	}
}

static const meta_node *node_find(const meta_node *nodes, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (nodes[i].id == id)
			return &nodes[i];
	return NULL;
}

/* A shard node that is up and holds no copy of shard s, the one holding the fewest copies of
 * the collection (ties: the lower id); NULL when none. */
static const meta_node *new_home(const meta_node *nodes, size_t n, const meta_copies *all,
                                 uint32_t nshards, uint32_t s)
{
	const meta_node *best = NULL;
	uint32_t best_count = UINT32_MAX;
	for (size_t i = 0; i < n; i++) {
		if (nodes[i].role != META_ROLE_SHARD || nodes[i].state != META_NODE_UP)
			continue;
		uint32_t count = 0, here = 0;
		for (uint32_t t = 0; t < nshards; t++)
			for (uint32_t j = 0; j < all[t].n; j++)
				if (all[t].node[j] == nodes[i].id)
					count++, here |= t == s;
		if (!here && count < best_count)
			best = &nodes[i], best_count = count;
	}
	return best;
}

/* Makes copy j of shard s again on node `to` (its own node, or a new one in its place) from
 * the primary, and marks it in sync. */
static int recopy(coord *c, const meta_coll *mc, uint32_t s, const meta_copies *cp, uint32_t j,
                  const meta_node *from, const meta_node *to)
{
	peer *a = rmeta_peer(c, from->addr), *b = rmeta_peer(c, to->addr);
	if (!a || !b)
		return status_set(OMEN_ENOMEM, "cannot open a peer");
	log_msg(LOG_INFO, "copying %s@%u from node %llu to node %llu%s", mc->name, s,
	        (unsigned long long)from->id, (unsigned long long)to->id,
	        to->id == cp->node[j] ? " (its stale copy)" : " (in place of a node down)");
	mv_stats ms;
	int st = mv_copy(c, a, b, mc, s, &ms);
	if (st != OMEN_OK)
		return st;
	meta_cmd cmd = {.kind = CMD_COPIES_SET};
	cmd.coll = *mc;
	cmd.shard = s;
	cmd.expect = *cp;
	cmd.copies = *cp;
	cmd.copies.node[j] = to->id;
	cmd.copies.state[j] = META_COPY_IN_SYNC;
	fsm_result res;
	st = rmeta_apply(c, &cmd, &res);
	if (st == OMEN_OK || st != OMEN_ESTALE) {
		/* committed, or perhaps committed (then the cleanup after a barrier decides) */
		if (st == OMEN_OK)
			mv_fence(c, b, mc->name, s, FENCE_ACCEPT, NULL, NULL);
		mv_fence(c, a, mc->name, s, FENCE_RELEASE, NULL, NULL);
		if (st == OMEN_OK)
			mv_log("copied", mc, s, to->id, &ms, res.epoch);
		return st;
	}
	mv_fence(c, a, mc->name, s, FENCE_RELEASE, NULL, NULL); /* the copies changed meanwhile */
	mv_drop(c, b, mc->name, s);
	return st;
}

/* The first thing to do for shard s of collection mc, done: 1 when something was done or
 * tried (its status in *st), 0 when the shard needs nothing now. */
static int shard_step(coord *c, recover_state *rs, const meta_coll *mc, const meta_copies *all,
                      uint32_t nshards, uint32_t s, const meta_node *nodes, size_t nn, int *st)
{
	const meta_copies *cp = &all[s];
	int p = meta_copies_primary(cp);
	if (p < 0)
		return 0; /* no copy to copy from */
	uint64_t now = mono_ms();
	for (uint32_t j = 0; j < cp->n; j++) {
		const meta_node *x = node_find(nodes, nn, cp->node[j]);
		uint64_t since = down_since(rs, cp->node[j]);
		int gone = x && x->state == META_NODE_DOWN && since &&
		           now - since >= c->cfg.replica_grace_ms;
		if (cp->state[j] == META_COPY_IN_SYNC && gone) {
			*st = rmeta_copy_fail(c, mc->name, s, cp->node[p], &cp->node[j], 1);
			return 1;
		}
	}
	const meta_node *from = node_find(nodes, nn, cp->node[p]);
	if (!from || from->state != META_NODE_UP)
		return 0; /* the primary is away: writes and reads hand over first */
	for (uint32_t j = 0; j < cp->n; j++) {
		if (cp->state[j] != META_COPY_STALE)
			continue;
		const meta_node *x = node_find(nodes, nn, cp->node[j]);
		uint64_t since = down_since(rs, cp->node[j]);
		if (x && x->state == META_NODE_UP) {
			*st = recopy(c, mc, s, cp, j, from, x);
			return 1;
		}
		if (!since || now - since < c->cfg.replica_grace_ms)
			continue;
		const meta_node *to = new_home(nodes, nn, all, nshards, s);
		if (to) {
			*st = recopy(c, mc, s, cp, j, from, to);
			return 1;
		}
	}
	return 0;
}

int recover_step(coord *c, recover_state *rs)
{
	meta_node *nodes = NULL;
	meta_coll *colls = NULL;
	size_t nn = 0, nc = 0;
	int st = fsm_node_list(c->fsm, &nodes, &nn);
	if (st == OMEN_OK)
		st = fsm_coll_list(c->fsm, &colls, &nc);
	if (st != OMEN_OK) {
		free(nodes);
		return -1;
	}
	downs_update(rs, nodes, nn);
	int did = 0;
	for (size_t i = 0; !did && i < nc; i++) {
		meta_copies *all = NULL;
		uint32_t ns = 0;
		if (colls[i].replicas < 2 ||
		    fsm_shard_copies(c->fsm, colls[i].name, &all, &ns, NULL) != OMEN_OK)
			continue;
		for (uint32_t s = 0; !did && s < ns; s++)
			did = shard_step(c, rs, &colls[i], all, ns, s, nodes, nn, &st);
		free(all);
	}
	free(colls);
	free(nodes);
	if (did && st != OMEN_OK)
		log_msg(LOG_WARN, "copies: %s", status_msg());
	return did ? (st == OMEN_OK ? 1 : -1) : 0;
}
