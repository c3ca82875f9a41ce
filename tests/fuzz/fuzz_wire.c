/*
 * libFuzzer target for the wire decoders (run by ops/fuzz). Each input is decoded as a request
 * and as a reply; whatever decodes must encode again, decode to the same fields, and encode to
 * the same bytes (the encoding is canonical). A mismatch aborts, which libFuzzer reports.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_wire: check failed: %s (line %d)\n", #cond,          \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static bool str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool strs_same(char *const *a, char *const *b, uint64_t n)
{
	if (n == 0 || !a || !b)
		return (n == 0 || !a) == (n == 0 || !b);
	for (uint64_t i = 0; i < n; i++)
		if (!str_same(a[i], b[i]))
			return false;
	return true;
}

/* Same pointer-nullness and, when set, the same bytes bytes. */
static bool mem_same(const void *a, const void *b, uint64_t bytes)
{
	if (!a || !b)
		return !a == !b;
	return memcmp(a, b, bytes) == 0;
}

static bool req_same(const wire_req *a, const wire_req *b)
{
	return a->op == b->op && str_same(a->token, b->token) && a->epoch == b->epoch &&
	       a->shard == b->shard && strcmp(a->name, b->name) == 0 && a->dim == b->dim &&
	       a->metric == b->metric && a->nshards == b->nshards && a->n == b->n &&
	       mem_same(a->ids, b->ids, a->n * 8) &&
	       mem_same(a->vectors, b->vectors, a->n * a->dim * 4) &&
	       strs_same(a->meta, b->meta, a->n) && a->k == b->k && a->ef == b->ef &&
	       a->exact == b->exact && a->partial == b->partial &&
	       a->deadline_ms == b->deadline_ms && str_same(a->filter, b->filter) &&
	       a->index_type == b->index_type && a->m == b->m &&
	       a->ef_construction == b->ef_construction && a->int8 == b->int8;
}

static bool stats_same(const omen_collection_stats *a, const omen_collection_stats *b)
{
	return strcmp(a->name, b->name) == 0 && a->dim == b->dim && a->metric == b->metric &&
	       a->points == b->points && a->deleted == b->deleted && a->next_id == b->next_id &&
	       a->segments == b->segments && a->vector_bytes == b->vector_bytes &&
	       str_same(a->index, b->index) && a->indexed == b->indexed &&
	       a->index_bytes == b->index_bytes && a->hnsw_m == b->hnsw_m &&
	       a->hnsw_ef_construction == b->hnsw_ef_construction && a->hnsw_int8 == b->hnsw_int8;
}

static bool rep_same(const wire_rep *a, const wire_rep *b)
{
	uint64_t rows = a->n * (a->k ? a->k : 1);
	return a->status == b->status && str_same(a->message, b->message) && a->n == b->n &&
	       a->k == b->k && a->dim == b->dim && mem_same(a->ids, b->ids, rows * 8) &&
	       mem_same(a->dists, b->dists, a->n * a->k * 4) &&
	       mem_same(a->found, b->found, a->n) &&
	       mem_same(a->vectors, b->vectors, a->n * a->dim * 4) &&
	       strs_same(a->meta, b->meta, a->n) && a->count == b->count &&
	       a->shards_total == b->shards_total && a->shards_answered == b->shards_answered &&
	       a->nnames == b->nnames && strs_same(a->names, b->names, a->nnames) &&
	       str_same(a->report, b->report) && a->has_stats == b->has_stats &&
	       (!a->has_stats || stats_same(&a->stats, &b->stats)) &&
	       a->has_dbstats == b->has_dbstats &&
	       (!a->has_dbstats || memcmp(&a->dbstats, &b->dbstats, sizeof a->dbstats) == 0);
}

static void fuzz_req(const uint8_t *data, size_t size)
{
	wire_req a, b;
	char err[WIRE_ERRLEN];
	void *e1 = NULL, *e2 = NULL;
	size_t l1 = 0, l2 = 0;
	if (wire_req_decode(data, size, WIRE_MAX_MSG_DEFAULT, &a, err) != OMEN_OK) {
		CHECK(strlen(err) > 0 && !strchr(err, '\n'));
		wire_req_free(&a);
		return;
	}
	CHECK(wire_req_encode(&a, &e1, &l1) == OMEN_OK);
	CHECK(wire_req_decode(e1, l1, l1, &b, err) == OMEN_OK);
	CHECK(req_same(&a, &b));
	CHECK(wire_req_encode(&b, &e2, &l2) == OMEN_OK);
	CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
	wire_req_free(&a);
	wire_req_free(&b);
	free(e1);
	free(e2);
}

static void fuzz_rep(const uint8_t *data, size_t size)
{
	wire_rep a, b;
	char err[WIRE_ERRLEN];
	void *e1 = NULL, *e2 = NULL;
	size_t l1 = 0, l2 = 0;
	if (wire_rep_decode(data, size, WIRE_MAX_MSG_DEFAULT, &a, err) != OMEN_OK) {
		CHECK(strlen(err) > 0 && !strchr(err, '\n'));
		wire_rep_free(&a);
		return;
	}
	CHECK(wire_rep_encode(&a, &e1, &l1) == OMEN_OK);
	CHECK(wire_rep_decode(e1, l1, l1, &b, err) == OMEN_OK);
	CHECK(rep_same(&a, &b));
	CHECK(wire_rep_encode(&b, &e2, &l2) == OMEN_OK);
	CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
	wire_rep_free(&a);
	wire_rep_free(&b);
	free(e1);
	free(e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_req(data, size);
	fuzz_rep(data, size);
	return 0;
}
