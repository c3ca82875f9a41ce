/*
 * Tests of the commands' msgpack encoding (consensus/fsm_cmd.c): round trips of every kind at
 * the edges of its fields, commands that cannot be encoded, and hostile bytes: truncation at
 * every offset, random mutations, huge declared containers, deep nesting, wrong types, missing
 * and repeated keys, other versions, trailing bytes.
 */
#include <msgpack.h>
#include <raft.h>

#include "consensus/consensus.h"
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "fixture.h"

static void assert_cmd_equal(const meta_cmd *a, const meta_cmd *b)
{
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->node.id, b->node.id);
	assert_string_equal(a->node.addr, b->node.addr);
	assert_int_equal(a->node.role, b->node.role);
	assert_int_equal(a->node.state, b->node.state);
	assert_string_equal(a->coll.name, b->coll.name);
	assert_int_equal(a->coll.dim, b->coll.dim);
	assert_int_equal(a->coll.metric, b->coll.metric);
	assert_int_equal(a->coll.nshards, b->coll.nshards);
	assert_int_equal(a->shard, b->shard);
	assert_int_equal(a->node_id, b->node_id);
	assert_int_equal(a->count, b->count);
	assert_int_equal(a->coll.replicas, b->coll.replicas);
	assert_int_equal(a->nfailed, b->nfailed);
	assert_memory_equal(a->failed, b->failed, sizeof a->failed);
	assert_memory_equal(&a->expect, &b->expect, sizeof a->expect);
	assert_memory_equal(&a->copies, &b->copies, sizeof a->copies);
}

static void test_cmd_roundtrip(void **state)
{
	(void)state;
	char longname[OMEN_MAX_NAME + 1];
	memset(longname, 'n', OMEN_MAX_NAME);
	longname[OMEN_MAX_NAME] = 0;
	meta_cmd cmds[] = {
	    c_node(UINT64_MAX, "tcp://[::1]:7700", 2, 1),
	    c_node(1, "x", -5, 1 << 30),
	    c_coll(longname, OMEN_MAX_DIM, 2, 4096),
	    c_coll("d", 0, -1, 0),
	    c_named(CMD_COLL_DROP, "docs"),
	    c_assign("docs", UINT32_MAX, UINT64_MAX),
	    c_ids("docs", UINT64_MAX),
	    c_named(CMD_NOOP, ""),
	    c_coll("r", 4, 0, 8),
	    c_copy_fail("docs", 7, UINT64_MAX, 1),
	    c_named(CMD_COPIES_SET, "docs"),
	};
	cmds[8].coll.replicas = 5;
	cmds[9].nfailed = META_MAX_COPIES;
	for (uint32_t j = 0; j < META_MAX_COPIES; j++)
		cmds[9].failed[j] = j + 1;
	cmds[10].shard = 3;
	cmds[10].expect = (meta_copies){1, {9}, {META_COPY_IN_SYNC}};
	cmds[10].copies =
	    (meta_copies){META_MAX_COPIES, {UINT64_MAX, 2, 3, 4, 5}, {META_COPY_STALE, 0, 1, 0, 1}};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		for (int for_raft = 0; for_raft < 2; for_raft++) {
			void *buf;
			size_t len;
			meta_cmd d;
			assert_omen_ok(cmd_encode(&cmds[i], for_raft, &buf, &len));
			assert_omen_ok(cmd_decode(buf, len, &d));
			meta_cmd want;
			memset(&want, 0, sizeof want);
			want.kind = cmds[i].kind;
			if (want.kind == CMD_NODE_SET)
				want.node = cmds[i].node;
			if (want.kind != CMD_NODE_SET && want.kind != CMD_NOOP)
				memcpy(want.coll.name, cmds[i].coll.name, sizeof want.coll.name);
			if (want.kind == CMD_COLL_CREATE)
				want.coll = cmds[i].coll;
			int sh = want.kind == CMD_SHARD_ASSIGN || want.kind == CMD_COPY_FAIL ||
			         want.kind == CMD_COPIES_SET;
			want.shard = sh ? cmds[i].shard : 0;
			want.node_id = sh && want.kind != CMD_COPIES_SET ? cmds[i].node_id : 0;
			if (want.kind == CMD_COPY_FAIL) {
				want.nfailed = cmds[i].nfailed;
				memcpy(want.failed, cmds[i].failed, sizeof want.failed);
			}
			if (want.kind == CMD_COPIES_SET)
				want.expect = cmds[i].expect, want.copies = cmds[i].copies;
			want.count = want.kind == CMD_IDS_ALLOC ? cmds[i].count : 0;
			assert_cmd_equal(&d, &want);
			if (for_raft)
				raft_free(buf);
			else
				free(buf);
		}
	}
	/* Not representable: an unterminated name or address, an unknown kind. */
	meta_cmd bad = c_coll("x", 1, 0, 1);
	memset(bad.coll.name, 'a', sizeof bad.coll.name);
	void *buf;
	size_t len;
	assert_omen_status(cmd_encode(&bad, 0, &buf, &len), OMEN_EINVAL);
	bad = c_node(1, "x", 1, 0);
	memset(bad.node.addr, 'a', sizeof bad.node.addr);
	assert_omen_status(cmd_encode(&bad, 0, &buf, &len), OMEN_EINVAL);
	bad.kind = (cmd_kind)99;
	assert_omen_status(cmd_encode(&bad, 0, &buf, &len), OMEN_EINVAL);
	bad = c_copy_fail("docs", 0, 1, 2);
	bad.nfailed = META_MAX_COPIES + 1;
	assert_omen_status(cmd_encode(&bad, 0, &buf, &len), OMEN_EINVAL);
	/* Copies that cannot be stored do not decode: encoded, then refused. */
	bad = c_named(CMD_COPIES_SET, "docs");
	bad.expect = (meta_copies){1, {9}, {0}};
	bad.copies = (meta_copies){2, {4, 4}, {0, 0}}; /* one node twice */
	assert_omen_ok(cmd_encode(&bad, 0, &buf, &len));
	meta_cmd d;
	assert_omen_status(cmd_decode(buf, len, &d), OMEN_EPROTO);
	free(buf);
}

/* Packs a map of key/value pairs: spec has one letter per pair for the value's type (u:
 * uint64_t, i: int64_t, s: string), and the arguments alternate keys and values. */
static void *vpack(size_t *len, const char *spec, va_list ap)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, strlen(spec));
	for (const char *p = spec; *p; p++) {
		const char *key = va_arg(ap, const char *);
		msgpack_pack_str_with_body(&pk, key, strlen(key));
		if (*p == 'u') {
			msgpack_pack_uint64(&pk, va_arg(ap, uint64_t));
		} else if (*p == 'i') {
			msgpack_pack_int64(&pk, va_arg(ap, int64_t));
		} else {
			const char *v = va_arg(ap, const char *);
			msgpack_pack_str_with_body(&pk, v, strlen(v));
		}
	}
	*len = sb.size;
	return msgpack_sbuffer_release(&sb);
}

/* Decodes the map that spec and the arguments describe (see vpack), expecting status want. */
static void expect_decode(int want, const char *spec, ...)
{
	va_list ap;
	size_t len;
	va_start(ap, spec);
	void *buf = vpack(&len, spec, ap);
	va_end(ap);
	meta_cmd c;
	assert_omen_status(cmd_decode(buf, len, &c), want);
	free(buf);
}

static void test_cmd_hostile(void **state)
{
	(void)state;
	meta_cmd cmds[] = {c_node(7, "tcp://127.0.0.1:1", 2, 0), c_coll("docs", 8, 1, 3),
	                   c_assign("docs", 2, 7), c_ids("docs", 5)};
	uint64_t seed = 42;
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		void *buf;
		size_t len;
		meta_cmd d;
		assert_omen_ok(cmd_encode(&cmds[i], 0, &buf, &len));
		for (size_t cut = 0; cut < len; cut++)
			assert_omen_status(cmd_decode(buf, cut, &d), OMEN_EPROTO);
		unsigned char *m = malloc(len);
		for (int round = 0; round < 3000; round++) {
			memcpy(m, buf, len);
			int flips = 1 + (int)(rnd_next(&seed) % 4);
			for (int k = 0; k < flips; k++)
				m[rnd_next(&seed) % len] = (unsigned char)rnd_next(&seed);
			int st = cmd_decode(m, len, &d);
			assert_true(st == OMEN_OK || st == OMEN_EPROTO);
		}
		free(m);
		free(buf);
	}
	/* Hostile headers: huge declared containers and strings, deep nesting, junk. */
	static const unsigned char huge_arr[] = {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff};
	static const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v'};
	static const unsigned char huge_str[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
	static const unsigned char bad_byte[] = {0x81, 0xa1, 'z', 0xc1};
	unsigned char deep[200];
	deep[0] = 0x81;
	deep[1] = 0xa1;
	deep[2] = 'z';
	memset(deep + 3, 0x91, sizeof deep - 4);
	deep[sizeof deep - 1] = 0x01;
	meta_cmd d;
	assert_omen_status(cmd_decode(huge_arr, sizeof huge_arr, &d), OMEN_EPROTO);
	assert_omen_status(cmd_decode(huge_map, sizeof huge_map, &d), OMEN_EPROTO);
	assert_omen_status(cmd_decode(huge_str, sizeof huge_str, &d), OMEN_EPROTO);
	assert_omen_status(cmd_decode(bad_byte, sizeof bad_byte, &d), OMEN_EPROTO);
	assert_omen_status(cmd_decode(deep, sizeof deep, &d), OMEN_EPROTO);
	assert_omen_status(cmd_decode(NULL, 0, &d), OMEN_EPROTO);
	assert_omen_status(cmd_decode("", 0, &d), OMEN_EPROTO);
	/* Structure and semantics of the map. */
	const uint64_t v1 = 1;
	expect_decode(OMEN_OK, "uiu", "v", v1, "k", (int64_t)CMD_NOOP, "zz", (uint64_t)3);
	expect_decode(OMEN_EPROTO, "ui", "v", (uint64_t)2, "k", (int64_t)CMD_NOOP);
	expect_decode(OMEN_EPROTO, "i", "k", (int64_t)CMD_NOOP);
	expect_decode(OMEN_EPROTO, "u", "v", v1);
	expect_decode(OMEN_EPROTO, "ui", "v", v1, "k", (int64_t)77);
	expect_decode(OMEN_EPROTO, "uiu", "v", v1, "k", (int64_t)CMD_NOOP, "v", v1);
	expect_decode(OMEN_EPROTO, "ui", "v", v1, "k", (int64_t)CMD_IDS_ALLOC);
	expect_decode(OMEN_EPROTO, "uiss", "v", v1, "k", (int64_t)CMD_IDS_ALLOC, "name", "docs",
	              "count", "5");
	expect_decode(OMEN_OK, "uisu", "v", v1, "k", (int64_t)CMD_IDS_ALLOC, "name", "docs",
	              "count", (uint64_t)0);
	char big[OMEN_MAX_NAME + 2];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	expect_decode(OMEN_EPROTO, "uis", "v", v1, "k", (int64_t)CMD_COLL_DROP, "name", big);
	expect_decode(OMEN_EPROTO, "uiuuuu", "v", v1, "k", (int64_t)CMD_COLL_CREATE, "name", v1,
	              "dim", v1, "metric", (uint64_t)0, "nshards", v1);
	expect_decode(OMEN_EPROTO, "uisuiu", "v", v1, "k", (int64_t)CMD_COLL_CREATE, "name", "x",
	              "dim", (uint64_t)1 << 32, "metric", (int64_t)0, "nshards", v1);
	/* Trailing bytes after a valid command. */
	meta_cmd noop = c_named(CMD_NOOP, "");
	void *buf;
	size_t len;
	assert_omen_ok(cmd_encode(&noop, 0, &buf, &len));
	unsigned char *t = malloc(len + 1);
	memcpy(t, buf, len);
	t[len] = 0;
	assert_omen_status(cmd_decode(t, len + 1, &d), OMEN_EPROTO);
	free(t);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cmd_roundtrip),
	    cmocka_unit_test(test_cmd_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
