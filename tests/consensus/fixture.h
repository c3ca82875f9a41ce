/*
 * What the consensus tests share: commands built in one call, applying at an index, a small
 * state to start from, a state machine in a temporary directory, and a check that two state
 * machines read alike. A test includes it after defining OMEN_TEST_INTERNAL and including
 * "helpers.h".
 */
#ifndef OMEN_TEST_CONSENSUS_FIXTURE_H
#define OMEN_TEST_CONSENSUS_FIXTURE_H

#ifndef OMEN_TEST_INTERNAL
#error "define OMEN_TEST_INTERNAL and include helpers.h before fixture.h"
#endif

#include "consensus/consensus.h"
#include "helpers.h"

/* ---- commands ---- */

static inline meta_cmd c_node(uint64_t id, const char *addr, int role, int state)
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

static inline meta_cmd c_coll(const char *name, uint32_t dim, int metric, uint32_t nshards)
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

static inline meta_cmd c_named(cmd_kind kind, const char *name)
{
	meta_cmd c;
	memset(&c, 0, sizeof c);
	c.kind = kind;
	snprintf(c.coll.name, sizeof c.coll.name, "%s", name);
	return c;
}

static inline meta_cmd c_ids(const char *name, uint64_t count)
{
	meta_cmd c = c_named(CMD_IDS_ALLOC, name);
	c.count = count;
	return c;
}

static inline meta_cmd c_assign(const char *name, uint32_t shard, uint64_t node)
{
	meta_cmd c = c_named(CMD_SHARD_ASSIGN, name);
	c.shard = shard;
	c.node_id = node;
	return c;
}

static inline meta_cmd c_copy_fail(const char *name, uint32_t shard, uint64_t primary,
                                   uint64_t failed)
{
	meta_cmd c = c_named(CMD_COPY_FAIL, name);
	c.shard = shard;
	c.node_id = primary;
	c.failed[0] = failed;
	c.nfailed = 1;
	return c;
}

/* Every read of a and b agrees: epoch, last applied, nodes, collections and shard maps. */
static inline void assert_same_state(fsm *a, fsm *b)
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
		assert_int_equal(ca[i].replicas, cb[i].replicas);
		meta_copies *pa, *pb;
		uint32_t qa, qb;
		assert_omen_ok(fsm_shard_copies(a, ca[i].name, &pa, &qa, NULL));
		assert_omen_ok(fsm_shard_copies(b, cb[i].name, &pb, &qb, NULL));
		assert_int_equal(qa, qb);
		assert_memory_equal(pa, pb, qa * sizeof *pa);
		free(pa);
		free(pb);
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
static inline int apply_at(fsm *f, uint64_t index, meta_cmd c, fsm_result *res)
{
	fsm_result r;
	assert_omen_ok(fsm_apply(f, index, &c, &r));
	if (res)
		*res = r;
	return r.status;
}

static inline void make_state(fsm *f, uint64_t *index)
{
	uint64_t i = *index;
	assert_int_equal(apply_at(f, ++i, c_node(1, "tcp://127.0.0.1:7700", 1, 0), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_node(12, "tcp://10.0.0.12:7701", 2, 0), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_node(11, "tcp://10.0.0.11:7701", 2, 0), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_coll("docs", 128, 2, 5), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_coll("a.b-c_9", 3, 0, 1), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_ids("docs", 1000), NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_assign("docs", 4, 12), NULL), 0);
	meta_cmd r2 = c_coll("r2", 8, 1, 3); /* two copies a shard, one of them stale */
	r2.coll.replicas = 2;
	assert_int_equal(apply_at(f, ++i, r2, NULL), 0);
	assert_int_equal(apply_at(f, ++i, c_copy_fail("r2", 1, 12, 11), NULL), 0);
	*index = i;
}

/* ---- a state machine in a temporary directory ---- */

typedef struct tfsm {
	char dir[512];
	fsm *f;
} tfsm;

static inline void tf_open(tfsm *t, const char *tag)
{
	tmp_dir(t->dir, sizeof t->dir, tag);
	assert_omen_ok(fsm_open(t->dir, &t->f));
}

static inline void tf_close(tfsm *t)
{
	fsm_close(t->f);
	rm_tree(t->dir);
}

#endif
