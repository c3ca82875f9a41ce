/*
 * Applying one committed Raft entry: the last-applied rule (a replayed index changes nothing),
 * then the command in a nested transaction that is kept only when the command succeeds, and
 * the new last applied index in the same commit. Each command's checks and effects are here;
 * the verdict depends only on the state and the command, so every replica reaches the same.
 */
#include <stdlib.h>
#include <string.h>

#include "consensus/internal.h"

#define MAX_IDS (1ull << 40) /* ids one CMD_IDS_ALLOC may take */

/* Each exec_* runs inside the command's own (nested) transaction. It returns a storage status
 * (the state could not be read or written: nothing of the entry is committed) and puts the
 * command's outcome in *cst; on an outcome other than OMEN_OK the nested transaction is
 * discarded, so an invalid command changes nothing. */

static int exec_node_set(fsm *f, MDB_txn *txn, const meta_node *n, int *cst)
{
	size_t alen = strnlen(n->addr, META_MAX_ADDR);
	if (!fsm_node_fields_ok(n->id, n->addr, alen == META_MAX_ADDR ? 0 : alen, n->role,
	                        n->state)) {
		*cst = status_set(
		    OMEN_EINVAL,
		    "node %llu: id >= 1, a non-empty address, role 1, 2 or 3 and state 0 "
		    "or 1 expected",
		    (unsigned long long)n->id);
		return OMEN_OK;
	}
	return fsm_node_write(f, txn, n, 0);
}

/* The ids of the shard nodes that are up, in id order, into a malloc'd *ids that the caller
 * frees. */
static int up_shard_nodes(fsm *f, MDB_txn *txn, uint64_t **ids, size_t *n)
{
	meta_node *nodes = NULL;
	size_t nn = 0, m = 0;
	int st = fsm_nodes_read(f, txn, &nodes, &nn);
	if (st != OMEN_OK)
		return st;
	uint64_t *out = malloc((nn + 1) * sizeof *out);
	for (size_t i = 0; out && i < nn; i++)
		if (nodes[i].role == META_ROLE_SHARD && nodes[i].state == META_NODE_UP)
			out[m++] = nodes[i].id;
	free(nodes);
	if (!out)
		return status_set(OMEN_ENOMEM, "out of memory");
	*ids = out;
	*n = m;
	return OMEN_OK;
}

/* Reads collection name for a command: a bad name (OMEN_EINVAL) or no such collection
 * (OMEN_ENOTFOUND) is the command's fault and goes into *cst; returns the storage status. */
static int coll_lookup(fsm *f, MDB_txn *txn, const char *name, meta_coll *out, int *cst)
{
	if (!fsm_name_ok(name)) {
		*cst = status_set(OMEN_EINVAL, "bad collection name");
		return OMEN_OK;
	}
	int st = fsm_coll_read(f, txn, name, out);
	if (st == OMEN_ENOTFOUND) {
		*cst = st;
		return OMEN_OK;
	}
	return st;
}

/* The checks of CMD_COLL_CREATE that need no placement: the fields, a collection of that name,
 * the number of collections. Outcome in *cst; returns the storage status. */
static int coll_create_check(fsm *f, MDB_txn *txn, const meta_coll *c, int *cst)
{
	if (!fsm_name_ok(c->name) ||
	    !fsm_coll_fields_ok(c->dim, c->metric, c->nshards, c->replicas ? c->replicas : 1)) {
		*cst =
		    status_set(OMEN_EINVAL,
		               "collection: name of 1..%d [A-Za-z0-9_.-], dim 1..%d, metric 0..2, "
		               "1..%d shards and 1..%d replicas expected",
		               OMEN_MAX_NAME, OMEN_MAX_DIM, FSM_MAX_SHARDS, META_MAX_COPIES);
		return OMEN_OK;
	}
	meta_coll old;
	int st = fsm_coll_read(f, txn, c->name, &old);
	if (st == OMEN_OK) {
		*cst = status_set(OMEN_EEXIST, "collection '%s' already exists", c->name);
		return OMEN_OK;
	}
	if (st != OMEN_ENOTFOUND)
		return st;
	MDB_stat ms;
	int rc = mdb_stat(txn, f->colls, &ms);
	if (rc)
		return status_from_mdb(rc, "counting collections");
	if (ms.ms_entries >= OMEN_MAX_COLLECTIONS)
		*cst = status_set(OMEN_ELIMIT, "the cluster holds %d collections already",
		                  OMEN_MAX_COLLECTIONS);
	return OMEN_OK;
}

/* Creates the collection with next_id 0; copy j of logical shard s goes to the
 * ((s + j) mod U)-th of the U shard nodes that are up, in id order, so that the copies of a
 * shard are on distinct nodes and the primaries spread as the shards did with one copy. */
static int exec_coll_create(fsm *f, MDB_txn *txn, const meta_coll *c, uint64_t *epoch, int *cst)
{
	int st = coll_create_check(f, txn, c, cst);
	if (st != OMEN_OK || *cst != OMEN_OK)
		return st;
	uint64_t *up = NULL;
	size_t nup = 0;
	st = up_shard_nodes(f, txn, &up, &nup);
	if (st != OMEN_OK)
		return st;
	meta_coll nc = *c;
	nc.next_id = 0;
	nc.replicas += nc.replicas == 0;
	if (nup < nc.replicas) {
		free(up);
		*cst = nup == 0 ? status_set(OMEN_EUNAVAIL, "collection '%s': no shard node is up",
		                             c->name)
		                : status_set(OMEN_EUNAVAIL,
		                             "collection '%s': %u replicas need %u shard nodes up, "
		                             "%zu are",
		                             c->name, nc.replicas, nc.replicas, nup);
		return OMEN_OK;
	}
	st = fsm_coll_write(f, txn, &nc, MDB_NOOVERWRITE);
	for (uint32_t s = 0; st == OMEN_OK && s < nc.nshards; s++) {
		meta_copies cp;
		memset(&cp, 0, sizeof cp);
		cp.n = nc.replicas;
		for (uint32_t j = 0; j < cp.n; j++)
			cp.node[j] = up[(s + j) % nup];
		st = fsm_shard_write(f, txn, nc.name, s, &cp, 0);
	}
	free(up);
	if (st == OMEN_OK)
		*epoch += 1;
	return st;
}

static int exec_coll_drop(fsm *f, MDB_txn *txn, const char *name, uint64_t *epoch, int *cst)
{
	meta_coll c;
	int st = coll_lookup(f, txn, name, &c, cst);
	if (st != OMEN_OK || *cst != OMEN_OK)
		return st;
	MDB_val k = {strlen(name), (void *)name};
	int rc = mdb_del(txn, f->colls, &k, NULL);
	if (rc)
		return status_from_mdb(rc, "dropping a collection");
	st = fsm_shards_delete(f, txn, name);
	if (st == OMEN_OK)
		*epoch += 1;
	return st;
}

/* Reads the collection and the copies of the command's shard: a missing collection or a shard
 * out of range is the command's fault (*cst). Returns the storage status. */
static int shard_lookup(fsm *f, MDB_txn *txn, const meta_cmd *cmd, meta_copies *cp, int *cst)
{
	meta_coll c;
	int st = coll_lookup(f, txn, cmd->coll.name, &c, cst);
	if (st != OMEN_OK || *cst != OMEN_OK)
		return st;
	if (cmd->shard >= c.nshards) {
		*cst = status_set(OMEN_EINVAL, "collection '%s' has %u shards, not %u", c.name,
		                  c.nshards, cmd->shard + 1);
		return OMEN_OK;
	}
	meta_copies *all = malloc(c.nshards * sizeof *all);
	if (!all)
		return status_set(OMEN_ENOMEM, "out of memory");
	st = fsm_shards_read(f, txn, c.name, c.nshards, all);
	if (st == OMEN_OK)
		*cp = all[cmd->shard];
	free(all);
	return st;
}

/* Whether node id is a registered shard node; *cst says why not. Returns the storage status. */
static int shard_node_check(fsm *f, MDB_txn *txn, uint64_t id, int *cst)
{
	meta_node n;
	int st = fsm_node_read(f, txn, id, &n);
	if (st == OMEN_ENOTFOUND || (st == OMEN_OK && !meta_is_shard(n.role))) {
		*cst = status_set(OMEN_EINVAL, "node %llu is not a shard node",
		                  (unsigned long long)id);
		return OMEN_OK;
	}
	return st;
}

/* Writes the copies of the command's shard: a new map, so a new epoch. */
static int shard_put(fsm *f, MDB_txn *txn, const meta_cmd *cmd, const meta_copies *cp,
                     uint64_t *epoch)
{
	int st = fsm_shard_write(f, txn, cmd->coll.name, cmd->shard, cp, 0);
	if (st == OMEN_OK)
		*epoch += 1;
	return st;
}

static int exec_shard_assign(fsm *f, MDB_txn *txn, const meta_cmd *cmd, uint64_t *epoch, int *cst)
{
	meta_copies cp;
	int st = shard_lookup(f, txn, cmd, &cp, cst);
	if (st != OMEN_OK || *cst != OMEN_OK)
		return st;
	if (cp.n != 1) {
		*cst = status_set(OMEN_EINVAL, "collection '%s' shard %u has %u copies: not moved",
		                  cmd->coll.name, cmd->shard, cp.n);
		return OMEN_OK;
	}
	st = shard_node_check(f, txn, cmd->node_id, cst);
	if (st != OMEN_OK || *cst != OMEN_OK)
		return st;
	cp.node[0] = cmd->node_id;
	cp.state[0] = META_COPY_IN_SYNC;
	return shard_put(f, txn, cmd, &cp, epoch);
}

static int exec_copy_fail(fsm *f, MDB_txn *txn, const meta_cmd *cmd, uint64_t *epoch, int *cst)
{
	meta_copies cp;
	int st = shard_lookup(f, txn, cmd, &cp, cst);
	if (st != OMEN_OK || *cst != OMEN_OK)
		return st;
	int p = meta_copies_primary(&cp);
	if (p < 0 || cp.node[p] != cmd->node_id || cmd->nfailed > META_MAX_COPIES) {
		*cst = status_set(OMEN_ESTALE,
		                  "collection '%s' shard %u: node %llu is not its primary any more",
		                  cmd->coll.name, cmd->shard, (unsigned long long)cmd->node_id);
		return OMEN_OK;
	}
	for (uint32_t i = 0; i < cmd->nfailed; i++)
		for (uint32_t j = 0; j < cp.n; j++)
			if (cp.node[j] == cmd->failed[i])
				cp.state[j] = META_COPY_STALE;
	if (meta_copies_primary(&cp) < 0) {
		*cst = status_set(OMEN_EUNAVAIL,
		                  "collection '%s' shard %u: no copy in sync would remain",
		                  cmd->coll.name, cmd->shard);
		return OMEN_OK;
	}
	return shard_put(f, txn, cmd, &cp, epoch);
}

static int exec_copies_set(fsm *f, MDB_txn *txn, const meta_cmd *cmd, uint64_t *epoch, int *cst)
{
	meta_copies cp;
	int st = shard_lookup(f, txn, cmd, &cp, cst);
	if (st != OMEN_OK || *cst != OMEN_OK)
		return st;
	if (cp.n != cmd->expect.n ||
	    memcmp(cp.node, cmd->expect.node, cp.n * sizeof cp.node[0]) != 0 ||
	    memcmp(cp.state, cmd->expect.state, cp.n) != 0) {
		*cst = status_set(OMEN_ESTALE, "collection '%s' shard %u: its copies changed",
		                  cmd->coll.name, cmd->shard);
		return OMEN_OK;
	}
	if (!fsm_copies_ok(&cmd->copies)) {
		*cst = status_set(OMEN_EINVAL,
		                  "copies: 1..%d on distinct shard nodes, one in sync, expected",
		                  META_MAX_COPIES);
		return OMEN_OK;
	}
	for (uint32_t i = 0; i < cmd->copies.n && *cst == OMEN_OK && st == OMEN_OK; i++)
		st = shard_node_check(f, txn, cmd->copies.node[i], cst);
	if (st != OMEN_OK || *cst != OMEN_OK)
		return st;
	return shard_put(f, txn, cmd, &cmd->copies, epoch);
}

static int exec_ids_alloc(fsm *f, MDB_txn *txn, const meta_cmd *cmd, uint64_t *value, int *cst)
{
	meta_coll c;
	int st = coll_lookup(f, txn, cmd->coll.name, &c, cst);
	if (st != OMEN_OK || *cst != OMEN_OK)
		return st;
	if (cmd->count < 1 || cmd->count > MAX_IDS) {
		*cst = status_set(OMEN_EINVAL, "ids: count 1..2^40 expected, got %llu",
		                  (unsigned long long)cmd->count);
		return OMEN_OK;
	}
	/* next_id never passes UINT64_MAX (OMEN_NO_ID), so no allocated id is OMEN_NO_ID */
	if (cmd->count > UINT64_MAX - c.next_id) {
		*cst = status_set(OMEN_ELIMIT, "collection '%s': ids exhausted", c.name);
		return OMEN_OK;
	}
	*value = c.next_id;
	c.next_id += cmd->count;
	return fsm_coll_write(f, txn, &c, 0);
}

/* Runs command c: the map epoch in *epoch is increased by the commands that change the map,
 * CMD_IDS_ALLOC's first id goes into *value. Outcome in *cst; returns the storage status. */
static int exec(fsm *f, MDB_txn *txn, const meta_cmd *c, uint64_t *epoch, uint64_t *value, int *cst)
{
	switch (c->kind) {
	case CMD_NODE_SET:
		return exec_node_set(f, txn, &c->node, cst);
	case CMD_COLL_CREATE:
		return exec_coll_create(f, txn, &c->coll, epoch, cst);
	case CMD_COLL_DROP:
		return exec_coll_drop(f, txn, c->coll.name, epoch, cst);
	case CMD_SHARD_ASSIGN:
		return exec_shard_assign(f, txn, c, epoch, cst);
	case CMD_IDS_ALLOC:
		return exec_ids_alloc(f, txn, c, value, cst);
	case CMD_NOOP:
		return OMEN_OK;
	case CMD_COPY_FAIL:
		return exec_copy_fail(f, txn, c, epoch, cst);
	case CMD_COPIES_SET:
		return exec_copies_set(f, txn, c, epoch, cst);
	}
	*cst = status_set(OMEN_EINVAL, "unknown command %d", (int)c->kind);
	return OMEN_OK;
}

typedef struct apply_ctx {
	uint64_t index;
	const meta_cmd *cmd;
	fsm_result res;
} apply_ctx;

/* Runs the command in a transaction nested in txn, committed only when the command succeeds;
 * fills res with its outcome, value and the epoch after it (the epoch passed in when it
 * failed). Returns the storage status. */
static int exec_nested(fsm *f, MDB_txn *txn, const meta_cmd *cmd, uint64_t epoch, fsm_result *res)
{
	MDB_txn *child;
	int rc = mdb_txn_begin(f->e.env, txn, 0, &child);
	if (rc)
		return status_from_mdb(rc, "consensus nested transaction");
	int cst = OMEN_OK;
	uint64_t value = 0, e2 = epoch;
	int st = exec(f, child, cmd, &e2, &value, &cst);
	if (st == OMEN_OK && cst == OMEN_OK) {
		rc = mdb_txn_commit(child);
		if (rc)
			st = status_from_mdb(rc, "consensus nested commit");
	} else {
		mdb_txn_abort(child);
	}
	if (st != OMEN_OK)
		return st;
	res->status = cst;
	res->value = cst == OMEN_OK ? value : 0;
	res->epoch = cst == OMEN_OK ? e2 : epoch;
	return OMEN_OK;
}

/* fsm_apply's write transaction: the last-applied rule, then the command and the new last
 * applied index, committed together. */
static int apply_fn(fsm *f, MDB_txn *txn, void *arg)
{
	apply_ctx *a = arg;
	uint64_t applied = 0, epoch = 0;
	int st = fsm_state_read(f, txn, &applied, &epoch);
	if (st != OMEN_OK)
		return st;
	memset(&a->res, 0, sizeof a->res);
	a->res.epoch = epoch;
	/* A replay: nothing to write (committing an unchanged transaction is free). */
	if (a->index <= applied)
		return OMEN_OK;
	st = exec_nested(f, txn, a->cmd, epoch, &a->res);
	return st == OMEN_OK ? fsm_state_write(f, txn, a->index, a->res.epoch) : st;
}

int fsm_apply(fsm *f, uint64_t index, const meta_cmd *c, fsm_result *res)
{
	apply_ctx a = {index, c, {0, 0, 0}};
	int st = fsm_write(f, apply_fn, &a);
	if (st == OMEN_OK)
		*res = a.res;
	return st;
}
