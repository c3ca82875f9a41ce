/*
 * Tests of the consensus module: the state machine alone (every command, replays, restarts,
 * snapshots, corrupt records and hostile bytes), the same raft_fsm callbacks that raftnode.c
 * uses driven through raft's in-memory fixture (replication, a killed leader, a partition,
 * snapshots installed on a lagging server), and real raft_uv nodes on loopback (leader, follower
 * refusal, failover, restarts without loss or double application, transfer, add and remove).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include <lmdb.h>
#include <msgpack.h>
#include <raft.h>
#include <raft/fixture.h>

#include "consensus/consensus.h"
#define OMEN_TEST_INTERNAL
#include "helpers.h"

/* ---- commands and comparisons ---- */

static meta_cmd c_node(uint64_t id, const char *addr, int role, int state)
{
	meta_cmd c;
	memset(&c, 0, sizeof c);
	c.kind = CMD_NODE_SET;
	c.node.id = id;
	snprintf(c.node.addr, sizeof c.node.addr, "%s", addr);
	c.node.role = role;
	c.node.state = state;
	return c;
}

static meta_cmd c_coll(const char *name, uint32_t dim, int metric, uint32_t nshards)
{
	meta_cmd c;
	memset(&c, 0, sizeof c);
	c.kind = CMD_COLL_CREATE;
	snprintf(c.coll.name, sizeof c.coll.name, "%s", name);
	c.coll.dim = dim;
	c.coll.metric = (omen_metric)metric;
	c.coll.nshards = nshards;
	return c;
}

static meta_cmd c_named(cmd_kind kind, const char *name)
{
	meta_cmd c;
	memset(&c, 0, sizeof c);
	c.kind = kind;
	snprintf(c.coll.name, sizeof c.coll.name, "%s", name);
	return c;
}

static meta_cmd c_ids(const char *name, uint64_t count)
{
	meta_cmd c = c_named(CMD_IDS_ALLOC, name);
	c.count = count;
	return c;
}

static meta_cmd c_assign(const char *name, uint32_t shard, uint64_t node)
{
	meta_cmd c = c_named(CMD_SHARD_ASSIGN, name);
	c.shard = shard;
	c.node_id = node;
	return c;
}

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
}

/* Every read of a and b agrees: epoch, last applied, nodes, collections and shard maps. */
static void assert_same_state(fsm *a, fsm *b)
{
	assert_int_equal(fsm_epoch(a), fsm_epoch(b));
	assert_int_equal(fsm_last_applied(a), fsm_last_applied(b));
	meta_node *na, *nb;
	size_t nna, nnb;
	assert_omen_ok(fsm_node_list(a, &na, &nna));
	assert_omen_ok(fsm_node_list(b, &nb, &nnb));
	assert_int_equal(nna, nnb);
	for (size_t i = 0; i < nna; i++) {
		assert_int_equal(na[i].id, nb[i].id);
		assert_string_equal(na[i].addr, nb[i].addr);
		assert_int_equal(na[i].role, nb[i].role);
		assert_int_equal(na[i].state, nb[i].state);
	}
	free(na);
	free(nb);
	meta_coll *ca, *cb;
	size_t nca, ncb;
	assert_omen_ok(fsm_coll_list(a, &ca, &nca));
	assert_omen_ok(fsm_coll_list(b, &cb, &ncb));
	assert_int_equal(nca, ncb);
	for (size_t i = 0; i < nca; i++) {
		assert_string_equal(ca[i].name, cb[i].name);
		assert_int_equal(ca[i].dim, cb[i].dim);
		assert_int_equal(ca[i].metric, cb[i].metric);
		assert_int_equal(ca[i].nshards, cb[i].nshards);
		assert_int_equal(ca[i].next_id, cb[i].next_id);
		uint64_t *ma, *mb, ea, eb;
		uint32_t sa, sb;
		assert_omen_ok(fsm_shard_map(a, ca[i].name, &ma, &sa, &ea));
		assert_omen_ok(fsm_shard_map(b, cb[i].name, &mb, &sb, &eb));
		assert_int_equal(sa, sb);
		assert_int_equal(ea, eb);
		assert_memory_equal(ma, mb, sa * sizeof *ma);
		free(ma);
		free(mb);
	}
	free(ca);
	free(cb);
}

/* Applies cmd at index and returns the command's status (the apply itself must succeed). */
static int apply_at(fsm *f, uint64_t index, meta_cmd c, fsm_result *res)
{
	fsm_result r;
	assert_omen_ok(fsm_apply(f, index, &c, &r));
	if (res)
		*res = r;
	return r.status;
}

static void make_state(fsm *f, uint64_t *index)
{
	uint64_t i = *index;
	assert_int_equal(apply_at(f, ++i, c_node(1, "tcp://127.0.0.1:7700", 1, 0), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_node(12, "tcp://10.0.0.12:7701", 2, 0), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_node(11, "tcp://10.0.0.11:7701", 2, 0), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 128, 2, 5), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_coll("a.b-c_9", 3, 0, 1), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_ids("docs", 1000), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_assign("docs", 4, 12), NULL), 0);
	*index = i;
}

/* ---- the state machine alone ---- */

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
	};
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
			want.shard = want.kind == CMD_SHARD_ASSIGN ? cmds[i].shard : 0;
			want.node_id = want.kind == CMD_SHARD_ASSIGN ? cmds[i].node_id : 0;
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

typedef struct tfsm {
	char dir[512];
	fsm *f;
} tfsm;

static void tf_open(tfsm *t, const char *tag)
{
	tmp_dir(t->dir, sizeof t->dir, tag);
	assert_omen_ok(fsm_open(t->dir, &t->f));
}

static void tf_close(tfsm *t)
{
	fsm_close(t->f);
	rm_tree(t->dir);
}

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
	assert_int_equal(apply_at(f, ++i, c_node(1, "a", 3, 0), NULL), OMEN_EINVAL);
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

static void test_fsm_snapshot(void **state)
{
	(void)state;
	tfsm a, b;
	tf_open(&a, "snapa");
	tf_open(&b, "snapb");
	uint64_t i = 10;
	make_state(a.f, &i);
	void *buf;
	size_t len;
	assert_omen_ok(fsm_snapshot(a.f, &buf, &len));
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
	tf_open(&a, "snapxa");
	tf_open(&b, "snapxb");
	uint64_t i = 0;
	make_state(a.f, &i);
	void *buf;
	size_t len;
	assert_omen_ok(fsm_snapshot(a.f, &buf, &len));
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

/* ---- raft's in-memory fixture, through the raft_fsm of raftnode.c ---- */

#define FX_N 3

typedef struct fxc {
	struct raft_fixture fx;
	struct raft_fsm rf[FX_N];
	tfsm t[FX_N];
} fxc;

typedef struct fx_req {
	struct raft_apply req; /* first */
	fsm *f;
	int done, status;
	fsm_result res;
	uint64_t applied_then; /* the applying fsm's last applied index inside the callback */
} fx_req;

static void fx_open(fxc *c, unsigned threshold, unsigned trailing)
{
	memset(c, 0, sizeof *c);
	assert_int_equal(raft_fixture_initialize(&c->fx), 0);
	for (unsigned i = 0; i < FX_N; i++) {
		tf_open(&c->t[i], "fx");
		assert_omen_ok(cons_fsm_init(&c->rf[i], c->t[i].f, &c->fx.servers[i].raft));
		assert_int_equal(raft_fixture_grow(&c->fx, &c->rf[i]), 0);
		assert_ptr_equal(raft_fixture_get(&c->fx, i), &c->fx.servers[i].raft);
		if (threshold) {
			raft_set_snapshot_threshold(raft_fixture_get(&c->fx, i), threshold);
			raft_set_snapshot_trailing(raft_fixture_get(&c->fx, i), trailing);
		}
	}
	struct raft_configuration conf;
	assert_int_equal(raft_fixture_configuration(&c->fx, FX_N, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(&c->fx, &conf), 0);
	raft_configuration_close(&conf);
	assert_int_equal(raft_fixture_start(&c->fx), 0);
	raft_fixture_elect(&c->fx, 0);
}

static void fx_close(fxc *c)
{
	raft_fixture_close(&c->fx);
	for (unsigned i = 0; i < FX_N; i++) {
		cons_fsm_close(&c->rf[i]);
		tf_close(&c->t[i]);
	}
}

static void fx_applied(struct raft_apply *req, int status, void *result)
{
	fx_req *r = (fx_req *)req;
	r->done = 1;
	r->status = status;
	if (status == 0) {
		r->res = *(const fsm_result *)result;
		r->applied_then = fsm_last_applied(r->f);
	}
}

static bool fx_is_done(struct raft_fixture *f, void *arg)
{
	(void)f;
	return ((fx_req *)arg)->done;
}

static void fx_submit(fxc *c, unsigned i, meta_cmd cmd, fx_req *r)
{
	memset(r, 0, sizeof *r);
	r->f = c->t[i].f;
	struct raft_buffer b;
	assert_omen_ok(cmd_encode(&cmd, 1, &b.base, &b.len));
	assert_int_equal(raft_apply(raft_fixture_get(&c->fx, i), &r->req, &b, 1, fx_applied), 0);
}

/* Applies cmd through server i (the leader) and returns its result. */
static fsm_result fx_apply(fxc *c, unsigned i, meta_cmd cmd)
{
	fx_req r;
	fx_submit(c, i, cmd, &r);
	assert_true(raft_fixture_step_until(&c->fx, fx_is_done, &r, 10000));
	assert_int_equal(r.status, 0);
	/* The index the raft_fsm gave the entry (last_applied + 1) is the entry's own. */
	assert_int_equal(r.applied_then, r.req.index);
	return r.res;
}

/* Steps until every live server applied everything the leader applied; all agree. */
static void fx_converge(fxc *c)
{
	unsigned l = FX_N; /* the leader of the highest term (a revived one may think it leads) */
	for (unsigned i = 0; i < FX_N; i++) {
		struct raft *r = raft_fixture_get(&c->fx, i);
		if (raft_fixture_alive(&c->fx, i) && raft_state(r) == RAFT_LEADER &&
		    (l == FX_N || r->current_term > raft_fixture_get(&c->fx, l)->current_term))
			l = i;
	}
	assert_true(l < FX_N);
	raft_index idx = raft_last_applied(raft_fixture_get(&c->fx, l));
	for (unsigned i = 0; i < FX_N; i++)
		if (raft_fixture_alive(&c->fx, i))
			assert_true(raft_fixture_step_until_applied(&c->fx, i, idx, 10000));
	for (unsigned i = 0; i < FX_N; i++)
		if (raft_fixture_alive(&c->fx, i))
			assert_same_state(c->t[l].f, c->t[i].f);
}

static void fx_setup_cluster(fxc *c, unsigned l)
{
	assert_int_equal(fx_apply(c, l, c_node(11, "tcp://s11:1", 2, 0)).status, 0);
	assert_int_equal(fx_apply(c, l, c_node(12, "tcp://s12:1", 2, 0)).status, 0);
	fsm_result r = fx_apply(c, l, c_coll("docs", 16, 0, 4));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.epoch, 1);
	assert_int_equal(fx_apply(c, l, c_coll("docs", 16, 0, 4)).status, OMEN_EEXIST);
	r = fx_apply(c, l, c_ids("docs", 100));
	assert_int_equal(r.value, 0);
}

static bool fx_majority_leader(struct raft_fixture *f, void *arg)
{
	(void)arg;
	return raft_state(raft_fixture_get(f, 1)) == RAFT_LEADER ||
	       raft_state(raft_fixture_get(f, 2)) == RAFT_LEADER;
}

static void test_fixture_replicate(void **state)
{
	(void)state;
	fxc c;
	fx_open(&c, 0, 0);
	assert_int_equal(raft_fixture_leader_index(&c.fx), 0);
	fx_setup_cluster(&c, 0);
	fx_converge(&c);
	/* Bytes that do not decode still take their index, as EPROTO, everywhere. */
	fx_req r;
	memset(&r, 0, sizeof r);
	r.f = c.t[0].f;
	struct raft_buffer b = {raft_malloc(3), 3};
	memcpy(b.base, "\x81\xa1z", 3);
	assert_int_equal(raft_apply(raft_fixture_get(&c.fx, 0), &r.req, &b, 1, fx_applied), 0);
	assert_true(raft_fixture_step_until(&c.fx, fx_is_done, &r, 10000));
	assert_int_equal(r.res.status, OMEN_EPROTO);
	assert_int_equal(r.applied_then, r.req.index);
	fx_converge(&c);
	/* Kill the leader; another is elected and takes commands; the old one catches up. */
	raft_fixture_kill(&c.fx, 0);
	assert_true(raft_fixture_step_until(&c.fx, fx_majority_leader, NULL, 20000));
	unsigned l = raft_state(raft_fixture_get(&c.fx, 1)) == RAFT_LEADER ? 1 : 2;
	fsm_result res = fx_apply(&c, l, c_ids("docs", 5));
	assert_int_equal(res.value, 100);
	assert_int_equal(fx_apply(&c, l, c_assign("docs", 1, 11)).status, 0);
	assert_int_equal(fx_apply(&c, l, c_named(CMD_COLL_DROP, "docs")).status, 0);
	assert_int_equal(fx_apply(&c, l, c_coll("docs", 8, 2, 3)).status, 0);
	fx_converge(&c);
	raft_fixture_revive(&c.fx, 0);
	res = fx_apply(&c, l, c_ids("docs", 1));
	assert_int_equal(res.value, 0);
	fx_converge(&c);
	assert_int_equal(fsm_epoch(c.t[0].f), 4);
	fx_close(&c);
}

static bool fx_both_applied(struct raft_fixture *f, void *arg)
{
	raft_index idx = *(raft_index *)arg;
	return raft_last_applied(raft_fixture_get(f, 1)) >= idx &&
	       raft_last_applied(raft_fixture_get(f, 2)) >= idx;
}

static void test_fixture_partition(void **state)
{
	(void)state;
	fxc c;
	fx_open(&c, 0, 0);
	fx_setup_cluster(&c, 0);
	fx_converge(&c);
	uint64_t applied0 = fsm_last_applied(c.t[0].f);
	/* Cut the leader off from both followers. */
	for (unsigned j = 1; j < FX_N; j++) {
		raft_fixture_saturate(&c.fx, 0, j);
		raft_fixture_saturate(&c.fx, j, 0);
	}
	fx_req lost;
	fx_submit(&c, 0, c_coll("lost", 4, 0, 1), &lost);
	assert_true(raft_fixture_step_until(&c.fx, fx_majority_leader, NULL, 20000));
	unsigned l = raft_state(raft_fixture_get(&c.fx, 1)) == RAFT_LEADER ? 1 : 2;
	/* The minority committed nothing. */
	assert_int_equal(fsm_last_applied(c.t[0].f), applied0);
	/* The majority commits. */
	fx_req won;
	fx_submit(&c, l, c_coll("won", 4, 0, 2), &won);
	assert_true(raft_fixture_step_until(&c.fx, fx_is_done, &won, 10000));
	assert_int_equal(won.status, 0);
	assert_int_equal(won.res.status, 0);
	raft_index idx = won.req.index;
	assert_true(raft_fixture_step_until(&c.fx, fx_both_applied, &idx, 10000));
	assert_same_state(c.t[1].f, c.t[2].f);
	meta_coll mc;
	assert_omen_status(fsm_coll_get(c.t[0].f, "won", &mc), OMEN_ENOTFOUND);
	/* Heal: the old leader's entry is dropped, its request failed, everyone agrees. */
	for (unsigned j = 1; j < FX_N; j++) {
		raft_fixture_desaturate(&c.fx, 0, j);
		raft_fixture_desaturate(&c.fx, j, 0);
	}
	raft_fixture_step_until_elapsed(&c.fx, 3000);
	assert_true(lost.done);
	assert_int_not_equal(lost.status, 0);
	assert_true(raft_fixture_step_until_has_leader(&c.fx, 20000));
	fx_converge(&c);
	for (unsigned i = 0; i < FX_N; i++) {
		assert_omen_status(fsm_coll_get(c.t[i].f, "lost", &mc), OMEN_ENOTFOUND);
		assert_omen_ok(fsm_coll_get(c.t[i].f, "won", &mc));
	}
	fx_close(&c);
}

static void test_fixture_snapshot(void **state)
{
	(void)state;
	fxc c;
	fx_open(&c, 4, 2);
	fx_setup_cluster(&c, 0);
	fx_converge(&c);
	raft_fixture_kill(&c.fx, 2);
	uint64_t behind = raft_last_applied(raft_fixture_get(&c.fx, 2));
	uint64_t first = 0;
	for (int k = 0; k < 30; k++) {
		fsm_result r = fx_apply(&c, 0, c_ids("docs", 3));
		if (k == 0)
			first = r.value;
		assert_int_equal(r.value, first + 3 * (uint64_t)k);
	}
	assert_int_equal(fx_apply(&c, 0, c_assign("docs", 3, 11)).status, 0);
	/* The leader's log no longer holds what server 2 lacks: it must install a snapshot. */
	struct raft *lr = raft_fixture_get(&c.fx, 0);
	assert_true(lr->log.snapshot.last_index > 0);
	assert_true(lr->log.offset + 1 > behind + 1);
	raft_fixture_revive(&c.fx, 2);
	fx_converge(&c);
	assert_true(fsm_last_applied(c.t[2].f) > behind);
	/* And carries on from there. */
	fsm_result r = fx_apply(&c, 0, c_ids("docs", 1));
	assert_int_equal(r.value, first + 90);
	fx_converge(&c);
	fx_close(&c);
}

/* ---- real raft_uv nodes on loopback ---- */

#define UV_N         4
#define ELECTION_MS  300
#define HEARTBEAT_MS 50

typedef struct unode {
	uint64_t id;
	char addr[32];
	char rdir[600], fdir[600];
	fsm *f;
	cons *c;
} unode;

typedef struct ucl {
	char base[512];
	unode n[UV_N];
	cons_peer peers[3];
} ucl;

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof a;
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	close(s);
	return ntohs(a.sin_port);
}

static void un_start(ucl *u, unsigned i, int bootstrap)
{
	unode *n = &u->n[i];
	if (!n->f)
		assert_omen_ok(fsm_open(n->fdir, &n->f));
	cons_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.id = n->id;
	cfg.raft_addr = n->addr;
	cfg.dir = n->rdir;
	cfg.peers = bootstrap ? u->peers : NULL;
	cfg.npeers = bootstrap ? 3 : 0;
	cfg.election_ms = ELECTION_MS;
	cfg.heartbeat_ms = HEARTBEAT_MS;
	cfg.snapshot_threshold = 8;
	cfg.snapshot_trailing = 4;
	assert_omen_ok(cons_start(&cfg, n->f, &n->c));
}

static void un_stop(ucl *u, unsigned i, int close_fsm)
{
	cons_stop(u->n[i].c);
	u->n[i].c = NULL;
	if (close_fsm) {
		fsm_close(u->n[i].f);
		u->n[i].f = NULL;
	}
}

static void ucl_open(ucl *u)
{
	memset(u, 0, sizeof *u);
	char base[512];
	tmp_dir(base, sizeof base, "uv");
	memcpy(u->base, base, sizeof base);
	for (unsigned i = 0; i < UV_N; i++) {
		unode *n = &u->n[i];
		n->id = i + 1;
		snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", free_port());
		snprintf(n->rdir, sizeof n->rdir, "%s/raft%u", base, i + 1);
		snprintf(n->fdir, sizeof n->fdir, "%s/fsm%u", base, i + 1);
		if (i < 3) {
			u->peers[i].id = n->id;
			u->peers[i].raft_addr = n->addr;
		}
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits until every running node names the same leader, which says it leads. */
static unsigned wait_leader(ucl *u, double timeout)
{
	double end = now_s() + timeout;
	while (now_s() < end) {
		uint64_t l = 0;
		int agree = 1, running = 0;
		for (unsigned i = 0; i < UV_N; i++) {
			if (!u->n[i].c)
				continue;
			running++;
			uint64_t li = cons_leader(u->n[i].c);
			if (li == 0 || (l && li != l))
				agree = 0;
			l = li;
		}
		if (running && agree && l && u->n[l - 1].c && cons_is_leader(u->n[l - 1].c))
			return (unsigned)(l - 1);
		usleep(10000);
	}
	fail_msg("no leader within %.1f s", timeout);
	return 0;
}

/* Waits until node i's state has applied at least index. */
static void wait_applied(ucl *u, unsigned i, uint64_t index, double timeout)
{
	double end = now_s() + timeout;
	while (fsm_last_applied(u->n[i].f) < index) {
		if (now_s() > end)
			fail_msg("node %u applied %llu, not %llu", i + 1,
			         (unsigned long long)fsm_last_applied(u->n[i].f),
			         (unsigned long long)index);
		usleep(5000);
	}
}

/* Applies through the leader, retrying while leadership moves. */
static fsm_result u_apply(ucl *u, meta_cmd cmd)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		unsigned l = wait_leader(u, 10);
		fsm_result r;
		uint64_t leader = 0;
		int st = cons_apply(u->n[l].c, &cmd, 5000, &r, &leader);
		if (st == OMEN_OK)
			return r;
		assert_int_equal(st, OMEN_EBUSY);
		usleep(20000);
	}
	fail_msg("no leader took the command");
	fsm_result none = {0, 0, 0};
	return none;
}

static void wait_all_applied(ucl *u, unsigned l)
{
	uint64_t idx = fsm_last_applied(u->n[l].f);
	for (unsigned i = 0; i < UV_N; i++)
		if (u->n[i].c) {
			wait_applied(u, i, idx, 10);
			assert_same_state(u->n[l].f, u->n[i].f);
		}
}

typedef struct waiter {
	cons *c;
	uint32_t timeout_ms;
	int entered, status, done;
	double waited;
} waiter;

static void *wait_apply(void *arg)
{
	waiter *w = arg;
	meta_cmd cmd = c_named(CMD_NOOP, "");
	fsm_result r;
	uint64_t leader;
	double t = now_s();
	__atomic_store_n(&w->entered, 1, __ATOMIC_RELEASE);
	w->status = cons_apply(w->c, &cmd, w->timeout_ms, &r, &leader);
	w->waited = now_s() - t;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_uv_cluster(void **state)
{
	(void)state;
	ucl u;
	ucl_open(&u);
	double t0 = now_s();
	for (unsigned i = 0; i < 3; i++)
		un_start(&u, i, 1);
	unsigned l = wait_leader(&u, 10 * ELECTION_MS / 1000.0 + 5);
	fprintf(stderr, "# leader %u after %.2f s\n", l + 1, now_s() - t0);
	/* A follower refuses with the leader's id. */
	unsigned fo = (l + 1) % 3;
	meta_cmd cmd = c_node(101, "tcp://s101:1", 2, 0);
	fsm_result r;
	uint64_t leader = 0;
	assert_omen_status(cons_apply(u.n[fo].c, &cmd, 2000, &r, &leader), OMEN_EBUSY);
	assert_int_equal(leader, u.n[l].id);
	assert_omen_status(cons_add(u.n[fo].c, 9, "127.0.0.1:1", 2000, &leader), OMEN_EBUSY);
	assert_int_equal(leader, u.n[l].id);
	/* The leader commits; every state machine shows it. */
	assert_omen_ok(cons_apply(u.n[l].c, &cmd, 5000, &r, &leader));
	assert_int_equal(r.status, 0);
	assert_int_equal(u_apply(&u, c_node(102, "tcp://s102:1", 2, 0)).status, 0);
	r = u_apply(&u, c_coll("docs", 32, 0, 6));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.epoch, 1);
	assert_int_equal(u_apply(&u, c_coll("docs", 32, 0, 6)).status, OMEN_EEXIST);
	uint64_t next = 0;
	for (int k = 0; k < 5; k++) {
		r = u_apply(&u, c_ids("docs", 10));
		assert_int_equal(r.status, 0);
		assert_int_equal(r.value, next);
		next += 10;
	}
	wait_all_applied(&u, l);
	/* Stop the leader: the two left elect one and take commands. */
	un_stop(&u, l, 0);
	unsigned old = l;
	l = wait_leader(&u, 10);
	assert_int_not_equal(l, old);
	for (int k = 0; k < 12; k++) {
		r = u_apply(&u, c_ids("docs", 7));
		assert_int_equal(r.value, next);
		next += 7;
	}
	assert_int_equal(u_apply(&u, c_assign("docs", 2, 101)).status, 0);
	wait_all_applied(&u, l);
	/* Restart it on its directories: it catches up (the others took snapshots meanwhile). */
	un_start(&u, old, 1);
	l = wait_leader(&u, 10);
	r = u_apply(&u, c_ids("docs", 1));
	assert_int_equal(r.value, next);
	next += 1;
	wait_all_applied(&u, l);
	/* Restart all three: nothing lost, nothing applied twice. */
	meta_coll before;
	assert_omen_ok(fsm_coll_get(u.n[l].f, "docs", &before));
	assert_int_equal(before.next_id, next);
	uint64_t epoch = fsm_epoch(u.n[l].f);
	for (unsigned i = 0; i < 3; i++)
		un_stop(&u, i, 1);
	for (unsigned i = 0; i < 3; i++)
		un_start(&u, i, 1);
	l = wait_leader(&u, 10);
	for (unsigned i = 0; i < 3; i++) {
		meta_coll c;
		assert_omen_ok(fsm_coll_get(u.n[i].f, "docs", &c));
		assert_int_equal(c.next_id, next);
		assert_int_equal(fsm_epoch(u.n[i].f), epoch);
	}
	r = u_apply(&u, c_ids("docs", 3));
	assert_int_equal(r.value, next);
	next += 3;
	wait_all_applied(&u, l);
	/* Leadership transfer. */
	unsigned to = (l + 1) % 3;
	assert_omen_ok(cons_transfer(u.n[l].c, u.n[to].id, 5000, &leader));
	l = wait_leader(&u, 10);
	assert_int_equal(l, to);
	/* A fourth node joins as a voter, follows, and leaves. */
	un_start(&u, 3, 0);
	assert_omen_ok(cons_add(u.n[l].c, 4, u.n[3].addr, 10000, &leader));
	r = u_apply(&u, c_ids("docs", 2));
	assert_int_equal(r.value, next);
	next += 2;
	wait_all_applied(&u, l);
	l = wait_leader(&u, 10);
	assert_omen_ok(cons_add(u.n[l].c, 4, u.n[3].addr, 5000, &leader)); /* already a voter */
	assert_omen_status(cons_add(u.n[l].c, 4, "127.0.0.1:1", 5000, &leader), OMEN_EEXIST);
	assert_omen_ok(cons_remove(u.n[l].c, 4, 10000, &leader));
	un_stop(&u, 3, 1);
	r = u_apply(&u, c_ids("docs", 1));
	assert_int_equal(r.value, next);
	wait_all_applied(&u, wait_leader(&u, 10));
	/* Without a majority: one caller times out (its request is completed later by the loop),
	 * another is still waiting when the node stops: it gets its answer, cons_stop waits for it,
	 * and nothing is used after it is freed. */
	l = wait_leader(&u, 10);
	for (unsigned i = 0; i < 3; i++)
		if (i != l)
			un_stop(&u, i, 0);
	waiter w[2] = {{u.n[l].c, 50, 0, -1, 0, 0}, {u.n[l].c, 5000, 0, -1, 0, 0}};
	pthread_t th[2];
	for (int k = 0; k < 2; k++)
		pthread_create(&th[k], NULL, wait_apply, &w[k]);
	for (int k = 0; k < 2; k++)
		while (!__atomic_load_n(&w[k].entered, __ATOMIC_ACQUIRE))
			usleep(1000);
	usleep(100000);
	int blocked = !__atomic_load_n(&w[1].done, __ATOMIC_ACQUIRE);
	double ts = now_s();
	un_stop(&u, l, 0);
	for (int k = 0; k < 2; k++) {
		pthread_join(th[k], NULL);
		assert_true(w[k].status == OMEN_EUNAVAIL || w[k].status == OMEN_EBUSY);
	}
	assert_true(now_s() - ts < 4.0);
	fprintf(stderr, "# stopped with a caller waiting: %s\n", blocked ? "yes" : "no");
	for (unsigned i = 0; i < UV_N; i++)
		fsm_close(u.n[i].f);
	fprintf(stderr, "# cluster test %.2f s\n", now_s() - t0);
	rm_tree(u.base);
}

static void test_uv_errors(void **state)
{
	(void)state;
	char base[512], rdir[600], fdir[600];
	tmp_dir(base, sizeof base, "uverr");
	snprintf(rdir, sizeof rdir, "%s/raft", base);
	snprintf(fdir, sizeof fdir, "%s/fsm", base);
	fsm *f;
	assert_omen_ok(fsm_open(fdir, &f));
	cons *c;
	cons_peer peers[1] = {{2, "127.0.0.1:1"}};
	cons_config cfg = {1, "127.0.0.1:1", rdir, peers, 1, 0, 0, 0, 0};
	assert_omen_status(cons_start(&cfg, f, &c), OMEN_EINVAL); /* not among the peers */
	cfg.id = 0;
	assert_omen_status(cons_start(&cfg, f, &c), OMEN_EINVAL);
	/* A port already taken: raft_start fails and everything is released. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof a;
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s, 1), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
	cons_peer self[1] = {{1, addr}};
	cons_config cfg2 = {1, addr, rdir, self, 1, 200, 50, 0, 0};
	int st = cons_start(&cfg2, f, &c);
	assert_int_not_equal(st, OMEN_OK);
	close(s);
	/* The same node once the port is free: a single voter elects itself. */
	st = cons_start(&cfg2, f, &c);
	assert_omen_ok(st);
	double end = now_s() + 10;
	while (!cons_is_leader(c) && now_s() < end)
		usleep(10000);
	assert_true(cons_is_leader(c));
	meta_cmd cmd = c_node(5, "tcp://s5:1", 2, 0);
	fsm_result r;
	uint64_t leader;
	assert_omen_ok(cons_apply(c, &cmd, 5000, &r, &leader));
	assert_int_equal(fsm_last_applied(f) > 0, 1);
	cons_stop(c);
	cons_stop(NULL);
	fsm_close(f);
	fsm_close(NULL);
	rm_tree(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* raft_uv writes to sockets that peers close */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cmd_roundtrip),
	    cmocka_unit_test(test_cmd_hostile),
	    cmocka_unit_test(test_fsm_commands),
	    cmocka_unit_test(test_fsm_replay),
	    cmocka_unit_test(test_fsm_snapshot),
	    cmocka_unit_test(test_fsm_snapshot_crafted),
	    cmocka_unit_test(test_fsm_snapshot_corrupt),
	    cmocka_unit_test(test_fsm_records_corrupt),
	    cmocka_unit_test(test_fsm_concurrent_reads),
	    cmocka_unit_test(test_fixture_replicate),
	    cmocka_unit_test(test_fixture_partition),
	    cmocka_unit_test(test_fixture_snapshot),
	    cmocka_unit_test(test_uv_errors),
	    cmocka_unit_test(test_uv_cluster),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
