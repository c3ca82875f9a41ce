/*
 * The remote client: the public API over the wire protocol to a coordinator. Arguments are
 * checked here as the embedded engine checks them, so that a mistake costs no round trip and
 * gets the same message; the coordinator checks again. Batches larger than one message are
 * sent as several requests of at most CLIENT_PIECE_BYTES.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"

#define CLIENT_PIECE_BYTES (32u << 20)

int client_connect(const char *url, const omen_connect_options *opt, rdb **out)
{
	omen_connect_options d;
	connect_options_default(&d);
	if (opt)
		d = *opt;
	if (!url || strncmp(url, "tcp://", 6) != 0)
		return status_set(OMEN_EINVAL, "a remote database URL is tcp://host:port");
	if (d.timeout_ms < 1 || d.timeout_ms > 3600000)
		return status_set(OMEN_EINVAL, "timeout_ms must be 1 to 3600000");
	rdb *db = calloc(1, sizeof *db);
	if (!db)
		return status_set(OMEN_ENOMEM, "out of memory");
	db->timeout_ms = d.timeout_ms;
	db->token = d.token ? strdup(d.token) : NULL;
	int st = peer_open(url, WIRE_MAX_MSG_DEFAULT, &db->p);
	if (st != OMEN_OK) {
		client_close(db);
		return st;
	}
	*out = db;
	return OMEN_OK;
}

void client_close(rdb *db)
{
	if (!db)
		return;
	peer_close(db->p);
	free(db->token);
	free(db);
}

/* Sends q and waits for the reply (at most timeout_ms; 0 = no limit); the reply's status
 * comes back with its message. */
static int call_for(rdb *db, wire_req *q, wire_rep *r, uint32_t timeout_ms)
{
	q->token = db->token;
	wire_rep_init(r);
	int st = peer_request(db->p, q, timeout_ms, r);
	q->token = NULL;
	return st;
}

static int call(rdb *db, wire_req *q, wire_rep *r)
{
	return call_for(db, q, r, db->timeout_ms);
}

static int name_req(wire_req *q, wire_op op, const char *name)
{
	wire_req_init(q);
	q->op = op;
	int st = name_check(name);
	if (st == OMEN_OK)
		strcpy(q->name, name);
	return st;
}

/* A call with no result but its status. */
static int simple(rdb *db, wire_req *q)
{
	wire_rep r;
	int st = call(db, q, &r);
	wire_rep_free(&r);
	return st;
}

int client_flush(rdb *db)
{
	wire_req q;
	wire_req_init(&q);
	q.op = WIRE_FLUSH;
	return simple(db, &q);
}

int client_db_stats_get(rdb *db, omen_db_stats *out)
{
	if (!out)
		return status_set(OMEN_EINVAL, "NULL argument");
	wire_req q;
	wire_rep r;
	wire_req_init(&q);
	q.op = WIRE_DBSTATS;
	int st = call(db, &q, &r);
	if (st == OMEN_OK && !r.has_dbstats)
		st = status_set(OMEN_EPROTO, "the coordinator's reply holds no statistics");
	if (st == OMEN_OK)
		*out = r.dbstats;
	wire_rep_free(&r);
	return st;
}

_Static_assert(OMEN_MAX_SHARDS == WIRE_MAX_SHARDS, "the API's and the wire's shard limits");
_Static_assert(OMEN_MAX_REPLICAS == WIRE_MAX_REPLICAS, "the API's and the wire's copy limits");

/* opt is not NULL (api.c fills the defaults). Its limits are checked here: a value the wire
 * cannot carry would fail as a malformed message instead of a bad argument. */
int client_create_collection(rdb *db, const char *name, size_t dim, omen_metric metric,
                             const omen_collection_options *opt)
{
	wire_req q;
	int st = name_req(&q, WIRE_CREATE, name);
	if (st != OMEN_OK)
		return st;
	if (dim < 1 || dim > OMEN_MAX_DIM)
		return status_set(OMEN_EINVAL, "dimension must be 1 to %d, got %zu", OMEN_MAX_DIM,
		                  dim);
	if (metric != OMEN_METRIC_L2 && metric != OMEN_METRIC_IP && metric != OMEN_METRIC_COSINE)
		return status_set(OMEN_EINVAL, "unknown metric %d", (int)metric);
	if (opt->shards > OMEN_MAX_SHARDS)
		return status_set(OMEN_EINVAL,
		                  "shards must be 0 (the cluster's default) to %d, got %u",
		                  OMEN_MAX_SHARDS, opt->shards);
	if (opt->replicas > OMEN_MAX_REPLICAS)
		return status_set(OMEN_EINVAL, "replicas must be 0 (one copy) to %d, got %u",
		                  OMEN_MAX_REPLICAS, opt->replicas);
	q.dim = (uint32_t)dim;
	q.metric = metric;
	q.nshards = opt->shards;
	q.replicas = opt->replicas;
	return simple(db, &q);
}

int client_drop_collection(rdb *db, const char *name)
{
	wire_req q;
	int st = name_req(&q, WIRE_DROP, name);
	return st == OMEN_OK ? simple(db, &q) : st;
}

int client_list_collections(rdb *db, char ***names_out, size_t *n_out)
{
	if (!names_out || !n_out)
		return status_set(OMEN_EINVAL, "NULL argument");
	wire_req q;
	wire_rep r;
	wire_req_init(&q);
	q.op = WIRE_LIST;
	int st = call(db, &q, &r);
	if (st == OMEN_OK) {
		*names_out = r.names ? r.names : calloc(1, sizeof(char *));
		*n_out = r.nnames;
		r.names = NULL;
		r.nnames = 0;
		if (!*names_out)
			st = status_set(OMEN_ENOMEM, "out of memory");
	}
	wire_rep_free(&r);
	return st;
}

/* Statistics of a collection; with partial, shards that do not answer are left out. */
static int stats_call(rdb *db, const char *name, int partial, omen_collection_stats *out)
{
	wire_req q;
	wire_rep r;
	int st = name_req(&q, WIRE_STATS, name);
	if (st != OMEN_OK)
		return st;
	q.partial = partial;
	st = call(db, &q, &r);
	if (st == OMEN_OK && !r.has_stats)
		st = status_set(OMEN_EPROTO, "the coordinator's reply holds no statistics");
	if (st == OMEN_OK)
		*out = r.stats;
	wire_rep_free(&r);
	return st;
}

int client_collection_open(rdb *db, const char *name, rcoll **out)
{
	omen_collection_stats s;
	int st = stats_call(db, name, 1, &s); /* needs only the dimension and metric */
	if (st != OMEN_OK)
		return st;
	rcoll *c = calloc(1, sizeof *c);
	if (!c)
		return status_set(OMEN_ENOMEM, "out of memory");
	c->db = db;
	strcpy(c->name, name);
	c->dim = s.dim;
	c->metric = s.metric;
	*out = c;
	return OMEN_OK;
}

void client_collection_close(rcoll *c)
{
	free(c);
}

int client_collection_stats_get(rcoll *c, omen_collection_stats *out)
{
	if (!out)
		return status_set(OMEN_EINVAL, "NULL argument");
	return stats_call(c->db, c->name, 0, out);
}

int client_count(rcoll *c, uint64_t *out)
{
	if (!out)
		return status_set(OMEN_EINVAL, "NULL argument");
	wire_req q;
	wire_rep r;
	name_req(&q, WIRE_COUNT, c->name);
	int st = call(c->db, &q, &r);
	if (st == OMEN_OK)
		*out = r.count;
	wire_rep_free(&r);
	return st;
}

int client_list_ids(rcoll *c, uint64_t start, size_t max, uint64_t *ids, size_t *n)
{
	if (!ids || !n)
		return status_set(OMEN_EINVAL, "NULL argument");
	if (max < 1 || max > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "list ids: max must be 1..%d", OMEN_MAX_BATCH);
	wire_req q;
	wire_rep r;
	name_req(&q, WIRE_IDS, c->name);
	q.n = max;
	q.start = start;
	int st = call(c->db, &q, &r);
	if (st == OMEN_OK && r.n > max)
		st = status_set(OMEN_EPROTO, "the coordinator sent %llu ids, %zu asked",
		                (unsigned long long)r.n, max);
	if (st == OMEN_OK) {
		if (r.n)
			memcpy(ids, r.ids, r.n * sizeof *ids);
		*n = (size_t)r.n;
	}
	wire_rep_free(&r);
	return st;
}

static int dim_check(const rcoll *c, size_t dim)
{
	if (dim != c->dim)
		return status_set(OMEN_EINVAL, "collection '%s': dimension %u expected, got %zu",
		                  c->name, c->dim, dim);
	return OMEN_OK;
}

/* How many points from `from` on fit in one message. */
static size_t piece(const omen_batch *b, size_t from)
{
	size_t bytes = 0, i = from;
	while (i < b->n) {
		size_t one =
		    b->dim * 4 + 16 + (b->metadata && b->metadata[i] ? strlen(b->metadata[i]) : 0);
		if (i > from && bytes + one > CLIENT_PIECE_BYTES)
			break;
		bytes += one;
		i++;
	}
	return i - from;
}

int client_upsert(rcoll *c, const omen_batch *b, uint64_t *assigned_ids)
{
	if (!b || !b->vectors)
		return status_set(OMEN_EINVAL, "batch or its vectors are NULL");
	if (b->n < 1 || b->n > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "batch size must be 1 to %d, got %zu",
		                  OMEN_MAX_BATCH, b->n);
	int st = dim_check(c, b->dim);
	for (size_t at = 0, n; st == OMEN_OK && at < b->n; at += n) {
		n = piece(b, at);
		wire_req q;
		wire_rep r;
		name_req(&q, WIRE_UPSERT, c->name);
		q.n = n;
		q.dim = (uint32_t)b->dim;
		q.ids = b->ids ? (uint64_t *)(b->ids + at) : NULL;
		q.vectors = (float *)(b->vectors + at * b->dim);
		q.meta = b->metadata ? (char **)(b->metadata + at) : NULL;
		st = call(c->db, &q, &r);
		if (st == OMEN_OK && r.n != n)
			st = status_set(OMEN_EPROTO,
			                "the coordinator acknowledged %llu points of %zu",
			                (unsigned long long)r.n, n);
		if (st == OMEN_OK && assigned_ids)
			memcpy(assigned_ids + at, r.ids, n * sizeof *assigned_ids);
		wire_rep_free(&r);
	}
	return st;
}

int client_get(rcoll *c, const uint64_t *ids, size_t n, float *vectors, char **metadata,
               uint8_t *found)
{
	if (!ids || !found)
		return status_set(OMEN_EINVAL, "ids or found is NULL");
	if (n > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "at most %d ids per call", OMEN_MAX_BATCH);
	if (n == 0)
		return OMEN_OK;
	wire_req q;
	wire_rep r;
	name_req(&q, WIRE_GET, c->name);
	q.n = n;
	q.ids = (uint64_t *)ids;
	int st = call(c->db, &q, &r);
	if (st == OMEN_OK && (r.n != n || r.dim != c->dim || !r.found))
		st = status_set(OMEN_EPROTO, "the coordinator's answer has the wrong shape");
	if (st == OMEN_OK) {
		memcpy(found, r.found, n);
		if (vectors)
			memcpy(vectors, r.vectors, n * c->dim * sizeof *vectors);
		for (size_t i = 0; metadata && i < n; i++) {
			metadata[i] = r.meta ? r.meta[i] : NULL;
			if (r.meta)
				r.meta[i] = NULL;
		}
	}
	wire_rep_free(&r);
	return st;
}

int client_delete(rcoll *c, const uint64_t *ids, size_t n, size_t *deleted)
{
	if (!ids && n)
		return status_set(OMEN_EINVAL, "ids is NULL");
	if (n > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "at most %d ids per call", OMEN_MAX_BATCH);
	size_t total = 0;
	int st = OMEN_OK;
	for (size_t at = 0, m; st == OMEN_OK && at < n; at += m) {
		m = n - at < CLIENT_PIECE_BYTES / 8 ? n - at : CLIENT_PIECE_BYTES / 8;
		wire_req q;
		wire_rep r;
		name_req(&q, WIRE_DELETE, c->name);
		q.n = m;
		q.ids = (uint64_t *)(ids + at);
		st = call(c->db, &q, &r);
		total += (size_t)r.count;
		wire_rep_free(&r);
	}
	if (st == OMEN_OK && deleted)
		*deleted = total;
	return st;
}

/* Searches queries [at, at + n) in one request. */
static int search_piece(rcoll *c, const float *queries, size_t at, size_t n,
                        const omen_search_params *p, uint64_t *ids_out, float *dists_out,
                        omen_search_info *info)
{
	wire_req q;
	wire_rep r;
	name_req(&q, WIRE_SEARCH, c->name);
	q.n = n;
	q.dim = c->dim;
	q.vectors = (float *)(queries + at * c->dim);
	q.k = (uint32_t)p->k;
	q.ef = (uint32_t)p->ef;
	q.nprobe = (uint32_t)p->nprobe;
	q.exact = p->exact;
	q.partial = p->partial;
	q.filter = (char *)p->filter;
	int st = call(c->db, &q, &r);
	if (st == OMEN_OK && (r.n != n || r.k != p->k))
		st = status_set(OMEN_EPROTO, "the coordinator's answer has the wrong shape");
	if (st == OMEN_OK) {
		memcpy(ids_out + at * p->k, r.ids, n * p->k * sizeof *ids_out);
		memcpy(dists_out + at * p->k, r.dists, n * p->k * sizeof *dists_out);
		info->shards_total = r.shards_total;
		info->path = "cluster";
		if (at == 0 || r.shards_answered < info->shards_answered)
			info->shards_answered = r.shards_answered;
	}
	wire_rep_free(&r);
	return st;
}

int client_search(rcoll *c, const float *queries, size_t nq, size_t dim,
                  const omen_search_params *params, uint64_t *ids_out, float *dists_out)
{
	omen_search_params p;
	search_params_default(&p);
	if (params)
		p = *params;
	if (nq && (!queries || !ids_out || !dists_out))
		return status_set(OMEN_EINVAL, "NULL argument");
	int st = dim_check(c, dim);
	if (st != OMEN_OK)
		return st;
	if (nq > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "query count must be 0 to %d, got %zu",
		                  OMEN_MAX_BATCH, nq);
	if (p.k < 1 || p.k > OMEN_MAX_K)
		return status_set(OMEN_EINVAL, "k must be 1 to %d, got %zu", OMEN_MAX_K, p.k);
	if (p.ef > OMEN_HNSW_EF_MAX)
		return status_set(OMEN_EINVAL, "ef must be at most %d, got %zu", OMEN_HNSW_EF_MAX,
		                  p.ef);
	if (p.nprobe > OMEN_IVF_NLIST_MAX) /* no index has more lists: every shard refuses it */
		return status_set(OMEN_EINVAL, "nprobe %zu exceeds the most lists an index has, %d",
		                  p.nprobe, OMEN_IVF_NLIST_MAX);
	size_t row = dim * 4 + p.k * 12,
	       per = CLIENT_PIECE_BYTES / row ? CLIENT_PIECE_BYTES / row : 1;
	omen_search_info info = {0, 0, "cluster", 0}; /* no queries: no shard is asked */
	for (size_t at = 0; st == OMEN_OK && at < nq; at += per)
		st = search_piece(c, queries, at, nq - at < per ? nq - at : per, &p, ids_out,
		                  dists_out, &info);
	if (st == OMEN_OK && p.info)
		*p.info = info;
	return st;
}

int client_build_index(rcoll *c, const omen_index_params *params)
{
	omen_index_params p;
	index_params_default(&p);
	if (params)
		p = *params;
	int st = index_params_check(&p); /* the shards' messages, without a round trip */
	if (st != OMEN_OK)
		return st;
	wire_req q;
	name_req(&q, WIRE_BUILD, c->name);
	q.index_type = p.type;
	q.m = p.m;
	q.ef_construction = p.ef_construction;
	q.int8 = p.int8;
	q.nlist = p.nlist;
	q.bits = p.bits;
	q.ram_budget = p.ram_budget;
	wire_rep r;
	st = call_for(c->db, &q, &r, 0); /* a build takes as long as it takes */
	wire_rep_free(&r);
	return st;
}

int client_check(rcoll *c, char **report)
{
	wire_req q;
	wire_rep r;
	name_req(&q, WIRE_CHECK, c->name);
	int st = call(c->db, &q, &r);
	if (report && r.report) {
		*report = r.report;
		r.report = NULL;
	}
	wire_rep_free(&r);
	return st;
}
