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
		if (!meta_is_shard(nodes[j].role) || nodes[j].state != META_NODE_DOWN ||
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
	log_msg(LOG_INFO, "copying %s@%u from node %llu to node %llu (%s %llu)", mc->name, s,
	        (unsigned long long)from->id, (unsigned long long)to->id,
	        to->id == cp->node[j] ? "its stale copy" : "in place of the copy on node",
	        (unsigned long long)cp->node[j]);
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

/* ---- spreading the copies over the nodes ---- */

/* Whether the copies include one on node id. */
static int holds(const meta_copies *cp, uint64_t id)
{
	for (uint32_t k = 0; k < cp->n; k++)
		if (cp->node[k] == id)
			return 1;
	return 0;
}

/* A move of copy j of shard s of collection mc from node `old` (up) to node `to`. */
typedef struct copy_move {
	meta_coll coll;
	uint32_t shard, j;
	meta_copies cp;
	meta_node from, old, to; /* from: the primary */
} copy_move;

/* The first collection with copies (name order) whose up nodes' counts of its copies differ by
 * two or more gives the move: the highest-numbered shard with every copy in sync, a copy on
 * the node holding the most and none on the node holding the fewest (ties: lower node id).
 * 1 with a move, 0 when balanced, -1 on an error. */
static int spread_plan(coord *c, copy_move *m)
{
	meta_node *nodes = NULL, *up;
	meta_coll *colls = NULL;
	size_t nn = 0, nc = 0, nu = 0;
	if (fsm_node_list(c->fsm, &nodes, &nn) != OMEN_OK)
		return -1;
	if (fsm_coll_list(c->fsm, &colls, &nc) != OMEN_OK) {
		free(nodes);
		return -1;
	}
	up = malloc((nn ? nn : 1) * sizeof *up);
	uint32_t *count = calloc(nn ? nn : 1, sizeof *count);
	int found = up && count ? 0 : -1;
	for (size_t i = 0; up && i < nn; i++)
		if (meta_is_shard(nodes[i].role) && nodes[i].state == META_NODE_UP)
			up[nu++] = nodes[i];
	for (size_t i = 0; found == 0 && nu >= 2 && i < nc; i++) {
		meta_copies *all = NULL;
		uint32_t ns = 0;
		if (colls[i].replicas < 2 ||
		    fsm_shard_copies(c->fsm, colls[i].name, &all, &ns, NULL) != OMEN_OK)
			continue;
		memset(count, 0, nu * sizeof *count);
		for (uint32_t s = 0; s < ns; s++)
			for (uint32_t k = 0; k < all[s].n; k++)
				for (size_t j = 0; j < nu; j++)
					count[j] += all[s].node[k] == up[j].id;
		size_t hi = 0, lo = 0;
		int move = balance_pick(up, count, nu, &hi, &lo);
		for (uint32_t s = ns; found == 0 && move && s-- > 0;) {
			const meta_copies *cp = &all[s];
			int p = meta_copies_primary(cp), on_hi = -1, stale = 0;
			for (uint32_t k = 0; k < cp->n; k++) {
				on_hi = cp->node[k] == up[hi].id ? (int)k : on_hi;
				stale |= cp->state[k] != META_COPY_IN_SYNC;
			}
			const meta_node *from = p >= 0 ? node_find(nodes, nn, cp->node[p]) : NULL;
			/* to the node holding the fewest, or, to empty a draining node, the next
			 * fewest that holds no copy of this shard */
			size_t to = lo;
			if (holds(cp, up[lo].id) && up[hi].role == META_ROLE_DRAINING)
				for (size_t j = 0; j < nu; j++)
					if (up[j].role == META_ROLE_SHARD && !holds(cp, up[j].id) &&
					    (holds(cp, up[to].id) || count[j] < count[to]))
						to = j;
			if (on_hi < 0 || holds(cp, up[to].id) || stale || !from ||
			    from->state != META_NODE_UP)
				continue;
			*m = (copy_move){colls[i], s, (uint32_t)on_hi, *cp, *from, up[hi], up[to]};
			found = 1;
		}
		free(all);
	}
	free(count);
	free(up);
	free(colls);
	free(nodes);
	return found;
}

int recover_spread(coord *c)
{
	copy_move m;
	int found = spread_plan(c, &m);
	if (found <= 0)
		return found;
	int st = recopy(c, &m.coll, m.shard, &m.cp, m.j, &m.from, &m.to);
	peer *old = st == OMEN_OK ? rmeta_peer(c, m.old.addr) : NULL;
	if (old) /* its copy is out of the map now; failures leave it to the cleanup */
		mv_drop(c, old, m.coll.name, m.shard);
	if (st != OMEN_OK)
		log_msg(LOG_WARN, "copies: %s", status_msg());
	return st == OMEN_OK ? 1 : -1;
}

int recover_spread_even(coord *c)
{
	copy_move m;
	return spread_plan(c, &m) == 0;
}
