/*
 * The coordinator's metadata replicated by Raft (consensus/): collections, the shard map and
 * id ranges come from this coordinator's replica of the state machine, so every coordinator
 * routes by the same map; changes go through the leader. A coordinator that is not the leader
 * forwards metadata changes (create, drop, and upserts that need fresh ids) to the leader
 * coordinator's client endpoint; searches, gets, deletes and upserts with ids are served by any
 * coordinator from its replica, so the data path does not stop while a leader is elected.
 *
 * The leader also keeps the node table current: it registers the coordinators and the shard
 * nodes of its configuration, pings the shard nodes, and records each one's state (up, or
 * down after KEEPER_DOWN_AFTER missed pings).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "coordinator/internal.h"

#define KEEPER_PERIOD_MS  500
#define KEEPER_DOWN_AFTER 3
#define SHARD_NODE_ID0    1000  /* shard node i of the configuration is node 1000 + i */
#define ID_BLOCK          65536 /* ids allocated through Raft at a time */
#define REPLICA_GRACE_MS  300   /* a follower's wait for a collection it does not know yet */

/* ---- routes ---- */

/* The peer for url, opened on first use. c->rmu is held. */
static peer *peer_for(coord *c, const char *url)
{
	for (size_t i = 0; i < c->nnodes; i++)
		if (strcmp(peer_url(c->nodes[i]), url) == 0)
			return c->nodes[i];
	for (peer_ref *r = c->peers; r; r = r->next)
		if (strcmp(peer_url(r->p), url) == 0)
			return r->p;
	peer_ref *r = calloc(1, sizeof *r);
	if (!r || peer_open(url, c->cfg.max_message, &r->p) != OMEN_OK) {
		free(r);
		return NULL;
	}
	r->next = c->peers;
	c->peers = r;
	return r->p;
}

peer *rmeta_peer(coord *c, const char *url)
{
	pthread_mutex_lock(&c->rmu);
	peer *p = peer_for(c, url);
	pthread_mutex_unlock(&c->rmu);
	return p;
}

int rmeta_shard_peers(coord *c, peer ***out, size_t *n)
{
	meta_node *v;
	size_t m, k = 0;
	int st = fsm_node_list(c->fsm, &v, &m);
	if (st != OMEN_OK)
		return st;
	peer **p = calloc(m ? m : 1, sizeof *p);
	for (size_t i = 0; p && i < m; i++)
		if (meta_is_shard(v[i].role) && (p[k] = rmeta_peer(c, v[i].addr)))
			k++;
	free(v);
	if (!p)
		return status_set(OMEN_ENOMEM, "out of memory");
	*out = p;
	*n = k;
	return OMEN_OK;
}

/* The peer of shard node id, into *out. c->rmu is held. */
static int node_peer(coord *c, uint64_t id, peer **out)
{
	meta_node node;
	int st = fsm_node_get(c->fsm, id, &node);
	if (st == OMEN_OK && !(*out = peer_for(c, node.addr)))
		st = status_set(OMEN_EINVAL, "shard node %llu: bad address '%s'",
		                (unsigned long long)id, node.addr);
	return st;
}

static void route_map_free(route_map *m)
{
	if (m) {
		free(m->to);
		free(m->copies);
	}
	free(m);
}

/* Builds the routes of a collection from the state's map: each shard's copies, and its
 * primary as the shard's node. c->rmu is held. */
static int routes_build(coord *c, const char *name, route_map **out)
{
	meta_copies *cp = NULL;
	uint64_t epoch;
	uint32_t n;
	int st = fsm_shard_copies(c->fsm, name, &cp, &n, &epoch);
	route_map *m = st == OMEN_OK ? calloc(1, sizeof *m) : NULL;
	if (st == OMEN_OK && (!m || !(m->to = calloc(n, sizeof *m->to)) ||
	                      !(m->copies = calloc(n, sizeof *m->copies))))
		st = status_set(OMEN_ENOMEM, "out of memory");
	for (uint32_t s = 0; st == OMEN_OK && s < n; s++) {
		route_copies *rc = &m->copies[s];
		rc->n = cp[s].n;
		for (uint32_t j = 0; st == OMEN_OK && j < cp[s].n; j++) {
			rc->node[j] = cp[s].node[j];
			rc->state[j] = cp[s].state[j];
			st = node_peer(c, cp[s].node[j], &rc->to[j]);
		}
		int p = meta_copies_primary(&cp[s]);
		m->to[s] = rc->to[p < 0 ? 0 : p];
	}
	free(cp);
	if (st != OMEN_OK) {
		route_map_free(m);
		return st;
	}
	snprintf(m->name, sizeof m->name, "%s", name);
	m->epoch = epoch;
	m->nshards = n;
	m->next = c->routes;
	c->routes = m;
	*out = m;
	return OMEN_OK;
}

/* Whether collection name exists in this replica (1), is absent (0), or an error (-1). */
static int present(coord *c, const char *name)
{
	meta_coll mc;
	int st = fsm_coll_get(c->fsm, name, &mc);
	return st == OMEN_OK ? 1 : st == OMEN_ENOTFOUND ? 0 : -1;
}

/* On a follower, waits (up to wait_ms) until the collection's presence in this replica is
 * `want`: a change the leader acknowledged reaches the followers with its next heartbeat. */
static void await_replica(coord *c, const char *name, int want, unsigned wait_ms)
{
	struct timespec nap = {0, 10 * 1000 * 1000};
	for (unsigned waited = 0; waited < wait_ms && present(c, name) != want; waited += 10)
		nanosleep(&nap, NULL);
}

int rmeta_lookup(coord *c, const char *name, coll_info *ci)
{
	meta_coll mc;
	int st = fsm_coll_get(c->fsm, name, &mc);
	if (st == OMEN_ENOTFOUND && !cons_is_leader(c->cons)) { /* created a moment ago? */
		await_replica(c, name, 1, REPLICA_GRACE_MS);
		st = fsm_coll_get(c->fsm, name, &mc);
	}
	if (st != OMEN_OK)
		return st == OMEN_ENOTFOUND ? status_set(st, "no collection '%s'", name) : st;
	uint64_t epoch = fsm_epoch(c->fsm);
	pthread_mutex_lock(&c->rmu);
	route_map *m = c->routes;
	while (m && !(m->epoch == epoch && strcmp(m->name, name) == 0))
		m = m->next;
	if (!m)
		st = routes_build(c, name, &m);
	pthread_mutex_unlock(&c->rmu);
	if (st != OMEN_OK)
		return st;
	memset(ci, 0, sizeof *ci);
	snprintf(ci->name, sizeof ci->name, "%s", mc.name);
	ci->dim = mc.dim;
	ci->metric = mc.metric;
	ci->nshards = m->nshards;
	ci->epoch = m->epoch;
	ci->to = m->to;
	ci->copies = m->copies;
	ci->replicas = mc.replicas;
	return OMEN_OK;
}

int rmeta_list(coord *c, coll_info **out, size_t *n)
{
	meta_coll *v;
	size_t m;
	int st = fsm_coll_list(c->fsm, &v, &m);
	if (st != OMEN_OK)
		return st;
	coll_info *ci = calloc(m ? m : 1, sizeof *ci);
	for (size_t i = 0; ci && i < m; i++) {
		snprintf(ci[i].name, sizeof ci[i].name, "%s", v[i].name);
		ci[i].dim = v[i].dim;
		ci[i].metric = v[i].metric;
		ci[i].nshards = v[i].nshards;
		ci[i].replicas = v[i].replicas;
	}
	free(v);
	if (!ci)
		return status_set(OMEN_ENOMEM, "out of memory");
	*out = ci;
	*n = m;
	return OMEN_OK;
}

/* ---- changes ---- */

int rmeta_apply(coord *c, const meta_cmd *cmd, fsm_result *res)
{
	uint64_t leader = 0;
	int st = cons_apply(c->cons, cmd, c->cfg.deadline_ms, res, &leader);
	if (st == OMEN_OK && res->status != OMEN_OK)
		return status_set(res->status, "%s", status_text(res->status));
	return st;
}

int rmeta_must_forward(coord *c, const wire_req *q)
{
	if (!c->fsm || cons_is_leader(c->cons))
		return 0;
	return q->op == WIRE_CREATE || q->op == WIRE_DROP || q->op == WIRE_JOIN ||
	       q->op == WIRE_COPYFAIL || (q->op == WIRE_UPSERT && !q->ids);
}

/* Waits (up to the deadline) until this coordinator's replica has applied epoch. */
static void await_epoch(coord *c, uint64_t epoch)
{
	struct timespec nap = {0, 5 * 1000 * 1000};
	for (unsigned waited = 0; waited < c->cfg.deadline_ms && fsm_epoch(c->fsm) < epoch;
	     waited += 5)
		nanosleep(&nap, NULL);
}

/* CMD_COPY_FAIL here, on the leader; *epoch gets the epoch after it. */
static int copy_fail_apply(coord *c, const char *name, uint32_t shard, uint64_t primary,
                           const uint64_t *failed, uint32_t nfailed, uint64_t *epoch)
{
	meta_cmd cmd = {.kind = CMD_COPY_FAIL};
	snprintf(cmd.coll.name, sizeof cmd.coll.name, "%s", name);
	cmd.shard = shard;
	cmd.node_id = primary;
	cmd.nfailed = nfailed < META_MAX_COPIES ? nfailed : META_MAX_COPIES;
	memcpy(cmd.failed, failed, cmd.nfailed * sizeof *failed);
	fsm_result res;
	int st = rmeta_apply(c, &cmd, &res);
	if (st == OMEN_OK) {
		*epoch = res.epoch;
		log_msg(LOG_WARN,
		        "collection '%s' shard %u: %u cop%s taken out of the copies in sync", name,
		        shard, cmd.nfailed, cmd.nfailed == 1 ? "y" : "ies");
	}
	return st;
}

int rmeta_copy_fail_req(coord *c, const wire_req *q, wire_rep *r)
{
	if (q->shard < 0 || q->n > META_MAX_COPIES)
		return status_set(OMEN_EINVAL, "copyfail: a shard and at most %d nodes expected",
		                  META_MAX_COPIES);
	return copy_fail_apply(c, q->name, (uint32_t)q->shard, q->node, q->ids, (uint32_t)q->n,
	                       &r->count);
}

int rmeta_copy_fail(coord *c, const char *name, uint32_t shard, uint64_t primary,
                    const uint64_t *failed, uint32_t nfailed)
{
	uint64_t epoch = 0;
	int st;
	if (cons_is_leader(c->cons)) {
		st = copy_fail_apply(c, name, shard, primary, failed, nfailed, &epoch);
	} else {
		wire_req q;
		wire_rep r;
		wire_req_init(&q);
		q.op = WIRE_COPYFAIL;
		snprintf(q.name, sizeof q.name, "%s", name);
		q.shard = (int32_t)shard;
		q.node = primary;
		q.n = nfailed;
		q.ids = (uint64_t *)failed;
		wire_rep_init(&r);
		st = rmeta_forward(c, &q, &r);
		if (st == -1) { /* this coordinator became the leader meanwhile */
			st = copy_fail_apply(c, name, shard, primary, failed, nfailed, &epoch);
		} else {
			if (st == OMEN_OK)
				st = r.status;
			if (st != OMEN_OK)
				st = status_set(st, "%s", r.message ? r.message : status_msg());
			epoch = r.count;
		}
		wire_rep_free(&r);
	}
	if (st == OMEN_OK)
		await_epoch(c, epoch);
	return st;
}

/* A coordinator's client endpoint: from the node table (coordinators added later are there),
 * else from the configuration. NULL when unknown. */
static peer *coordinator_peer(coord *c, uint64_t id)
{
	meta_node n;
	if (fsm_node_get(c->fsm, id, &n) == OMEN_OK && n.role == META_ROLE_COORDINATOR)
		return rmeta_peer(c, n.addr);
	for (size_t i = 0; i < c->cfg.npeers; i++)
		if (c->cfg.peers[i].id == id)
			return rmeta_peer(c, c->cfg.peers[i].listen);
	return NULL;
}

/* The leader's client endpoint, waiting (up to the deadline) while an election runs. */
static peer *leader_peer(coord *c)
{
	struct timespec nap = {0, 20 * 1000 * 1000};
	for (uint32_t waited = 0; waited <= c->cfg.deadline_ms; waited += 20) {
		uint64_t id = cons_leader(c->cons);
		if (id == c->cfg.raft_id)
			return NULL; /* this one: handle it here */
		peer *p = id ? coordinator_peer(c, id) : NULL;
		if (p)
			return p;
		nanosleep(&nap, NULL);
	}
	return NULL;
}

int rmeta_forward(coord *c, const wire_req *q, wire_rep *r)
{
	peer *p = leader_peer(c);
	if (!p) {
		if (cons_is_leader(c->cons))
			return -1; /* became the leader meanwhile: the caller handles it */
		return status_set(OMEN_EUNAVAIL, "no coordinator is the Raft leader (election in "
		                                 "progress, or no majority)");
	}
	wire_req fq = *q;
	fq.token = c->token;
	wire_rep_init(r);
	int st = peer_request(p, &fq, c->cfg.deadline_ms, r);
	if (st != OMEN_OK && !r->message)
		r->message = strdup(status_msg());
	r->status = st;
	/* The caller's next call may come here: let this replica show the change first. */
	if (st == OMEN_OK && (q->op == WIRE_CREATE || q->op == WIRE_DROP))
		await_replica(c, q->name, q->op == WIRE_CREATE, c->cfg.deadline_ms);
	return OMEN_OK;
}

int rmeta_ids(coord *c, const char *name, uint64_t n, uint64_t floor, uint64_t *first)
{
	pthread_mutex_lock(&c->rmu);
	id_range *r = c->ranges;
	while (r && strcmp(r->name, name) != 0)
		r = r->link;
	if (!r && (r = calloc(1, sizeof *r))) {
		snprintf(r->name, sizeof r->name, "%s", name);
		r->link = c->ranges;
		c->ranges = r;
	}
	int st = r ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK && r->next < floor)
		r->next = r->end = 0; /* ids were given above the range: allocate past them */
	if (st == OMEN_OK && r->end - r->next < n) {
		meta_coll mc;
		meta_cmd cmd = {.kind = CMD_IDS_ALLOC};
		snprintf(cmd.coll.name, sizeof cmd.coll.name, "%s", name);
		st = fsm_coll_get(c->fsm, name, &mc);
		uint64_t skip = st == OMEN_OK && floor > mc.next_id ? floor - mc.next_id : 0;
		cmd.count = skip + (n > ID_BLOCK ? n : ID_BLOCK);
		fsm_result res;
		if (st == OMEN_OK && (st = rmeta_apply(c, &cmd, &res)) == OMEN_OK)
			r->next = res.value + skip, r->end = res.value + cmd.count;
	}
	if (st == OMEN_OK) {
		*first = r->next;
		r->next += n;
	}
	pthread_mutex_unlock(&c->rmu);
	return st;
}

/* ---- the keeper: node registration and shard node health (on the leader) ---- */

void rmeta_node_ensure(coord *c, uint64_t id, const char *addr, int role, int state)
{
	meta_node n;
	int known = fsm_node_get(c->fsm, id, &n) == OMEN_OK;
	if (known && n.role == META_ROLE_DRAINING && role == META_ROLE_SHARD)
		role = META_ROLE_DRAINING; /* heartbeats and pings do not end a drain */
	if (known && strcmp(n.addr, addr) == 0 && n.role == role && n.state == state)
		return;
	meta_cmd cmd = {.kind = CMD_NODE_SET};
	cmd.node.id = id;
	snprintf(cmd.node.addr, sizeof cmd.node.addr, "%s", addr);
	cmd.node.role = role;
	cmd.node.state = state;
	fsm_result res;
	if (rmeta_apply(c, &cmd, &res) == OMEN_OK)
		log_msg(LOG_INFO, "node %llu (%s) is %s", (unsigned long long)id, addr,
		        state == META_NODE_UP ? "up" : "down");
}

/* One round on the leader: coordinators registered, shard nodes pinged. */
static void keeper_round(coord *c, int *missed)
{
	meta_node rec;
	for (size_t i = 0; i < c->cfg.npeers; i++) /* first time only: membership changes later */
		if (fsm_node_get(c->fsm, c->cfg.peers[i].id, &rec) != OMEN_OK)
			rmeta_node_ensure(c, c->cfg.peers[i].id, c->cfg.peers[i].listen,
			                  META_ROLE_COORDINATOR, META_NODE_UP);
	for (size_t i = 0; i < c->nnodes; i++) {
		wire_req q;
		wire_rep r;
		wire_req_init(&q);
		q.op = WIRE_HEALTH;
		q.token = c->token;
		wire_rep_init(&r);
		int up = peer_request(c->nodes[i], &q, KEEPER_PERIOD_MS, &r) == OMEN_OK;
		wire_rep_free(&r);
		missed[i] = up ? 0 : missed[i] + 1;
		meta_node n;
		int known = fsm_node_get(c->fsm, SHARD_NODE_ID0 + i, &n) == OMEN_OK;
		int state =
		    up || (known && n.state == META_NODE_UP && missed[i] < KEEPER_DOWN_AFTER)
		        ? META_NODE_UP
		        : META_NODE_DOWN;
		if (!known && !up)
			state = META_NODE_DOWN;
		rmeta_node_ensure(c, SHARD_NODE_ID0 + i, peer_url(c->nodes[i]), META_ROLE_SHARD,
		                  state);
	}
}

/* The shard node was heard from now. c->rmu is held. */
static int heard_now(coord *c, uint64_t id)
{
	heard *h = c->heard;
	while (h && h->id != id)
		h = h->next;
	if (!h && (h = calloc(1, sizeof *h))) {
		h->id = id;
		h->next = c->heard;
		c->heard = h;
	}
	if (!h)
		return status_set(OMEN_ENOMEM, "out of memory");
	h->at_ms = mono_ms();
	return OMEN_OK;
}

int rmeta_join(coord *c, const wire_req *q)
{
	if (q->node < WIRE_NODE_ID_MIN || q->node > WIRE_NODE_ID_MAX)
		return status_set(OMEN_EINVAL, "join: a shard node's id is %llu..%llu, not %llu",
		                  (unsigned long long)WIRE_NODE_ID_MIN,
		                  (unsigned long long)WIRE_NODE_ID_MAX,
		                  (unsigned long long)q->node);
	if (strlen(q->addr) >= META_MAX_ADDR)
		return status_set(OMEN_EINVAL, "join: the address is longer than %d bytes",
		                  META_MAX_ADDR - 1);
	meta_node n;
	if (fsm_node_get(c->fsm, q->node, &n) == OMEN_OK && !meta_is_shard(n.role))
		return status_set(OMEN_EINVAL, "join: node %llu is a coordinator",
		                  (unsigned long long)q->node);
	pthread_mutex_lock(&c->rmu);
	int st = heard_now(c, q->node);
	pthread_mutex_unlock(&c->rmu);
	if (st == OMEN_OK)
		rmeta_node_ensure(c, q->node, q->addr, META_ROLE_SHARD, META_NODE_UP);
	if (st == OMEN_OK && (fsm_node_get(c->fsm, q->node, &n) != OMEN_OK ||
	                      strcmp(n.addr, q->addr) != 0 || n.state != META_NODE_UP))
		st = status_set(OMEN_EUNAVAIL, "join: node %llu not recorded yet",
		                (unsigned long long)q->node);
	return st;
}

/* Registered shard nodes (not in this coordinator's configuration) are down once no heartbeat
 * came for KEEPER_DOWN_AFTER periods; a new leader gives each that much time first. */
static void heartbeats_check(coord *c)
{
	meta_node *v;
	size_t n;
	if (fsm_node_list(c->fsm, &v, &n) != OMEN_OK)
		return;
	uint64_t now = mono_ms(), limit = KEEPER_DOWN_AFTER * KEEPER_PERIOD_MS;
	for (size_t i = 0; i < n; i++) {
		if (!meta_is_shard(v[i].role) || v[i].state != META_NODE_UP ||
		    v[i].id < WIRE_NODE_ID_MIN)
			continue;
		pthread_mutex_lock(&c->rmu);
		heard *h = c->heard;
		while (h && h->id != v[i].id)
			h = h->next;
		uint64_t last = h && h->at_ms > c->leader_since ? h->at_ms : c->leader_since;
		pthread_mutex_unlock(&c->rmu);
		if (now - last > limit)
			rmeta_node_ensure(c, v[i].id, v[i].addr, META_ROLE_SHARD, META_NODE_DOWN);
	}
	free(v);
}

void rmeta_register_now(coord *c)
{
	int *missed = calloc(c->nnodes ? c->nnodes : 1, sizeof *missed);
	if (missed && cons_is_leader(c->cons))
		keeper_round(c, missed);
	free(missed);
}

static void *keeper_main(void *arg)
{
	coord *c = arg;
	int *missed = calloc(c->nnodes ? c->nnodes : 1, sizeof *missed);
	pthread_mutex_lock(&c->kmu);
	int was_leader = 0;
	while (!c->stopping && missed) {
		pthread_mutex_unlock(&c->kmu);
		int leader = cons_is_leader(c->cons);
		if (leader && !was_leader)
			c->leader_since = mono_ms();
		was_leader = leader;
		if (leader) {
			keeper_round(c, missed);
			heartbeats_check(c);
		}
		pthread_mutex_lock(&c->kmu);
		if (!c->stopping)
			cond_wait_ms(&c->kcv, &c->kmu, KEEPER_PERIOD_MS);
	}
	pthread_mutex_unlock(&c->kmu);
	free(missed);
	return NULL;
}

/* ---- start and stop ---- */

int rmeta_start(coord *c)
{
	char state[4096], log[4096];
	snprintf(state, sizeof state, "%s/state", c->cfg.data);
	snprintf(log, sizeof log, "%s/raft", c->cfg.data);
	int st = dir_create(state);
	if (st == OMEN_OK)
		st = dir_create(log);
	if (st == OMEN_OK)
		st = fsm_open(state, &c->fsm);
	cons_peer *peers = calloc(c->cfg.npeers ? c->cfg.npeers : 1, sizeof *peers);
	if (st == OMEN_OK && !peers)
		st = status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; st == OMEN_OK && i < c->cfg.npeers; i++)
		peers[i] = (cons_peer){c->cfg.peers[i].id, c->cfg.peers[i].raft};
	cons_config cc = {c->cfg.raft_id,
	                  c->cfg.raft_addr,
	                  log,
	                  peers,
	                  c->cfg.join ? 0 : c->cfg.npeers,
	                  c->cfg.election_ms,
	                  0,
	                  0,
	                  0};
	if (st == OMEN_OK)
		st = cons_start(&cc, c->fsm, &c->cons);
	free(peers);
	pthread_mutex_init(&c->kmu, NULL);
	pthread_cond_init(&c->kcv, NULL);
	if (st == OMEN_OK && pthread_create(&c->keeper, NULL, keeper_main, c) == 0)
		c->keeper_on = 1;
	if (st == OMEN_OK)
		st = balance_start(c);
	return st;
}

void rmeta_stop(coord *c)
{
	if (c->keeper_on) {
		pthread_mutex_lock(&c->kmu);
		c->stopping = 1;
		pthread_cond_broadcast(&c->kcv);
		pthread_mutex_unlock(&c->kmu);
		pthread_join(c->keeper, NULL);
	}
	balance_stop(c);
	if (c->cons)
		cons_stop(c->cons);
	if (c->fsm)
		fsm_close(c->fsm);
	c->cons = NULL;
	c->fsm = NULL;
	while (c->routes) {
		route_map *m = c->routes;
		c->routes = m->next;
		free(m->to);
		free(m->copies);
		free(m);
	}
	while (c->peers) {
		peer_ref *r = c->peers;
		c->peers = r->next;
		peer_close(r->p);
		free(r);
	}
	while (c->ranges) {
		id_range *r = c->ranges;
		c->ranges = r->link;
		free(r);
	}
	while (c->heard) {
		heard *h = c->heard;
		c->heard = h->next;
		free(h);
	}
}

/* OMEN_EBUSY with the leader's id and URL, for membership calls made on a follower. */
static int not_leader(coord *c, uint64_t known)
{
	peer *p = known ? coordinator_peer(c, known) : NULL;
	return status_set(OMEN_EBUSY, "coordinator %llu (%s) is the leader: ask it",
	                  (unsigned long long)known, p ? peer_url(p) : "?");
}

int coord_raft_transfer(coord *c, uint64_t to, uint64_t *leader)
{
	if (!c->cons)
		return status_set(OMEN_ENOTSUP, "this coordinator does not run Raft");
	uint64_t known = 0;
	int st = cons_transfer(c->cons, to, c->cfg.deadline_ms, &known);
	if (st == OMEN_EBUSY)
		return not_leader(c, known);
	*leader = cons_leader(c->cons);
	return st;
}

int coord_raft_add(coord *c, uint64_t id, const char *raft, const char *listen)
{
	if (!c->cons)
		return status_set(OMEN_ENOTSUP, "this coordinator does not run Raft");
	if (id < 1 || id > 999 || !raft || !*raft || !listen || strlen(listen) >= META_MAX_ADDR)
		return status_set(OMEN_EINVAL,
		                  "a coordinator needs an id 1..999, a Raft address "
		                  "and a client URL (at most %d bytes)",
		                  META_MAX_ADDR - 1);
	meta_node n;
	if (fsm_node_get(c->fsm, id, &n) == OMEN_OK && n.role != META_ROLE_COORDINATOR)
		return status_set(OMEN_EEXIST, "node %llu is a shard node", (unsigned long long)id);
	uint64_t known = 0;
	/* Raft may take a while to catch the new member up: a longer wait than a request's. */
	int st = cons_add(c->cons, id, raft, 60000, &known);
	if (st == OMEN_EBUSY)
		return not_leader(c, known);
	if (st == OMEN_OK)
		rmeta_node_ensure(c, id, listen, META_ROLE_COORDINATOR, META_NODE_UP);
	if (st == OMEN_OK && (fsm_node_get(c->fsm, id, &n) != OMEN_OK || n.state != META_NODE_UP))
		st = status_set(OMEN_EUNAVAIL,
		                "coordinator %llu was added to Raft but its address "
		                "is not recorded yet: retry",
		                (unsigned long long)id);
	return st;
}

int coord_raft_remove(coord *c, uint64_t id)
{
	if (!c->cons)
		return status_set(OMEN_ENOTSUP, "this coordinator does not run Raft");
	if (id == c->cfg.raft_id && cons_is_leader(c->cons))
		return status_set(OMEN_EBUSY,
		                  "coordinator %llu is the leader: hand the leadership "
		                  "to another first (POST /admin/leader)",
		                  (unsigned long long)id);
	meta_node n;
	if (fsm_node_get(c->fsm, id, &n) == OMEN_OK && n.role != META_ROLE_COORDINATOR)
		return status_set(OMEN_EINVAL, "node %llu is a shard node", (unsigned long long)id);
	uint64_t known = 0;
	int st = cons_remove(c->cons, id, c->cfg.deadline_ms, &known);
	if (st == OMEN_EBUSY)
		return not_leader(c, known);
	if (st == OMEN_OK && fsm_node_get(c->fsm, id, &n) == OMEN_OK)
		rmeta_node_ensure(c, id, n.addr, META_ROLE_COORDINATOR, META_NODE_DOWN);
	return st;
}

int coord_raft_role(coord *c, uint64_t *leader)
{
	if (!c->cons) {
		*leader = 0;
		return -1;
	}
	*leader = cons_leader(c->cons);
	return cons_is_leader(c->cons);
}

int coord_nodes(coord *c, coord_node_info **out, size_t *n, coord_cluster_info *info)
{
	if (!c->fsm)
		return status_set(OMEN_ENOTSUP, "this coordinator does not run Raft");
	meta_node *v;
	meta_coll *colls;
	size_t m, nc;
	int st = fsm_node_list(c->fsm, &v, &m);
	if (st != OMEN_OK)
		return st;
	coord_node_info *o = calloc(m ? m : 1, sizeof *o);
	if (!o || (st = fsm_coll_list(c->fsm, &colls, &nc)) != OMEN_OK) {
		free(v);
		free(o);
		return o ? st : status_set(OMEN_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < m; i++) {
		o[i].id = v[i].id;
		snprintf(o[i].addr, sizeof o[i].addr, "%s", v[i].addr);
		o[i].coordinator = v[i].role == META_ROLE_COORDINATOR;
		o[i].draining = v[i].role == META_ROLE_DRAINING;
		o[i].up = v[i].state == META_NODE_UP;
	}
	for (size_t j = 0; j < nc; j++) {
		meta_copies *cp;
		uint32_t ns;
		if (fsm_shard_copies(c->fsm, colls[j].name, &cp, &ns, NULL) != OMEN_OK)
			continue;
		for (uint32_t s = 0; s < ns; s++) {
			int p = meta_copies_primary(&cp[s]);
			for (uint32_t k = 0; k < cp[s].n; k++)
				for (size_t i = 0; i < m; i++) {
					if (cp[s].node[k] != o[i].id)
						continue;
					o[i].shards += (int)k == p;
					o[i].copies++;
					o[i].stale += cp[s].state[k] == META_COPY_STALE;
				}
		}
		free(cp);
	}
	free(colls);
	free(v);
	info->epoch = fsm_epoch(c->fsm);
	info->moves_done = c->moves_done;
	info->moves_failed = c->moves_failed;
	info->cleanups = c->cleanups;
	info->balanced = balance_even(c);
	*out = o;
	*n = m;
	return OMEN_OK;
}

int coord_copies(coord *c, coord_shard_copies **out, size_t *n)
{
	if (!c->fsm)
		return status_set(OMEN_ENOTSUP, "this coordinator does not run Raft");
	meta_coll *colls;
	size_t nc, m = 0, cap = 0;
	int st = fsm_coll_list(c->fsm, &colls, &nc);
	coord_shard_copies *o = NULL;
	for (size_t j = 0; st == OMEN_OK && j < nc; j++) {
		meta_copies *cp;
		uint32_t ns;
		if (colls[j].replicas < 2 ||
		    fsm_shard_copies(c->fsm, colls[j].name, &cp, &ns, NULL) != OMEN_OK)
			continue;
		if (m + ns > cap) {
			cap = (m + ns) * 2;
			coord_shard_copies *grown = realloc(o, cap * sizeof *o);
			if (!grown) {
				free(cp);
				st = status_set(OMEN_ENOMEM, "out of memory");
				break;
			}
			o = grown;
		}
		for (uint32_t s = 0; s < ns; s++, m++) {
			memset(&o[m], 0, sizeof o[m]);
			snprintf(o[m].coll, sizeof o[m].coll, "%s", colls[j].name);
			o[m].shard = s;
			o[m].n = cp[s].n;
			for (uint32_t k = 0; k < cp[s].n; k++)
				o[m].node[k] = cp[s].node[k],
				o[m].in_sync[k] = cp[s].state[k] == META_COPY_IN_SYNC;
		}
		free(cp);
	}
	free(colls);
	if (st != OMEN_OK) {
		free(o);
		return st;
	}
	*out = o;
	*n = m;
	return OMEN_OK;
}

int coord_drain(coord *c, uint64_t id)
{
	if (!c->cons)
		return status_set(OMEN_ENOTSUP, "this coordinator does not run Raft");
	if (!cons_is_leader(c->cons))
		return not_leader(c, cons_leader(c->cons));
	meta_node n;
	int st = fsm_node_get(c->fsm, id, &n);
	if (st == OMEN_OK && !meta_is_shard(n.role))
		st = status_set(OMEN_EINVAL, "node %llu is a coordinator", (unsigned long long)id);
	if (st != OMEN_OK || n.role == META_ROLE_DRAINING)
		return st;
	meta_cmd cmd = {.kind = CMD_NODE_SET};
	cmd.node = n;
	cmd.node.role = META_ROLE_DRAINING;
	fsm_result res;
	st = rmeta_apply(c, &cmd, &res);
	if (st == OMEN_OK)
		log_msg(LOG_INFO, "node %llu (%s) is draining", (unsigned long long)id, n.addr);
	return st;
}
