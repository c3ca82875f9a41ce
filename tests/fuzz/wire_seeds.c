/*
 * Writes the seed corpus of the wire fuzzer (ops/fuzz): one encoded request per op with every
 * field it uses, and one reply of each shape, each in its own file of the directory given as
 * the only argument (which must exist). Exits non-zero on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

static uint64_t ids[6] = {0, 1, 42, UINT64_MAX, 7, 1ull << 40};
static float vec[12] = {0.5f, -1, 2, 0, 1e-40f, 3.25f, -0.0f, 7, 1, 1, 1, 1};
static float dists[6] = {0, 0.25f, 1, 2, 3, 1e30f};
static uint8_t found[3] = {1, 0, 1};
static char meta0[] = "{\"a\":1,\"s\":\"x\"}", meta2[] = "{\"b\":true}";
static char *meta[3] = {meta0, NULL, meta2};
static char tok[] = "token", filter[] = "{\"a\":{\"$gte\":1}}";
static char name0[] = "docs", name1[] = "img.v2";
static char *names[2] = {name0, name1};
static char message[] = "collection 'x' not found", report[] = "reachable: 3/3";

static int write_file(const char *dir, const char *what, int i, const void *p, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s-%02d", dir, what, i);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "wire_seeds: cannot write %s\n", path);
		return 1;
	}
	return 0;
}

static int seed_req(const char *dir, wire_op op)
{
	wire_req r;
	void *p = NULL;
	size_t len = 0;
	wire_req_init(&r);
	r.op = op;
	if (op != WIRE_HEALTH && op != WIRE_LIST && op != WIRE_DBSTATS && op != WIRE_FLUSH)
		strcpy(r.name, "docs");
	r.token = op == WIRE_HEALTH ? NULL : tok;
	r.epoch = op == WIRE_UPSERT ? 9 : 0;
	r.shard = op == WIRE_SEARCH ? 3 : -1;
	r.dim = op == WIRE_CREATE || op == WIRE_UPSERT || op == WIRE_SEARCH ? 4 : 0;
	r.metric = op == WIRE_CREATE ? OMEN_METRIC_COSINE : OMEN_METRIC_L2;
	r.nshards = op == WIRE_CREATE ? 8 : 0;
	r.n = op == WIRE_UPSERT || op == WIRE_GET || op == WIRE_DELETE || op == WIRE_SEARCH ? 3 : 0;
	r.ids = op == WIRE_UPSERT || op == WIRE_GET || op == WIRE_DELETE ? ids : NULL;
	r.vectors = r.dim && r.n ? vec : NULL;
	r.meta = op == WIRE_UPSERT ? meta : NULL;
	if (op == WIRE_SEARCH) {
		r.k = 2;
		r.ef = 64;
		r.nprobe = 8;
		r.exact = 1;
		r.partial = 1;
		r.deadline_ms = 500;
		r.filter = filter;
	}
	if (op == WIRE_IDS)
		r.n = 100, r.start = 5, r.mode = WIRE_IDS_TRACKED;
	if (op == WIRE_FENCE)
		r.shard = 1, r.mode = FENCE_FREEZE;
	static char *copies[] = {"tcp://10.0.0.5:7701", "tcp://10.0.0.6:7701"};
	if (op == WIRE_UPSERT || op == WIRE_DELETE)
		r.copies = copies, r.ncopies = 2;
	if (op == WIRE_CREATE)
		r.replicas = 2;
	if (op == WIRE_COPYFAIL)
		r.shard = 1, r.node = 7, r.n = 1, r.ids = ids;
	if (op == WIRE_JOIN) {
		r.name[0] = '\0';
		r.node = WIRE_NODE_ID_MIN + 7;
		r.addr = "tcp://10.0.0.4:7701";
	}
	if (op == WIRE_BUILD) {
		r.index_type = OMEN_INDEX_IVF;
		r.m = 16;
		r.ef_construction = 200;
		r.int8 = 1;
		r.nlist = 256;
		r.bits = 1;
		r.ram_budget = 1ull << 30;
	}
	int rc = wire_req_encode(&r, &p, &len);
	if (rc != OMEN_OK)
		fprintf(stderr, "wire_seeds: cannot encode a '%s' request\n", wire_op_name(op));
	rc = rc != OMEN_OK || write_file(dir, wire_op_name(op), 0, p, len);
	free(p);
	return rc;
}

/* Reply shape i of 6: search, get, upsert/list, stats, dbstats, error with report. */
static int seed_rep(const char *dir, int i)
{
	wire_rep r;
	void *p = NULL;
	size_t len = 0;
	wire_rep_init(&r);
	r.n = i <= 2 ? 3 : 0;
	r.k = i == 0 ? 2 : 0;
	r.ids = i == 0 || i == 2 ? ids : NULL;
	r.dists = i == 0 ? dists : NULL;
	r.count = i == 0 ? 100 : 0;
	r.shards_total = i == 0 ? 4 : 0;
	r.shards_answered = i == 0 ? 3 : 0;
	r.dim = i == 1 ? 4 : 0;
	r.found = i == 1 ? found : NULL;
	r.vectors = i == 1 ? vec : NULL;
	r.meta = i == 1 ? meta : NULL;
	r.nnames = i == 2 ? 2 : 0;
	r.names = i == 2 ? names : NULL;
	r.has_stats = i == 3;
	r.stats = (omen_collection_stats){.dim = 4,
	                                  .points = 3,
	                                  .next_id = 3,
	                                  .index = "hnsw",
	                                  .hnsw_m = 16,
	                                  .hnsw_ef_construction = 200,
	                                  .ivf_nlist = 64,
	                                  .ivf_nprobe = 8,
	                                  .ivf_bits = 1};
	strcpy(r.stats.name, "docs");
	r.has_dbstats = i == 4;
	r.dbstats = (omen_db_stats){2, 1 << 20, 1 << 24};
	r.status = i == 5 ? OMEN_ECORRUPT : OMEN_OK;
	r.message = i == 5 ? message : NULL;
	r.report = i == 5 ? report : NULL;
	int rc = wire_rep_encode(&r, &p, &len);
	if (rc != OMEN_OK)
		fprintf(stderr, "wire_seeds: cannot encode reply %d\n", i);
	rc = rc != OMEN_OK || write_file(dir, "reply", i, p, len);
	free(p);
	return rc;
}

int main(int argc, char **argv)
{
	int bad = 0;
	if (argc != 2) {
		fprintf(stderr, "usage: wire_seeds DIR\n");
		return 2;
	}
	for (int op = 0; op < WIRE_OP_COUNT; op++)
		bad |= seed_req(argv[1], (wire_op)op);
	for (int i = 0; i < 6; i++)
		bad |= seed_rep(argv[1], i);
	return bad;
}
