/*
 * The cluster's replicated state machine: nodes, collections, the shard map with its epoch, and
 * id allocation, kept in one LMDB environment with the last applied Raft index written in the
 * same transaction as every change, so that a restart neither loses nor repeats an entry. Also
 * the msgpack encoding of commands and of whole-state snapshots. Record layouts and the rules
 * are in docs/CONSENSUS.md.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>
#include <msgpack.h>
#include <raft.h>

#include "consensus/consensus.h"
#include "storage/storage.h"

#define FSM_FORMAT   1 /* format of the environment, kept in the state record */
#define CMD_VERSION  1 /* of the msgpack commands */
#define SNAP_VERSION 1 /* of the msgpack snapshots */
#define MAX_SHARDS   4096
#define MAX_IDS      (1ull << 40)
#define MAP_INITIAL  (64ull << 20)
#define MP_MAX_DEPTH 16

#define STATE_MAGIC   "OMRS"
#define COLL_MAGIC    "OMRC"
#define NODE_MAGIC    "OMRN"
#define SHARD_MAGIC   "OMRH"
#define STATE_SIZE    32
#define COLL_SIZE     32
#define NODE_HEAD     20
#define SHARD_SIZE    16
#define SHARD_KEY_MAX (OMEN_MAX_NAME + 5)

struct fsm {
	lenv e; /* the growable environment shared with the database store (storage/env.c) */
	MDB_dbi meta, colls, nodes, shards;
	char *path;
};

/* ---- small helpers ---- */

/* True when name is NUL-terminated within OMEN_MAX_NAME + 1 bytes and a collection name. */
static bool cname_valid(const char *name)
{
	return name_valid(name, strnlen(name, OMEN_MAX_NAME + 1));
}

/* The key of logical shard s of collection name: name, NUL, shard as u32 big-endian (so that a
 * collection's shards are contiguous and in order). Returns the key length. */
static size_t shard_key(unsigned char *k, const char *name, uint32_t s)
{
	size_t n = strlen(name);
	memcpy(k, name, n);
	k[n] = 0;
	for (int i = 0; i < 4; i++)
		k[n + 1 + i] = (unsigned char)(s >> (24 - 8 * i));
	return n + 5;
}

/* ---- records ---- */

static void coll_encode(const meta_coll *c, unsigned char *p)
{
	memset(p, 0, COLL_SIZE);
	rec_stamp(p, COLL_MAGIC);
	le32_put(p + 8, c->dim);
	le32_put(p + 12, (uint32_t)c->metric);
	le32_put(p + 16, c->nshards);
	le64_put(p + 24, c->next_id);
}

static int coll_decode(const MDB_val *k, const MDB_val *v, meta_coll *out)
{
	meta_coll c;
	memset(&c, 0, sizeof c);
	if (!name_valid(k->mv_data, k->mv_size))
		return status_set(OMEN_ECORRUPT, "consensus state: bad collection key");
	memcpy(c.name, k->mv_data, k->mv_size);
	if (v->mv_size != COLL_SIZE || !rec_check(v->mv_data, v->mv_size, COLL_MAGIC, COLL_SIZE))
		return status_set(OMEN_ECORRUPT, "consensus state: bad record for collection '%s'",
		                  c.name);
	const unsigned char *p = v->mv_data;
	c.dim = le32_get(p + 8);
	uint32_t metric = le32_get(p + 12);
	c.nshards = le32_get(p + 16);
	c.next_id = le64_get(p + 24);
	if (c.dim < 1 || c.dim > OMEN_MAX_DIM || metric > OMEN_METRIC_COSINE || c.nshards < 1 ||
	    c.nshards > MAX_SHARDS)
		return status_set(OMEN_ECORRUPT, "consensus state: collection '%s' out of range",
		                  c.name);
	c.metric = (omen_metric)metric;
	*out = c;
	return OMEN_OK;
}

/* Encodes node n into p (NODE_HEAD + META_MAX_ADDR bytes); returns the record's length. */
static size_t node_encode(const meta_node *n, unsigned char *p)
{
	size_t len = strlen(n->addr);
	memset(p, 0, NODE_HEAD);
	rec_stamp(p, NODE_MAGIC);
	le32_put(p + 8, (uint32_t)n->role);
	le32_put(p + 12, (uint32_t)n->state);
	le32_put(p + 16, (uint32_t)len);
	memcpy(p + NODE_HEAD, n->addr, len);
	return NODE_HEAD + len;
}

static bool node_fields_ok(uint64_t id, const char *addr, size_t alen, int64_t role, int64_t state)
{
	return id >= 1 && alen >= 1 && alen < META_MAX_ADDR && memchr(addr, 0, alen) == NULL &&
	       (role == META_ROLE_COORDINATOR || role == META_ROLE_SHARD) &&
	       (state == META_NODE_UP || state == META_NODE_DOWN);
}

static int node_decode(const MDB_val *k, const MDB_val *v, meta_node *out)
{
	if (k->mv_size != 8)
		return status_set(OMEN_ECORRUPT, "consensus state: bad node key");
	uint64_t id = be64_get(k->mv_data);
	if (!rec_check(v->mv_data, v->mv_size, NODE_MAGIC, NODE_HEAD))
		return status_set(OMEN_ECORRUPT, "consensus state: bad record for node %llu",
		                  (unsigned long long)id);
	const unsigned char *p = v->mv_data;
	uint32_t role = le32_get(p + 8), state = le32_get(p + 12), alen = le32_get(p + 16);
	if (alen >= META_MAX_ADDR || v->mv_size != NODE_HEAD + (size_t)alen ||
	    !node_fields_ok(id, (const char *)p + NODE_HEAD, alen, role, state))
		return status_set(OMEN_ECORRUPT, "consensus state: node %llu out of range",
		                  (unsigned long long)id);
	meta_node n;
	memset(&n, 0, sizeof n);
	n.id = id;
	memcpy(n.addr, p + NODE_HEAD, alen);
	n.role = (int)role;
	n.state = (int)state;
	*out = n;
	return OMEN_OK;
}

static int shard_decode(const MDB_val *v, uint64_t *node)
{
	if (v->mv_size != SHARD_SIZE || !rec_check(v->mv_data, v->mv_size, SHARD_MAGIC, SHARD_SIZE))
		return status_set(OMEN_ECORRUPT, "consensus state: bad shard record");
	*node = le64_get((const unsigned char *)v->mv_data + 8);
	if (*node == 0)
		return status_set(OMEN_ECORRUPT, "consensus state: shard assigned to node 0");
	return OMEN_OK;
}

static int shard_put(fsm *f, MDB_txn *txn, const char *name, uint32_t s, uint64_t node,
                     unsigned flags)
{
	unsigned char key[SHARD_KEY_MAX], rec[SHARD_SIZE] = {0};
	rec_stamp(rec, SHARD_MAGIC);
	le64_put(rec + 8, node);
	MDB_val k = {shard_key(key, name, s), key}, v = {SHARD_SIZE, rec};
	int rc = mdb_put(txn, f->shards, &k, &v, flags);
	if (rc == MDB_KEYEXIST)
		return status_set(OMEN_ECORRUPT, "consensus: collection '%s' shard %u twice", name,
		                  s);
	return rc ? status_from_mdb(rc, "writing the shard map") : OMEN_OK;
}

/* ---- the state record (meta "state") ---- */

static int state_read(fsm *f, MDB_txn *txn, uint64_t *applied, uint64_t *epoch)
{
	MDB_val k = {5, "state"}, v;
	int rc = mdb_get(txn, f->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return status_set(OMEN_ECORRUPT, "consensus state: state record missing");
	if (rc)
		return status_from_mdb(rc, "reading the consensus state");
	if (v.mv_size != STATE_SIZE || !rec_check(v.mv_data, v.mv_size, STATE_MAGIC, STATE_SIZE))
		return status_set(OMEN_ECORRUPT, "consensus state: bad state record");
	const unsigned char *p = v.mv_data;
	uint32_t format = le32_get(p + 8);
	if (format > FSM_FORMAT)
		return status_set(OMEN_EVERSION,
		                  "consensus state: format %u is newer than this OmenDB (%u)",
		                  format, FSM_FORMAT);
	if (format == 0)
		return status_set(OMEN_ECORRUPT, "consensus state: format 0");
	*applied = le64_get(p + 16);
	*epoch = le64_get(p + 24);
	return OMEN_OK;
}

static int state_write(fsm *f, MDB_txn *txn, uint64_t applied, uint64_t epoch)
{
	unsigned char p[STATE_SIZE] = {0};
	rec_stamp(p, STATE_MAGIC);
	le32_put(p + 8, FSM_FORMAT);
	le64_put(p + 16, applied);
	le64_put(p + 24, epoch);
	MDB_val k = {5, "state"}, v = {STATE_SIZE, p};
	int rc = mdb_put(txn, f->meta, &k, &v, 0);
	return rc ? status_from_mdb(rc, "writing the consensus state") : OMEN_OK;
}

/* ---- transactions ---- */

static int rd_begin(fsm *f, MDB_txn **txn)
{
	return lenv_read_begin(&f->e, txn);
}

static void rd_end(fsm *f, MDB_txn *txn)
{
	lenv_read_end(&f->e, txn);
}

typedef int (*wr_fn)(fsm *f, MDB_txn *txn, void *arg);

typedef struct wr_call {
	fsm *f;
	wr_fn fn;
	void *arg;
} wr_call;

static int wr_trampoline(MDB_txn *txn, void *ctx)
{
	wr_call *w = ctx;
	return w->fn(w->f, txn, w->arg);
}

/* Runs fn in one write transaction and commits it; all of fn's writes land or none do (the map
 * grows and fn runs again when it fills, so fn must have no effect outside the transaction).
 * Returns fn's status. */
static int wr_run(fsm *f, wr_fn fn, void *arg)
{
	wr_call w = {f, fn, arg};
	pthread_mutex_lock(&f->e.write_mu);
	int st = lenv_write(&f->e, wr_trampoline, &w);
	pthread_mutex_unlock(&f->e.write_mu);
	return st;
}

/* ---- open and close ---- */

static int dbi_open(MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *out)
{
	int rc = mdb_dbi_open(txn, name, flags, out);
	if (rc == MDB_NOTFOUND)
		return status_set(OMEN_ECORRUPT, "consensus state: sub-database %s missing", name);
	if (rc == MDB_INCOMPATIBLE)
		return status_set(OMEN_ENOTDB, "not an OmenDB consensus state (%s)", name);
	return rc ? status_from_mdb(rc, name) : OMEN_OK;
}

/* Opens the sub-databases, creating them and a zero state in an empty environment. */
static int init_fn(fsm *f, MDB_txn *txn, void *arg)
{
	(void)arg;
	int rc = mdb_dbi_open(txn, "meta", 0, &f->meta);
	if (rc == MDB_NOTFOUND) {
		MDB_dbi main_dbi;
		MDB_stat ms;
		rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
		if (rc == 0)
			rc = mdb_stat(txn, main_dbi, &ms);
		if (rc)
			return status_from_mdb(rc, f->path);
		if (ms.ms_entries != 0)
			return status_set(OMEN_ENOTDB,
			                  "%s: an LMDB environment, but not a consensus state",
			                  f->path);
		int st = dbi_open(txn, "meta", MDB_CREATE, &f->meta);
		if (st == OMEN_OK)
			st = dbi_open(txn, "colls", MDB_CREATE, &f->colls);
		if (st == OMEN_OK)
			st = dbi_open(txn, "nodes", MDB_CREATE, &f->nodes);
		if (st == OMEN_OK)
			st = dbi_open(txn, "shards", MDB_CREATE, &f->shards);
		return st == OMEN_OK ? state_write(f, txn, 0, 0) : st;
	}
	if (rc)
		return rc == MDB_INCOMPATIBLE
		           ? status_set(OMEN_ENOTDB, "%s: not a consensus state", f->path)
		           : status_from_mdb(rc, f->path);
	int st = dbi_open(txn, "colls", 0, &f->colls);
	if (st == OMEN_OK)
		st = dbi_open(txn, "nodes", 0, &f->nodes);
	if (st == OMEN_OK)
		st = dbi_open(txn, "shards", 0, &f->shards);
	uint64_t applied = 0, epoch = 0;
	return st == OMEN_OK ? state_read(f, txn, &applied, &epoch) : st;
}

int fsm_open(const char *dir, fsm **out)
{
	int st = dir_create(dir);
	if (st != OMEN_OK)
		return st;
	fsm *f = calloc(1, sizeof *f);
	if (!f || !(f->path = strdup(dir))) {
		free(f);
		return status_set(OMEN_ENOMEM, "out of memory");
	}
	lenv_init(&f->e, 0);
	/* MDB_NOTLS: read transactions are not tied to threads. MDB_NOMETASYNC: a system crash
	 * may undo the last commits, never corrupts; Raft replays what was undone (its log and
	 * snapshot are durable, and fsm_apply skips what was kept), see docs/CONSENSUS.md. */
	st = lenv_open(&f->e, dir, 8, 0, MAP_INITIAL, MDB_NOTLS | MDB_NOMETASYNC);
	if (st == OMEN_OK)
		st = wr_run(f, init_fn, NULL);
	if (st != OMEN_OK) {
		fsm_close(f);
		return st;
	}
	*out = f;
	return OMEN_OK;
}

void fsm_close(fsm *f)
{
	if (!f)
		return;
	if (f->e.env) {
		mdb_env_sync(f->e.env, 1);
		mdb_env_close(f->e.env);
	}
	lenv_fini(&f->e);
	free(f->path);
	free(f);
}

/* ---- applying commands ---- */

/* Each exec_* runs inside the command's own (nested) transaction. It returns a storage status
 * (the state could not be read or written: nothing of the entry is committed) and puts the
 * command's outcome in *cst; on an outcome other than OMEN_OK the nested transaction is
 * discarded, so an invalid command changes nothing. */

static int exec_node_set(fsm *f, MDB_txn *txn, const meta_node *n, int *cst)
{
	size_t alen = strnlen(n->addr, META_MAX_ADDR);
	if (!node_fields_ok(n->id, n->addr, alen == META_MAX_ADDR ? 0 : alen, n->role, n->state)) {
		*cst =
		    status_set(OMEN_EINVAL,
		               "node %llu: id >= 1, a non-empty address, role 1 or 2 and state 0 "
		               "or 1 expected",
		               (unsigned long long)n->id);
		return OMEN_OK;
	}
	unsigned char key[8], rec[NODE_HEAD + META_MAX_ADDR];
	be64_put(key, n->id);
	MDB_val k = {8, key}, v = {node_encode(n, rec), rec};
	int rc = mdb_put(txn, f->nodes, &k, &v, 0);
	return rc ? status_from_mdb(rc, "writing a node") : OMEN_OK;
}

/* The ids of the shard nodes that are up, in id order (malloc'd into *ids). */
static int up_shard_nodes(fsm *f, MDB_txn *txn, uint64_t **ids, size_t *n)
{
	MDB_stat ms;
	MDB_cursor *cur;
	int rc = mdb_stat(txn, f->nodes, &ms);
	if (rc == 0)
		rc = mdb_cursor_open(txn, f->nodes, &cur);
	if (rc)
		return status_from_mdb(rc, "reading the nodes");
	uint64_t *out = malloc((ms.ms_entries + 1) * sizeof *out);
	size_t m = 0;
	int st = out ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); st == OMEN_OK && rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		meta_node node;
		if (m == ms.ms_entries) {
			st = status_set(OMEN_ECORRUPT, "consensus state: more nodes than counted");
			break;
		}
		st = node_decode(&k, &v, &node);
		if (st == OMEN_OK && node.role == META_ROLE_SHARD && node.state == META_NODE_UP)
			out[m++] = node.id;
	}
	mdb_cursor_close(cur);
	if (st == OMEN_OK && rc != 0 && rc != MDB_NOTFOUND)
		st = status_from_mdb(rc, "reading the nodes");
	if (st != OMEN_OK) {
		free(out);
		return st;
	}
	*ids = out;
	*n = m;
	return OMEN_OK;
}

static int coll_read(fsm *f, MDB_txn *txn, const char *name, meta_coll *out)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(txn, f->colls, &k, &v);
	if (rc == MDB_NOTFOUND)
		return status_set(OMEN_ENOTFOUND, "collection '%s' does not exist", name);
	if (rc)
		return status_from_mdb(rc, "reading a collection");
	return coll_decode(&k, &v, out);
}

static int coll_write(fsm *f, MDB_txn *txn, const meta_coll *c, unsigned flags)
{
	unsigned char rec[COLL_SIZE];
	coll_encode(c, rec);
	MDB_val k = {strlen(c->name), (void *)c->name}, v = {COLL_SIZE, rec};
	int rc = mdb_put(txn, f->colls, &k, &v, flags);
	if (rc == MDB_KEYEXIST)
		return status_set(OMEN_ECORRUPT, "consensus: collection '%s' twice", c->name);
	return rc ? status_from_mdb(rc, "writing a collection") : OMEN_OK;
}

/* Reads the outcome of coll_read into *cst when it is the command's fault (no such
 * collection); returns the storage status otherwise. */
static int coll_lookup(fsm *f, MDB_txn *txn, const char *name, meta_coll *out, int *cst)
{
	if (!cname_valid(name)) {
		*cst = status_set(OMEN_EINVAL, "bad collection name");
		return OMEN_OK;
	}
	int st = coll_read(f, txn, name, out);
	if (st == OMEN_ENOTFOUND) {
		*cst = st;
		return OMEN_OK;
	}
	return st;
}

static int exec_coll_create(fsm *f, MDB_txn *txn, const meta_coll *c, uint64_t *epoch, int *cst)
{
	if (!cname_valid(c->name) || c->dim < 1 || c->dim > OMEN_MAX_DIM ||
	    (unsigned)c->metric > OMEN_METRIC_COSINE || c->nshards < 1 || c->nshards > MAX_SHARDS) {
		*cst =
		    status_set(OMEN_EINVAL,
		               "collection: name of 1..%d [A-Za-z0-9_.-], dim 1..%d, metric 0..2 "
		               "and 1..%d shards expected",
		               OMEN_MAX_NAME, OMEN_MAX_DIM, MAX_SHARDS);
		return OMEN_OK;
	}
	meta_coll old;
	int st = coll_read(f, txn, c->name, &old);
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
	if (ms.ms_entries >= OMEN_MAX_COLLECTIONS) {
		*cst = status_set(OMEN_ELIMIT, "the cluster holds %d collections already",
		                  OMEN_MAX_COLLECTIONS);
		return OMEN_OK;
	}
	uint64_t *up = NULL;
	size_t nup = 0;
	st = up_shard_nodes(f, txn, &up, &nup);
	if (st != OMEN_OK)
		return st;
	if (nup == 0) {
		free(up);
		*cst = status_set(OMEN_EUNAVAIL, "collection '%s': no shard node is up", c->name);
		return OMEN_OK;
	}
	meta_coll nc = *c;
	nc.next_id = 0;
	st = coll_write(f, txn, &nc, MDB_NOOVERWRITE);
	for (uint32_t s = 0; st == OMEN_OK && s < nc.nshards; s++)
		st = shard_put(f, txn, nc.name, s, up[s % nup], 0);
	free(up);
	if (st == OMEN_OK)
		*epoch += 1;
	return st;
}

/* Deletes every shard record of collection name. */
static int shards_delete(fsm *f, MDB_txn *txn, const char *name)
{
	unsigned char key[SHARD_KEY_MAX];
	size_t plen = shard_key(key, name, 0) - 4;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, f->shards, &cur);
	if (rc)
		return status_from_mdb(rc, "dropping a shard map");
	MDB_val k = {plen + 4, key}, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != plen + 4 || memcmp(k.mv_data, key, plen) != 0)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? status_from_mdb(rc, "dropping a shard map") : OMEN_OK;
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
	st = shards_delete(f, txn, name);
	if (st == OMEN_OK)
		*epoch += 1;
	return st;
}

static int exec_shard_assign(fsm *f, MDB_txn *txn, const meta_cmd *cmd, uint64_t *epoch, int *cst)
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
	unsigned char key[8];
	be64_put(key, cmd->node_id);
	MDB_val k = {8, key}, v;
	int rc = mdb_get(txn, f->nodes, &k, &v);
	meta_node n = {0};
	if (rc == 0) {
		st = node_decode(&k, &v, &n);
		if (st != OMEN_OK)
			return st;
	}
	if (rc == MDB_NOTFOUND || (rc == 0 && n.role != META_ROLE_SHARD)) {
		*cst = status_set(OMEN_EINVAL, "node %llu is not a shard node",
		                  (unsigned long long)cmd->node_id);
		return OMEN_OK;
	}
	if (rc)
		return status_from_mdb(rc, "reading a node");
	st = shard_put(f, txn, c.name, cmd->shard, cmd->node_id, 0);
	if (st == OMEN_OK)
		*epoch += 1;
	return st;
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
	return coll_write(f, txn, &c, 0);
}

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
	}
	*cst = status_set(OMEN_EINVAL, "unknown command %d", (int)c->kind);
	return OMEN_OK;
}

typedef struct apply_ctx {
	uint64_t index;
	const meta_cmd *cmd;
	fsm_result res;
} apply_ctx;

static int apply_fn(fsm *f, MDB_txn *txn, void *arg)
{
	apply_ctx *a = arg;
	uint64_t applied = 0, epoch = 0;
	int st = state_read(f, txn, &applied, &epoch);
	if (st != OMEN_OK)
		return st;
	memset(&a->res, 0, sizeof a->res);
	a->res.epoch = epoch;
	if (a->index <= applied)
		return OMEN_OK; /* a replay: nothing to write (committing an unchanged txn is free)
		                 */
	MDB_txn *child;
	int rc = mdb_txn_begin(f->e.env, txn, 0, &child);
	if (rc)
		return status_from_mdb(rc, "consensus nested transaction");
	int cst = OMEN_OK;
	uint64_t value = 0, e2 = epoch;
	st = exec(f, child, a->cmd, &e2, &value, &cst);
	if (st == OMEN_OK && cst == OMEN_OK) {
		rc = mdb_txn_commit(child);
		if (rc)
			st = status_from_mdb(rc, "consensus nested commit");
	} else {
		mdb_txn_abort(child);
	}
	if (st != OMEN_OK)
		return st;
	if (cst != OMEN_OK) {
		e2 = epoch;
		value = 0;
	}
	a->res.status = cst;
	a->res.value = value;
	a->res.epoch = e2;
	return state_write(f, txn, a->index, e2);
}

int fsm_apply(fsm *f, uint64_t index, const meta_cmd *c, fsm_result *res)
{
	apply_ctx a = {index, c, {0, 0, 0}};
	int st = wr_run(f, apply_fn, &a);
	if (st == OMEN_OK)
		*res = a.res;
	return st;
}

/* ---- reads ---- */

static int state_get(fsm *f, uint64_t *applied, uint64_t *epoch)
{
	MDB_txn *txn;
	int st = rd_begin(f, &txn);
	if (st != OMEN_OK)
		return st;
	st = state_read(f, txn, applied, epoch);
	rd_end(f, txn);
	return st;
}

uint64_t fsm_last_applied(fsm *f)
{
	uint64_t applied = 0, epoch = 0;
	return state_get(f, &applied, &epoch) == OMEN_OK ? applied : 0;
}

uint64_t fsm_epoch(fsm *f)
{
	uint64_t applied = 0, epoch = 0;
	return state_get(f, &applied, &epoch) == OMEN_OK ? epoch : 0;
}

int fsm_coll_get(fsm *f, const char *name, meta_coll *out)
{
	if (!name || !cname_valid(name))
		return status_set(OMEN_ENOTFOUND, "no collection with that name");
	MDB_txn *txn;
	int st = rd_begin(f, &txn);
	if (st != OMEN_OK)
		return st;
	meta_coll c;
	st = coll_read(f, txn, name, &c);
	rd_end(f, txn);
	if (st == OMEN_OK)
		*out = c;
	return st;
}

/* Decodes every record of dbi, in key order, into a malloc'd array of elem-byte items. */
typedef int (*decode_fn)(const MDB_val *k, const MDB_val *v, void *out);

static int list_all(MDB_txn *txn, MDB_dbi dbi, size_t elem, decode_fn dec, void **out, size_t *n)
{
	MDB_stat ms;
	MDB_cursor *cur;
	int rc = mdb_stat(txn, dbi, &ms);
	if (rc == 0)
		rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return status_from_mdb(rc, "listing the consensus state");
	unsigned char *arr = ms.ms_entries ? malloc(ms.ms_entries * elem) : NULL;
	int st = ms.ms_entries && !arr ? status_set(OMEN_ENOMEM, "out of memory") : OMEN_OK;
	size_t m = 0;
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); st == OMEN_OK && rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (m == ms.ms_entries) {
			st =
			    status_set(OMEN_ECORRUPT, "consensus state: more records than counted");
			break;
		}
		st = dec(&k, &v, arr + m * elem);
		m++;
	}
	mdb_cursor_close(cur);
	if (st == OMEN_OK && rc != 0 && rc != MDB_NOTFOUND)
		st = status_from_mdb(rc, "listing the consensus state");
	if (st != OMEN_OK) {
		free(arr);
		return st;
	}
	*out = arr;
	*n = m;
	return OMEN_OK;
}

static int coll_dec(const MDB_val *k, const MDB_val *v, void *out)
{
	return coll_decode(k, v, out);
}

static int node_dec(const MDB_val *k, const MDB_val *v, void *out)
{
	return node_decode(k, v, out);
}

/* Every record of one sub-database, decoded into a malloc'd array, in one read transaction. */
static int list_table(fsm *f, MDB_dbi dbi, size_t size,
                      int (*dec)(const MDB_val *, const MDB_val *, void *), void **out, size_t *n)
{
	MDB_txn *txn;
	int st = rd_begin(f, &txn);
	if (st != OMEN_OK)
		return st;
	void *arr = NULL;
	size_t m = 0;
	st = list_all(txn, dbi, size, dec, &arr, &m);
	rd_end(f, txn);
	if (st == OMEN_OK) {
		*out = arr;
		*n = m;
	}
	return st;
}

int fsm_coll_list(fsm *f, meta_coll **out, size_t *n)
{
	return list_table(f, f->colls, sizeof(meta_coll), coll_dec, (void **)out, n);
}

int fsm_node_list(fsm *f, meta_node **out, size_t *n)
{
	return list_table(f, f->nodes, sizeof(meta_node), node_dec, (void **)out, n);
}

int fsm_node_get(fsm *f, uint64_t id, meta_node *out)
{
	MDB_txn *txn;
	int st = rd_begin(f, &txn);
	if (st != OMEN_OK)
		return st;
	unsigned char key[8];
	be64_put(key, id);
	MDB_val k = {8, key}, v;
	meta_node n;
	int rc = mdb_get(txn, f->nodes, &k, &v);
	if (rc == MDB_NOTFOUND)
		st = status_set(OMEN_ENOTFOUND, "node %llu does not exist", (unsigned long long)id);
	else if (rc)
		st = status_from_mdb(rc, "reading a node");
	else
		st = node_decode(&k, &v, &n);
	rd_end(f, txn);
	if (st == OMEN_OK)
		*out = n;
	return st;
}

/* Reads the nshards node ids of collection name's shard map into nodes. A missing, extra or
 * out-of-order shard record is corruption. */
static int shards_read(fsm *f, MDB_txn *txn, const char *name, uint32_t nshards, uint64_t *nodes)
{
	unsigned char want[SHARD_KEY_MAX];
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, f->shards, &cur);
	if (rc)
		return status_from_mdb(rc, "reading a shard map");
	int st = OMEN_OK;
	MDB_val k, v;
	for (uint32_t s = 0; st == OMEN_OK && s < nshards; s++) {
		k.mv_size = shard_key(want, name, s);
		k.mv_data = want;
		rc = mdb_cursor_get(cur, &k, &v, s == 0 ? MDB_SET_KEY : MDB_NEXT);
		if (rc == 0 && (k.mv_size != shard_key(want, name, s) ||
		                memcmp(k.mv_data, want, k.mv_size) != 0))
			rc = MDB_NOTFOUND;
		if (rc == MDB_NOTFOUND)
			st = status_set(OMEN_ECORRUPT,
			                "consensus state: collection '%s' lacks shard %u", name, s);
		else if (rc)
			st = status_from_mdb(rc, "reading a shard map");
		else
			st = shard_decode(&v, &nodes[s]);
	}
	mdb_cursor_close(cur);
	return st;
}

int fsm_shard_map(fsm *f, const char *name, uint64_t **nodes, uint32_t *nshards, uint64_t *epoch)
{
	if (!name || !cname_valid(name))
		return status_set(OMEN_ENOTFOUND, "no collection with that name");
	MDB_txn *txn;
	int st = rd_begin(f, &txn);
	if (st != OMEN_OK)
		return st;
	meta_coll c;
	uint64_t applied = 0, e = 0, *arr = NULL;
	st = state_read(f, txn, &applied, &e);
	if (st == OMEN_OK)
		st = coll_read(f, txn, name, &c);
	if (st == OMEN_OK && !(arr = malloc(c.nshards * sizeof *arr)))
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK)
		st = shards_read(f, txn, name, c.nshards, arr);
	rd_end(f, txn);
	if (st != OMEN_OK) {
		free(arr);
		return st;
	}
	*nodes = arr;
	*nshards = c.nshards;
	if (epoch)
		*epoch = e;
	return OMEN_OK;
}

/* ---- msgpack reading ----
 * Commands and snapshots are read with base's bounded cursor (mpc) rather than msgpack-c's
 * unpacker, which allocates by the counts a message declares before looking at its bytes. */

/* Skips one value of any type nested at most MP_MAX_DEPTH deep. */
static bool mp_skip(mpc *r)
{
	mpc_limits lim = {MP_MAX_DEPTH, 0, NULL};
	return mpc_skip(r, &lim, NULL, 0) == OMEN_OK;
}

/* ---- commands ---- */

/* The fields a command of each kind carries, as bits of the keys below. */
enum {
	K_V = 1 << 0,
	K_K = 1 << 1,
	K_ID = 1 << 2,
	K_ADDR = 1 << 3,
	K_ROLE = 1 << 4,
	K_STATE = 1 << 5,
	K_NAME = 1 << 6,
	K_DIM = 1 << 7,
	K_METRIC = 1 << 8,
	K_NSHARDS = 1 << 9,
	K_SHARD = 1 << 10,
	K_NODE = 1 << 11,
	K_COUNT = 1 << 12,
};

static const char *const cmd_keys[] = {"v",   "k",      "id",      "addr",  "role", "state", "name",
                                       "dim", "metric", "nshards", "shard", "node", "count"};
#define NKEYS (sizeof cmd_keys / sizeof cmd_keys[0])

static unsigned kind_fields(int kind)
{
	switch (kind) {
	case CMD_NODE_SET:
		return K_ID | K_ADDR | K_ROLE | K_STATE;
	case CMD_COLL_CREATE:
		return K_NAME | K_DIM | K_METRIC | K_NSHARDS;
	case CMD_COLL_DROP:
		return K_NAME;
	case CMD_SHARD_ASSIGN:
		return K_NAME | K_SHARD | K_NODE;
	case CMD_IDS_ALLOC:
		return K_NAME | K_COUNT;
	case CMD_NOOP:
		return 0;
	}
	return UINT_MAX;
}

static int pk_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

static void pk_field(msgpack_packer *pk, int *bad, unsigned bit, const meta_cmd *c)
{
	int e = 0;
	for (unsigned i = 0; i < NKEYS; i++)
		if (bit == 1u << i)
			e |= pk_str(pk, cmd_keys[i]);
	switch (bit) {
	case K_ID:
		e |= msgpack_pack_uint64(pk, c->node.id);
		break;
	case K_ADDR:
		e |= pk_str(pk, c->node.addr);
		break;
	case K_ROLE:
		e |= msgpack_pack_int(pk, c->node.role);
		break;
	case K_STATE:
		e |= msgpack_pack_int(pk, c->node.state);
		break;
	case K_NAME:
		e |= pk_str(pk, c->coll.name);
		break;
	case K_DIM:
		e |= msgpack_pack_uint32(pk, c->coll.dim);
		break;
	case K_METRIC:
		e |= msgpack_pack_int(pk, (int)c->coll.metric);
		break;
	case K_NSHARDS:
		e |= msgpack_pack_uint32(pk, c->coll.nshards);
		break;
	case K_SHARD:
		e |= msgpack_pack_uint32(pk, c->shard);
		break;
	case K_NODE:
		e |= msgpack_pack_uint64(pk, c->node_id);
		break;
	case K_COUNT:
		e |= msgpack_pack_uint64(pk, c->count);
		break;
	}
	*bad |= e;
}

int cmd_encode(const meta_cmd *c, int for_raft, void **buf, size_t *len)
{
	unsigned fields = kind_fields(c->kind);
	if (fields == UINT_MAX)
		return status_set(OMEN_EINVAL, "unknown command %d", (int)c->kind);
	if ((fields & K_NAME) && strnlen(c->coll.name, OMEN_MAX_NAME + 1) > OMEN_MAX_NAME)
		return status_set(OMEN_EINVAL, "collection name longer than %d bytes",
		                  OMEN_MAX_NAME);
	if ((fields & K_ADDR) && strnlen(c->node.addr, META_MAX_ADDR) >= META_MAX_ADDR)
		return status_set(OMEN_EINVAL, "node address of %d bytes or more", META_MAX_ADDR);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	int bad = msgpack_pack_map(&pk, 3 + (size_t)__builtin_popcount(fields));
	bad |= pk_str(&pk, "v") | msgpack_pack_uint32(&pk, CMD_VERSION);
	bad |= pk_str(&pk, "k") | msgpack_pack_int(&pk, (int)c->kind);
	for (unsigned bit = K_ID; bit <= K_COUNT; bit <<= 1)
		if (fields & bit)
			pk_field(&pk, &bad, bit, c);
	/* Padding to a multiple of 8 bytes: raft 0.15's libuv log writes an entry's bytes as they
	 * are but reads them back as if padded to 8 (the writer only asserts it, and asserts are
	 * compiled out), so an entry of another length makes the closed segment unreadable at the
	 * next start. A string under an unknown key ("_") that decoders skip. */
	static const char zeros[8] = {0};
	bad |= pk_str(&pk, "_");
	size_t pad = (8 - (sb.size + 1) % 8) % 8;
	bad |= msgpack_pack_str(&pk, pad) | msgpack_pack_str_body(&pk, zeros, pad);
	void *out = NULL;
	if (!bad)
		out = for_raft ? raft_malloc(sb.size) : malloc(sb.size);
	if (out)
		memcpy(out, sb.data, sb.size);
	size_t n = sb.size;
	msgpack_sbuffer_destroy(&sb);
	if (!out)
		return status_set(OMEN_ENOMEM, "out of memory encoding a command");
	*buf = out;
	*len = n;
	return OMEN_OK;
}

/* Reads the value of key number i into c; false when it has the wrong type or size. */
static bool cmd_field(mpc *r, unsigned i, meta_cmd *c, uint32_t *version)
{
	const char *s;
	size_t n;
	int kind;
	switch (1u << i) {
	case K_V:
		return mpc_u32(r, version);
	case K_K:
		if (!mpc_i32(r, &kind))
			return false;
		c->kind = (cmd_kind)kind;
		return true;
	case K_ID:
		return mpc_uint(r, &c->node.id);
	case K_ADDR:
		if (!mpc_str(r, &s, &n) || n >= META_MAX_ADDR || memchr(s, 0, n))
			return false;
		memcpy(c->node.addr, s, n);
		return true;
	case K_ROLE:
		return mpc_i32(r, &c->node.role);
	case K_STATE:
		return mpc_i32(r, &c->node.state);
	case K_NAME:
		if (!mpc_str(r, &s, &n) || n > OMEN_MAX_NAME || memchr(s, 0, n))
			return false;
		memcpy(c->coll.name, s, n);
		return true;
	case K_DIM:
		return mpc_u32(r, &c->coll.dim);
	case K_METRIC:
		if (!mpc_i32(r, &kind))
			return false;
		c->coll.metric = (omen_metric)kind;
		return true;
	case K_NSHARDS:
		return mpc_u32(r, &c->coll.nshards);
	case K_SHARD:
		return mpc_u32(r, &c->shard);
	case K_NODE:
		return mpc_uint(r, &c->node_id);
	case K_COUNT:
		return mpc_uint(r, &c->count);
	}
	return false;
}

int cmd_decode(const void *buf, size_t len, meta_cmd *c)
{
	mpc r = mpc_make(buf, len);
	meta_cmd d;
	memset(&d, 0, sizeof d);
	uint64_t n;
	uint32_t version = 0;
	unsigned seen = 0;
	if (!buf || !mpc_map(&r, &n))
		return status_set(OMEN_EPROTO, "command: not a msgpack map");
	for (uint64_t e = 0; e < n; e++) {
		const char *key;
		size_t klen;
		if (!mpc_str(&r, &key, &klen))
			return status_set(OMEN_EPROTO, "command: key %llu is not a string",
			                  (unsigned long long)e);
		unsigned i = 0;
		while (i < NKEYS &&
		       !(strlen(cmd_keys[i]) == klen && !memcmp(cmd_keys[i], key, klen)))
			i++;
		if (i == NKEYS) {
			if (!mp_skip(&r))
				return status_set(OMEN_EPROTO, "command: malformed value");
			continue;
		}
		if (seen & (1u << i))
			return status_set(OMEN_EPROTO, "command: key '%s' twice", cmd_keys[i]);
		seen |= 1u << i;
		if (!cmd_field(&r, i, &d, &version))
			return status_set(OMEN_EPROTO, "command: bad value for '%s'", cmd_keys[i]);
	}
	if (r.pos != len)
		return status_set(OMEN_EPROTO, "command: %zu bytes after the map", len - r.pos);
	if (!(seen & K_V) || version != CMD_VERSION)
		return status_set(OMEN_EPROTO, "command: version %u, not %d", version, CMD_VERSION);
	unsigned want = (seen & K_K) ? kind_fields(d.kind) : UINT_MAX;
	if (want == UINT_MAX)
		return status_set(OMEN_EPROTO, "command: unknown kind %d", (int)d.kind);
	if ((seen & want) != want)
		return status_set(OMEN_EPROTO, "command: fields missing for kind %d", (int)d.kind);
	*c = d;
	return OMEN_OK;
}

/* ---- snapshots ----
 * map {"v": 1, "applied": u64, "epoch": u64,
 *      "nodes": [[id, addr, role, state]...],
 *      "colls": [[name, dim, metric, nshards, next_id, bin(nshards x u64 LE node ids)]...]}
 * with "v" first. */

typedef struct snap_ctx {
	msgpack_packer pk;
	int bad;
} snap_ctx;

static int snap_nodes(fsm *f, MDB_txn *txn, snap_ctx *s)
{
	void *arr = NULL;
	size_t n = 0;
	int st = list_all(txn, f->nodes, sizeof(meta_node), node_dec, &arr, &n);
	if (st != OMEN_OK)
		return st;
	meta_node *nodes = arr;
	s->bad |= pk_str(&s->pk, "nodes") | msgpack_pack_array(&s->pk, n);
	for (size_t i = 0; i < n; i++) {
		s->bad |= msgpack_pack_array(&s->pk, 4) | msgpack_pack_uint64(&s->pk, nodes[i].id);
		s->bad |= pk_str(&s->pk, nodes[i].addr) | msgpack_pack_int(&s->pk, nodes[i].role);
		s->bad |= msgpack_pack_int(&s->pk, nodes[i].state);
	}
	free(arr);
	return OMEN_OK;
}

static int snap_colls(fsm *f, MDB_txn *txn, snap_ctx *s)
{
	void *arr = NULL;
	size_t n = 0;
	int st = list_all(txn, f->colls, sizeof(meta_coll), coll_dec, &arr, &n);
	if (st != OMEN_OK)
		return st;
	meta_coll *colls = arr;
	uint64_t *map = malloc(MAX_SHARDS * sizeof *map);
	unsigned char *bin = malloc(MAX_SHARDS * 8);
	if (!map || !bin)
		st = status_set(OMEN_ENOMEM, "out of memory");
	s->bad |= pk_str(&s->pk, "colls") | msgpack_pack_array(&s->pk, n);
	for (size_t i = 0; st == OMEN_OK && i < n; i++) {
		const meta_coll *c = &colls[i];
		st = shards_read(f, txn, c->name, c->nshards, map);
		for (uint32_t j = 0; st == OMEN_OK && j < c->nshards; j++)
			le64_put(bin + 8 * j, map[j]);
		s->bad |= msgpack_pack_array(&s->pk, 6) | pk_str(&s->pk, c->name);
		s->bad |= msgpack_pack_uint32(&s->pk, c->dim) | msgpack_pack_int(&s->pk, c->metric);
		s->bad |= msgpack_pack_uint32(&s->pk, c->nshards);
		s->bad |= msgpack_pack_uint64(&s->pk, c->next_id);
		s->bad |= msgpack_pack_bin(&s->pk, 8 * (size_t)c->nshards);
		s->bad |= msgpack_pack_bin_body(&s->pk, bin, 8 * (size_t)c->nshards);
	}
	free(bin);
	free(map);
	free(arr);
	return st;
}

int fsm_snapshot(fsm *f, void **buf, size_t *len)
{
	MDB_txn *txn;
	int st = rd_begin(f, &txn);
	if (st != OMEN_OK)
		return st;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	snap_ctx s;
	s.bad = 0;
	msgpack_packer_init(&s.pk, &sb, msgpack_sbuffer_write);
	uint64_t applied = 0, epoch = 0;
	st = state_read(f, txn, &applied, &epoch);
	if (st == OMEN_OK) {
		s.bad |= msgpack_pack_map(&s.pk, 5);
		s.bad |= pk_str(&s.pk, "v") | msgpack_pack_uint32(&s.pk, SNAP_VERSION);
		s.bad |= pk_str(&s.pk, "applied") | msgpack_pack_uint64(&s.pk, applied);
		s.bad |= pk_str(&s.pk, "epoch") | msgpack_pack_uint64(&s.pk, epoch);
		st = snap_nodes(f, txn, &s);
	}
	if (st == OMEN_OK)
		st = snap_colls(f, txn, &s);
	rd_end(f, txn);
	if (st == OMEN_OK && s.bad)
		st = status_set(OMEN_ENOMEM, "out of memory writing a snapshot");
	if (st != OMEN_OK) {
		msgpack_sbuffer_destroy(&sb);
		return st;
	}
	*len = sb.size;
	*buf = msgpack_sbuffer_release(&sb);
	return OMEN_OK;
}

static int snap_bad(const mpc *r, const char *what)
{
	return status_set(OMEN_ECORRUPT, "snapshot: %s (at byte %zu of %zu)", what, r->pos, r->len);
}

/* Reads the map header and the version, which comes first. */
static int snap_head(mpc *r, uint64_t *n)
{
	uint32_t v;
	if (!mpc_map(r, n) || *n < 1 || !mpc_key(r, "v") || !mpc_u32(r, &v))
		return snap_bad(r, "no version");
	if (v != SNAP_VERSION)
		return status_set(v > SNAP_VERSION ? OMEN_EVERSION : OMEN_ECORRUPT,
		                  "snapshot: version %u, this OmenDB reads %d", v, SNAP_VERSION);
	return OMEN_OK;
}

int fsm_snapshot_applied(const void *buf, size_t len, uint64_t *applied)
{
	mpc r = mpc_make(buf, len);
	uint64_t n;
	int st = buf ? snap_head(&r, &n) : snap_bad(&r, "empty");
	for (uint64_t i = 1; st == OMEN_OK && i < n; i++) {
		const char *k;
		size_t kn;
		if (!mpc_str(&r, &k, &kn))
			return snap_bad(&r, "key is not a string");
		if (kn == 7 && memcmp(k, "applied", 7) == 0) {
			if (!mpc_uint(&r, applied))
				return snap_bad(&r, "bad applied index");
			return OMEN_OK;
		}
		if (!mp_skip(&r))
			return snap_bad(&r, "malformed value");
	}
	return st == OMEN_OK ? snap_bad(&r, "no applied index") : st;
}

static int restore_nodes(fsm *f, MDB_txn *txn, mpc *r)
{
	uint64_t n, m;
	if (!mpc_arr(r, &n))
		return snap_bad(r, "nodes is not an array");
	for (uint64_t i = 0; i < n; i++) {
		meta_node nd;
		memset(&nd, 0, sizeof nd);
		const char *a;
		size_t alen;
		if (!mpc_arr(r, &m) || m != 4 || !mpc_uint(r, &nd.id) || !mpc_str(r, &a, &alen) ||
		    alen >= META_MAX_ADDR || !mpc_i32(r, &nd.role) || !mpc_i32(r, &nd.state) ||
		    !node_fields_ok(nd.id, a, alen, nd.role, nd.state))
			return snap_bad(r, "bad node");
		memcpy(nd.addr, a, alen);
		unsigned char key[8], rec[NODE_HEAD + META_MAX_ADDR];
		be64_put(key, nd.id);
		MDB_val k = {8, key}, v = {node_encode(&nd, rec), rec};
		int rc = mdb_put(txn, f->nodes, &k, &v, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST)
			return snap_bad(r, "node twice");
		if (rc)
			return status_from_mdb(rc, "restoring a node");
	}
	return OMEN_OK;
}

static int restore_coll(fsm *f, MDB_txn *txn, mpc *r)
{
	meta_coll c;
	memset(&c, 0, sizeof c);
	uint64_t m;
	const char *name;
	size_t nlen, blen;
	const unsigned char *bin;
	int metric;
	if (!mpc_arr(r, &m) || m != 6 || !mpc_str(r, &name, &nlen) || !name_valid(name, nlen) ||
	    !mpc_u32(r, &c.dim) || !mpc_i32(r, &metric) || !mpc_u32(r, &c.nshards) ||
	    !mpc_uint(r, &c.next_id) || !mpc_bin(r, &bin, &blen))
		return snap_bad(r, "bad collection");
	memcpy(c.name, name, nlen);
	c.metric = (omen_metric)metric;
	if (c.dim < 1 || c.dim > OMEN_MAX_DIM || metric < 0 || metric > OMEN_METRIC_COSINE ||
	    c.nshards < 1 || c.nshards > MAX_SHARDS || blen != 8 * (size_t)c.nshards)
		return snap_bad(r, "collection out of range");
	int st = coll_write(f, txn, &c, MDB_NOOVERWRITE);
	for (uint32_t s = 0; st == OMEN_OK && s < c.nshards; s++) {
		uint64_t node = le64_get(bin + 8 * s);
		st = node ? shard_put(f, txn, c.name, s, node, MDB_NOOVERWRITE)
		          : snap_bad(r, "shard on node 0");
	}
	return st;
}

typedef struct restore_ctx {
	const void *buf;
	size_t len;
} restore_ctx;

static int restore_fn(fsm *f, MDB_txn *txn, void *arg)
{
	restore_ctx *a = arg;
	mpc r = mpc_make(a->buf, a->len);
	uint64_t n, applied = 0, epoch = 0, cn;
	unsigned seen = 0;
	int st = snap_head(&r, &n);
	int rc = 0;
	if (st != OMEN_OK)
		return st;
	if ((rc = mdb_drop(txn, f->colls, 0)) || (rc = mdb_drop(txn, f->nodes, 0)) ||
	    (rc = mdb_drop(txn, f->shards, 0)))
		return status_from_mdb(rc, "restoring a snapshot");
	static const char *const keys[] = {"applied", "epoch", "nodes", "colls"};
	for (uint64_t i = 1; st == OMEN_OK && i < n; i++) {
		const char *k;
		size_t kn;
		unsigned j = 0;
		if (!mpc_str(&r, &k, &kn))
			return snap_bad(&r, "key is not a string");
		while (j < 4 && !(strlen(keys[j]) == kn && !memcmp(keys[j], k, kn)))
			j++;
		if (j == 4 || (seen & (1u << j)))
			return snap_bad(&r, j == 4 ? "unknown key" : "key twice");
		seen |= 1u << j;
		if (j == 0 && !mpc_uint(&r, &applied))
			return snap_bad(&r, "bad applied index");
		if (j == 1 && !mpc_uint(&r, &epoch))
			return snap_bad(&r, "bad epoch");
		if (j == 2)
			st = restore_nodes(f, txn, &r);
		if (j == 3 && !mpc_arr(&r, &cn))
			return snap_bad(&r, "colls is not an array");
		for (uint64_t c = 0; j == 3 && st == OMEN_OK && c < cn; c++)
			st = restore_coll(f, txn, &r);
	}
	if (st != OMEN_OK)
		return st;
	if (seen != 0xf)
		return snap_bad(&r, "missing keys");
	if (r.pos != r.len)
		return snap_bad(&r, "trailing bytes");
	return state_write(f, txn, applied, epoch);
}

int fsm_restore(fsm *f, const void *buf, size_t len)
{
	restore_ctx a = {buf, len};
	if (!buf || len == 0)
		return status_set(OMEN_ECORRUPT, "snapshot: empty");
	return wr_run(f, restore_fn, &a);
}
