/*
 * omen_search: validates the request, normalises cosine queries, opens a snapshot, and picks
 * the path. Exact search serves collections without an index, requests that ask for it, and
 * selective filters (fewer than 1/8 of the rows match: visiting the matches beats the graph).
 * Otherwise HNSW serves the indexed rows and an exact scan the rows written since the index
 * was built, and the two result lists are merged.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

/* Validates the queries and, for cosine, normalises them into *copy. */
static int check_queries(eng_coll *c, const float *qs, size_t nq, float **copy)
{
	size_t dim = c->dim;
	*copy = NULL;
	if (c->metric == OMEN_METRIC_COSINE && nq && !(*copy = mem_alloc(nq * dim * sizeof **copy)))
		return status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; i < nq; i++) {
		double ss = 0;
		for (size_t j = 0; j < dim; j++) {
			float x = qs[i * dim + j];
			if (!isfinite(x))
				return status_set(OMEN_EINVAL, "query %zu component %zu is %s", i,
				                  j, isnan(x) ? "NaN" : "infinite");
			ss += (double)x * x;
		}
		if (*copy) {
			if (ss == 0)
				return status_set(OMEN_EINVAL, "query %zu is a zero vector", i);
			for (size_t j = 0; j < dim; j++)
				(*copy)[i * dim + j] = (float)(qs[i * dim + j] / sqrt(ss));
		}
	}
	return OMEN_OK;
}

static int check_params(eng_coll *c, size_t nq, size_t dim, const omen_search_params *p)
{
	if (nq > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "query count must be 0 to %d, got %zu",
		                  OMEN_MAX_BATCH, nq);
	if (dim != c->dim)
		return status_set(OMEN_EINVAL, "collection '%s': dimension %u expected, got %zu",
		                  c->name, c->dim, dim);
	if (p->k < 1 || p->k > OMEN_MAX_K)
		return status_set(OMEN_EINVAL, "k must be 1 to %d, got %zu", OMEN_MAX_K, p->k);
	if (p->ef > OMEN_HNSW_EF_MAX)
		return status_set(OMEN_EINVAL, "ef must be at most %d, got %zu", OMEN_HNSW_EF_MAX,
		                  p->ef);
	if (p->threads < 0 || p->threads > 1024)
		return status_set(OMEN_EINVAL, "threads must be 0 to 1024, got %d", p->threads);
	if (p->device != OMEN_DEVICE_AUTO && p->device != OMEN_DEVICE_CPU &&
	    p->device != OMEN_DEVICE_GPU)
		return status_set(OMEN_EINVAL, "unknown device %d", (int)p->device);
	return OMEN_OK;
}

/* Runs the request on the snapshot by the path that fits; *path names it. A request of no
 * queries only picks the path. */
static int run(const snapshot *s, MDB_txn *txn, search_req *req, bool exact, const char **path)
{
	eng_coll *c = s->c;
	if (req->k > s->rec.points)
		return status_set(OMEN_EINVAL, "k=%zu exceeds the %llu points of collection '%s'",
		                  req->k, (unsigned long long)s->rec.points, c->name);
	hnsw_info hi;
	ivf_info vi;
	bool selective = s->allow && snap_allowed(s) * 8 < s->rec.rows;
	int st = exact || selective ? OMEN_ENOTFOUND : hnsw_info_get(c, txn, &hi);
	if (st == OMEN_OK) {
		*path = "cpu-hnsw";
		return req->nq ? hnsw_search(s, txn, req) : OMEN_OK;
	}
	if (st == OMEN_ENOTFOUND && !exact && !selective)
		st = ivf_info_get(c, txn, &vi);
	if (st == OMEN_OK) {
		*path = "cpu-ivf";
		if (req->nprobe > vi.nlist)
			return status_set(OMEN_EINVAL, "nprobe %zu exceeds the index's %u lists",
			                  req->nprobe, vi.nlist);
		return req->nq ? ivf_search(s, txn, req) : OMEN_OK;
	}
	if (st != OMEN_ENOTFOUND)
		return st;
	st = req->nq ? flat_search(s, req) : OMEN_OK;
	*path = req->used_gpu ? "gpu-exact" : "cpu-exact";
	req->vectors_read = req->nq * snap_allowed(s);
	return st;
}

int eng_search(eng_coll *c, const float *queries, size_t nq, size_t dim,
               const omen_search_params *params, uint64_t *ids_out, float *dists_out)
{
	omen_search_params defaults;
	if (!params) {
		search_params_default(&defaults);
		params = &defaults;
	}
	if (!c || (nq && (!queries || !ids_out || !dists_out)))
		return status_set(OMEN_EINVAL, "NULL argument");
	int st = check_params(c, nq, dim, params);
	float *copy = NULL;
	if (st == OMEN_OK)
		st = check_queries(c, queries, nq, &copy);
	MDB_txn *txn = NULL;
	if (st == OMEN_OK)
		st = store_read_begin(c->db->st, &txn);
	snapshot s;
	if (st == OMEN_OK)
		st = snap_open(c, txn, params->filter, &s);
	const char *path = "cpu-exact";
	uint64_t read = 0;
	if (st == OMEN_OK) {
		size_t ef = params->ef ? params->ef : OMEN_HNSW_EF_DEFAULT;
		search_req req = {.queries = copy ? copy : queries,
		                  .nq = nq,
		                  .k = params->k,
		                  .threads = params->threads,
		                  .ef = ef < params->k ? params->k : ef,
		                  .ids_out = ids_out,
		                  .dists_out = dists_out,
		                  .device = params->device,
		                  .nprobe = params->nprobe};
		st = run(&s, txn, &req, params->exact != 0, &path);
		read = req.vectors_read;
		snap_close(&s);
	}
	if (txn)
		store_read_end(c->db->st, txn);
	mem_free(copy);
	if (st == OMEN_OK && params->info)
		*params->info = (omen_search_info){1, 1, path, read};
	return st;
}
