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
#include "coordinator/internal.h"

#define BALANCE_PERIOD_MS 1000
#define COPY_BYTES        (8u << 20)     /* points per page: this many bytes of vectors at most */
#define BUILD_TIMEOUT_MS  (600u * 1000u) /* a coordinator stopping meanwhile waits */

/* ---- calls to shard nodes ---- */

static void req_for(wire_req *q, coord *c, wire_op op, const char *name, uint32_t shard)
{
	wire_req_init(q);
	q->op = op;
	q->token = c->token;
	q->epoch = fsm_epoch(c->fsm);
	q->shard = (int32_t)shard;
	snprintf(q->name, sizeof q->name, "%s", name);
}

/* Sends q to p; on failure the status message names the node. r is freed by the caller. */
static int call(peer *p, const wire_req *q, uint32_t timeout_ms, wire_rep *r)
{
	wire_rep_init(r);
	int st = peer_request(p, q, timeout_ms, r);
	if (st != OMEN_OK)
		return status_set(st, "%s on %s: %s", wire_op_name(q->op), peer_url(p),
		                  r->message ? r->message : status_msg());
	return OMEN_OK;
}

static int fence(coord *c, peer *p, const char *name, uint32_t shard, int mode, const meta_coll *mc,
                 uint64_t *count)
{
	wire_req q;
	wire_rep r;
	req_for(&q, c, WIRE_FENCE, name, shard);
	q.mode = (uint32_t)mode;
	if (mc)
		q.dim = mc->dim, q.metric = mc->metric;
	int st = call(p, &q, c->cfg.deadline_ms, &r);
	if (count)
		*count = r.count;
	wire_rep_free(&r);
	return st;
}

static int drop_unit(coord *c, peer *p, const char *name, uint32_t shard)
{
	wire_req q;
	wire_rep r;
	req_for(&q, c, WIRE_DROP, name, shard);
	int st = call(p, &q, c->cfg.deadline_ms, &r);
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
	req_for(&q, c, WIRE_GET, mc->name, shard);
	q.n = n;
	q.ids = (uint64_t *)ids;
	int st = call(a, &q, c->cfg.deadline_ms, &got);
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
		req_for(&q, c, WIRE_UPSERT, mc->name, shard);
		q.n = np;
		q.dim = mc->dim;
		q.ids = put;
		q.vectors = got.vectors;
		q.meta = metas;
		st = call(b, &q, c->cfg.deadline_ms, &r);
		wire_rep_free(&r);
	}
	if (st == OMEN_OK && nd) {
		req_for(&q, c, WIRE_DELETE, mc->name, shard);
		q.n = nd;
		q.ids = del;
		st = call(b, &q, c->cfg.deadline_ms, &r);
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
static int copy_ids(coord *c, peer *a, peer *b, const meta_coll *mc, uint32_t shard, int mode,
                    uint64_t *copied)
{
	uint64_t page = COPY_BYTES / (mc->dim * 4u), start = 0;
	page = page < 64 ? 64 : page > 8192 ? 8192 : page;
	for (;;) {
		wire_req q;
		wire_rep r;
		req_for(&q, c, WIRE_IDS, mc->name, shard);
		q.n = page;
		q.start = start;
		q.mode = (uint32_t)mode;
		int st = call(a, &q, c->cfg.deadline_ms, &r);
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
static int copy_index(coord *c, peer *a, peer *b, const meta_coll *mc, uint32_t shard)
{
	wire_req q;
	wire_rep r;
	req_for(&q, c, WIRE_STATS, mc->name, shard);
	int st = call(a, &q, c->cfg.deadline_ms, &r);
	const char *kind = st == OMEN_OK && r.has_stats && r.stats.index ? r.stats.index : "flat";
	int hnsw = strcmp(kind, "hnsw") == 0, ivf = strcmp(kind, "ivf") == 0;
	omen_collection_stats s = r.stats;
	wire_rep_free(&r);
	if (st != OMEN_OK || (!hnsw && !ivf))
		return st;
	req_for(&q, c, WIRE_BUILD, mc->name, shard);
	q.index_type = hnsw ? OMEN_INDEX_HNSW : OMEN_INDEX_IVF;
	q.m = s.hnsw_m;
	q.ef_construction = s.hnsw_ef_construction;
	q.int8 = s.hnsw_int8;
	q.nlist = s.ivf_nlist;
	q.bits = s.ivf_bits;
	q.mode = WIRE_BUILD_BACKGROUND; /* half the target's cores: its other shards stay served */
	st = call(b, &q, BUILD_TIMEOUT_MS, &r);
	wire_rep_free(&r);
	return st;
}

/* ---- one move ---- */

typedef struct move {
	meta_coll coll;
	uint32_t shard;
	meta_node from, to;
} move;

static double secs_since(uint64_t t0)
{
	return (double)(mono_ms() - t0) / 1000.0;
}

static int shard_move(coord *c, const move *m)
{
	const char *name = m->coll.name;
	peer *a = rmeta_peer(c, m->from.addr), *b = rmeta_peer(c, m->to.addr);
	if (!a || !b)
		return status_set(OMEN_ENOMEM, "cannot open a peer");
	uint64_t t0 = mono_ms(), bulk = 0, delta = 0, tracked = 0;
	log_msg(LOG_INFO, "moving %s@%u from node %llu (%s) to node %llu (%s)", name, m->shard,
	        (unsigned long long)m->from.id, m->from.addr, (unsigned long long)m->to.id,
	        m->to.addr);
	int st = fence(c, b, name, m->shard, FENCE_INCOMING, &m->coll, NULL);
	if (st == OMEN_OK)
		st = fence(c, a, name, m->shard, FENCE_TRACK, NULL, NULL);
	if (st == OMEN_OK)
		st = copy_ids(c, a, b, &m->coll, m->shard, 0, &bulk);
	uint64_t t_index = mono_ms();
	if (st == OMEN_OK)
		st = copy_index(c, a, b, &m->coll, m->shard);
	uint64_t t_freeze = mono_ms();
	if (st == OMEN_OK)
		st = fence(c, a, name, m->shard, FENCE_FREEZE, NULL, &tracked);
	if (st == OMEN_OK)
		st = copy_ids(c, a, b, &m->coll, m->shard, WIRE_IDS_TRACKED, &delta);
	if (st != OMEN_OK) {
		char why[512];
		snprintf(why, sizeof why, "%s", status_msg());
		fence(c, a, name, m->shard, FENCE_RELEASE, NULL, NULL);
		drop_unit(c, b, name, m->shard);
		return status_set(st, "moving %s@%u: %s (aborted)", name, m->shard, why);
	}
	meta_cmd cmd = {.kind = CMD_SHARD_ASSIGN};
	cmd.coll = m->coll;
	cmd.shard = m->shard;
	cmd.node_id = m->to.id;
	fsm_result res;
	if ((st = rmeta_apply(c, &cmd, &res)) != OMEN_OK)
		return st; /* perhaps committed after all: the cleanup after a barrier decides */
	double frozen = secs_since(t_freeze);
	fence(c, b, name, m->shard, FENCE_ACCEPT, NULL, NULL); /* failures: left to the cleanup */
	drop_unit(c, a, name, m->shard);
	log_msg(LOG_INFO,
	        "moved %s@%u to node %llu in %.2f s: %llu points, then %llu written meanwhile "
	        "(%llu present); writes waited %.3f s; map epoch %llu; copy %.2f s, index %.2f s",
	        name, m->shard, (unsigned long long)m->to.id, secs_since(t0),
	        (unsigned long long)bulk, (unsigned long long)tracked, (unsigned long long)delta,
	        frozen, (unsigned long long)res.epoch, (double)(t_index - t0) / 1000.0,
	        (double)(t_freeze - t_index) / 1000.0);
	return OMEN_OK;
}

/* ---- the plan ---- */

/* The shard nodes that are up (malloc'd). */
static int up_nodes(coord *c, meta_node **out, size_t *n)
{
	meta_node *v;
	size_t m, k = 0;
	int st = fsm_node_list(c->fsm, &v, &m);
	if (st != OMEN_OK)
		return st;
	for (size_t i = 0; i < m; i++)
		if (v[i].role == META_ROLE_SHARD && v[i].state == META_NODE_UP)
			v[k++] = v[i];
	*out = v;
	*n = k;
	return OMEN_OK;
}

/* The first collection (name order) whose up nodes' shard counts differ by two or more gives
 * the move: its highest-numbered shard on the node holding the most to the node holding the
 * fewest (ties: the lower node id). 1 when there is a move, 0 when balanced, or an error. */
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
		if (fsm_shard_map(c->fsm, colls[i].name, &map, &ns, &epoch) != OMEN_OK)
			continue;
		memset(count, 0, nn * sizeof *count);
		for (uint32_t s = 0; s < ns; s++)
			for (size_t j = 0; j < nn; j++)
				count[j] += map[s] == nodes[j].id;
		size_t hi = 0, lo = 0;
		for (size_t j = 1; j < nn; j++) {
			hi = count[j] > count[hi] ? j : hi;
			lo = count[j] < count[lo] ? j : lo;
		}
		if (count[hi] >= count[lo] + 2) {
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
	return plan(c, &m) == 0;
}

/* ---- cleanup of interrupted moves ---- */

/* The node the map gives the shard, 0 when the collection is gone or the shard out of range. */
static uint64_t owner(coord *c, const char *name, uint64_t shard)
{
	uint64_t *map, epoch, id = 0;
	uint32_t ns;
	if (fsm_shard_map(c->fsm, name, &map, &ns, &epoch) != OMEN_OK)
		return 0;
	if (shard < ns)
		id = map[shard];
	free(map);
	return id;
}

/* Resolves the marked units of one node. */
static int cleanup_node(coord *c, const meta_node *node)
{
	peer *p = rmeta_peer(c, node->addr);
	if (!p)
		return status_set(OMEN_ENOMEM, "cannot open a peer");
	wire_req q;
	wire_rep r;
	req_for(&q, c, WIRE_FENCE, "", 0);
	q.shard = -1;
	q.mode = FENCE_QUERY;
	int st = call(p, &q, c->cfg.deadline_ms, &r);
	for (uint64_t i = 0; st == OMEN_OK && i < r.n; i++) {
		const char *name = r.names[i];
		uint32_t shard = (uint32_t)r.ids[i];
		int mine = owner(c, name, r.ids[i]) == node->id;
		int source = r.found[i];
		log_msg(LOG_INFO, "node %llu: %s@%u was left %s by an interrupted move: %s",
		        (unsigned long long)node->id, name, shard, source ? "frozen" : "incoming",
		        !mine    ? "dropped"
		        : source ? "released"
		                 : "accepted");
		st = !mine ? drop_unit(c, p, name, shard)
		           : fence(c, p, name, shard, source ? FENCE_RELEASE : FENCE_ACCEPT, NULL,
		                   NULL);
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
	int clean = 0;
	uint64_t seen = 0;
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
