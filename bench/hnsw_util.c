/*
 * Ground-truth files, recall and the shared steps of the index benchmarks (see hnsw_util.h).
 */
#include "hnsw_util.h"

#include "bench_util.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void hu_ivecs_write(const char *path, const uint64_t *ids, size_t nrows, size_t k)
{
	char tmp[4200];
	FILE *f;
	int32_t *row = bu_xmalloc((k + 1) * sizeof *row);

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	f = fopen(tmp, "wb");
	if (!f)
		bu_die(tmp, "%s", strerror(errno));
	for (size_t i = 0; i < nrows; i++) {
		row[0] = (int32_t)k;
		for (size_t j = 0; j < k; j++) {
			if (ids[i * k + j] > INT32_MAX)
				bu_die(path, "row %zu: id %llu does not fit in int32", i,
				       (unsigned long long)ids[i * k + j]);
			row[j + 1] = (int32_t)ids[i * k + j];
		}
		if (fwrite(row, sizeof *row, k + 1, f) != k + 1)
			bu_die(tmp, "short write");
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		bu_die(path, "cannot write: %s", strerror(errno));
	free(row);
}

uint64_t *hu_ivecs_read(const char *path, size_t *nrows, size_t *k)
{
	struct stat st;
	uint8_t *raw;
	size_t len, rowb, n;
	int32_t d;
	uint64_t *ids;

	if (stat(path, &st) != 0)
		return NULL;
	raw = bu_read_file(path, &len);
	if (len < 4)
		bu_die(path, "too short for an .ivecs file");
	memcpy(&d, raw, 4);
	if (d <= 0)
		bu_die(path, "bad row length %d", (int)d);
	rowb = 4 + 4 * (size_t)d;
	if (len % rowb)
		bu_die(path, "size %zu is not a whole number of %d-id rows", len, (int)d);
	n = len / rowb;
	ids = bu_xmalloc(n * (size_t)d * sizeof *ids);
	for (size_t i = 0; i < n; i++) {
		int32_t h;
		memcpy(&h, raw + i * rowb, 4);
		if (h != d)
			bu_die(path, "row %zu: length %d, expected %d", i, (int)h, (int)d);
		for (size_t j = 0; j < (size_t)d; j++) {
			int32_t v;
			memcpy(&v, raw + i * rowb + 4 + 4 * j, 4);
			if (v < 0)
				bu_die(path, "row %zu: negative id %d", i, (int)v);
			ids[i * (size_t)d + j] = (uint64_t)v;
		}
	}
	free(raw);
	*nrows = n;
	*k = (size_t)d;
	return ids;
}

void hu_normalize(float *x, size_t n, size_t dim)
{
	for (size_t i = 0; i < n; i++) {
		float *r = x + i * dim;
		double s = 0.0;
		for (size_t j = 0; j < dim; j++)
			s += (double)r[j] * (double)r[j];
		if (!(s > 0.0))
			bu_die("normalize", "row %zu is a zero vector", i);
		s = 1.0 / sqrt(s);
		for (size_t j = 0; j < dim; j++)
			r[j] = (float)((double)r[j] * s);
	}
}

double hu_recall(const uint64_t *res, size_t kres, const uint64_t *gt, size_t kgt, size_t nq,
                 size_t k, int exclude_self)
{
	size_t hits = 0;

	if (kgt < k || kres < k + (exclude_self ? 1 : 0))
		bu_die("recall", "rows too short: result %zu, ground truth %zu, k %zu%s", kres, kgt,
		       k, exclude_self ? " (+1 for self)" : "");
	for (size_t q = 0; q < nq; q++) {
		const uint64_t *r = res + q * kres, *g = gt + q * kgt;
		size_t used = 0;
		for (size_t i = 0; i < kres && used < k; i++) {
			if (exclude_self && r[i] == q)
				continue;
			used++;
			for (size_t j = 0; j < k; j++) {
				if (g[j] == r[i]) {
					hits++;
					break;
				}
			}
		}
	}
	return (double)hits / (double)(nq * k);
}

size_t hu_parse_list(const char *s, size_t *out, size_t max, int allow_zero)
{
	size_t n = 0;
	char *end;
	while (*s) {
		if (*s < '0' || *s > '9')
			return 0;
		unsigned long long v = strtoull(s, &end, 10);
		if (end == s || (v == 0 && !allow_zero) || n == max)
			return 0;
		out[n++] = (size_t)v;
		if (*end && *end != ',')
			return 0;
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

double hu_load_collection(const char *dir, const char *name, const float *x, const bu_fvecs *f,
                          size_t n, size_t dim, omen_metric metric, omen_db **dbp,
                          omen_collection **collp)
{
	omen_open_options opt;
	uint64_t *ids = bu_xmalloc(HU_LOAD_BATCH * sizeof *ids);
	float *buf = x ? NULL : bu_xmalloc(HU_LOAD_BATCH * dim * sizeof *buf);
	double spent, t0;

	bu_rm_rf(dir);
	omen_open_options_init(&opt);
	opt.durability = OMEN_DURABLE_RELAXED;
	t0 = bu_now();
	bu_check(omen_open(dir, &opt, dbp), "omen_open");
	bu_check(omen_create_collection(*dbp, name, dim, metric), "create collection");
	bu_check(omen_collection_open(*dbp, name, collp), "open collection");
	spent = bu_now() - t0;
	for (size_t i = 0; i < n; i += HU_LOAD_BATCH) {
		omen_batch b = {0};
		b.n = n - i < HU_LOAD_BATCH ? n - i : HU_LOAD_BATCH;
		b.dim = dim;
		for (size_t j = 0; j < b.n; j++)
			ids[j] = i + j;
		b.ids = ids;
		if (x) {
			b.vectors = x + i * dim;
		} else {
			bu_fvecs_read(f, i, b.n, buf);
			b.vectors = buf;
		}
		t0 = bu_now();
		bu_check(omen_upsert(*collp, &b, NULL), "upsert");
		spent += bu_now() - t0;
	}
	t0 = bu_now();
	bu_check(omen_flush(*dbp), "flush");
	spent += bu_now() - t0;
	free(ids);
	free(buf);
	return spent;
}

double hu_open_collection(const char *dir, const char *name, omen_db **dbp, omen_collection **collp)
{
	double t0 = bu_now();
	bu_check(omen_open(dir, NULL, dbp), "omen_open");
	bu_check(omen_collection_open(*dbp, name, collp), "open collection");
	return bu_now() - t0;
}

void hu_progress_print(void *ctx, uint64_t done, uint64_t total)
{
	hu_progress *p = ctx;
	double now = bu_now();
	if (now - p->last >= 10.0) {
		fprintf(stderr, "%s: build %llu / %llu\n", p->who, (unsigned long long)done,
		        (unsigned long long)total);
		p->last = now;
	}
}

static void *rss_sample(void *arg)
{
	hu_rss *r = arg;
	const struct timespec tick = {0, 5000000};
	while (!atomic_load(&r->stop)) {
		long v = bu_proc_status_kb("RssAnon");
		if (v > r->peak)
			r->peak = v;
		nanosleep(&tick, NULL);
	}
	return NULL;
}

double hu_build_index(omen_collection *coll, const omen_index_params *ip, hu_rss *r)
{
	double t0, spent;

	malloc_trim(0);
	r->anon0 = bu_proc_status_kb("RssAnon");
	r->file0 = bu_proc_status_kb("RssFile");
	r->peak = r->anon0;
	atomic_init(&r->stop, 0);
	if (pthread_create(&r->th, NULL, rss_sample, r) != 0)
		bu_die("pthread_create", "cannot start the RSS sampler");
	t0 = bu_now();
	bu_check(omen_build_index(coll, ip), "omen_build_index");
	spent = bu_now() - t0;
	atomic_store(&r->stop, 1);
	pthread_join(r->th, NULL);
	r->anon1 = bu_proc_status_kb("RssAnon");
	r->file1 = bu_proc_status_kb("RssFile");
	if (r->anon1 > r->peak)
		r->peak = r->anon1;
	return spent;
}

void hu_json_rss_build(FILE *out, const hu_rss *r, size_t n)
{
	fprintf(out,
	        ", \"rss_anon_growth_build_per_vector\": %.3f, "
	        "\"rss_anon_peak_growth_build_per_vector\": %.3f, "
	        "\"rss_file_growth_build_per_vector\": %.3f",
	        1024.0 * (double)(r->anon1 - r->anon0) / (double)n,
	        1024.0 * (double)(r->peak - r->anon0) / (double)n,
	        1024.0 * (double)(r->file1 - r->file0) / (double)n);
}

void hu_json_num(FILE *out, const char *key, double v)
{
	if (v < 0)
		fprintf(out, " \"%s\": null,", key);
	else
		fprintf(out, " \"%s\": %.6f,", key, v);
}

void hu_mdb_size(const char *dir, uint64_t *size, uint64_t *alloc)
{
	char p[4200];
	struct stat st;
	snprintf(p, sizeof p, "%s/data.mdb", dir);
	*size = *alloc = 0;
	if (stat(p, &st) == 0) {
		*size = (uint64_t)st.st_size;
		*alloc = (uint64_t)st.st_blocks * 512;
	}
}

size_t hu_time_searches(omen_collection *coll, const float *q, size_t nq, size_t dim,
                        const omen_search_params *sp, uint64_t *ids, float *dists, size_t reps,
                        double min_time, double *times, size_t max)
{
	size_t n = 0;
	double spent = 0;
	while (n < reps || (spent < min_time && n < max)) {
		double t0 = bu_now();
		bu_check(omen_search(coll, q, nq, dim, sp, ids, dists), "search");
		times[n] = bu_now() - t0;
		spent += times[n++];
	}
	return n;
}
