/*
 * The HTTP endpoint's routes (docs/HTTP.md): the route table and one function per route, each
 * turning a JSON request into a wire request for coord_handle and its reply into a JSON
 * response. They run on the server's worker threads (http.c) and may block.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "coordinator/http.h"

static json_int_t ji(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (json_int_t)v;
}

/* Reads a request's fields into req: false after making the response the error. */
typedef bool (*fields_fn)(http_call *call, wire_req *req);

/* Makes the response of a call that succeeded. */
typedef void (*put_fn)(http_call *call, const wire_req *req, const wire_rep *rep);

/* A call with no fields but the collection in the path. */
static bool no_fields(http_call *call, wire_req *req)
{
	return true;
}

/* A get or a delete of no ids: answered without asking any shard. */
static bool asks_nothing(const wire_req *req)
{
	return (req->op == WIRE_GET || req->op == WIRE_DELETE) && req->n == 0;
}

/* What every route that makes one call of op does: reads the fields into a request, sends it
 * through the coordinator and answers with put, or with the error the fields or the reply
 * carry. */
static void serve(http_call *call, wire_op op, fields_fn fields, put_fn put)
{
	wire_req req;
	wire_rep rep;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = op;
	if (call->name[0])
		snprintf(req.name, sizeof req.name, "%s", call->name);
	if (!fields(call, &req))
		goto done;
	if (!asks_nothing(&req))
		coord_handle(call->c, &req, &rep);
	if (rep.status != OMEN_OK)
		http_out_rep_error(call->out, &rep);
	else
		put(call, &req, &rep);
done:
	wire_req_free(&req);
	wire_rep_free(&rep);
}

/* The response of an administrative call that returned st: {key: value}, or the error. */
static void out_admin(http_call *call, int st, const char *key, uint64_t value)
{
	if (st != OMEN_OK)
		http_out_error(call->out, st, 0, "%s", status_msg());
	else
		http_out_json(call->out, 200, json_pack("{s:I}", key, ji(value)));
}

/* ---- Administration (Raft) ---------------------------------------------------------------- */

/* POST /admin/leader {"to": ID}: hands the Raft leadership to coordinator ID (0: any), for
 * maintenance of the current leader. Served by the leader. */
static void do_transfer(http_call *call)
{
	static const char *const keys[] = {"to", NULL};
	uint64_t to = 0, leader = 0;
	if (jf_keys(&call->in, keys) || jf_uint(&call->in, "to", 0, 999, &to)) {
		http_in_fail(call);
		return;
	}
	int st = coord_raft_transfer(call->c, to, &leader);
	out_admin(call, st, "leader", leader);
}

/* POST /admin/coordinators {"id": N, "raft": "host:port", "listen": "tcp://..."}: adds a
 * coordinator (started with "join": true) to the Raft group as a voter. Served by the leader. */
static void do_coord_add(http_call *call)
{
	static const char *const keys[] = {"id", "raft", "listen", NULL};
	const jf *in = &call->in;
	uint64_t id = 0;
	const char *raft = NULL, *listen = NULL;
	if (jf_keys(in, keys) || jf_uint(in, "id", 1, 999, &id) || jf_required(in, "raft") ||
	    jf_str(in, "raft", &raft) || jf_required(in, "listen") ||
	    jf_str(in, "listen", &listen)) {
		http_in_fail(call);
		return;
	}
	out_admin(call, coord_raft_add(call->c, id, raft, listen), "added", id);
}

/* POST /admin/coordinators/remove {"id": N}: removes a coordinator from the Raft group (not
 * the leader: hand the leadership over first). Served by the leader. */
static void do_coord_remove(http_call *call)
{
	static const char *const keys[] = {"id", NULL};
	uint64_t id = 0;
	if (jf_keys(&call->in, keys) || jf_uint(&call->in, "id", 1, 999, &id)) {
		http_in_fail(call);
		return;
	}
	out_admin(call, coord_raft_remove(call->c, id), "removed", id);
}

/* POST /admin/drain {"id": N}: drains shard node N (docs/CLUSTER.md, "Draining"): the leader
 * moves its logical shards and copies to the other shard nodes. Served by the leader. */
static void do_drain(http_call *call)
{
	static const char *const keys[] = {"id", NULL};
	uint64_t id = 0;
	if (jf_keys(&call->in, keys) || jf_required(&call->in, "id") ||
	    jf_uint(&call->in, "id", 1, UINT64_MAX, &id)) {
		http_in_fail(call);
		return;
	}
	out_admin(call, coord_drain(call->c, id), "draining", id);
}

/* GET /admin/nodes: the nodes in this coordinator's replica, with the logical shards each
 * holds, and the state of rebalancing. */
static void do_nodes_list(http_call *call)
{
	coord_node_info *v;
	coord_cluster_info ci;
	coord_shard_copies *cp = NULL;
	size_t n, ncp = 0;
	int st = coord_nodes(call->c, &v, &n, &ci);
	if (st == OMEN_OK && (st = coord_copies(call->c, &cp, &ncp)) != OMEN_OK)
		free(v);
	if (st != OMEN_OK) {
		http_out_error(call->out, st, 0, "%s", status_msg());
		return;
	}
	json_t *a = json_array(), *copies = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(
		    a,
		    json_pack("{s:I,s:s,s:s,s:s,s:b,s:I,s:I,s:I}", "id", ji(v[i].id), "addr",
		              v[i].addr, "role", v[i].coordinator ? "coordinator" : "shard",
		              "state", v[i].up ? "up" : "down", "draining", v[i].draining, "shards",
		              ji(v[i].shards), "copies", ji(v[i].copies), "stale", ji(v[i].stale)));
	for (size_t i = 0; copies && i < ncp; i++) {
		json_t *row = json_array();
		for (uint32_t k = 0; row && k < cp[i].n; k++)
			json_array_append_new(
			    row, json_pack("{s:I,s:s}", "node", ji(cp[i].node[k]), "state",
			                   cp[i].in_sync[k] ? "in_sync" : "stale"));
		json_array_append_new(copies, json_pack("{s:s,s:I,s:o}", "collection", cp[i].coll,
		                                        "shard", ji(cp[i].shard), "copies", row));
	}
	free(v);
	free(cp);
	http_out_json(call->out, 200,
	              json_pack("{s:o,s:o,s:I,s:b,s:I,s:I,s:I}", "nodes", a, "copies", copies,
	                        "epoch", ji(ci.epoch), "balanced", ci.balanced, "moves_done",
	                        ji(ci.moves_done), "moves_failed", ji(ci.moves_failed), "cleanups",
	                        ji(ci.cleanups)));
}

/* ---- Health and metrics ------------------------------------------------------------------- */

/* GET /health */
static void put_health(http_call *call, const wire_req *req, const wire_rep *rep)
{
	json_t *o = json_pack("{s:s,s:I}", "status", "ok", "shards_up", ji(rep->count));
	uint64_t leader;
	int role = coord_raft_role(call->c, &leader);
	if (o && role >= 0) /* Raft: this coordinator's role and the leader it knows */
		json_object_set_new(
		    o, "raft",
		    json_pack("{s:b,s:I}", "leader", role == 1, "leader_id", ji(leader)));
	http_out_json(call->out, 200, o);
}

static void do_health(http_call *call)
{
	serve(call, WIRE_HEALTH, no_fields, put_health);
}

/* Escapes a Prometheus label value (backslash, double quote, newline). */
static void put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void shard_points_line(void *ctx, const char *coll, uint32_t shard, const char *node,
                              uint64_t points)
{
	FILE *f = ctx;
	if (points == UINT64_MAX) /* the node did not answer: no sample rather than a wrong one */
		return;
	fputs("omendb_shard_points{collection=\"", f);
	put_label(f, coll);
	fprintf(f, "\",shard=\"%" PRIu32 "\",node=\"", shard);
	put_label(f, node);
	fprintf(f, "\"} %" PRIu64 "\n", points);
}

/* GET /metrics: the request metrics, then live points per logical shard. */
static void do_metrics(http_call *call)
{
	char *text = NULL;
	http_ms ms;
	if (metrics_text(call->m, &text) != OMEN_OK) {
		http_out_error(call->out, OMEN_ENOMEM, 0, "out of memory");
		return;
	}
	if (!http_ms_open(&ms, call->out)) {
		free(text);
		return;
	}
	fputs(text, ms.f);
	free(text);
	fputs("# HELP omendb_shard_points Live points of a logical shard, as its node reports.\n"
	      "# TYPE omendb_shard_points gauge\n",
	      ms.f);
	int st = coord_shard_points(call->c, shard_points_line, ms.f);
	if (st != OMEN_OK)
		fprintf(ms.f, "# omendb_shard_points incomplete: %s\n", status_text(st));
	http_ms_finish(&ms, call->out, 200, CT_PROM);
}

/* ---- Collections -------------------------------------------------------------------------- */

/* GET /collections */
static void put_list(http_call *call, const wire_req *req, const wire_rep *rep)
{
	json_t *names = json_array();
	for (uint64_t i = 0; names && i < rep->nnames; i++)
		if (!rep->names || !rep->names[i] ||
		    json_array_append_new(names, json_string(rep->names[i])) != 0) {
			json_decref(names);
			names = NULL;
		}
	if (names)
		http_out_json(call->out, 200, json_pack("{s:o}", "collections", names));
	else
		http_out_bad_reply(call->out, "list");
}

static void do_list(http_call *call)
{
	serve(call, WIRE_LIST, no_fields, put_list);
}

/* POST /collections {"name", "dim", "metric", "shards", "replicas"} */
static bool create_fields(http_call *call, wire_req *req)
{
	static const char *const keys[] = {"name", "dim", "metric", "shards", "replicas", NULL};
	const jf *in = &call->in;
	const char *name = NULL, *metric = "l2";
	uint64_t dim = 0, shards = 0, replicas = 0;
	if (jf_keys(in, keys) || jf_required(in, "name") || jf_str(in, "name", &name) ||
	    jf_uint(in, "dim", 1, OMEN_MAX_DIM, &dim) || jf_str(in, "metric", &metric) ||
	    jf_uint(in, "shards", 0, WIRE_MAX_SHARDS, &shards) ||
	    jf_uint(in, "replicas", 1, WIRE_MAX_REPLICAS, &replicas) || jf_required(in, "dim"))
		return http_in_fail(call);
	if (!name_valid(name, strlen(name)))
		return http_fail_invalid(
		    call, "collection name '%.140s' must be 1..%d bytes of [A-Za-z0-9_.-]", name,
		    OMEN_MAX_NAME);
	if (metric_parse(metric, &req->metric) != OMEN_OK)
		return http_fail_invalid(
		    call, "'metric' must be \"l2\", \"ip\" or \"cosine\", got \"%.40s\"", metric);
	snprintf(req->name, sizeof req->name, "%s", name);
	req->dim = (uint32_t)dim;
	req->nshards = (uint32_t)shards;
	req->replicas = (uint32_t)replicas;
	return true;
}

static void put_created(http_call *call, const wire_req *req, const wire_rep *rep)
{
	http_out_json(call->out, 201,
	              json_pack("{s:s,s:I,s:s}", "name", req->name, "dim", (json_int_t)req->dim,
	                        "metric", metric_name(req->metric)));
}

static void do_create(http_call *call)
{
	serve(call, WIRE_CREATE, create_fields, put_created);
}

/* GET /collections/NAME */
static void put_stats(http_call *call, const wire_req *req, const wire_rep *rep)
{
	const omen_collection_stats *s = &rep->stats;
	if (!rep->has_stats) {
		http_out_bad_reply(call->out, "stats");
		return;
	}
	http_out_json(
	    call->out, 200,
	    json_pack(
	        "{s:s,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:b,s:I,s:I,s:I,s:I,s:I}",
	        "name", s->name, "dim", (json_int_t)s->dim, "metric", metric_name(s->metric),
	        "points", ji(s->points), "deleted", ji(s->deleted), "next_id", ji(s->next_id),
	        "segments", ji(s->segments), "vector_bytes", ji(s->vector_bytes), "index",
	        s->index ? s->index : "flat", "indexed", ji(s->indexed), "index_bytes",
	        ji(s->index_bytes), "hnsw_m", (json_int_t)s->hnsw_m, "hnsw_ef_construction",
	        (json_int_t)s->hnsw_ef_construction, "hnsw_int8", s->hnsw_int8 != 0, "ivf_nlist",
	        (json_int_t)s->ivf_nlist, "ivf_nprobe", (json_int_t)s->ivf_nprobe, "ivf_bits",
	        (json_int_t)s->ivf_bits, "replicas", (json_int_t)s->replicas, "copies_stale",
	        (json_int_t)s->copies_stale));
}

static void do_stats(http_call *call)
{
	serve(call, WIRE_STATS, no_fields, put_stats);
}

/* DELETE /collections/NAME */
static void put_dropped(http_call *call, const wire_req *req, const wire_rep *rep)
{
	http_out_json(call->out, 200, json_pack("{s:s}", "dropped", call->name));
}

static void do_drop(http_call *call)
{
	serve(call, WIRE_DROP, no_fields, put_dropped);
}

/* POST /collections/NAME/build {"type", "m", "ef_construction", "int8", "nlist", "bits",
 * "ram_budget"}: builds (or extends) the index on every logical shard, with no deadline. The
 * ranges are omen_index_params's; what depends on the points (nlist at most a shard's live
 * points, IVF's 1,000 points per shard) is checked against every shard's points. */
static bool build_fields(http_call *call, wire_req *req)
{
	static const char *const keys[] = {"type",  "m",    "ef_construction", "int8",
	                                   "nlist", "bits", "ram_budget",      NULL};
	const jf *in = &call->in;
	const char *type = "auto";
	uint64_t m = OMEN_HNSW_M_DEFAULT, efc = OMEN_HNSW_EFC_DEFAULT, nlist = 0,
	         bits = OMEN_IVF_BITS_DEFAULT, budget = 0;
	if (jf_keys(in, keys) || jf_str(in, "type", &type) ||
	    jf_uint(in, "m", OMEN_HNSW_M_MIN, OMEN_HNSW_M_MAX, &m) ||
	    jf_uint(in, "ef_construction", OMEN_HNSW_EFC_MIN, OMEN_HNSW_EFC_MAX, &efc) ||
	    jf_bool(in, "int8", &req->int8) ||
	    jf_uint(in, "nlist", 1, OMEN_IVF_NLIST_MAX, &nlist) || /* left out: from the points */
	    jf_uint(in, "bits", 1, OMEN_IVF_BITS_MAX, &bits) ||
	    jf_uint(in, "ram_budget", 0, UINT64_MAX, &budget))
		return http_in_fail(call);
	if (index_type_parse(type, &req->index_type) != OMEN_OK)
		return http_fail_invalid(
		    call, "'type' must be \"auto\", \"flat\", \"hnsw\" or \"ivf\", got \"%.40s\"",
		    type);
	req->m = (uint32_t)m;
	req->ef_construction = (uint32_t)efc;
	req->nlist = (uint32_t)nlist;
	req->bits = (uint32_t)bits;
	req->ram_budget = budget;
	return true;
}

static void put_built(http_call *call, const wire_req *req, const wire_rep *rep)
{
	http_out_json(
	    call->out, 200,
	    json_pack("{s:s,s:s}", "built", call->name, "type", index_type_name(req->index_type)));
}

static void do_build(http_call *call)
{
	serve(call, WIRE_BUILD, build_fields, put_built);
}

/* ---- Points ------------------------------------------------------------------------------- */

/* POST /collections/NAME/upsert {"vectors", "ids", "metadata"}. The optional "ids", one per
 * vector: none reserved, none twice (a duplicate would make one shard refuse its part of a
 * batch that other shards apply). */
static bool upsert_fields(http_call *call, wire_req *req)
{
	static const char *const keys[] = {"vectors", "ids", "metadata", NULL};
	uint64_t n = 0;
	if (jf_keys(&call->in, keys))
		return http_in_fail(call);
	if (!http_get_vectors(call, "vectors", false, &req->n, &req->dim, &req->vectors))
		return false;
	if (jf_get(&call->in, "ids") && !http_get_ids(call, "ids", req->n, &req->ids, &n))
		return false;
	int st = req->ids ? ids_check(req->ids, n) : OMEN_OK;
	if (st != OMEN_OK) {
		http_out_error(call->out, st, 0, "'ids': %s", status_msg());
		return false;
	}
	return http_get_meta(call, req->n, &req->meta);
}

/* {"ids":[...]}: the ids written, in the order of the vectors. */
static void put_ids(http_call *call, const wire_req *req, const wire_rep *rep)
{
	http_ms ms;
	if (rep->n != req->n || (req->n && !rep->ids)) {
		http_out_bad_reply(call->out, "upsert");
		return;
	}
	if (!http_ms_open(&ms, call->out))
		return;
	fputs("{\"ids\":[", ms.f);
	for (uint64_t i = 0; i < req->n; i++)
		fprintf(ms.f, "%s%" PRIu64, i ? "," : "", rep->ids[i]);
	fputs("]}", ms.f);
	http_ms_finish(&ms, call->out, 200, CT_JSON);
}

static void do_upsert(http_call *call)
{
	serve(call, WIRE_UPSERT, upsert_fields, put_ids);
}

/* The search reply as {"results":[[{"id","distance"}...]...],"coverage":{...}}, without the
 * OMEN_NO_ID entries that pad rows a filter left short. */
static void put_results(http_call *call, const wire_req *req, const wire_rep *rep)
{
	uint64_t nq = req->n;
	http_ms ms;
	uint64_t cells = rep->n * rep->k;
	if (rep->n != nq || (cells && (!rep->ids || !rep->dists))) {
		http_out_bad_reply(call->out, "search");
		return;
	}
	if (!http_ms_open(&ms, call->out))
		return;
	fputs("{\"results\":[", ms.f);
	for (uint64_t q = 0; q < nq; q++) {
		fputs(q ? ",[" : "[", ms.f);
		bool first = true;
		for (uint32_t j = 0; j < rep->k; j++) {
			uint64_t id = rep->ids[q * rep->k + j];
			if (id == OMEN_NO_ID)
				continue;
			fprintf(ms.f, "%s{\"id\":%" PRIu64 ",\"distance\":", first ? "" : ",", id);
			http_put_float(ms.f, rep->dists[q * rep->k + j]);
			fputc('}', ms.f);
			first = false;
		}
		fputc(']', ms.f);
	}
	fprintf(ms.f, "],\"coverage\":{\"answered\":%" PRIu32 ",\"total\":%" PRIu32 "}}",
	        rep->shards_answered, rep->shards_total);
	http_ms_finish(&ms, call->out, 200, CT_JSON);
}

/* The search options of the body: k, ef, nprobe, exact, partial, deadline_ms, filter. */
static bool search_options(http_call *call, wire_req *req)
{
	const jf *in = &call->in;
	uint64_t k = 10, ef = 0, nprobe = 0, deadline = 0;
	if (jf_uint(in, "k", 1, OMEN_MAX_K, &k) || jf_uint(in, "ef", 0, OMEN_HNSW_EF_MAX, &ef) ||
	    jf_uint(in, "nprobe", 1, OMEN_IVF_NLIST_MAX, &nprobe) || /* left out: the default */
	    jf_uint(in, "deadline_ms", 0, 3600000, &deadline) ||
	    jf_bool(in, "exact", &req->exact) || jf_bool(in, "partial", &req->partial))
		return http_in_fail(call);
	req->k = (uint32_t)k;
	req->ef = (uint32_t)ef;
	req->nprobe = (uint32_t)nprobe;
	req->deadline_ms = (uint32_t)deadline;
	json_t *filter = jf_get(in, "filter");
	if (filter && !json_is_object(filter))
		return http_fail_invalid(call, "'filter' must be a JSON object (docs/FILTERS.md)");
	if (filter && !(req->filter = json_dumps(filter, JSON_COMPACT))) {
		http_out_error(call->out, OMEN_ENOMEM, 0, "out of memory");
		return false;
	}
	return true;
}

/* The queries of a search, "vector" (one) or "vectors" (many), and its options. */
static bool search_fields(http_call *call, wire_req *req)
{
	static const char *const keys[] = {"vector", "vectors", "k",       "filter",      "ef",
	                                   "nprobe", "exact",   "partial", "deadline_ms", NULL};
	if (jf_keys(&call->in, keys))
		return http_in_fail(call);
	bool one = jf_get(&call->in, "vector") != NULL;
	if (one == (jf_get(&call->in, "vectors") != NULL))
		return http_fail_invalid(
		    call, "give exactly one of 'vector' (one query) and 'vectors' (many)");
	return http_get_vectors(call, one ? "vector" : "vectors", one, &req->n, &req->dim,
	                        &req->vectors) &&
	       search_options(call, req);
}

/* POST /collections/NAME/search {"vector" | "vectors", "k", "filter", "ef", "nprobe", "exact",
 * "partial", "deadline_ms"} */
static void do_search(http_call *call)
{
	serve(call, WIRE_SEARCH, search_fields, put_results);
}

/* One point of a get reply: {"id","vector","metadata"} or null. */
static void put_point(FILE *f, const wire_rep *rep, uint64_t i, uint64_t id)
{
	if (!rep->found[i]) {
		fputs("null", f);
		return;
	}
	fprintf(f, "{\"id\":%" PRIu64 ",\"vector\":[", id);
	for (uint32_t j = 0; j < rep->dim; j++) {
		if (j)
			fputc(',', f);
		http_put_float(f, rep->vectors[i * rep->dim + j]);
	}
	fputs("],\"metadata\":", f);
	const char *meta = rep->meta ? rep->meta[i] : NULL;
	fputs(meta && meta[0] == '{' ? meta : "null", f);
	fputc('}', f);
}

/* {"points":[...]}: one entry per id of req. */
static void put_points(http_call *call, const wire_req *req, const wire_rep *rep)
{
	http_ms ms;
	if (rep->n != req->n || (req->n && (!rep->found || (rep->dim && !rep->vectors)))) {
		http_out_bad_reply(call->out, "get");
		return;
	}
	if (!http_ms_open(&ms, call->out))
		return;
	fputs("{\"points\":[", ms.f);
	for (uint64_t i = 0; i < req->n; i++) {
		if (i)
			fputc(',', ms.f);
		put_point(ms.f, rep, i, req->ids[i]);
	}
	fputs("]}", ms.f);
	http_ms_finish(&ms, call->out, 200, CT_JSON);
}

/* The "ids" of a get or a delete. An empty list asks no shard (asks_nothing). */
static bool id_fields(http_call *call, wire_req *req)
{
	static const char *const keys[] = {"ids", NULL};
	if (jf_keys(&call->in, keys))
		return http_in_fail(call);
	return http_get_ids(call, "ids", UINT64_MAX, &req->ids, &req->n);
}

/* POST /collections/NAME/get {"ids"} */
static void do_get(http_call *call)
{
	serve(call, WIRE_GET, id_fields, put_points);
}

/* POST /collections/NAME/delete {"ids"} */
static void put_deleted(http_call *call, const wire_req *req, const wire_rep *rep)
{
	http_out_json(call->out, 200, json_pack("{s:I}", "deleted", ji(rep->count)));
}

static void do_delete(http_call *call)
{
	serve(call, WIRE_DELETE, id_fields, put_deleted);
}

static const http_route routes[] = {
    {"/health", "GET", WIRE_HEALTH, do_health, false},
    {"/admin/leader", "POST", HTTP_OP_NONE, do_transfer, true},
    {"/admin/nodes", "GET", HTTP_OP_NONE, do_nodes_list, false},
    {"/admin/drain", "POST", HTTP_OP_NONE, do_drain, true},
    {"/admin/coordinators", "POST", HTTP_OP_NONE, do_coord_add, true},
    {"/admin/coordinators/remove", "POST", HTTP_OP_NONE, do_coord_remove, true},
    {"/metrics", "GET", HTTP_OP_NONE, do_metrics, false},
    {"/collections", "GET", WIRE_LIST, do_list, false},
    {"/collections", "POST", WIRE_CREATE, do_create, true},
    {"/collections/*", "GET", WIRE_STATS, do_stats, false},
    {"/collections/*", "DELETE", WIRE_DROP, do_drop, false},
    {"/collections/*/build", "POST", WIRE_BUILD, do_build, true},
    {"/collections/*/upsert", "POST", WIRE_UPSERT, do_upsert, true},
    {"/collections/*/search", "POST", WIRE_SEARCH, do_search, true},
    {"/collections/*/get", "POST", WIRE_GET, do_get, true},
    {"/collections/*/delete", "POST", WIRE_DELETE, do_delete, true},
};

const http_route *http_route_find(const char *pattern, const char *method, char *allow,
                                  size_t allowlen)
{
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	size_t used = 0;
	allow[0] = '\0';
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (strcmp(routes[i].pattern, pattern) != 0)
			continue;
		if (strcmp(routes[i].method, m) == 0)
			return &routes[i];
		if (used < allowlen)
			used += (size_t)snprintf(allow + used, allowlen - used, "%s%s",
			                         used ? ", " : "", routes[i].method);
	}
	return NULL;
}
