/*
 * The background indexer: one thread per database opened for writing. Upserts wake it with the
 * collection's name; when a collection with an HNSW index has an unindexed tail of at least
 * max(OMEN_INDEX_AUTO_HNSW_MIN, 5% of the indexed rows), it extends the graph over the tail with
 * the index's own parameters, on half the cores. Searches and writes go on meanwhile; the
 * extended graph is published atomically. omen_close cancels a build in progress.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

struct indexer {
	eng_db *db;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	char **pending; /* collection names to look at */
	size_t npending, cap;
};

/* True when the collection's tail is large enough to index; fills p with its parameters. */
static bool tail_due(eng_coll *c, omen_index_params *p)
{
	omen_collection_stats s;
	if (eng_collection_stats_get(c, &s) != OMEN_OK || strcmp(s.index, "hnsw") != 0)
		return false;
	uint64_t rows = s.points + s.deleted, tail = rows > s.indexed ? rows - s.indexed : 0;
	uint64_t need = s.indexed / 20;
	if (need < OMEN_INDEX_AUTO_HNSW_MIN)
		need = OMEN_INDEX_AUTO_HNSW_MIN;
	if (tail < need)
		return false;
	index_params_default(p);
	p->type = OMEN_INDEX_HNSW;
	p->m = s.hnsw_m;
	p->ef_construction = s.hnsw_ef_construction;
	p->int8 = s.hnsw_int8;
	p->threads = omp_get_num_procs() > 1 ? omp_get_num_procs() / 2 : 1;
	return true;
}

static void examine(indexer *ix, const char *name)
{
	eng_coll *c;
	omen_index_params p;
	if (coll_open(ix->db, name, true, &c) != OMEN_OK)
		return; /* dropped meanwhile */
	if (tail_due(c, &p)) {
		pthread_mutex_lock(&ix->db->build_mu);
		if (!atomic_load(&ix->db->cancel) && tail_due(c, &p))
			hnsw_build(c,
			           &p); /* a failure leaves the old index; the tail stays exact */
		pthread_mutex_unlock(&ix->db->build_mu);
	}
	eng_collection_close(c);
}

static void *indexer_main(void *arg)
{
	indexer *ix = arg;
	pthread_mutex_lock(&ix->mu);
	while (!ix->stop) {
		if (ix->npending == 0) {
			pthread_cond_wait(&ix->cv, &ix->mu);
			continue;
		}
		char *name = ix->pending[--ix->npending];
		pthread_mutex_unlock(&ix->mu);
		examine(ix, name);
		mem_free(name);
		pthread_mutex_lock(&ix->mu);
	}
	pthread_mutex_unlock(&ix->mu);
	return NULL;
}

int indexer_start(eng_db *db, indexer **out)
{
	indexer *ix = mem_calloc(1, sizeof *ix);
	if (!ix)
		return status_set(OMEN_ENOMEM, "out of memory");
	ix->db = db;
	pthread_mutex_init(&ix->mu, NULL);
	pthread_cond_init(&ix->cv, NULL);
	if (pthread_create(&ix->thread, NULL, indexer_main, ix) != 0) {
		pthread_cond_destroy(&ix->cv);
		pthread_mutex_destroy(&ix->mu);
		mem_free(ix);
		return status_set(OMEN_ENOMEM, "cannot start the background indexer");
	}
	*out = ix;
	return OMEN_OK;
}

void indexer_notify(indexer *ix, const char *name)
{
	if (!ix)
		return;
	pthread_mutex_lock(&ix->mu);
	bool known = false;
	for (size_t i = 0; i < ix->npending && !known; i++)
		known = strcmp(ix->pending[i], name) == 0;
	if (!known && ix->npending == ix->cap) {
		size_t cap = ix->cap ? 2 * ix->cap : 8;
		char **p = mem_realloc(ix->pending, cap * sizeof *p);
		if (p) {
			ix->pending = p;
			ix->cap = cap;
		}
	}
	if (!known && ix->npending < ix->cap && (ix->pending[ix->npending] = mem_strdup(name)))
		ix->npending++;
	pthread_cond_signal(&ix->cv);
	pthread_mutex_unlock(&ix->mu);
}

void indexer_stop(indexer *ix)
{
	if (!ix)
		return;
	pthread_mutex_lock(&ix->mu);
	ix->stop = true;
	pthread_cond_signal(&ix->cv);
	pthread_mutex_unlock(&ix->mu);
	pthread_join(ix->thread, NULL);
	for (size_t i = 0; i < ix->npending; i++)
		mem_free(ix->pending[i]);
	mem_free(ix->pending);
	pthread_cond_destroy(&ix->cv);
	pthread_mutex_destroy(&ix->mu);
	mem_free(ix);
}
