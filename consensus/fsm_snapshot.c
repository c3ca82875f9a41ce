/*
 * Snapshots: the whole state as one msgpack map, written from one read transaction, and
 * restored from untrusted bytes (from disk or from the leader) in one write transaction that
 * replaces everything or, on any malformed part, nothing. The encoding is in
 * docs/CONSENSUS.md:
 *   map {"v": 1, "applied": u64, "epoch": u64,
 *        "nodes": [[id, addr, role, state]...],
 *        "colls": [[name, dim, metric, nshards, next_id, replicas,
 *                   bin(nshards x FSM_COPIES_BYTES copies)]...]}
 * with "v" first (version 2; version 1, still read, had no replicas and one u64 LE node id a
 * shard).
 */
#include <stdlib.h>
#include <string.h>

#include "consensus/internal.h"

#define SNAP_VERSION 2 /* of the msgpack snapshots (1: one copy a shard, still read) */

/* ---- writing ---- */

typedef struct snap_ctx {
	msgpack_packer pk;
	int bad; /* a packing failure (out of memory) */
} snap_ctx;

/* Packs the "nodes" key and its array, in id order. */
static int snap_nodes(fsm *f, MDB_txn *txn, snap_ctx *s)
{
	meta_node *nodes = NULL;
	size_t n = 0;
	int st = fsm_nodes_read(f, txn, &nodes, &n);
	if (st != OMEN_OK)
		return st;
	s->bad |= fsm_pack_str(&s->pk, "nodes") || msgpack_pack_array(&s->pk, n);
	for (size_t i = 0; i < n; i++) {
		s->bad |= msgpack_pack_array(&s->pk, 4) || msgpack_pack_uint64(&s->pk, nodes[i].id);
		s->bad |=
		    fsm_pack_str(&s->pk, nodes[i].addr) || msgpack_pack_int(&s->pk, nodes[i].role);
		s->bad |= msgpack_pack_int(&s->pk, nodes[i].state);
	}
	free(nodes);
	return OMEN_OK;
}

/* Packs collection c with its shard map (read into map, packed from bin: FSM_MAX_SHARDS
 * entries each). */
static int snap_coll(fsm *f, MDB_txn *txn, snap_ctx *s, const meta_coll *c, meta_copies *map,
                     unsigned char *bin)
{
	int st = fsm_shards_read(f, txn, c->name, c->nshards, map);
	size_t blen = FSM_COPIES_BYTES * (size_t)c->nshards;
	for (uint32_t j = 0; st == OMEN_OK && j < c->nshards; j++)
		fsm_copies_put(bin + FSM_COPIES_BYTES * j, &map[j]);
	s->bad |= msgpack_pack_array(&s->pk, 7) || fsm_pack_str(&s->pk, c->name);
	s->bad |= msgpack_pack_uint32(&s->pk, c->dim) || msgpack_pack_int(&s->pk, c->metric);
	s->bad |= msgpack_pack_uint32(&s->pk, c->nshards);
	s->bad |= msgpack_pack_uint64(&s->pk, c->next_id);
	s->bad |= msgpack_pack_uint32(&s->pk, c->replicas);
	s->bad |= msgpack_pack_bin(&s->pk, blen) || msgpack_pack_bin_body(&s->pk, bin, blen);
	return st;
}

/* Packs the "colls" key and its array, in name order, each with its shard map. */
static int snap_colls(fsm *f, MDB_txn *txn, snap_ctx *s)
{
	meta_coll *colls = NULL;
	size_t n = 0;
	int st = fsm_colls_read(f, txn, &colls, &n);
	if (st != OMEN_OK)
		return st;
	meta_copies *map = malloc(FSM_MAX_SHARDS * sizeof *map);
	unsigned char *bin = malloc(FSM_MAX_SHARDS * FSM_COPIES_BYTES);
	if (!map || !bin)
		st = status_set(OMEN_ENOMEM, "out of memory");
	s->bad |= fsm_pack_str(&s->pk, "colls") || msgpack_pack_array(&s->pk, n);
	for (size_t i = 0; st == OMEN_OK && i < n; i++)
		st = snap_coll(f, txn, s, &colls[i], map, bin);
	free(bin);
	free(map);
	free(colls);
	return st;
}

/* Packs the whole state read in txn into s. */
static int snap_state(fsm *f, MDB_txn *txn, snap_ctx *s)
{
	uint64_t applied = 0, epoch = 0;
	int st = fsm_state_read(f, txn, &applied, &epoch);
	if (st != OMEN_OK)
		return st;
	s->bad |= msgpack_pack_map(&s->pk, 5);
	s->bad |= fsm_pack_str(&s->pk, "v") || msgpack_pack_uint32(&s->pk, SNAP_VERSION);
	s->bad |= fsm_pack_str(&s->pk, "applied") || msgpack_pack_uint64(&s->pk, applied);
	s->bad |= fsm_pack_str(&s->pk, "epoch") || msgpack_pack_uint64(&s->pk, epoch);
	st = snap_nodes(f, txn, s);
	return st == OMEN_OK ? snap_colls(f, txn, s) : st;
}

int fsm_snapshot(fsm *f, void **buf, size_t *len)
{
	MDB_txn *txn;
	int st = lenv_read_begin(&f->e, &txn);
	if (st != OMEN_OK)
		return st;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	snap_ctx s;
	s.bad = 0;
	msgpack_packer_init(&s.pk, &sb, msgpack_sbuffer_write);
	st = snap_state(f, txn, &s);
	lenv_read_end(&f->e, txn);
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

/* ---- reading ---- */

/* OMEN_ECORRUPT with what went wrong and where. */
static int snap_bad(const mpc *r, const char *what)
{
	return status_set(OMEN_ECORRUPT, "snapshot: %s (at byte %zu of %zu)", what, r->pos, r->len);
}

/* Reads the map header (n entries) and the version, which comes first, into *v: OMEN_EVERSION
 * for a newer one. */
static int snap_head(mpc *r, uint64_t *n, uint32_t *v)
{
	if (!mpc_map(r, n) || *n < 1 || !mpc_key(r, "v") || !mpc_u32(r, v))
		return snap_bad(r, "no version");
	if (*v < 1 || *v > SNAP_VERSION)
		return status_set(*v > SNAP_VERSION ? OMEN_EVERSION : OMEN_ECORRUPT,
		                  "snapshot: version %u, this OmenDB reads 1..%d", *v,
		                  SNAP_VERSION);
	return OMEN_OK;
}

int fsm_snapshot_applied(const void *buf, size_t len, uint64_t *applied)
{
	mpc r = mpc_make(buf, len);
	uint64_t n;
	uint32_t v;
	int st = buf ? snap_head(&r, &n, &v) : snap_bad(&r, "empty");
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
		if (!fsm_skip(&r))
			return snap_bad(&r, "malformed value");
	}
	return st == OMEN_OK ? snap_bad(&r, "no applied index") : st;
}

/* Restores the "nodes" array: every node in range, none twice. */
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
		    !fsm_node_fields_ok(nd.id, a, alen, nd.role, nd.state))
			return snap_bad(r, "bad node");
		memcpy(nd.addr, a, alen);
		int st = fsm_node_write(f, txn, &nd, MDB_NOOVERWRITE);
		if (st != OMEN_OK)
			return st;
	}
	return OMEN_OK;
}

/* The copies of shard s from a collection's bin in a snapshot of version v; false when bad
 * (version 1: one node id, not 0). */
static bool restore_copies(const unsigned char *bin, uint32_t s, uint32_t v, meta_copies *cp)
{
	if (v >= 2)
		return fsm_copies_get(bin + FSM_COPIES_BYTES * (size_t)s, cp);
	memset(cp, 0, sizeof *cp);
	cp->n = 1;
	cp->node[0] = le64_get(bin + 8 * (size_t)s);
	return cp->node[0] != 0;
}

/* Restores one collection of the "colls" array of a snapshot of version v with its shard map:
 * in range, not twice, valid copies. */
static int restore_coll(fsm *f, MDB_txn *txn, mpc *r, uint32_t v)
{
	meta_coll c;
	memset(&c, 0, sizeof c);
	uint64_t m;
	const char *name;
	size_t nlen, blen;
	const unsigned char *bin;
	int metric;
	c.replicas = 1;
	if (!mpc_arr(r, &m) || m != (v >= 2 ? 7 : 6) || !mpc_str(r, &name, &nlen) ||
	    !name_valid(name, nlen) || !mpc_u32(r, &c.dim) || !mpc_i32(r, &metric) ||
	    !mpc_u32(r, &c.nshards) || !mpc_uint(r, &c.next_id) ||
	    (v >= 2 && !mpc_u32(r, &c.replicas)) || !mpc_bin(r, &bin, &blen))
		return snap_bad(r, "bad collection");
	memcpy(c.name, name, nlen);
	c.metric = (omen_metric)metric;
	if (!fsm_coll_fields_ok(c.dim, metric, c.nshards, c.replicas) ||
	    blen != (v >= 2 ? FSM_COPIES_BYTES : 8) * (size_t)c.nshards)
		return snap_bad(r, "collection out of range");
	int st = fsm_coll_write(f, txn, &c, MDB_NOOVERWRITE);
	for (uint32_t s = 0; st == OMEN_OK && s < c.nshards; s++) {
		meta_copies cp;
		st = restore_copies(bin, s, v, &cp)
		         ? fsm_shard_write(f, txn, c.name, s, &cp, MDB_NOOVERWRITE)
		         : snap_bad(r, "bad copies of a shard");
	}
	return st;
}

/* The keys after "v", each read once: bit j of a restore's `seen` is snap_keys[j]. */
static const char *const snap_keys[] = {"applied", "epoch", "nodes", "colls"};
#define NSNAPKEYS 4u

/* The scalars of a snapshot, set as their keys are read. */
typedef struct snap_vals {
	uint64_t applied, epoch;
} snap_vals;

/* Reads the value of snapshot key j (a snapshot of version v): the scalars into *vals, nodes and
 * collections into the state. */
static int restore_value(fsm *f, MDB_txn *txn, mpc *r, unsigned j, uint32_t v, snap_vals *vals)
{
	uint64_t cn;
	int st = OMEN_OK;
	switch (j) {
	case 0:
		return mpc_uint(r, &vals->applied) ? OMEN_OK : snap_bad(r, "bad applied index");
	case 1:
		return mpc_uint(r, &vals->epoch) ? OMEN_OK : snap_bad(r, "bad epoch");
	case 2:
		return restore_nodes(f, txn, r);
	default:
		if (!mpc_arr(r, &cn))
			return snap_bad(r, "colls is not an array");
		for (uint64_t c = 0; st == OMEN_OK && c < cn; c++)
			st = restore_coll(f, txn, r, v);
		return st;
	}
}

typedef struct restore_ctx {
	const void *buf;
	size_t len;
} restore_ctx;

/* Replaces the whole state by the snapshot's: everything is dropped, then each key is read in
 * the order it comes; any fault fails the transaction, which then changes nothing. */
static int restore_fn(fsm *f, MDB_txn *txn, void *arg)
{
	restore_ctx *a = arg;
	mpc r = mpc_make(a->buf, a->len);
	snap_vals vals = {0, 0};
	uint64_t n;
	uint32_t v;
	unsigned seen = 0;
	int rc = 0, st = snap_head(&r, &n, &v);
	if (st != OMEN_OK)
		return st;
	if ((rc = mdb_drop(txn, f->colls, 0)) || (rc = mdb_drop(txn, f->nodes, 0)) ||
	    (rc = mdb_drop(txn, f->shards, 0)))
		return status_from_mdb(rc, "restoring a snapshot");
	for (uint64_t i = 1; st == OMEN_OK && i < n; i++) {
		const char *k;
		size_t kn;
		if (!mpc_str(&r, &k, &kn))
			return snap_bad(&r, "key is not a string");
		unsigned j = fsm_key_find(snap_keys, NSNAPKEYS, k, kn);
		if (j == NSNAPKEYS || (seen & (1u << j)))
			return snap_bad(&r, j == NSNAPKEYS ? "unknown key" : "key twice");
		seen |= 1u << j;
		st = restore_value(f, txn, &r, j, v, &vals);
	}
	if (st != OMEN_OK)
		return st;
	if (seen != (1u << NSNAPKEYS) - 1)
		return snap_bad(&r, "missing keys");
	if (r.pos != r.len)
		return snap_bad(&r, "trailing bytes");
	return fsm_state_write(f, txn, vals.applied, vals.epoch);
}

int fsm_restore(fsm *f, const void *buf, size_t len)
{
	restore_ctx a = {buf, len};
	if (!buf || len == 0)
		return status_set(OMEN_ECORRUPT, "snapshot: empty");
	return fsm_write(f, restore_fn, &a);
}
