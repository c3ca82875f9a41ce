/*
 * Bad input: every kind of wrong argument, foreign or damaged database directory, and a full
 * database gives a clear error, and leaves the database exactly as it was (same count, same
 * search results, same stored bytes).
 */
#include <fcntl.h>
#include <lmdb.h>
#include <math.h>
#include <sys/stat.h>

#include "helpers.h"

#define DIM 16
#define N   500

typedef struct fixture {
	char dir[512];
	omen_db *db;
	omen_collection *c;
	float *v;
	uint64_t before[10];
} fixture;

/* Top-10 of a fixed query: a fingerprint of the database's contents. */
static void fingerprint(omen_collection *c, uint64_t *out)
{
	float q[DIM];
	for (int i = 0; i < DIM; i++)
		q[i] = 0.01f * (float)i;
	float d[10];
	omen_search_params p;
	omen_search_params_init(&p);
	assert_omen_ok(omen_search(c, q, 1, DIM, &p, out, d));
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	tmp_dir(f->dir, sizeof f->dir, "bad");
	assert_omen_ok(omen_open(f->dir, NULL, &f->db));
	assert_omen_ok(omen_create_collection(f->db, "c", DIM, OMEN_METRIC_L2));
	assert_omen_ok(omen_collection_open(f->db, "c", &f->c));
	f->v = rnd_vectors(N, DIM, 1);
	omen_batch b = {N, DIM, NULL, f->v, NULL};
	assert_omen_ok(omen_upsert(f->c, &b, NULL));
	fingerprint(f->c, f->before);
	*state = f;
	return 0;
}

/* The database must be unchanged: same count and the same search results. */
static void assert_unchanged(fixture *f)
{
	uint64_t cnt, now[10];
	assert_omen_ok(omen_count(f->c, &cnt));
	assert_int_equal(cnt, N);
	fingerprint(f->c, now);
	assert_memory_equal(now, f->before, sizeof now);
}

static int teardown(void **state)
{
	fixture *f = *state;
	omen_close(f->db);
	rm_tree(f->dir);
	free(f->v);
	free(f);
	return 0;
}

static void test_bad_vectors(void **state)
{
	fixture *f = *state;
	float *v = rnd_vectors(10, DIM, 2);
	uint64_t ids[10];
	for (int i = 0; i < 10; i++)
		ids[i] = 5000 + i;
	omen_batch b = {10, DIM - 1, ids, v, NULL};
	assert_omen_status(omen_upsert(f->c, &b, NULL), OMEN_EINVAL);
	assert_non_null(strstr(omen_errmsg(f->db), "dimension 16 expected, got 15"));
	b.dim = DIM;
	v[5 * DIM + 3] = NAN;
	assert_omen_status(omen_upsert(f->c, &b, NULL), OMEN_EINVAL);
	assert_non_null(strstr(omen_errmsg(f->db), "NaN"));
	v[5 * DIM + 3] = INFINITY;
	assert_omen_status(omen_upsert(f->c, &b, NULL), OMEN_EINVAL);
	v[5 * DIM + 3] = 0;
	/* Huge but finite components overflow the squared norm: still valid input. */
	{
		omen_collection *h;
		assert_omen_ok(omen_create_collection(f->db, "huge", 4, OMEN_METRIC_COSINE));
		assert_omen_ok(omen_collection_open(f->db, "huge", &h));
		float big[4] = {3e38f, -3e38f, 1e30f, 0}, got[4];
		omen_batch hb = {1, 4, NULL, big, NULL};
		uint64_t id;
		uint8_t found;
		assert_omen_ok(omen_upsert(h, &hb, &id));
		assert_omen_ok(omen_get(h, &id, 1, got, NULL, &found));
		assert_true(found && fabsf(got[0] - 0.7071068f) < 1e-5f && got[3] == 0);
		omen_collection_close(h);
		assert_omen_ok(omen_drop_collection(f->db, "huge"));
	}
	ids[7] = ids[2];
	assert_omen_status(omen_upsert(f->c, &b, NULL), OMEN_EINVAL);
	assert_non_null(strstr(omen_errmsg(f->db), "twice"));
	ids[7] = OMEN_NO_ID;
	assert_omen_status(omen_upsert(f->c, &b, NULL), OMEN_EINVAL);
	ids[7] = 5007;
	const char *meta[10] = {0};
	meta[4] = "{\"a\": [1, 2]}";
	b.metadata = meta;
	assert_omen_status(omen_upsert(f->c, &b, NULL), OMEN_EINVAL);
	meta[4] = "{not json";
	assert_omen_status(omen_upsert(f->c, &b, NULL), OMEN_EINVAL);
	b.n = 0;
	assert_omen_status(omen_upsert(f->c, &b, NULL), OMEN_EINVAL);
	assert_omen_status(omen_upsert(f->c, NULL, NULL), OMEN_EINVAL);
	assert_omen_status(omen_upsert(NULL, &b, NULL), OMEN_EINVAL);
	assert_unchanged(f);
	free(v);
}

static void test_bad_search(void **state)
{
	fixture *f = *state;
	float q[DIM] = {0};
	uint64_t ids[N + 1];
	float d[N + 1];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = 0;
	assert_omen_status(omen_search(f->c, q, 1, DIM, &p, ids, d), OMEN_EINVAL);
	p.k = (size_t)-1; /* "k = -1" through an unsigned interface */
	assert_omen_status(omen_search(f->c, q, 1, DIM, &p, ids, d), OMEN_EINVAL);
	p.k = N + 1;
	assert_omen_status(omen_search(f->c, q, 1, DIM, &p, ids, d), OMEN_EINVAL);
	assert_non_null(strstr(omen_errmsg(NULL), "exceeds"));
	p.k = N;
	assert_omen_ok(omen_search(f->c, q, 1, DIM, &p, ids, d));
	p.k = 10;
	assert_omen_status(omen_search(f->c, q, 1, DIM + 1, &p, ids, d), OMEN_EINVAL);
	/* No queries: the arguments are still checked, nothing is written. */
	omen_search_info info = {0, 0, NULL, 0};
	p.info = &info;
	assert_omen_ok(omen_search(f->c, NULL, 0, DIM, &p, NULL, NULL));
	assert_string_equal(info.path, "cpu-exact");
	assert_int_equal(info.shards_total, 1);
	assert_omen_status(omen_search(f->c, NULL, 0, DIM + 1, &p, NULL, NULL), OMEN_EINVAL);
	p.k = N + 1;
	assert_omen_status(omen_search(f->c, NULL, 0, DIM, &p, NULL, NULL), OMEN_EINVAL);
	p.k = 10;
	p.filter = "[1,2";
	assert_omen_status(omen_search(f->c, NULL, 0, DIM, &p, NULL, NULL), OMEN_EINVAL);
	p.filter = NULL;
	p.info = NULL;
	assert_omen_status(omen_search(f->c, q, OMEN_MAX_BATCH + 1, DIM, &p, ids, d), OMEN_EINVAL);
	q[3] = NAN;
	assert_omen_status(omen_search(f->c, q, 1, DIM, &p, ids, d), OMEN_EINVAL);
	q[3] = 0;
	p.filter = "{\"year\": {\"$bogus\": 1}}";
	assert_omen_status(omen_search(f->c, q, 1, DIM, &p, ids, d), OMEN_EINVAL);
	p.filter = "[1,2";
	assert_omen_status(omen_search(f->c, q, 1, DIM, &p, ids, d), OMEN_EINVAL);
	p.filter = NULL;
	p.threads = -1;
	assert_omen_status(omen_search(f->c, q, 1, DIM, &p, ids, d), OMEN_EINVAL);
	assert_unchanged(f);
}

static void test_bad_collections(void **state)
{
	fixture *f = *state;
	omen_collection *c;
	assert_omen_status(omen_collection_open(f->db, "nope", &c), OMEN_ENOTFOUND);
	assert_non_null(strstr(omen_errmsg(NULL), "nope"));
	assert_omen_status(omen_create_collection(f->db, "", 4, OMEN_METRIC_L2), OMEN_EINVAL);
	assert_omen_status(omen_create_collection(f->db, "a/b", 4, OMEN_METRIC_L2), OMEN_EINVAL);
	assert_omen_status(omen_create_collection(f->db, "x", 0, OMEN_METRIC_L2), OMEN_EINVAL);
	assert_omen_status(omen_create_collection(f->db, "x", OMEN_MAX_DIM + 1, OMEN_METRIC_L2),
	                   OMEN_EINVAL);
	assert_omen_status(omen_create_collection(f->db, "x", 4, (omen_metric)7), OMEN_EINVAL);
	assert_omen_status(omen_drop_collection(f->db, "nope"), OMEN_ENOTFOUND);
	omen_metric m;
	assert_omen_status(omen_metric_parse("euclid", &m), OMEN_EINVAL);
	assert_omen_ok(omen_create_collection(f->db, "big", 4096, OMEN_METRIC_COSINE));
	float *v = rnd_vectors(2, 4096, 3);
	memset(v + 4096, 0, 4096 * sizeof *v); /* a zero vector has no cosine */
	assert_omen_ok(omen_collection_open(f->db, "big", &c));
	omen_batch b = {2, 4096, NULL, v, NULL};
	assert_omen_status(omen_upsert(c, &b, NULL), OMEN_EINVAL);
	b.n = 1;
	assert_omen_ok(omen_upsert(c, &b, NULL));
	omen_collection_close(c);
	assert_unchanged(f);
	free(v);
}

/* An embedded database is one shard with one copy: a larger layout is refused with a message
 * that says why, and creates nothing; 0 and 1 are accepted. */
static void test_embedded_layout(void **state)
{
	fixture *f = *state;
	omen_collection_options o;
	memset(&o, 0xff, sizeof o);
	omen_collection_options_init(&o);
	assert_int_equal(o.shards, 0);
	assert_int_equal(o.replicas, 0);
	omen_collection_options_init(NULL);
	o.shards = 2;
	assert_omen_status(omen_create_collection_opts(f->db, "x", 4, OMEN_METRIC_L2, &o),
	                   OMEN_EINVAL);
	assert_non_null(strstr(omen_errmsg(NULL), "shards and replicas apply to a cluster"));
	assert_non_null(strstr(omen_errmsg(NULL), "shards, got 2"));
	o.shards = 1;
	o.replicas = OMEN_MAX_REPLICAS;
	assert_omen_status(omen_create_collection_opts(f->db, "x", 4, OMEN_METRIC_L2, &o),
	                   OMEN_EINVAL);
	assert_non_null(strstr(omen_errmsg(NULL), "replicas, got 5"));
	o.replicas = UINT32_MAX;
	assert_omen_status(omen_create_collection_opts(f->db, "x", 4, OMEN_METRIC_L2, &o),
	                   OMEN_EINVAL);
	assert_omen_status(omen_create_collection_opts(NULL, "x", 4, OMEN_METRIC_L2, NULL),
	                   OMEN_EINVAL);
	omen_collection *c;
	assert_omen_status(omen_collection_open(f->db, "x", &c), OMEN_ENOTFOUND);
	o.replicas = 1;
	assert_omen_ok(omen_create_collection_opts(f->db, "x", 4, OMEN_METRIC_L2, &o));
	assert_omen_ok(omen_create_collection_opts(f->db, "y", 4, OMEN_METRIC_IP, NULL));
	omen_db_stats s;
	assert_omen_ok(omen_db_stats_get(f->db, &s));
	assert_int_equal(s.collections, 3); /* c, x, y */
	assert_unchanged(f);
}

/* A remote database checks the layout's limits before sending: a coordinator that is not
 * there is never asked (the call would otherwise wait out the timeout for OMEN_EUNAVAIL). */
static void test_remote_layout_limits(void **state)
{
	(void)state;
	omen_connect_options co;
	omen_connect_options_init(&co);
	co.timeout_ms = 200;
	omen_db *db;
	assert_omen_ok(omen_connect("tcp://127.0.0.1:1", &co, &db));
	omen_collection_options o;
	omen_collection_options_init(&o);
	o.replicas = OMEN_MAX_REPLICAS + 1;
	assert_omen_status(omen_create_collection_opts(db, "x", 4, OMEN_METRIC_L2, &o),
	                   OMEN_EINVAL);
	assert_non_null(strstr(omen_errmsg(NULL), "replicas must be 0 (one copy) to 5, got 6"));
	o.replicas = OMEN_MAX_REPLICAS;
	o.shards = OMEN_MAX_SHARDS + 1;
	assert_omen_status(omen_create_collection_opts(db, "x", 4, OMEN_METRIC_L2, &o),
	                   OMEN_EINVAL);
	assert_non_null(
	    strstr(omen_errmsg(NULL), "shards must be 0 (the cluster's default) to 4096"));
	o.shards = OMEN_MAX_SHARDS; /* within the limits: sent, and nobody answers */
	assert_omen_status(omen_create_collection_opts(db, "x", 4, OMEN_METRIC_L2, &o),
	                   OMEN_EUNAVAIL);
	omen_close(db);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

/* Directories and files written by something else are refused, and left as they were. */
static void test_foreign_dirs(void **state)
{
	(void)state;
	char dir[512], path[600];
	omen_db *db;
	tmp_dir(dir, sizeof dir, "foreign");
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	write_file(path, "hello", 5);
	assert_omen_status(omen_open(dir, NULL, &db), OMEN_ENOTDB);
	/* Garbage data.mdb. */
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	char junk[8192];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 131 + 7);
	write_file(path, junk, sizeof junk);
	assert_omen_status(omen_open(dir, NULL, &db), OMEN_ENOTDB);
	snprintf(path, sizeof path, "%s/lock.mdb", dir);
	assert_int_not_equal(access(path, F_OK), 0); /* no lock file left behind */
	rm_tree(dir);
	/* A valid LMDB environment written by another program. */
	tmp_dir(dir, sizeof dir, "lmdb");
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	MDB_val k = {3, "key"}, v = {5, "value"};
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_omen_status(omen_open(dir, NULL, &db), OMEN_ENOTDB);
	rm_tree(dir);
	/* A plain file, and a read-only open of nothing. */
	snprintf(path, sizeof path, "%s", "/etc/hostname");
	assert_omen_status(omen_open(path, NULL, &db), OMEN_ENOTDB);
	omen_open_options o;
	omen_open_options_init(&o);
	o.read_only = 1;
	assert_omen_status(omen_open("/nonexistent/omen", &o, &db), OMEN_ENOTDB);
	/* no_create: a missing path or an empty directory is refused and stays as it was. */
	omen_open_options_init(&o);
	o.no_create = 1;
	tmp_dir(dir, sizeof dir, "nocreate");
	assert_omen_status(omen_open(dir, &o, &db), OMEN_ENOTDB);
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	assert_int_not_equal(access(path, F_OK), 0);
	rm_tree(dir);
	assert_omen_status(omen_open(dir, &o, &db), OMEN_ENOTDB);
	assert_int_not_equal(access(dir, F_OK), 0);
	/* Read-only opens of a foreign directory leave no lock file either. */
	tmp_dir(dir, sizeof dir, "rojunk");
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	write_file(path, junk, sizeof junk);
	o.read_only = 1;
	assert_omen_status(omen_open(dir, &o, &db), OMEN_ENOTDB);
	snprintf(path, sizeof path, "%s/lock.mdb", dir);
	assert_int_not_equal(access(path, F_OK), 0);
	rm_tree(dir);
}

static void test_metadata_check(void **state)
{
	(void)state;
	assert_omen_ok(omen_metadata_check("{\"a\": 1, \"b\": \"x\", \"c\": true, \"d\": 2.5}"));
	assert_omen_status(omen_metadata_check("{\"a\": null}"), OMEN_EINVAL);
	assert_omen_status(omen_metadata_check("{\"a\": {\"b\": 1}}"), OMEN_EINVAL);
	assert_omen_status(omen_metadata_check("[1]"), OMEN_EINVAL);
	assert_omen_status(omen_metadata_check("{\"$a\": 1}"), OMEN_EINVAL);
	assert_omen_status(omen_metadata_check(NULL), OMEN_EINVAL);
}

/* Rewrites the format header's version field through LMDB directly. */
static void set_format_version(const char *dir, uint32_t version)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {6, "format"}, v;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "omendb", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	unsigned char rec[32];
	memcpy(rec, v.mv_data, 32);
	for (int i = 0; i < 4; i++)
		rec[8 + i] = (unsigned char)(version >> (8 * i));
	v.mv_data = rec;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_newer_format(void **state)
{
	(void)state;
	char dir[512];
	omen_db *db;
	tmp_dir(dir, sizeof dir, "newer");
	assert_omen_ok(omen_open(dir, NULL, &db));
	omen_close(db);
	set_format_version(dir, 99);
	assert_omen_status(omen_open(dir, NULL, &db), OMEN_EVERSION);
	assert_non_null(strstr(omen_errmsg(NULL), "newer"));
	set_format_version(dir, 1);
	assert_omen_ok(omen_open(dir, NULL, &db));
	omen_close(db);
	rm_tree(dir);
}

/* Damaged records give OMEN_ECORRUPT, never a crash. */
static void test_corrupt_chunk(void **state)
{
	(void)state;
	char dir[512];
	omen_db *db;
	omen_collection *c;
	tmp_dir(dir, sizeof dir, "corrupt");
	assert_omen_ok(omen_open(dir, NULL, &db));
	assert_omen_ok(omen_create_collection(db, "c", 4, OMEN_METRIC_L2));
	assert_omen_ok(omen_collection_open(db, "c", &c));
	float *v = rnd_vectors(10, 4, 1);
	omen_batch b = {10, 4, NULL, v, NULL};
	assert_omen_ok(omen_upsert(c, &b, NULL));
	omen_close(db);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "c1.v", 0, &dbi), 0);
	unsigned char key[8] = {0};
	MDB_val k = {8, key}, val = {20, "not a vector chunk!"};
	assert_int_equal(mdb_put(txn, dbi, &k, &val, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_omen_ok(omen_open(dir, NULL, &db));
	assert_omen_ok(omen_collection_open(db, "c", &c));
	uint64_t ids[3];
	float d[3];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = 3;
	assert_omen_status(omen_search(c, v, 1, 4, &p, ids, d), OMEN_ECORRUPT);
	uint64_t id = 2;
	float out[4];
	uint8_t found;
	assert_omen_status(omen_get(c, &id, 1, out, NULL, &found), OMEN_ECORRUPT);
	omen_close(db);
	free(v);
	rm_tree(dir);
}

/* A database that reached its maximum size refuses the batch whole and keeps the rest. */
static void test_full(void **state)
{
	(void)state;
	char dir[512];
	omen_db *db;
	omen_collection *c;
	omen_open_options o;
	omen_open_options_init(&o);
	o.max_bytes = 4u << 20;
	tmp_dir(dir, sizeof dir, "full");
	assert_omen_ok(omen_open(dir, &o, &db));
	assert_omen_ok(omen_create_collection(db, "c", 64, OMEN_METRIC_L2));
	assert_omen_ok(omen_collection_open(db, "c", &c));
	float *v = rnd_vectors(1000, 64, 4);
	uint64_t loaded = 0;
	int st = OMEN_OK;
	while (st == OMEN_OK && loaded < 100000) {
		omen_batch b = {1000, 64, NULL, v, NULL};
		st = omen_upsert(c, &b, NULL);
		if (st == OMEN_OK)
			loaded += 1000;
	}
	assert_int_equal(st, OMEN_EFULL);
	assert_non_null(strstr(omen_errmsg(NULL), "maximum size"));
	assert_true(loaded > 0);
	uint64_t cnt;
	assert_omen_ok(omen_count(c, &cnt));
	assert_int_equal(cnt, loaded);
	/* Deletes still work when full, and the database reopens with everything acknowledged. */
	omen_close(db);
	assert_omen_ok(omen_open(dir, &o, &db));
	assert_omen_ok(omen_collection_open(db, "c", &c));
	assert_omen_ok(omen_count(c, &cnt));
	assert_int_equal(cnt, loaded);
	uint64_t id = loaded - 1;
	float got[64];
	uint8_t found;
	assert_omen_ok(omen_get(c, &id, 1, got, NULL, &found));
	assert_true(found);
	assert_memory_equal(got, v + ((loaded - 1) % 1000) * 64, sizeof got);
	omen_close(db);
	free(v);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bad_vectors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_search, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_collections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_embedded_layout, setup, teardown),
	    cmocka_unit_test(test_remote_layout_limits),
	    cmocka_unit_test(test_foreign_dirs),
	    cmocka_unit_test(test_metadata_check),
	    cmocka_unit_test(test_newer_format),
	    cmocka_unit_test(test_corrupt_chunk),
	    cmocka_unit_test(test_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
