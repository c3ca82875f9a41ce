/*
 * Rebalancing: the leader coordinator moves logical shards from the shard nodes holding the
 * most of a collection's shards to those holding the fewest (a node that just joined holds
 * none), one shard at a time, while searches and writes go on.
 *
 * A move of logical shard S of collection C from node A to node B (docs/CLUSTER.md,
 * "Rebalancing"):
 *   1. B: FENCE_INCOMING, an empty unit for C@S (anything older there is dropped first);
 *   2. A: FENCE_TRACK, A records the id of every write to C@S from now on;
 *   3. bulk copy: A's ids page by page (IDS), their points read from A (GET) and written to B;
 *      the index A has is built on B;
 *   4. A: FENCE_FREEZE, A refuses writes to C@S (OMEN_ESTALE: the coordinators retry) once those
 *      in flight are done;
 *   5. delta copy: every tracked id read from A again: written to B when present, deleted from
 *      B when not, so B now holds exactly what A holds;
 *   6. Raft: CMD_SHARD_ASSIGN switches the map to B (a new epoch); the coordinators' retries
 *      now reach B;
 *   7. B: FENCE_ACCEPT clears the incoming mark; A drops its copy.
 * A failure before 6 releases A and drops B's copy. The marks are files in the units'
 * directories, so a crash anywhere leaves marked units; a leader resolves them (cleanup)
 * before it moves anything, and again whenever the set of shard nodes that are up changes:
 * after a Raft barrier its replica holds every committed switch, and each marked unit is kept
 * (the map names its node: release or accept) or dropped (it does not).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "coordinator/copy.h"
#include "coordinator/internal.h"

#define BALANCE_PERIOD_MS 1000

/* ---- one move ---- */

typedef struct move {
	meta_coll coll;
	uint32_t shard;
	meta_node from, to;
} move;

static int shard_move(coord *c, const move *m)
{
	const char *name = m->coll.name;
	peer *a = rmeta_peer(c, m->from.addr), *b = rmeta_peer(c, m->to.addr);
	if (!a || !b)
		return status_set(OMEN_ENOMEM, "cannot open a peer");
	log_msg(LOG_INFO, "moving %s@%u from node %llu (%s) to node %llu (%s)", name, m->shard,
	        (unsigned long long)m->from.id, m->from.addr, (unsigned long long)m->to.id,
	        m->to.addr);
	mv_stats ms;
	int st = mv_copy(c, a, b, &m->coll, m->shard, &ms);
	if (st != OMEN_OK)
		return st;
	meta_cmd cmd = {.kind = CMD_SHARD_ASSIGN};
	cmd.coll = m->coll;
	cmd.shard = m->shard;
	cmd.node_id = m->to.id;
	fsm_result res;
	if ((st = rmeta_apply(c, &cmd, &res)) != OMEN_OK)
		return st; /* perhaps committed after all: the cleanup after a barrier decides */
	mv_fence(c, b, name, m->shard, FENCE_ACCEPT, NULL,
	         NULL); /* failures: left to the cleanup */
	mv_drop(c, a, name, m->shard);
	mv_log("moved", &m->coll, m->shard, m->to.id, &ms, res.epoch);
	return OMEN_OK;
}

/* ---- the plan ---- */

/* The shard nodes that are up, draining ones included (malloc'd). */
static int up_nodes(coord *c, meta_node **out, size_t *n)
{
	meta_node *v;
	size_t m, k = 0;
	int st = fsm_node_list(c->fsm, &v, &m);
	if (st != OMEN_OK)
		return st;
	for (size_t i = 0; i < m; i++)
		if (meta_is_shard(v[i].role) && v[i].state == META_NODE_UP)
			v[k++] = v[i];
	*out = v;
	*n = k;
	return OMEN_OK;
}

/* The node to move from and the node to move to among nodes[0..n) holding count[] shards of a
 * collection: a draining node holding any (the first) to the non-draining node holding the
 * fewest; else the node holding the most to the one holding the fewest when they differ by
 * two or more (ties: the lower node id). Whether there is a move. */
int balance_pick(const meta_node *nodes, const uint32_t *count, size_t n, size_t *hi, size_t *lo)
{
	int drain = 0, have_lo = 0;
	for (size_t j = 0; j < n; j++) {
		int dr = nodes[j].role == META_ROLE_DRAINING;
		if (dr && count[j] > 0 && !drain)
			*hi = j, drain = 1;
		if (!drain && !dr && count[j] > count[*hi])
			*hi = j;
		if (!dr && (!have_lo || count[j] < count[*lo]))
			*lo = j, have_lo = 1;
	}
	return have_lo && *hi != *lo && (drain || count[*hi] >= count[*lo] + 2);
}

/* The first collection (name order) that balance_pick gives a move for gives the move: its
 * highest-numbered shard on the first node to the second. 1 when there is a move, 0 when
 * balanced, or an error. */
static int plan(coord *c, move *m)
{
	meta_node *nodes;
	meta_coll *colls;
	size_t nn, nc;
	if (up_nodes(c, &nodes, &nn) != OMEN_OK)
		return -1;
	if (nn < 2 || fsm_coll_list(c->fsm, &colls, &nc) != OMEN_OK) {
		free(nodes);
		return nn < 2 ? 0 : -1;
	}
	uint32_t *count = calloc(nn, sizeof *count);
	int found = count ? 0 : -1;
	for (size_t i = 0; found == 0 && i < nc; i++) {
		uint64_t *map, epoch;
		uint32_t ns;
		if (colls[i].replicas >
		    1) /* copies are placed when created and recovered, not moved */
			continue;
		if (fsm_shard_map(c->fsm, colls[i].name, &map, &ns, &epoch) != OMEN_OK)
			continue;
		memset(count, 0, nn * sizeof *count);
		for (uint32_t s = 0; s < ns; s++)
			for (size_t j = 0; j < nn; j++)
				count[j] += map[s] == nodes[j].id;
		size_t hi = 0, lo = 0;
		if (balance_pick(nodes, count, nn, &hi, &lo)) {
			uint32_t s = ns;
			while (s-- > 0 && map[s] != nodes[hi].id)
				;
			*m = (move){colls[i], s, nodes[hi], nodes[lo]};
			found = 1;
		}
		free(map);
	}
	free(count);
	free(colls);
	free(nodes);
	return found;
}

int balance_even(coord *c)
{
	move m;
	return plan(c, &m) == 0 && recover_spread_even(c);
}

/* ---- cleanup of interrupted moves ---- */

/* The state (META_COPY_*) of node's copy of the shard in the map, -1 when the map gives it
 * none (or the collection is gone, or the shard out of range). */
static int copy_state(coord *c, const char *name, uint64_t shard, uint64_t node)
{
	meta_copies *all;
	uint32_t ns;
	int state = -1;
	if (fsm_shard_copies(c->fsm, name, &all, &ns, NULL) != OMEN_OK)
		return -1;
	for (uint32_t j = 0; shard < ns && j < all[shard].n; j++)
		if (all[shard].node[j] == node)
			state = all[shard].state[j];
	free(all);
	return state;
}

/* Resolves the marked units of one node. */
static int cleanup_node(coord *c, const meta_node *node)
{
	peer *p = rmeta_peer(c, node->addr);
	if (!p)
		return status_set(OMEN_ENOMEM, "cannot open a peer");
	wire_req q;
	wire_rep r;
	mv_req(&q, c, WIRE_FENCE, "", 0);
	q.shard = -1;
	q.mode = FENCE_QUERY;
	int st = mv_call(p, &q, c->cfg.deadline_ms, &r);
	for (uint64_t i = 0; st == OMEN_OK && i < r.n; i++) {
		const char *name = r.names[i];
		uint32_t shard = (uint32_t)r.ids[i];
		/* A source (a move's or a copy's) stays when the node holds a copy of the shard;
		 * an incoming copy when the switch that marks it in sync was committed. */
		int state = copy_state(c, name, r.ids[i], node->id), source = r.found[i];
		int mine = source ? state >= 0 : state == META_COPY_IN_SYNC;
		log_msg(LOG_INFO, "node %llu: %s@%u was left %s by an interrupted move: %s",
		        (unsigned long long)node->id, name, shard, source ? "frozen" : "incoming",
		        !mine    ? "dropped"
		        : source ? "released"
		                 : "accepted");
		st = !mine ? mv_drop(c, p, name, shard)
		           : mv_fence(c, p, name, shard, source ? FENCE_RELEASE : FENCE_ACCEPT,
		                      NULL, NULL);
	}
	wire_rep_free(&r);
	return st;
}

/* After a barrier (every committed switch is in this replica), resolves every marked unit on
 * the nodes that are up. */
static int cleanup(coord *c)
{
	meta_cmd noop = {.kind = CMD_NOOP};
	fsm_result res;
	meta_node *nodes = NULL;
	size_t n = 0;
	int st = rmeta_apply(c, &noop, &res);
	if (st == OMEN_OK)
		st = up_nodes(c, &nodes, &n);
	for (size_t i = 0; st == OMEN_OK && i < n; i++)
		st = cleanup_node(c, &nodes[i]);
	free(nodes);
	return st;
}

/* ---- the thread ---- */

/* A digest of which shard nodes are up: a node that comes back may hold copies marked by a
 * move that failed while it was away, so a change means another cleanup. */
static uint64_t up_digest(coord *c)
{
	meta_node *v;
	size_t n;
	uint64_t h = 1469598103934665603ull;
	if (up_nodes(c, &v, &n) != OMEN_OK)
		return 0;
	for (size_t i = 0; i < n; i++)
		h = (h ^ v[i].id) * 1099511628211ull;
	free(v);
	return h;
}

static void *balancer_main(void *arg)
{
	coord *c = arg;
	int clean = 0, done;
	uint64_t seen = 0;
	recover_state *rs = calloc(1, sizeof *rs);
	if (!rs) {
		log_msg(LOG_ERROR, "rebalancing: out of memory");
		return NULL;
	}
	pthread_mutex_lock(&c->kmu);
	while (!c->stopping) {
		pthread_mutex_unlock(&c->kmu);
		move m;
		uint64_t up = up_digest(c);
		if (up != seen)
			clean = 0, seen = up;
		if (!cons_is_leader(c->cons)) {
			clean = 0;
		} else if (!clean) {
			if (cleanup(c) == OMEN_OK)
				clean = 1, c->cleanups++;
			else
				log_msg(LOG_WARN, "rebalancing: cleanup: %s", status_msg());
		} else if ((done = recover_step(c, rs)) != 0 || (done = recover_spread(c)) != 0) {
			pthread_mutex_lock(&c->kmu);
			if (done > 0) {
				c->moves_done++;
				continue; /* the next one at once */
			}
			c->moves_failed++;
			clean = 0;
			pthread_mutex_unlock(&c->kmu);
		} else if (plan(c, &m) == 1) {
			int st = shard_move(c, &m);
			pthread_mutex_lock(&c->kmu);
			if (st == OMEN_OK) {
				c->moves_done++;
				continue; /* the next move at once */
			}
			c->moves_failed++;
			clean = 0;
			log_msg(LOG_WARN, "rebalancing: %s", status_msg());
			pthread_mutex_unlock(&c->kmu);
		}
		pthread_mutex_lock(&c->kmu);
		if (!c->stopping)
			cond_wait_ms(&c->kcv, &c->kmu, BALANCE_PERIOD_MS);
	}
	pthread_mutex_unlock(&c->kmu);
	free(rs);
	return NULL;
}

int balance_start(coord *c)
{
	if (pthread_create(&c->balancer, NULL, balancer_main, c) != 0)
		return status_set(OMEN_ENOMEM, "cannot start the rebalancing thread");
	c->balancer_on = 1;
	return OMEN_OK;
}

void balance_stop(coord *c)
{
	if (!c->balancer_on)
		return;
	pthread_mutex_lock(&c->kmu);
	c->stopping = 1;
	pthread_cond_broadcast(&c->kcv);
	pthread_mutex_unlock(&c->kmu);
	pthread_join(c->balancer, NULL);
	c->balancer_on = 0;
}
