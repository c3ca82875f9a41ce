/*
 * The engine's side of the GPU path (engine/gpu/gpu.h): one device copy per collection of a
 * database, kept current by uploading the rows appended since the last search (rows are
 * append-only: an upsert writes a new row and tombstones the old one), the bitmap of rows a
 * search must not return (tombstones and the filter), and the candidates handed back to
 * engine/flat.c for exact re-ranking.
 */
#include <roaring/roaring.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/gpu/gpu.h"

/* The device copy of one collection. */
typedef struct gpu_resident {
	uint32_t coll_id;
	gpu_coll *g;
	struct gpu_resident *next;
} gpu_resident;

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static bool probe_ok;

static void probe(void)
{
	char name[256];
	probe_ok = gpu_init(name, sizeof name) == 0;
}

bool gpu_usable(void)
{
	pthread_once(&probe_once, probe);
	return probe_ok;
}

int eng_gpu_info(char *name, size_t len)
{
	char buf[256];
	int ok = gpu_init(buf, sizeof buf) == 0;
	if (name && len)
		snprintf(name, len, "%s", buf);
	return ok ? OMEN_OK : status_set(OMEN_ENOTSUP, "%s", buf);
}

void gpu_release(eng_db *db)
{
	while (db->gpu) {
		gpu_resident *r = db->gpu;
		db->gpu = r->next;
		gpu_coll_free(r->g);
		mem_free(r);
	}
}

/* The collection's device copy (created empty when missing); db->gpu_mu is held. */
static gpu_coll *resident(eng_db *db, const eng_coll *c)
{
	for (gpu_resident *r = db->gpu; r; r = r->next)
		if (r->coll_id == c->coll_id)
			return r->g;
	gpu_resident *r = mem_calloc(1, sizeof *r);
	if (!r || !(r->g = gpu_coll_new(c->dim))) {
		mem_free(r);
		return NULL;
	}
	r->coll_id = c->coll_id;
	r->next = db->gpu;
	db->gpu = r;
	return r->g;
}

/* Uploads the snapshot's rows the device copy lacks, whole chunks at a time. */
static int upload(const snapshot *s, gpu_coll *g)
{
	uint64_t have = gpu_coll_rows(g);
	char err[256];
	for (size_t ch = (size_t)(have >> s->shift); ch < s->nchunks; ch++) {
		const chunk_view *v = &s->views[ch];
		uint64_t base = (uint64_t)ch << s->shift;
		if (base + v->count <= have)
			continue;
		if (gpu_coll_upload(g, base, v->vecs, v->norms, v->count, err, sizeof err) != 0)
			return status_set(OMEN_EIO, "GPU: %s", err);
	}
	return OMEN_OK;
}

static bool clear_allowed(uint32_t row, void *arg)
{
	uint64_t *words = arg;
	words[row >> 6] &= ~(1ull << (row & 63));
	return true;
}

/* The rows a search must skip as a bitmap of rows/64 words: tombstoned rows, and rows the
 * filter refuses. *out is NULL when there are none. */
static int excluded_rows(const snapshot *s, uint64_t rows, uint64_t **out)
{
	bool any = s->allow != NULL;
	for (size_t ch = 0; !any && ch < s->nchunks; ch++)
		any = s->tombs[ch] != NULL;
	*out = NULL;
	if (!any)
		return OMEN_OK;
	size_t nw = (size_t)((rows + 63) / 64);
	uint64_t *w = mem_alloc(nw * sizeof *w);
	if (!w)
		return status_set(OMEN_ENOMEM, "out of memory");
	memset(w, s->allow ? 0xFF : 0, nw * sizeof *w);
	if (s->allow)
		roaring_iterate(s->allow, clear_allowed, w);
	uint32_t cap = s->c->cap;
	for (size_t ch = 0; ch < s->nchunks; ch++) {
		const uint64_t *t = s->tombs[ch];
		uint64_t base = (uint64_t)ch << s->shift;
		if (!t)
			continue;
		if (cap % 64 == 0) { /* chunk bitsets are whole words: OR them in */
			for (uint32_t i = 0; i < cap / 64 && base / 64 + i < nw; i++)
				w[base / 64 + i] |= t[i];
			continue;
		}
		for (uint64_t row = base; row < base + cap && row < rows; row++)
			if (snap_tomb(s, row))
				w[row >> 6] |= 1ull << (row & 63);
	}
	*out = w;
	return OMEN_OK;
}

/* Pushes each query's device candidates into its heap, with their ids. */
static void fill_heaps(const snapshot *s, const uint64_t *rows, const float *dists, size_t qn,
                       size_t kc, topk *heaps)
{
	for (size_t q = 0; q < qn; q++)
		for (size_t i = 0; i < kc; i++) {
			uint64_t row = rows[q * kc + i];
			if (row != UINT64_MAX)
				topk_push(&heaps[q], dists[q * kc + i], snap_id(s, row),
				          (uint32_t)row);
		}
}

int gpu_scan(const snapshot *s, const float *q, const float *qnorm, size_t qn, size_t kc,
             uint64_t row_min, topk *heaps, bool *tf32)
{
	eng_db *db = s->c->db;
	const char *env = getenv("OMEN_GPU_TF32");
	*tf32 = env && strcmp(env, "1") == 0;
	uint64_t rows = s->rec.rows, *excl = NULL;
	uint64_t *crow = mem_alloc(qn * kc * sizeof *crow);
	float *cdist = mem_alloc(qn * kc * sizeof *cdist);
	int st = crow && cdist ? excluded_rows(s, rows, &excl)
	                       : status_set(OMEN_ENOMEM, "out of memory");
	pthread_mutex_lock(&db->gpu_mu);
	gpu_coll *g = st == OMEN_OK ? resident(db, s->c) : NULL;
	if (st == OMEN_OK && !g)
		st = status_set(OMEN_ENOMEM, "out of memory for the GPU copy");
	if (st == OMEN_OK)
		st = upload(s, g);
	char err[256];
	gpu_search gs = {q,     qnorm, qn,   (int)s->c->metric, rows, row_min, excl, (uint32_t)kc,
	                 *tf32, crow,  cdist};
	if (st == OMEN_OK && gpu_coll_search(g, &gs, err, sizeof err) != 0)
		st = status_set(OMEN_EIO, "GPU: %s", err);
	pthread_mutex_unlock(&db->gpu_mu);
	if (st == OMEN_OK)
		fill_heaps(s, crow, cdist, qn, kc, heaps);
	mem_free(crow);
	mem_free(cdist);
	mem_free(excl);
	return st;
}
