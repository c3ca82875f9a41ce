/*
 * Tests for the shard node's dispatcher (shard/shard.c): a node started in-process on a
 * temporary directory, driven through shard_handle and through a real socket. Requests reach
 * the logical shard they name; an unknown collection, a stale shard map epoch, a frozen shard
 * and malformed requests are refused with the right status; the node id survives a restart.
 */
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include <math.h>

#include "net/net.h"
#include "shard/shard.h"

#include <nng/protocol/reqrep0/req.h>

#define DIM 4

typedef struct fixture {
	char dir[4096];
	shard_node *node;
} fixture;

static shard_node *start(const char *dir, const char *const *coordinators, size_t n)
{
	shard_config cfg = {
	    dir, "tcp://127.0.0.1:0", NULL, WIRE_MAX_MSG_DEFAULT, 2, 1, coordinators, n, NULL, 20};
	shard_node *s = NULL;
	assert_omen_ok(shard_start(&cfg, &s));
	return s;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	tmp_dir(f->dir, sizeof f->dir, "shard");
	f->node = start(f->dir, NULL, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	shard_stop(f->node);
	rm_tree(f->dir);
	free(f);
	return 0;
}

/* A request of op on logical shard `shard` of collection "c". */
static wire_req req(wire_op op, int32_t shard)
{
	wire_req q;
	wire_req_init(&q);
	q.op = op;
	q.shard = shard;
	q.dim = DIM;
	q.metric = OMEN_METRIC_L2;
	strcpy(q.name, "c");
	return q;
}

/* Sends q to the node and returns the reply's status; r is the caller's to free. */
static int handle(fixture *f, const wire_req *q, wire_rep *r)
{
	wire_rep_init(r);
	shard_handle(f->node, q, r);
	if (r->status != OMEN_OK)
		assert_true(r->message && r->message[0]); /* every refusal says why */
	return r->status;
}

/* handle() for a request whose reply carries nothing but its status. */
static int status_of(fixture *f, const wire_req *q)
{
	wire_rep r;
	int st = handle(f, q, &r);
	wire_rep_free(&r);
	return st;
}

/* Upserts n points with ids first, first + 1, ... (point i is (id, 0, 0, 0)). */
static int upsert(fixture *f, int32_t shard, uint64_t first, uint64_t n)
{
	wire_req q = req(WIRE_UPSERT, shard);
	uint64_t ids[16];
	float v[16 * DIM] = {0};
	assert_true(n <= 16);
	for (uint64_t i = 0; i < n; i++)
		ids[i] = first + i, v[i * DIM] = (float)(first + i);
	q.n = n, q.ids = ids, q.vectors = v;
	return status_of(f, &q);
}

/* The reply to op on shard, which must succeed (free with wire_rep_free). */
static wire_rep reply_to(fixture *f, wire_op op, int32_t shard)
{
	wire_req q = req(op, shard);
	wire_rep r;
	assert_omen_ok(handle(f, &q, &r));
	return r;
}

static uint64_t count(fixture *f, int32_t shard)
{
	wire_rep r = reply_to(f, WIRE_COUNT, shard);
	uint64_t n = r.count;
	wire_rep_free(&r);
	return n;
}

static int fence(fixture *f, int32_t shard, wire_fence_mode mode)
{
	wire_req q = req(WIRE_FENCE, shard);
	q.mode = mode;
	return status_of(f, &q);
}

/* Creates logical shards 0 and 1 of "c". */
static void create_two(fixture *f)
{
	for (int32_t s = 0; s < 2; s++) {
		wire_req q = req(WIRE_CREATE, s);
		assert_omen_ok(status_of(f, &q));
	}
}

/* ---- Routing to the logical shard a request names ---- */

static void test_writes_and_reads_reach_their_shard(void **state)
{
	fixture *f = *state;
	create_two(f);
	assert_omen_ok(upsert(f, 0, 1, 3));
	assert_omen_ok(upsert(f, 1, 10, 1));
	assert_int_equal(count(f, 0), 3);
	assert_int_equal(count(f, 1), 1);
	uint64_t ids[2] = {1, 10};
	wire_req q = req(WIRE_GET, 1);
	q.n = 2, q.ids = ids;
	wire_rep r;
	assert_omen_ok(handle(f, &q, &r));
	assert_int_equal(r.n, 2);
	assert_int_equal(r.dim, DIM);
	assert_int_equal(r.found[0], 0); /* id 1 lives on shard 0 */
	assert_int_equal(r.found[1], 1);
	assert_true(r.vectors[DIM] == 10.0f);
	wire_rep_free(&r);
	q = req(WIRE_DELETE, 0);
	q.n = 2, q.ids = ids;
	assert_omen_ok(handle(f, &q, &r));
	assert_int_equal(r.count, 1); /* id 10 is not on shard 0 */
	wire_rep_free(&r);
	assert_int_equal(count(f, 0), 2);
	assert_int_equal(count(f, 1), 1);
}

/* A shard with fewer than k points answers with its points and pads the rows (the
 * coordinator merges every shard's k entries). */
static void test_search_pads_a_small_shard(void **state)
{
	fixture *f = *state;
	create_two(f);
	assert_omen_ok(upsert(f, 0, 1, 3));
	float query[DIM] = {2.0f, 0, 0, 0};
	wire_req q = req(WIRE_SEARCH, 0);
	q.n = 1, q.k = 5, q.vectors = query, q.exact = 1;
	wire_rep r;
	assert_omen_ok(handle(f, &q, &r));
	assert_int_equal(r.n, 1);
	assert_int_equal(r.k, 5);
	assert_int_equal(r.count, 3);
	assert_int_equal(r.ids[0], 2);
	assert_true(r.dists[0] == 0.0f);
	assert_true((r.ids[1] == 1 && r.ids[2] == 3) || (r.ids[1] == 3 && r.ids[2] == 1));
	assert_int_equal(r.ids[3], OMEN_NO_ID);
	assert_true(isinf(r.dists[4]));
	wire_rep_free(&r);
	q.shard = 1; /* an empty shard: all padding */
	assert_omen_ok(handle(f, &q, &r));
	assert_int_equal(r.ids[0], OMEN_NO_ID);
	assert_int_equal(r.count, 0);
	wire_rep_free(&r);
}

/* Node-wide calls: LIST names every unit on disk, STATS one unit, DROP removes one. */
static void test_list_stats_drop(void **state)
{
	fixture *f = *state;
	create_two(f);
	assert_omen_ok(upsert(f, 1, 5, 2));
	wire_req q = req(WIRE_LIST, -1);
	wire_rep r;
	assert_omen_ok(handle(f, &q, &r));
	assert_int_equal(r.nnames, 2);
	assert_true(strcmp(r.names[0], "c@0") == 0 || strcmp(r.names[1], "c@0") == 0);
	wire_rep_free(&r);
	q = req(WIRE_STATS, 1);
	assert_omen_ok(handle(f, &q, &r));
	assert_true(r.has_stats);
	assert_int_equal(r.stats.points, 2);
	assert_int_equal(r.stats.dim, DIM);
	wire_rep_free(&r);
	q = req(WIRE_DROP, 1);
	assert_omen_ok(status_of(f, &q));
	q = req(WIRE_COUNT, 1);
	assert_omen_status(status_of(f, &q), OMEN_ENOTFOUND);
	assert_int_equal(count(f, 0), 0);
}

/* ---- IVF through the shard service ---- */

#define IVF_NQ 40
#define IVF_K  10

/* Point (or query) i of a fixed pseudo-random set in [0, 1)^DIM: seed tells sets apart. */
static void pseudo_point(uint64_t i, uint64_t seed, float *v)
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
	for (int d = 0; d < DIM; d++) {
		x ^= x >> 31, x *= 0xBF58476D1CE4E5B9ull, x ^= x >> 29;
		v[d] = (float)(x >> 40) / (float)(1 << 24);
	}
}

/* Upserts n pseudo-random points with ids first.. in one batch. */
static int upsert_many(fixture *f, int32_t shard, uint64_t first, uint64_t n)
{
	wire_req q = req(WIRE_UPSERT, shard);
	uint64_t *ids = malloc(n * sizeof *ids);
	float *v = malloc(n * DIM * sizeof *v);
	for (uint64_t i = 0; i < n; i++)
		ids[i] = first + i, pseudo_point(first + i, 1, v + i * DIM);
	q.n = n, q.ids = ids, q.vectors = v;
	int st = status_of(f, &q);
	free(ids);
	free(v);
	return st;
}

/* Searches IVF_NQ queries on shard 0 with nprobe (exact when exact is set) into ids; returns
 * the status, with the message in msg (256 bytes). */
static int search_nprobe(fixture *f, uint32_t nprobe, int exact, uint64_t *ids, char *msg)
{
	float qv[IVF_NQ * DIM];
	for (int i = 0; i < IVF_NQ; i++)
		pseudo_point((uint64_t)i, 2, qv + i * DIM);
	wire_req q = req(WIRE_SEARCH, 0);
	q.n = IVF_NQ, q.k = IVF_K, q.vectors = qv, q.nprobe = nprobe, q.exact = exact;
	wire_rep r;
	int st = handle(f, &q, &r);
	if (st == OMEN_OK)
		memcpy(ids, r.ids, sizeof(uint64_t) * IVF_NQ * IVF_K);
	snprintf(msg, 256, "%s", r.message ? r.message : "");
	wire_rep_free(&r);
	return st;
}

static double recall(const uint64_t *got, const uint64_t *want)
{
	int hits = 0;
	for (int q = 0; q < IVF_NQ; q++)
		for (int i = 0; i < IVF_K; i++)
			for (int j = 0; j < IVF_K; j++)
				hits += got[q * IVF_K + i] == want[q * IVF_K + j];
	return (double)hits / (IVF_NQ * IVF_K);
}

static omen_collection_stats stats_of(fixture *f, int32_t shard)
{
	wire_rep r = reply_to(f, WIRE_STATS, shard);
	omen_collection_stats s = r.stats;
	wire_rep_free(&r);
	return s;
}

/* BUILD and SEARCH carry IVF's parameters to the engine: the statistics show them, bits 0 (a
 * request without it) is the default, nprobe reaches the search (all lists find more than
 * one), one above the lists and a shard of fewer than 1,000 points are refused with the
 * engine's messages, and a refused build leaves the index as it was. */
static void test_ivf_build_and_search(void **state)
{
	fixture *f = *state;
	create_two(f);
	assert_omen_ok(upsert_many(f, 0, 0, 2000));
	assert_omen_ok(upsert_many(f, 1, 10000, 999));
	wire_req q = req(WIRE_BUILD, 0);
	q.index_type = OMEN_INDEX_IVF, q.nlist = 32;
	assert_omen_ok(status_of(f, &q));
	omen_collection_stats s = stats_of(f, 0);
	assert_string_equal(s.index, "ivf");
	assert_int_equal(s.ivf_nlist, 32);
	assert_int_equal(s.ivf_bits, OMEN_IVF_BITS_DEFAULT);
	assert_true(s.ivf_nprobe >= 1 && s.ivf_nprobe <= 32);

	uint64_t exact[IVF_NQ * IVF_K], all[IVF_NQ * IVF_K], one[IVF_NQ * IVF_K];
	char msg[256];
	assert_omen_ok(search_nprobe(f, 0, 1, exact, msg));
	assert_omen_ok(search_nprobe(f, 32, 0, all, msg));
	assert_omen_ok(search_nprobe(f, 1, 0, one, msg));
	assert_true(recall(all, exact) >= 0.99);
	assert_true(recall(one, exact) < recall(all, exact) - 0.05);
	assert_omen_status(search_nprobe(f, 33, 0, one, msg), OMEN_EINVAL);
	assert_non_null(strstr(msg, "nprobe 33 exceeds the index's 32 lists"));

	q.nlist = 2001; /* more lists than points: refused, the index stays */
	assert_omen_status(status_of(f, &q), OMEN_EINVAL);
	s = stats_of(f, 0);
	assert_string_equal(s.index, "ivf");
	assert_int_equal(s.ivf_nlist, 32);
	q = req(WIRE_BUILD, 1);
	q.index_type = OMEN_INDEX_IVF;
	wire_rep r;
	assert_omen_status(handle(f, &q, &r), OMEN_EINVAL);
	assert_non_null(strstr(r.message, "at least 1000 live points, it has 999"));
	wire_rep_free(&r);
	assert_string_equal(stats_of(f, 1).index, "flat");
}

/* CREATE again with the same settings succeeds (a retry); with others it is EEXIST. */
static void test_create_is_idempotent(void **state)
{
	fixture *f = *state;
	create_two(f);
	wire_req q = req(WIRE_CREATE, 0);
	assert_omen_ok(status_of(f, &q));
	q.dim = DIM + 1;
	assert_omen_status(status_of(f, &q), OMEN_EEXIST);
}

static void test_unknown_collection(void **state)
{
	fixture *f = *state;
	create_two(f);
	wire_req q = req(WIRE_COUNT, 0);
	strcpy(q.name, "nope");
	assert_omen_status(status_of(f, &q), OMEN_ENOTFOUND);
	q = req(WIRE_SEARCH, 7); /* a shard of "c" this node never held */
	float query[DIM] = {0};
	q.n = 1, q.k = 1, q.vectors = query;
	assert_omen_status(status_of(f, &q), OMEN_ENOTFOUND);
	assert_omen_status(upsert(f, 9, 1, 1), OMEN_ENOTFOUND);
}

/* ---- The shard map's epoch ---- */

static void test_stale_epoch_is_refused(void **state)
{
	fixture *f = *state;
	create_two(f);
	wire_req q = req(WIRE_COUNT, 0);
	q.epoch = 5;
	assert_omen_ok(status_of(f, &q));
	q.epoch = 4; /* routed by an older map than one seen */
	wire_rep r;
	assert_omen_status(handle(f, &q, &r), OMEN_ESTALE);
	assert_non_null(strstr(r.message, "epoch 4 is older than 5"));
	wire_rep_free(&r);
	q.epoch = 0; /* no map: a configured cluster */
	assert_omen_ok(status_of(f, &q));
	q.epoch = 6;
	assert_omen_ok(status_of(f, &q));
	q.epoch = 5;
	assert_omen_status(status_of(f, &q), OMEN_ESTALE);
	q = req(WIRE_HEALTH, -1); /* node-wide calls are checked too */
	q.epoch = 1;
	assert_omen_status(status_of(f, &q), OMEN_ESTALE);
}

/* ---- Fences: a frozen logical shard refuses writes and serves reads ---- */

static void test_frozen_shard_refuses_writes(void **state)
{
	fixture *f = *state;
	create_two(f);
	assert_omen_ok(upsert(f, 0, 1, 3));
	assert_omen_ok(fence(f, 0, FENCE_TRACK));
	assert_omen_ok(upsert(f, 0, 7, 2)); /* tracked */
	assert_omen_ok(fence(f, 0, FENCE_FREEZE));
	wire_rep r;
	assert_omen_status(upsert(f, 0, 20, 1), OMEN_ESTALE);
	uint64_t id = 1;
	wire_req q = req(WIRE_DELETE, 0);
	q.n = 1, q.ids = &id;
	assert_omen_status(handle(f, &q, &r), OMEN_ESTALE);
	assert_non_null(strstr(r.message, "being moved"));
	wire_rep_free(&r);
	assert_omen_ok(upsert(f, 1, 30, 1)); /* the other logical shard is not frozen */
	assert_int_equal(count(f, 0), 5);    /* reads go on */
	float query[DIM] = {7.0f, 0, 0, 0};
	q = req(WIRE_SEARCH, 0);
	q.n = 1, q.k = 1, q.vectors = query;
	assert_omen_ok(handle(f, &q, &r));
	assert_int_equal(r.ids[0], 7);
	wire_rep_free(&r);
	q = req(WIRE_IDS, 0); /* the ids written while tracked */
	q.mode = WIRE_IDS_TRACKED, q.n = 10;
	assert_omen_ok(handle(f, &q, &r));
	assert_int_equal(r.n, 2);
	assert_int_equal(r.ids[0], 7);
	assert_int_equal(r.ids[1], 8);
	wire_rep_free(&r);
	assert_omen_ok(fence(f, 0, FENCE_RELEASE));
	assert_omen_ok(upsert(f, 0, 20, 1));
	assert_int_equal(count(f, 0), 6);
}

/* FENCE_QUERY lists the marked units; the marks are files, so they outlive a restart. */
static void test_marks_are_listed_and_kept(void **state)
{
	fixture *f = *state;
	create_two(f);
	assert_omen_ok(fence(f, 1, FENCE_TRACK));
	assert_omen_ok(fence(f, 1, FENCE_FREEZE));
	shard_stop(f->node);
	f->node = start(f->dir, NULL, 0);
	assert_omen_status(upsert(f, 1, 1, 1), OMEN_ESTALE); /* still frozen */
	wire_req q = req(WIRE_FENCE, -1);
	q.mode = FENCE_QUERY;
	wire_rep r;
	assert_omen_ok(handle(f, &q, &r));
	assert_int_equal(r.nnames, 1);
	assert_string_equal(r.names[0], "c");
	assert_int_equal(r.ids[0], 1);
	assert_int_equal(r.found[0], 1); /* a source, not an incoming copy */
	wire_rep_free(&r);
	assert_omen_ok(fence(f, 1, FENCE_RELEASE));
	assert_omen_ok(upsert(f, 1, 1, 1));
}

/* ---- Malformed requests ---- */

static void test_malformed_requests(void **state)
{
	fixture *f = *state;
	create_two(f);
	wire_req q = req(WIRE_COUNT, -1); /* names no logical shard */
	assert_omen_status(status_of(f, &q), OMEN_EINVAL);
	q = req(WIRE_UPSERT, 0); /* a shard needs the ids of what it stores */
	float v[DIM] = {0};
	q.n = 1, q.vectors = v;
	assert_omen_status(status_of(f, &q), OMEN_EINVAL);
	q = req(WIRE_FENCE, 0); /* a fence needs a collection */
	q.name[0] = '\0';
	q.mode = FENCE_FREEZE;
	assert_omen_status(status_of(f, &q), OMEN_EINVAL);
	q = req(WIRE_FENCE, 0);
	q.mode = FENCE_FREEZE; /* not tracked first */
	assert_omen_status(status_of(f, &q), OMEN_EINVAL);
	q = req(WIRE_JOIN, -1); /* a coordinator's call */
	assert_omen_status(status_of(f, &q), OMEN_ENOTSUP);
	q = req(WIRE_IDS, 0); /* tracked ids of a shard that is not frozen */
	q.mode = WIRE_IDS_TRACKED, q.n = 1;
	assert_omen_status(status_of(f, &q), OMEN_EINVAL);
}

/* ---- Through the socket ---- */

static void url_of(fixture *f, char *url, size_t len)
{
	snprintf(url, len, "tcp://127.0.0.1:%d", shard_port(f->node));
}

/* The server hands decoded requests to the same dispatcher. */
static void test_through_a_peer(void **state)
{
	fixture *f = *state;
	char url[64];
	url_of(f, url, sizeof url);
	peer *p;
	assert_omen_ok(peer_open(url, WIRE_MAX_MSG_DEFAULT, &p));
	wire_req q = req(WIRE_CREATE, 3);
	wire_rep r;
	wire_rep_init(&r);
	assert_omen_ok(peer_request(p, &q, 5000, &r));
	wire_rep_free(&r);
	q = req(WIRE_COUNT, 3);
	assert_omen_ok(peer_request(p, &q, 5000, &r));
	assert_int_equal(r.count, 0);
	wire_rep_free(&r);
	q = req(WIRE_COUNT, 4);
	assert_omen_status(peer_request(p, &q, 5000, &r), OMEN_ENOTFOUND);
	wire_rep_free(&r);
	peer_close(p);
}

/* Bytes that are not a wire request get an EPROTO reply, and the node goes on serving. */
static void test_garbage_bytes_get_eproto(void **state)
{
	fixture *f = *state;
	char url[64];
	url_of(f, url, sizeof url);
	nng_socket sock;
	assert_int_equal(nng_req0_open(&sock), 0);
	assert_int_equal(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000), 0);
	assert_int_equal(nng_dial(sock, url, NULL, 0), 0);
	static const unsigned char junk[] = {0x93, 0x01, 0xc1, 0xff, 0x00};
	assert_int_equal(nng_send(sock, (void *)junk, sizeof junk, 0), 0);
	void *buf = NULL;
	size_t len = 0;
	assert_int_equal(nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC), 0);
	wire_rep r;
	char err[WIRE_ERRLEN];
	wire_rep_init(&r);
	assert_omen_ok(wire_rep_decode(buf, len, WIRE_MAX_MSG_DEFAULT, &r, err));
	assert_int_equal(r.status, OMEN_EPROTO);
	wire_rep_free(&r);
	nng_free(buf, len);
	nng_close(sock);
	wire_req q = req(WIRE_HEALTH, -1);
	assert_omen_ok(status_of(f, &q));
}

/* ---- The node id ---- */

/* A node that registers itself chooses an id once and keeps it in its data directory; a node
 * a configuration lists has none. */
static void test_node_id_is_kept(void **state)
{
	fixture *f = *state;
	assert_int_equal(shard_id(f->node), 0);
	shard_stop(f->node);
	static const char *const coords[] = {"tcp://127.0.0.1:1"}; /* nobody: never joins */
	f->node = start(f->dir, coords, 1);
	uint64_t id = shard_id(f->node);
	assert_true(id >= WIRE_NODE_ID_MIN && id <= WIRE_NODE_ID_MAX);
	shard_stop(f->node);
	f->node = start(f->dir, coords, 1);
	assert_int_equal(shard_id(f->node), id);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_writes_and_reads_reach_their_shard),
	    T(test_search_pads_a_small_shard),
	    T(test_list_stats_drop),
	    T(test_ivf_build_and_search),
	    T(test_create_is_idempotent),
	    T(test_unknown_collection),
	    T(test_stale_epoch_is_refused),
	    T(test_frozen_shard_refuses_writes),
	    T(test_marks_are_listed_and_kept),
	    T(test_malformed_requests),
	    T(test_through_a_peer),
	    T(test_garbage_bytes_get_eproto),
	    T(test_node_id_is_kept),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	nng_fini();
	return failed;
}
