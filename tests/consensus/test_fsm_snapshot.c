/*
 * Tests of snapshots (consensus/fsm_snapshot.c): round trips into a fresh state and over
 * another one, a snapshot written by hand, and corrupt ones: truncated at every offset and
 * mutated at random, which must fail cleanly and leave the state as it was.
 */
#include <msgpack.h>

#include "consensus/consensus.h"
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "fixture.h"

/* Opens a, holding make_state's state from index *i on, and b, empty (directories named after
 * tag); *buf (malloc'd, *len bytes) is a's snapshot. */
static void snap_pair(tfsm *a, tfsm *b, const char *tag, uint64_t *i, void **buf, size_t *len)
{
	char t[32];
	snprintf(t, sizeof t, "%sa", tag);
	tf_open(a, t);
	snprintf(t, sizeof t, "%sb", tag);
	tf_open(b, t);
	make_state(a->f, i);
	assert_omen_ok(fsm_snapshot(a->f, buf, len));
}

static void test_fsm_snapshot(void **state)
{
	(void)state;
	tfsm a, b;
	uint64_t i = 10;
	void *buf;
	size_t len;
	snap_pair(&a, &b, "snap", &i, &buf, &len);
	uint64_t applied;
	assert_omen_ok(fsm_snapshot_applied(buf, len, &applied));
	assert_int_equal(applied, i);
	/* Into a fresh state, and into one holding something else (replaced wholesale). */
	assert_omen_ok(fsm_restore(b.f, buf, len));
	assert_same_state(a.f, b.f);
	assert_int_equal(apply_at(b.f, i + 1, c_coll("other", 1, 0, 1), NULL), 0);
	assert_int_equal(apply_at(b.f, i + 2, c_node(99, "tcp://x:1", 1, 0), NULL), 0);
	assert_omen_ok(fsm_restore(b.f, buf, len));
	assert_same_state(a.f, b.f);
	fsm_close(b.f);
	assert_omen_ok(fsm_open(b.dir, &b.f));
	assert_same_state(a.f, b.f);
	/* Both continue identically. */
	fsm_result ra, rb;
	assert_int_equal(apply_at(a.f, i + 1, c_ids("docs", 7), &ra), 0);
	assert_int_equal(apply_at(b.f, i + 1, c_ids("docs", 7), &rb), 0);
	assert_int_equal(ra.value, 1000);
	assert_int_equal(rb.value, 1000);
	assert_same_state(a.f, b.f);
	/* An empty state's snapshot empties. */
	tfsm e;
	tf_open(&e, "snape");
	void *ebuf;
	size_t elen;
	assert_omen_ok(fsm_snapshot(e.f, &ebuf, &elen));
	assert_omen_ok(fsm_restore(b.f, ebuf, elen));
	assert_same_state(e.f, b.f);
	free(ebuf);
	tf_close(&e);
	free(buf);
	tf_close(&a);
	tf_close(&b);
}

/* A snapshot written by hand: ids near the end of the range, and the ELIMIT that follows. */
static void test_fsm_snapshot_crafted(void **state)
{
	(void)state;
	tfsm t;
	tf_open(&t, "snapc");
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_str_with_body(&pk, "colls", 5);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 6);
	msgpack_pack_str_with_body(&pk, "z", 1);
	msgpack_pack_uint64(&pk, 2);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, UINT64_MAX - 5);
	unsigned char node[8] = {3};
	msgpack_pack_bin_with_body(&pk, node, 8);
	msgpack_pack_str_with_body(&pk, "epoch", 5);
	msgpack_pack_uint64(&pk, 77);
	msgpack_pack_str_with_body(&pk, "nodes", 5);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint64(&pk, 3);
	msgpack_pack_str_with_body(&pk, "tcp://s3:1", 10);
	msgpack_pack_int(&pk, 2);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_str_with_body(&pk, "applied", 7);
	msgpack_pack_uint64(&pk, 40);
	assert_omen_ok(fsm_restore(t.f, sb.data, sb.size));
	assert_int_equal(fsm_last_applied(t.f), 40);
	assert_int_equal(fsm_epoch(t.f), 77);
	fsm_result r;
	assert_int_equal(apply_at(t.f, 41, c_ids("z", 5), &r), OMEN_OK);
	assert_int_equal(r.value, UINT64_MAX - 5);
	assert_int_equal(apply_at(t.f, 42, c_ids("z", 1), &r), OMEN_ELIMIT);
	assert_int_equal(fsm_last_applied(t.f), 42);
	msgpack_sbuffer_destroy(&sb);
	tf_close(&t);
}

static void test_fsm_snapshot_corrupt(void **state)
{
	(void)state;
	tfsm a, b;
	uint64_t i = 0;
	void *buf;
	size_t len;
	snap_pair(&a, &b, "snapx", &i, &buf, &len);
	uint64_t bi = 0;
	assert_int_equal(apply_at(b.f, ++bi, c_node(50, "tcp://keep:1", 2, 0), NULL), 0);
	assert_int_equal(apply_at(b.f, ++bi, c_coll("keep", 2, 0, 2), NULL), 0);
	uint64_t applied;
	for (size_t cut = 0; cut < len; cut++) {
		assert_true(fsm_restore(b.f, buf, cut) != OMEN_OK);
		int st = fsm_snapshot_applied(buf, cut, &applied);
		assert_true(st == OMEN_OK || st == OMEN_ECORRUPT);
	}
	meta_coll c;
	assert_omen_ok(fsm_coll_get(b.f, "keep", &c));
	assert_int_equal(fsm_last_applied(b.f), bi);
	unsigned char *m = malloc(len);
	uint64_t seed = 7;
	int restored = 0;
	for (int round = 0; round < 3000; round++) {
		memcpy(m, buf, len);
		int flips = 1 + (int)(rnd_next(&seed) % 3);
		for (int k = 0; k < flips; k++)
			m[rnd_next(&seed) % len] = (unsigned char)rnd_next(&seed);
		int st = fsm_restore(b.f, m, len);
		assert_true(st == OMEN_OK || st == OMEN_ECORRUPT || st == OMEN_EVERSION);
		st = fsm_snapshot_applied(m, len, &applied);
		assert_true(st == OMEN_OK || st == OMEN_ECORRUPT || st == OMEN_EVERSION);
		restored += st == OMEN_OK;
	}
	/* Whatever was restored last reads back consistently. */
	meta_coll *colls;
	size_t nc;
	assert_omen_ok(fsm_coll_list(b.f, &colls, &nc));
	for (size_t k = 0; k < nc; k++) {
		uint64_t *map;
		uint32_t ns;
		assert_omen_ok(fsm_shard_map(b.f, colls[k].name, &map, &ns, NULL));
		free(map);
	}
	free(colls);
	assert_true(restored > 0);
	free(m);
	free(buf);
	tf_close(&a);
	tf_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fsm_snapshot),
	    cmocka_unit_test(test_fsm_snapshot_crafted),
	    cmocka_unit_test(test_fsm_snapshot_corrupt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
