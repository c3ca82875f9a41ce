/*
 * The coordinator's routing, scatter and gather. A point's logical shard is a 64-bit hash of
 * its id (XXH3 of the id's 8 little-endian bytes) modulo the collection's number of logical
 * shards; logical shard s lives on shard node s mod (number of nodes). Writes are split by
 * shard and sent in parallel; searches go to every logical shard at once with a deadline and
 * each shard's top-k is merged into the global top-k, ties broken by the smaller id.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "base/base.h"
#include "coordinator/internal.h"
#include "storage/storage.h"
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

/* ---- nodes ---- */

/* Sends op to every shard node (not per logical shard): those the node table holds (Raft),
 * else those configured. *nodes receives how many were asked; returns how many answered. */
static uint32_t ask_nodes(coord *c, wire_op op, part **out, uint32_t *nodes)
{
	coll_info ci = {.nshards = (uint32_t)c->nnodes};
	size_t n = 0;
	if (c->fsm && rmeta_shard_peers(c, &ci.to, &n) == OMEN_OK)
		ci.nshards = (uint32_t)n;
	wire_req q;
	wire_req_init(&q);
	q.op = op;
	part *p = co_parts_new(&ci, &q);
	free(ci.to);
	*out = p;
	*nodes = ci.nshards;
	if (!p)
		return 0;
	for (uint32_t s = 0; s < ci.nshards; s++)
		p[s].req.name[0] = 0, p[s].req.shard = (int32_t)s, p[s].req.dim = 0;
	return ci.nshards - co_scatter(c, p, ci.nshards, c->cfg.deadline_ms);
}

static int do_nodes(coord *c, const wire_req *q, wire_rep *r)
{
	part *p = NULL;
	uint32_t n, up = ask_nodes(c, q->op, &p, &n);
	if (!p)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = OMEN_OK;
	if (q->op == WIRE_HEALTH) {
		r->count = up;
		r->shards_total = n;
		r->shards_answered = up;
	} else if (up < n) {
		st = co_gather_status(c, p, n, wire_op_name(q->op));
	} else if (q->op == WIRE_DBSTATS) {
		coll_info *v;
		size_t nc;
		if ((st = co_list_all(c, &v, &nc)) == OMEN_OK)
			free(v), r->dbstats.collections = nc;
		for (uint32_t s = 0; s < n; s++)
			r->dbstats.file_bytes += p[s].rep.dbstats.file_bytes,
			    r->dbstats.map_bytes += p[s].rep.dbstats.map_bytes;
		r->has_dbstats = st == OMEN_OK;
	}
	co_parts_free(p, n);
	return st;
}

/* ---- the coordinator ---- */

static void handle_once(coord *c, const wire_req *q, wire_rep *r);

/* An upsert that needs ids gets them once, before any attempt, so that a retry writes the same
 * points again instead of new copies under other ids. NULL when the request is refused (the
 * attempt reports why). */
static uint64_t *ids_up_front(coord *c, const wire_req *q)
{
	coll_info ci;
	uint64_t *ids = NULL;
	if (co_lookup(c, q->name, &ci) == OMEN_OK && co_batch_check(&ci, q) == OMEN_OK &&
	    co_ids_assign(c, &ci, q, &ids) != OMEN_OK)
		ids = NULL;
	return ids;
}

void coord_handle(coord *c, const wire_req *q, wire_rep *r)
{
	if (rmeta_must_forward(c, q) && rmeta_forward(c, q, r) == OMEN_OK)
		return; /* the leader's reply */
	wire_req once = *q;
	uint64_t *ids = NULL;
	if (c->fsm && q->op == WIRE_UPSERT && !q->ids && (ids = ids_up_front(c, q)))
		once.ids = ids;
	handle_once(c, &once, r);
	/* A shard saw a newer shard map than this coordinator's replica, or the logical shard is
	 * being moved: let the replica catch up, within the request's deadline. */
	uint64_t until = mono_ms() + co_deadline(c, q);
	struct timespec nap = {0, 20 * 1000 * 1000};
	while (c->fsm && r->status == OMEN_ESTALE && mono_ms() < until) {
		wire_rep_free(r);
		nanosleep(&nap, NULL);
		handle_once(c, &once, r);
	}
	free(ids);
}

static void handle_once(coord *c, const wire_req *q, wire_rep *r)
{
	int st;
	switch (q->op) {
	case WIRE_HEALTH:
	case WIRE_DBSTATS:
	case WIRE_FLUSH:
		st = do_nodes(c, q, r);
		break;
	case WIRE_CREATE:
		st = co_do_create(c, q);
		break;
	case WIRE_DROP:
		st = co_do_drop(c, q);
		break;
	case WIRE_LIST:
		st = co_do_list(c, r);
		break;
	case WIRE_STATS:
	case WIRE_COUNT:
		st = co_do_stats(c, q, r);
		break;
	case WIRE_UPSERT:
		st = co_do_upsert(c, q, r);
		break;
	case WIRE_GET:
		st = co_do_get(c, q, r);
		break;
	case WIRE_IDS:
		st = q->mode ? status_set(OMEN_EINVAL, "ids: mode is for shard nodes")
		             : co_do_ids(c, q, r);
		break;
	case WIRE_JOIN:
		st = c->fsm ? rmeta_join(c, q)
		            : status_set(OMEN_ENOTSUP, "this coordinator does not run Raft: list "
		                                       "the shard nodes in its 'shards'");
		break;
	case WIRE_FENCE:
		st = status_set(OMEN_ENOTSUP, "'fence' is for shard nodes");
		break;
	case WIRE_COPYFAIL:
		st = c->fsm ? rmeta_copy_fail_req(c, q, r)
		            : status_set(OMEN_ENOTSUP, "this coordinator does not run Raft");
		break;
	case WIRE_DELETE:
		st = co_do_delete(c, q, r);
		break;
	case WIRE_SEARCH:
		st = co_do_search(c, q, r);
		break;
	case WIRE_BUILD:
		st = co_do_build(c, q);
		break;
	case WIRE_CHECK:
		st = co_do_check(c, q, r);
		break;
	default:
		st = status_set(OMEN_ENOTSUP, "unknown call");
	}
	r->status = st;
	if (st != OMEN_OK && !r->message)
		r->message = strdup(status_msg());
}

static void serve(void *ctx, const wire_req *q, wire_rep *r)
{
	coord_handle(ctx, q, r);
}

static void observe(void *ctx, wire_op op, int status, double seconds)
{
	coord *c = ctx;
	metrics_observe(c->metrics, "nng", op, status, seconds);
}

int coord_shard_points(coord *c,
                       void (*fn)(void *ctx, const char *coll, uint32_t shard, const char *node,
                                  uint64_t points),
                       void *ctx)
{
	coll_info *v;
	size_t n;
	int st = co_list_all(c, &v, &n);
	if (st != OMEN_OK)
		return st;
	for (size_t i = 0; i < n; i++) {
		wire_req q;
		wire_req_init(&q);
		q.op = WIRE_COUNT;
		strcpy(q.name, v[i].name);
		part *p = co_parts_new(&v[i], &q);
		if (!p)
			break;
		co_scatter(c, p, v[i].nshards, c->cfg.deadline_ms);
		for (uint32_t s = 0; s < v[i].nshards; s++)
			fn(ctx, v[i].name, s, peer_url(co_part_peer(c, &p[s])),
			   p[s].st == OMEN_OK ? p[s].rep.count : UINT64_MAX);
		co_parts_free(p, v[i].nshards);
	}
	free(v);
	return OMEN_OK;
}

const char *coord_token(const coord *c)
{
	return c->token;
}

size_t coord_max_message(const coord *c)
{
	return c->cfg.max_message;
}

int coord_port(const coord *c)
{
	return srv_port(c->srv);
}

static int coord_connect(coord *c)
{
	c->nodes = calloc(c->cfg.nshards, sizeof *c->nodes);
	if (!c->nodes)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; i < c->cfg.nshards; i++) {
		int st = peer_open(c->cfg.shards[i], c->cfg.max_message, &c->nodes[i]);
		if (st != OMEN_OK)
			return st;
		c->nnodes++;
	}
	return OMEN_OK;
}

int coord_start(const coord_config *cfg, coord **out)
{
	if (!cfg || !cfg->data || !cfg->listen || (cfg->nshards == 0 && !cfg->raft_id))
		return status_set(OMEN_EINVAL, "a coordinator needs a data directory, a listen "
		                               "address and at least one shard node (or Raft, "
		                               "with which shard nodes register themselves)");
	coord *c = calloc(1, sizeof *c);
	if (!c)
		return status_set(OMEN_ENOMEM, "out of memory");
	c->cfg = *cfg;
	c->cfg.data = NULL; /* used during the start only (below) */
	c->cfg.peers = NULL;
	coord_peer *peers = cfg->npeers ? calloc(cfg->npeers, sizeof *peers) : NULL;
	if (cfg->npeers && !peers) {
		free(c);
		return status_set(OMEN_ENOMEM, "out of memory");
	}
	if (peers)
		memcpy(peers, cfg->peers,
		       cfg->npeers * sizeof *peers); /* strings stay the caller's */
	c->cfg.peers = peers;
	c->cfg.data = cfg->data;
	if (!c->cfg.deadline_ms)
		c->cfg.deadline_ms = 5000;
	if (!c->cfg.max_message)
		c->cfg.max_message = WIRE_MAX_MSG_DEFAULT;
	if (!c->cfg.workers)
		c->cfg.workers = 16;
	if (!c->cfg.default_shards)
		c->cfg.default_shards = COORD_DEFAULT_SHARDS;
	c->token = cfg->token && *cfg->token ? strdup(cfg->token) : NULL;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->rmu, NULL);
	int st = (c->metrics = metrics_new()) ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK)
		st = coord_connect(c);
	if (st == OMEN_OK)
		st = cfg->raft_id ? rmeta_start(c) : meta_open(&c->meta, cfg->data);
	srv_config sc = {cfg->listen,   c->cfg.workers, c->cfg.max_message, c->token, serve, c,
	                 "coordinator", observe};
	if (st == OMEN_OK)
		st = srv_start(&sc, &c->srv);
	if (st == OMEN_OK && cfg->http && *cfg->http)
		st = http_start(c, c->metrics, cfg->http, &c->http);
	if (st != OMEN_OK) {
		coord_stop(c);
		return st;
	}
	*out = c;
	return OMEN_OK;
}

void coord_stop(coord *c)
{
	if (!c)
		return;
	http_stop(c->http);
	srv_stop(c->srv);
	if (c->fsm || c->cons)
		rmeta_stop(c);
	for (size_t i = 0; i < c->nnodes; i++)
		peer_close(c->nodes[i]);
	free(c->nodes);
	while (c->ids) {
		next_id *e = c->ids;
		c->ids = e->link;
		free(e);
	}
	meta_close(&c->meta);
	metrics_free(c->metrics);
	pthread_mutex_destroy(&c->mu);
	free((void *)c->cfg.peers);
	free(c->token);
	free(c);
}
