/*
 * Ground-truth files and recall for the HNSW benchmark (see hnsw_util.h).
 */
#include "hnsw_util.h"

#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
