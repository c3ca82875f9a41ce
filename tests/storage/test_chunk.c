/*
 * Record formats of a collection's data (storage/chunk.c): vector chunks written and viewed
 * back (aligned and not), every inconsistent chunk refused with OMEN_ECORRUPT, tombstone
 * bitsets, metadata record headers, the rows-per-chunk rule, and segments counted from the
 * chunk records.
 */
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "storage/storage.h"

static void test_capacity(void **state)
{
	(void)state;
	assert_int_equal(chunk_cap_for_dim(1), 65536);
	assert_int_equal(chunk_cap_for_dim(128), 1024); /* 524 bytes a row: 2001 fit */
	assert_int_equal(chunk_cap_for_dim(768), 256);
	assert_int_equal(chunk_cap_for_dim(OMEN_MAX_DIM), 16);
	for (uint32_t dim = 1; dim <= OMEN_MAX_DIM; dim = dim * 3 + 1) {
		uint32_t cap = chunk_cap_for_dim(dim);
		assert_true((cap & (cap - 1)) == 0 && cap >= 16 && cap <= 65536);
		assert_true(cap == 16 ||
		            chunk_bytes(cap, dim) - CHUNK_HEADER <= CHUNK_TARGET_BYTES);
		assert_true(cap == 65536 ||
		            chunk_bytes(2 * cap, dim) - CHUNK_HEADER > CHUNK_TARGET_BYTES);
		assert_true(SEGMENT_ROWS % cap == 0);
	}
}

/* Writes a chunk of old_count + n rows (the old ones from a first chunk) and views it back,
 * from a buffer offset by misalign bytes. */
static void roundtrip(uint32_t dim, uint32_t old_count, uint32_t n, size_t misalign)
{
	uint32_t cap = chunk_cap_for_dim(dim), count = old_count + n;
	float *v = rnd_vectors(count, dim, dim + n), norms[1024];
	uint64_t ids[1024];
	for (uint32_t i = 0; i < count; i++) {
		norms[i] = (float)i;
		ids[i] = 1000000007ull * i;
	}
	unsigned char *first = malloc(chunk_bytes(old_count ? old_count : 1, dim));
	chunk_view old = {0};
	if (old_count) {
		chunk_write(first, dim, NULL, 0, v, norms, ids, old_count);
		assert_omen_ok(chunk_view_init(&old, first, chunk_bytes(old_count, dim), dim, cap));
	}
	size_t bytes = chunk_bytes(count, dim);
	unsigned char *buf = malloc(bytes + misalign), *p = buf + misalign;
	chunk_write(p, dim, &old, old_count, v + (size_t)old_count * dim, norms + old_count,
	            ids + old_count, n);
	chunk_view cv;
	assert_omen_ok(chunk_view_init(&cv, p, bytes, dim, cap));
	assert_int_equal(cv.count, count);
	assert_true((misalign % 4 != 0) == (cv.scratch != NULL));
	assert_memory_equal(cv.vecs, v, (size_t)count * dim * 4);
	for (uint32_t i = 0; i < count; i++) {
		assert_true(cv.norms[i] == (float)i);
		assert_int_equal(chunk_id(&cv, i), ids[i]);
	}
	chunk_view_release(&cv);
	chunk_view_release(&old);
	free(buf);
	free(first);
	free(v);
}

static void test_chunk_roundtrip(void **state)
{
	(void)state;
	roundtrip(4, 0, 7, 0);
	roundtrip(4, 5, 3, 0);
	roundtrip(33, 10, 10, 2); /* 2-byte aligned, as small LMDB values are: copied */
	roundtrip(768, 100, 156, 0);
}

static void test_chunk_corrupt(void **state)
{
	(void)state;
	uint32_t dim = 8, cap = chunk_cap_for_dim(dim);
	float *v = rnd_vectors(4, dim, 1), norms[4] = {0};
	uint64_t ids[4] = {1, 2, 3, 4};
	size_t bytes = chunk_bytes(4, dim);
	unsigned char *good = malloc(bytes), *bad = malloc(bytes + 8);
	chunk_write(good, dim, NULL, 0, v, norms, ids, 4);
	chunk_view cv;
	struct {
		const char *why;
		size_t at;
		unsigned char byte;
	} flips[] = {{"magic", 0, 'X'},
	             {"version", 4, 2},
	             {"count 0", 8, 0},
	             {"count > cap", 11, 1},
	             {"other capacity", 13, 0}};
	for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
		memcpy(bad, good, bytes);
		if (flips[i].at == 8)
			memset(bad + 8, 0, 4);
		else
			bad[flips[i].at] = flips[i].byte;
		if (chunk_view_init(&cv, bad, bytes, dim, cap) != OMEN_ECORRUPT)
			fail_msg("a chunk with a bad %s was accepted", flips[i].why);
	}
	assert_int_equal(chunk_view_init(&cv, good, bytes - 1, dim, cap), OMEN_ECORRUPT);
	memcpy(bad, good, bytes);
	assert_int_equal(chunk_view_init(&cv, bad, bytes + 8, dim, cap), OMEN_ECORRUPT);
	assert_int_equal(chunk_view_init(&cv, good, bytes, dim + 1, cap), OMEN_ECORRUPT);
	assert_int_equal(chunk_view_init(&cv, good, 7, dim, cap), OMEN_ECORRUPT);
	free(bad);
	free(good);
	free(v);
}

static void test_tombstones(void **state)
{
	(void)state;
	uint32_t cap = 256;
	uint64_t words[4] = {1, 0x8000000000000000ull, 0, 0xdeadbeef}, back[4];
	unsigned char rec[64];
	assert_int_equal(tomb_bytes(cap), 8 + 32);
	tomb_store(rec, cap, words);
	assert_omen_ok(tomb_load(rec, tomb_bytes(cap), cap, back));
	assert_memory_equal(back, words, sizeof words);
	assert_int_equal(tomb_load(rec, tomb_bytes(cap) - 8, cap, back), OMEN_ECORRUPT);
	assert_int_equal(tomb_load(rec, tomb_bytes(cap), cap * 2, back), OMEN_ECORRUPT);
	rec[0] = 'X';
	assert_int_equal(tomb_load(rec, tomb_bytes(cap), cap, back), OMEN_ECORRUPT);
}

static void test_metadata_record(void **state)
{
	(void)state;
	unsigned char rec[16];
	meta_rec_header(rec);
	memcpy(rec + META_HEADER, "\x80", 1);
	const unsigned char *mp;
	size_t len;
	assert_omen_ok(meta_rec_body(rec, META_HEADER + 1, &mp, &len));
	assert_true(mp == rec + META_HEADER && len == 1);
	assert_int_equal(meta_rec_body(rec, META_HEADER, &mp, &len), OMEN_ECORRUPT);
	rec[1] = 'X';
	assert_int_equal(meta_rec_body(rec, META_HEADER + 1, &mp, &len), OMEN_ECORRUPT);
}

typedef struct seg_fx {
	MDB_dbi dbi;
	uint64_t chunks;
	uint32_t cap;
	uint64_t segments;
} seg_fx;

static int put_chunks(MDB_txn *txn, void *arg)
{
	seg_fx *x = arg;
	int st = store_dbi(txn, "c1.v", true, &x->dbi);
	for (uint64_t i = 0; st == OMEN_OK && i < x->chunks; i++) {
		unsigned char k[8], v[1] = {0};
		be64_put(k, i);
		MDB_val key = {8, k}, val = {1, v};
		st = mdb_put(txn, x->dbi, &key, &val, 0) ? OMEN_EIO : OMEN_OK;
	}
	return st == OMEN_OK ? seg_count(txn, x->dbi, x->cap, &x->segments) : st;
}

static void test_segments(void **state)
{
	(void)state;
	char dir[512];
	store *s;
	omen_open_options opt;
	open_options_default(&opt);
	tmp_dir(dir, sizeof dir, "chunk");
	assert_omen_ok(store_open(dir, &opt, &s));
	/* 1,024 rows a chunk (dim 128): 1,024 chunks make a segment. */
	seg_fx x = {0, 0, 1024, 99};
	assert_omen_ok(store_write(s, put_chunks, &x, 0));
	assert_int_equal(x.segments, 0);
	x.chunks = 1;
	assert_omen_ok(store_write(s, put_chunks, &x, 0));
	assert_int_equal(x.segments, 1);
	x.chunks = 1025;
	assert_omen_ok(store_write(s, put_chunks, &x, 0));
	assert_int_equal(x.segments, 2);
	store_close(s);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_capacity),        cmocka_unit_test(test_chunk_roundtrip),
	    cmocka_unit_test(test_chunk_corrupt),   cmocka_unit_test(test_tombstones),
	    cmocka_unit_test(test_metadata_record), cmocka_unit_test(test_segments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
