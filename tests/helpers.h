/*
 * Helpers shared by the cmocka tests: status assertions that print the engine's message,
 * temporary database directories, and deterministic random data.
 */
#ifndef OMEN_TEST_HELPERS_H
#define OMEN_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "omendb/omendb.h"

/* A test of a layer's internals (it defines OMEN_TEST_INTERNAL before including this file and
 * links that layer, not libomendb) reads status texts and messages from base/ directly. */
#ifdef OMEN_TEST_INTERNAL
#include "base/base.h"
#define test_strerror(st) status_text(st)
#define test_errmsg()     status_msg()
#else
#define test_strerror(st) omen_strerror(st)
#define test_errmsg()     omen_errmsg(NULL)
#endif

#define assert_omen_ok(expr)                                                                       \
	do {                                                                                       \
		int st_ = (expr);                                                                  \
		if (st_ != OMEN_OK)                                                                \
			fail_msg("%s: %s (%s)", #expr, test_strerror(st_), test_errmsg());         \
	} while (0)

#define assert_omen_status(expr, want)                                                             \
	do {                                                                                       \
		int st_ = (expr);                                                                  \
		if (st_ != (want))                                                                 \
			fail_msg("%s: got %s, want %s (%s)", #expr, test_strerror(st_),            \
			         test_strerror(want), test_errmsg());                              \
		if ((want) != OMEN_OK)                                                             \
			assert_true(strlen(test_errmsg()) > 0);                                    \
	} while (0)

/* Makes a fresh empty directory path under OMEN_TEST_TMP (or /tmp) into buf. */
static inline void tmp_dir(char *buf, size_t len, const char *tag)
{
	const char *base = getenv("OMEN_TEST_TMP");
	snprintf(buf, len, "%s/omen-%s-XXXXXX", base ? base : "/tmp", tag);
	if (!mkdtemp(buf))
		fail_msg("mkdtemp %s failed", buf);
}

/* Removes a directory tree made by tmp_dir. */
static inline void rm_tree(const char *path)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fail_msg("rm -rf %s failed", path);
}

/* xorshift64* random numbers, deterministic per seed. */
static inline uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static inline float rnd_float(uint64_t *s)
{
	return (float)((rnd_next(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static inline float *rnd_vectors(size_t n, size_t dim, uint64_t seed)
{
	float *v = malloc(n * dim * sizeof *v);
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n * dim; i++)
		v[i] = rnd_float(&s);
	return v;
}

/* Reads a whole .fvecs file (Fashion-MNIST, from bench/data.py); fails the test when it is
 * missing. *n and *d receive its shape; the caller frees the result. */
static inline float *read_fvecs(const char *path, size_t *n, size_t *d)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("%s missing: run `python3 bench/data.py fashion data` (ops/test does)",
		         path);
	int32_t dd;
	assert_int_equal(fread(&dd, 4, 1, f), 1);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	size_t rec = 4 + 4 * (size_t)dd, m = (size_t)size / rec;
	float *v = malloc(m * (size_t)dd * sizeof *v);
	fseek(f, 0, SEEK_SET);
	for (size_t i = 0; i < m; i++) {
		assert_int_equal(fread(&dd, 4, 1, f), 1);
		assert_int_equal(fread(v + i * (size_t)dd, 4, (size_t)dd, f), (size_t)dd);
	}
	fclose(f);
	*n = m;
	*d = (size_t)dd;
	return v;
}

/* Loads Fashion-MNIST (from $OMEN_FASHION, else data/fashion-mnist): base and query vectors
 * of dimension *dim; the caller frees both. */
static inline void load_fashion(float **base, size_t *nbase, float **queries, size_t *nq,
                                size_t *dim)
{
	const char *dir = getenv("OMEN_FASHION");
	char p[1024];
	size_t d2;
	snprintf(p, sizeof p, "%s/base.fvecs", dir ? dir : "data/fashion-mnist");
	*base = read_fvecs(p, nbase, dim);
	snprintf(p, sizeof p, "%s/query.fvecs", dir ? dir : "data/fashion-mnist");
	*queries = read_fvecs(p, nq, &d2);
	assert_true(d2 == *dim);
}

#endif
