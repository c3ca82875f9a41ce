/*
 * Tests of the state machine (consensus/fsm*.c) through its interface: every command and
 * status, replays and restarts (the last-applied rule), corrupt records, a foreign or newer
 * environment, and reads concurrent with applies.
 */
#include <pthread.h>

#include <lmdb.h>

#include "consensus/consensus.h"
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "fixture.h"

static void test_fsm_commands(void **state)
{
	(void)state;
	tfsm t;
	tf_open(&t, "fsmcmd");
	fsm *f = t.f;
	fsm_result r;
	uint64_t i = 0;
	assert_int_equal(fsm_last_applied(f), 0);
	assert_int_equal(fsm_epoch(f), 0);
	/* NODE_SET: bad fields change nothing but the applied index. */
	assert_int_equal(apply_at(f, ++i, c_node(0, "a", 2, 0), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_node(1, "", 2, 0), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_node(1, "a", 4, 0), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_node(1, "a", 2, 2), NULL), OMEN_EINVAL);
	assert_int_equal(fsm_last_applied(f), 4);
	meta_node n;
	assert_omen_status(fsm_node_get(f, 1, &n), OMEN_ENOTFOUND);
	/* COLL_CREATE with no shard node up: EUNAVAIL, nothing changes. */
	assert_int_equal(apply_at(f, ++i, c_node(7, "tcp://c:1", 1, 0), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_node(9, "tcp://s9:1", 2, 1), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 4, 0, 3), &r), OMEN_EUNAVAIL);
	assert_int_equal(r.epoch, 0);
	meta_coll c;
	assert_omen_status(fsm_coll_get(f, "docs", &c), OMEN_ENOTFOUND);
	/* Shard nodes 5 and 2 up (9 down, 7 a coordinator): shards go to 2, 5, 2, 5, ... */
	assert_int_equal(apply_at(f, ++i, c_node(5, "tcp://s5:1", 2, 0), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_node(2, "tcp://s2:1", 2, 0), NULL), 0);
	assert_int_equal(fsm_epoch(f), 0);
	assert_int_equal(apply_at(f, ++i, c_coll("", 4, 0, 3), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_coll("a/b", 4, 0, 3), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 0, 0, 3), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", OMEN_MAX_DIM + 1, 0, 3), NULL),
	                 OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 4, 3, 3), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 4, 0, 0), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 4, 0, 4097), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 4, 1, 5), &r), OMEN_OK);
	assert_int_equal(r.epoch, 1);
	assert_int_equal(fsm_epoch(f), 1);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 8, 0, 1), &r), OMEN_EEXIST);
	assert_int_equal(r.epoch, 1);
	assert_omen_ok(fsm_coll_get(f, "docs", &c));
	assert_int_equal(c.dim, 4);
	assert_int_equal(c.metric, OMEN_METRIC_IP);
	assert_int_equal(c.nshards, 5);
	assert_int_equal(c.next_id, 0);
	uint64_t *map, ep;
	uint32_t ns;
	assert_omen_ok(fsm_shard_map(f, "docs", &map, &ns, &ep));
	assert_int_equal(ns, 5);
	assert_int_equal(ep, 1);
	uint64_t want[] = {2, 5, 2, 5, 2};
	assert_memory_equal(map, want, sizeof want);
	free(map);
	/* SHARD_ASSIGN */
	assert_int_equal(apply_at(f, ++i, c_assign("nope", 0, 5), NULL), OMEN_ENOTFOUND);
	assert_int_equal(apply_at(f, ++i, c_assign("docs", 5, 5), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_assign("docs", 0, 4), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_assign("docs", 0, 7), NULL), OMEN_EINVAL);
	assert_int_equal(fsm_epoch(f), 1);
	assert_int_equal(apply_at(f, ++i, c_assign("docs", 0, 9), &r), OMEN_OK);
	assert_int_equal(r.epoch, 2);
	assert_omen_ok(fsm_shard_map(f, "docs", &map, &ns, NULL));
	assert_int_equal(map[0], 9);
	free(map);
	/* IDS_ALLOC */
	assert_int_equal(apply_at(f, ++i, c_ids("nope", 1), NULL), OMEN_ENOTFOUND);
	assert_int_equal(apply_at(f, ++i, c_ids("docs", 0), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_ids("docs", (1ull << 40) + 1), NULL), OMEN_EINVAL);
	assert_int_equal(apply_at(f, ++i, c_ids("docs", 10), &r), OMEN_OK);
	assert_int_equal(r.value, 0);
	assert_int_equal(r.epoch, 2);
	assert_int_equal(apply_at(f, ++i, c_ids("docs", 1ull << 40), &r), OMEN_OK);
	assert_int_equal(r.value, 10);
	assert_int_equal(apply_at(f, ++i, c_ids("docs", 1), &r), OMEN_OK);
	assert_int_equal(r.value, 10 + (1ull << 40));
	assert_omen_ok(fsm_coll_get(f, "docs", &c));
	assert_int_equal(c.next_id, 11 + (1ull << 40));
	/* NOOP and an unknown kind */
	assert_int_equal(apply_at(f, ++i, c_named(CMD_NOOP, ""), &r), OMEN_OK);
	assert_int_equal(r.epoch, 2);
	meta_cmd bad = c_named(CMD_NOOP, "");
	bad.kind = (cmd_kind)42;
	assert_int_equal(apply_at(f, ++i, bad, NULL), OMEN_EINVAL);
	/* NODE_SET upserts. */
	assert_int_equal(apply_at(f, ++i, c_node(5, "tcp://s5:2", 2, 1), NULL), 0);
	assert_omen_ok(fsm_node_get(f, 5, &n));
	assert_string_equal(n.addr, "tcp://s5:2");
	assert_int_equal(n.state, META_NODE_DOWN);
	meta_node *nodes;
	size_t nn;
	assert_omen_ok(fsm_node_list(f, &nodes, &nn));
	assert_int_equal(nn, 4);
	uint64_t ids[] = {2, 5, 7, 9};
	for (size_t k = 0; k < nn; k++)
		assert_int_equal(nodes[k].id, ids[k]);
	free(nodes);
	/* Node 2 is the only shard node up now. */
	assert_int_equal(apply_at(f, ++i, c_coll("b", 1, 2, 3), &r), OMEN_OK);
	assert_int_equal(r.epoch, 3);
	assert_omen_ok(fsm_shard_map(f, "b", &map, &ns, NULL));
	assert_int_equal(map[0] + map[1] + map[2], 6);
	free(map);
	/* COLL_DROP */
	assert_int_equal(apply_at(f, ++i, c_named(CMD_COLL_DROP, "nope"), NULL), OMEN_ENOTFOUND);
	assert_int_equal(apply_at(f, ++i, c_named(CMD_COLL_DROP, "docs"), &r), OMEN_OK);
	assert_int_equal(r.epoch, 4);
	assert_omen_status(fsm_coll_get(f, "docs", &c), OMEN_ENOTFOUND);
	assert_omen_status(fsm_shard_map(f, "docs", &map, &ns, NULL), OMEN_ENOTFOUND);
	meta_coll *colls;
	size_t nc;
	assert_omen_ok(fsm_coll_list(f, &colls, &nc));
	assert_int_equal(nc, 1);
	assert_string_equal(colls[0].name, "b");
	free(colls);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 2, 0, 2), &r), OMEN_OK);
	assert_omen_ok(fsm_coll_get(f, "docs", &c));
	assert_int_equal(c.next_id, 0);
	assert_int_equal(fsm_last_applied(f), i);
	/* At most OMEN_MAX_COLLECTIONS collections. */
	for (int k = 2; k < OMEN_MAX_COLLECTIONS; k++) {
		char name[32];
		snprintf(name, sizeof name, "c%04d", k);
		assert_int_equal(apply_at(f, ++i, c_coll(name, 1, 0, 1), NULL), OMEN_OK);
	}
	assert_int_equal(apply_at(f, ++i, c_coll("more", 1, 0, 1), NULL), OMEN_ELIMIT);
	assert_omen_ok(fsm_coll_list(f, &colls, &nc));
	assert_int_equal(nc, OMEN_MAX_COLLECTIONS);
	for (size_t k = 1; k < nc; k++)
		assert_true(strcmp(colls[k - 1].name, colls[k].name) < 0);
	free(colls);
	tf_close(&t);
}

/* Copies: placement on distinct nodes, a copy that failed, a primary handing over, the last
 * copy in sync kept, and CMD_COPIES_SET's compare-and-set. */
static void test_fsm_copies(void **state)
{
	(void)state;
	tfsm t;
	tf_open(&t, "fsmcopies");
	fsm *f = t.f;
	fsm_result r;
	uint64_t i = 0;
	for (uint64_t id = 1; id <= 3; id++) {
		char addr[32];
		snprintf(addr, sizeof addr, "tcp://s%llu:1", (unsigned long long)id);
		assert_int_equal(apply_at(f, ++i, c_node(id, addr, 2, 0), NULL), 0);
	}
	meta_cmd cc = c_coll("r", 4, 0, 4);
	cc.coll.replicas = 4; /* more than the nodes up */
	assert_int_equal(apply_at(f, ++i, cc, NULL), OMEN_EUNAVAIL);
	cc.coll.replicas = 6;
	assert_int_equal(apply_at(f, ++i, cc, NULL), OMEN_EINVAL);
	cc.coll.replicas = 2;
	assert_int_equal(apply_at(f, ++i, cc, &r), OMEN_OK);
	meta_coll c;
	assert_omen_ok(fsm_coll_get(f, "r", &c));
	assert_int_equal(c.replicas, 2);
	meta_copies *cp;
	uint32_t ns;
	assert_omen_ok(fsm_shard_copies(f, "r", &cp, &ns, NULL));
	assert_int_equal(ns, 4);
	for (uint32_t s = 0; s < ns; s++) { /* copy j of shard s on node (s + j) mod 3 + 1 */
		assert_int_equal(cp[s].n, 2);
		assert_int_equal(cp[s].node[0], s % 3 + 1);
		assert_int_equal(cp[s].node[1], (s + 1) % 3 + 1);
		assert_int_equal(cp[s].state[0], META_COPY_IN_SYNC);
		assert_int_equal(cp[s].state[1], META_COPY_IN_SYNC);
	}
	meta_copies s0 = cp[0];
	free(cp);
	/* A copy that missed a write (shard 0: primary 1, copy 2). */
	uint64_t e = fsm_epoch(f);
	assert_int_equal(apply_at(f, ++i, c_copy_fail("r", 0, 2, 2), NULL), OMEN_ESTALE);
	assert_int_equal(apply_at(f, ++i, c_copy_fail("r", 9, 1, 2), NULL), OMEN_EINVAL);
	assert_int_equal(fsm_epoch(f), e);
	assert_int_equal(apply_at(f, ++i, c_copy_fail("r", 0, 1, 2), &r), OMEN_OK);
	assert_int_equal(r.epoch, e + 1);
	assert_omen_ok(fsm_shard_copies(f, "r", &cp, &ns, NULL));
	assert_int_equal(cp[0].state[1], META_COPY_STALE);
	assert_int_equal(meta_copies_primary(&cp[0]), 0);
	meta_copies s0b = cp[0];
	free(cp);
	/* The last copy in sync is kept. */
	assert_int_equal(apply_at(f, ++i, c_copy_fail("r", 0, 1, 1), NULL), OMEN_EUNAVAIL);
	/* Shard 1 (primary 2, copy 3): the primary failed, copy 3 takes over. */
	assert_int_equal(apply_at(f, ++i, c_copy_fail("r", 1, 2, 2), NULL), OMEN_OK);
	uint64_t *map;
	assert_omen_ok(fsm_shard_map(f, "r", &map, &ns, NULL));
	assert_int_equal(map[1], 3);
	free(map);
	/* COPIES_SET: only over the copies expected. */
	meta_cmd set = c_named(CMD_COPIES_SET, "r");
	set.shard = 0;
	set.expect = s0; /* no longer: copy 2 is stale */
	set.copies = s0;
	assert_int_equal(apply_at(f, ++i, set, NULL), OMEN_ESTALE);
	set.expect = s0b;
	set.copies.node[1] = 7; /* not a node */
	assert_int_equal(apply_at(f, ++i, set, NULL), OMEN_EINVAL);
	set.copies.node[1] = 1; /* twice */
	assert_int_equal(apply_at(f, ++i, set, NULL), OMEN_EINVAL);
	set.copies.node[1] = 3; /* node 3 in place of node 2, in sync */
	assert_int_equal(apply_at(f, ++i, set, NULL), OMEN_OK);
	assert_omen_ok(fsm_shard_copies(f, "r", &cp, &ns, NULL));
	assert_int_equal(cp[0].node[1], 3);
	assert_int_equal(cp[0].state[1], META_COPY_IN_SYNC);
	free(cp);
	/* A one-copy collection's shard moves; one with copies does not. */
	assert_int_equal(apply_at(f, ++i, c_assign("r", 0, 2), NULL), OMEN_EINVAL);
	tf_close(&t);
}

static void test_fsm_replay(void **state)
{
	(void)state;
	tfsm t;
	tf_open(&t, "fsmreplay");
	fsm_result r;
	assert_int_equal(apply_at(t.f, 3, c_node(4, "tcp://s:1", 2, 0), NULL), 0);
	assert_int_equal(apply_at(t.f, 5, c_coll("docs", 4, 0, 2), &r), 0);
	assert_int_equal(r.epoch, 1);
	/* Index 5 again, and an older one: skipped, whatever they carry. */
	assert_int_equal(apply_at(t.f, 5, c_named(CMD_COLL_DROP, "docs"), &r), OMEN_OK);
	assert_int_equal(r.epoch, 1);
	assert_int_equal(r.value, 0);
	assert_int_equal(apply_at(t.f, 4, c_ids("docs", 10), &r), OMEN_OK);
	assert_int_equal(r.value, 0);
	meta_coll c;
	assert_omen_ok(fsm_coll_get(t.f, "docs", &c));
	assert_int_equal(c.next_id, 0);
	assert_int_equal(fsm_last_applied(t.f), 5);
	/* A restart keeps the state and the last applied index. */
	fsm_close(t.f);
	assert_omen_ok(fsm_open(t.dir, &t.f));
	assert_int_equal(fsm_last_applied(t.f), 5);
	assert_int_equal(fsm_epoch(t.f), 1);
	assert_int_equal(apply_at(t.f, 5, c_ids("docs", 10), &r), OMEN_OK);
	assert_int_equal(apply_at(t.f, 6, c_ids("docs", 10), &r), OMEN_OK);
	assert_int_equal(r.value, 0);
	assert_int_equal(apply_at(t.f, 6, c_ids("docs", 10), &r), OMEN_OK);
	assert_omen_ok(fsm_coll_get(t.f, "docs", &c));
	assert_int_equal(c.next_id, 10);
	tf_close(&t);
}

/* Opens the LMDB environment of a closed fsm and overwrites one record. */
static void poke(const char *dir, const char *db, const void *key, size_t klen, const void *val,
                 size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_fsm_records_corrupt(void **state)
{
	(void)state;
	tfsm t;
	tf_open(&t, "corrupt");
	uint64_t i = 0;
	make_state(t.f, &i);
	fsm_close(t.f);
	unsigned char junk[32];
	memset(junk, 0x5a, sizeof junk);
	poke(t.dir, "colls", "docs", 4, junk, sizeof junk);
	unsigned char key[8] = {0, 0, 0, 0, 0, 0, 0, 12};
	poke(t.dir, "nodes", key, 8, junk, 7);
	assert_omen_ok(fsm_open(t.dir, &t.f));
	meta_coll c;
	meta_coll *colls;
	meta_node n, *nodes;
	size_t cnt;
	uint64_t *map;
	uint32_t ns;
	fsm_result r;
	assert_omen_status(fsm_coll_get(t.f, "docs", &c), OMEN_ECORRUPT);
	assert_omen_ok(fsm_coll_get(t.f, "a.b-c_9", &c));
	assert_omen_status(fsm_coll_list(t.f, &colls, &cnt), OMEN_ECORRUPT);
	assert_omen_status(fsm_shard_map(t.f, "docs", &map, &ns, NULL), OMEN_ECORRUPT);
	assert_omen_status(fsm_node_get(t.f, 12, &n), OMEN_ECORRUPT);
	assert_omen_status(fsm_node_list(t.f, &nodes, &cnt), OMEN_ECORRUPT);
	void *buf;
	size_t len;
	assert_omen_status(fsm_snapshot(t.f, &buf, &len), OMEN_ECORRUPT);
	/* A command that must read a corrupt record fails to apply: nothing is committed. */
	meta_cmd cmd = c_ids("docs", 1);
	assert_omen_status(fsm_apply(t.f, i + 1, &cmd, &r), OMEN_ECORRUPT);
	cmd = c_coll("new", 1, 0, 1);
	assert_omen_status(fsm_apply(t.f, i + 1, &cmd, &r), OMEN_ECORRUPT);
	assert_int_equal(fsm_last_applied(t.f), i);
	fsm_close(t.f);
	/* A bad state record, and one from a newer format. */
	poke(t.dir, "meta", "state", 5, junk, sizeof junk);
	assert_omen_status(fsm_open(t.dir, &t.f), OMEN_ECORRUPT);
	unsigned char st[32] = {'O', 'M', 'R', 'S', 1, 0, 0, 0, 9};
	poke(t.dir, "meta", "state", 5, st, sizeof st);
	assert_omen_status(fsm_open(t.dir, &t.f), OMEN_EVERSION);
	rm_tree(t.dir);
	/* A foreign LMDB environment. */
	tmp_dir(t.dir, sizeof t.dir, "foreign");
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, t.dir, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	MDB_val k = {3, "abc"}, v = {3, "def"};
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_omen_status(fsm_open(t.dir, &t.f), OMEN_ENOTDB);
	rm_tree(t.dir);
}

typedef struct reader_arg {
	fsm *f;
	volatile int stop;
	int errors;
} reader_arg;

static void *reader(void *p)
{
	reader_arg *a = p;
	uint64_t last = 0;
	while (!a->stop) {
		meta_coll *colls;
		size_t n;
		if (fsm_coll_list(a->f, &colls, &n) != OMEN_OK)
			a->errors++;
		else
			free(colls);
		uint64_t e = fsm_epoch(a->f);
		if (e < last)
			a->errors++;
		last = e;
	}
	return NULL;
}

static void test_fsm_concurrent_reads(void **state)
{
	(void)state;
	tfsm t;
	tf_open(&t, "conc");
	reader_arg a = {t.f, 0, 0};
	pthread_t th[2];
	for (int k = 0; k < 2; k++)
		pthread_create(&th[k], NULL, reader, &a);
	uint64_t i = 0;
	assert_int_equal(apply_at(t.f, ++i, c_node(1, "tcp://s:1", 2, 0), NULL), 0);
	for (int k = 0; k < 200; k++) {
		char name[16];
		snprintf(name, sizeof name, "c%d", k);
		assert_int_equal(apply_at(t.f, ++i, c_coll(name, 2, 0, 16), NULL), 0);
	}
	a.stop = 1;
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	assert_int_equal(a.errors, 0);
	assert_int_equal(fsm_epoch(t.f), 200);
	tf_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fsm_commands),         cmocka_unit_test(test_fsm_copies),
	    cmocka_unit_test(test_fsm_replay),           cmocka_unit_test(test_fsm_records_corrupt),
	    cmocka_unit_test(test_fsm_concurrent_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
