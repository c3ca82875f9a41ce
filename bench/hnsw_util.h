/*
 * Helpers of the index benchmarks (omendb-bench-gt, omendb-bench-hnsw, omendb-bench-ivf):
 * ground-truth files in the TEXMEX .ivecs layout and recall@k, with the "self excluded"
 * protocol used when a data set's vectors are also its queries (MiniLM); loading a fresh
 * collection, a timed index build with its RSS growth, timed search batches and small JSON
 * pieces. They use the public API only; nothing here reaches into the library.
 */
#ifndef OMEN_BENCH_HNSW_UTIL_H
#define OMEN_BENCH_HNSW_UTIL_H

#include "bench_util.h"

#include <omendb/omendb.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Writes nrows rows of k ids (uint64, each < 2^31) as .ivecs (per row an int32 k, then k
 * int32), through a temporary file and a rename; exits on error. */
void hu_ivecs_write(const char *path, const uint64_t *ids, size_t nrows, size_t k);

/* Reads an .ivecs file into a new array (caller frees) of *nrows x *k ids; returns NULL when
 * the file does not exist, exits when it is malformed. */
uint64_t *hu_ivecs_read(const char *path, size_t *nrows, size_t *k);

/* Normalises each of the n rows of x (n x dim) to unit length, in double; exits on a zero
 * row. Used for cosine: the order by 1 - cos equals the order by squared L2 of unit vectors. */
void hu_normalize(float *x, size_t n, size_t dim);

/* Recall@k of result rows (nq rows of kres ids each, closest first) against ground-truth rows
 * (nq rows of kgt >= k ids, closest first), as a fraction of nq * k. When exclude_self is set,
 * query q is base row q: its own id q is removed from the result row (or, when it is absent,
 * the last id is dropped) before the first k are compared, and kres must be at least k + 1;
 * the ground truth already excludes self (omendb-bench-gt --exclude-self). */
double hu_recall(const uint64_t *res, size_t kres, const uint64_t *gt, size_t kgt, size_t nq,
                 size_t k, int exclude_self);

/* Parses a comma-separated list of at most max unsigned numbers into out; returns how many,
 * or 0 when s is empty, malformed, too long, or holds a 0 that allow_zero does not allow. */
size_t hu_parse_list(const char *s, size_t *out, size_t max, int allow_zero);

/* (Re)creates the database dir (relaxed durability) with one collection name (dim, metric),
 * upserts n rows in batches of HU_LOAD_BATCH with ids = row numbers and flushes. The rows come
 * from x (n x dim floats) or, when x is NULL, are read batch by batch from f (the first n rows
 * of the file). Returns the seconds of the opening, upserts and flush (file reads excluded). */
#define HU_LOAD_BATCH 10000
double hu_load_collection(const char *dir, const char *name, const float *x, const bu_fvecs *f,
                          size_t n, size_t dim, omen_metric metric, omen_db **dbp,
                          omen_collection **collp);

/* Opens the existing database dir and its collection name; returns the seconds it took. */
double hu_open_collection(const char *dir, const char *name, omen_db **dbp,
                          omen_collection **collp);

/* A progress callback for omen_index_params: prints "who: build done / total" to stderr at
 * most every 10 s. ctx is a hu_progress. */
typedef struct hu_progress {
	const char *who;
	double last;
} hu_progress;
void hu_progress_print(void *ctx, uint64_t done, uint64_t total);

/* The process's memory around an index build: RssAnon and RssFile (kB) before and after, and
 * the peak of RssAnon sampled every 5 ms from a thread while it runs. */
typedef struct hu_rss {
	long anon0, anon1, file0, file1, peak;
	pthread_t th;
	atomic_int stop;
} hu_rss;

/* Builds the collection's index with ip while r samples the process's memory; returns the
 * seconds of omen_build_index, exits when it fails. Heap pages left resident by the load are
 * returned to the system first (malloc_trim), or the build would reuse them unseen. */
double hu_build_index(omen_collection *coll, const omen_index_params *ip, hu_rss *r);

/* Writes ', "rss_anon_growth_build_per_vector": ..., "rss_anon_peak_growth_build_per_vector":
 * ..., "rss_file_growth_build_per_vector": ...' (bytes per vector of n). */
void hu_json_rss_build(FILE *out, const hu_rss *r, size_t n);

/* Writes ' "key": v,' to out, with null for a negative v (a phase that did not run). */
void hu_json_num(FILE *out, const char *key, double v);

/* Size and allocated bytes of dir/data.mdb (0 when absent). */
void hu_mdb_size(const char *dir, uint64_t *size, uint64_t *alloc);

/* Times omen_search calls of the nq queries as one batch with sp: at least reps calls, more
 * (up to max) until they add up to min_time seconds. Each call's seconds go to times[];
 * returns how many calls there were. ids and dists hold the last call's results. */
size_t hu_time_searches(omen_collection *coll, const float *q, size_t nq, size_t dim,
                        const omen_search_params *sp, uint64_t *ids, float *dists, size_t reps,
                        double min_time, double *times, size_t max);

#endif
