/*
 * The state machine's LMDB records: the state record, collections, nodes and the shard map,
 * each with its key, its layout (base's record header, then little-endian fields) and the
 * checks its reader makes. The offset/size tables are in docs/CONSENSUS.md; what is written
 * here is read back by every running cluster, so a change of layout is a new format.
 */
#include <stdlib.h>
#include <string.h>

#include "consensus/internal.h"

#define FSM_FORMAT    2 /* format of the environment, kept in the state record (2: copies) */
#define STATE_MAGIC   "OMRS"
#define COLL_MAGIC    "OMRC"
#define NODE_MAGIC    "OMRN"
#define SHARD_MAGIC   "OMRH"
#define STATE_SIZE    32
#define COLL_SIZE     32
#define NODE_HEAD     20
#define SHARD_SIZE_1  16 /* format 1: one node id */
#define SHARD_SIZE    (8 + FSM_COPIES_BYTES)
#define SHARD_KEY_MAX (OMEN_MAX_NAME + 5)

bool fsm_name_ok(const char *name)
{
	return name_valid(name, strnlen(name, OMEN_MAX_NAME + 1));
}

bool fsm_coll_fields_ok(uint32_t dim, int64_t metric, uint32_t nshards, uint32_t replicas)
{
	return dim >= 1 && dim <= OMEN_MAX_DIM && metric >= 0 && metric <= OMEN_METRIC_COSINE &&
	       nshards >= 1 && nshards <= FSM_MAX_SHARDS && replicas >= 1 &&
	       replicas <= META_MAX_COPIES;
}

bool fsm_copies_ok(const meta_copies *c)
{
	if (c->n < 1 || c->n > META_MAX_COPIES || meta_copies_primary(c) < 0)
		return false;
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->node[i] == 0 || c->state[i] > META_COPY_STALE)
			return false;
		for (uint32_t j = 0; j < i; j++)
			if (c->node[j] == c->node[i])
				return false;
	}
	return true;
}

void fsm_copies_put(unsigned char *p, const meta_copies *c)
{
	memset(p, 0, FSM_COPIES_BYTES);
	p[0] = (unsigned char)c->n;
	for (uint32_t i = 0; i < c->n && i < META_MAX_COPIES; i++) {
		p[1 + i] = c->state[i];
		le64_put(p + 8 + 8 * i, c->node[i]);
	}
}

bool fsm_copies_get(const unsigned char *p, meta_copies *c)
{
	meta_copies x;
	memset(&x, 0, sizeof x);
	x.n = p[0];
	if (x.n < 1 || x.n > META_MAX_COPIES || p[6] || p[7])
		return false;
	for (uint32_t i = 0; i < META_MAX_COPIES; i++) {
		uint8_t state = p[1 + i];
		uint64_t node = le64_get(p + 8 + 8 * i);
		if (i >= x.n && (state || node))
			return false; /* unused slots are zero */
		if (i < x.n)
			x.state[i] = state, x.node[i] = node;
	}
	if (!fsm_copies_ok(&x))
		return false;
	*c = x;
	return true;
}

bool fsm_node_fields_ok(uint64_t id, const char *addr, size_t alen, int64_t role, int64_t state)
{
	return id >= 1 && alen >= 1 && alen < META_MAX_ADDR && memchr(addr, 0, alen) == NULL &&
	       (role == META_ROLE_COORDINATOR || meta_is_shard((int)role)) &&
	       (state == META_NODE_UP || state == META_NODE_DOWN);
}

/* ---- the state record (meta, key "state") ---- */

int fsm_state_read(fsm *f, MDB_txn *txn, uint64_t *applied, uint64_t *epoch)
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

int fsm_state_write(fsm *f, MDB_txn *txn, uint64_t applied, uint64_t epoch)
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

/* ---- collections (colls, key = the name's bytes) ---- */

static void coll_encode(const meta_coll *c, unsigned char *p)
{
	memset(p, 0, COLL_SIZE);
	rec_stamp(p, COLL_MAGIC);
	le32_put(p + 8, c->dim);
	le32_put(p + 12, (uint32_t)c->metric);
	le32_put(p + 16, c->nshards);
	le32_put(p + 20, c->replicas);
	le64_put(p + 24, c->next_id);
}

/* Decodes the record k/v into *out (a meta_coll). */
static int coll_decode(const MDB_val *k, const MDB_val *v, void *out)
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
	c.replicas = le32_get(p + 20);
	c.replicas += c.replicas == 0; /* format 1: one copy */
	c.next_id = le64_get(p + 24);
	if (!fsm_coll_fields_ok(c.dim, metric, c.nshards, c.replicas))
		return status_set(OMEN_ECORRUPT, "consensus state: collection '%s' out of range",
		                  c.name);
	c.metric = (omen_metric)metric;
	*(meta_coll *)out = c;
	return OMEN_OK;
}

int fsm_coll_read(fsm *f, MDB_txn *txn, const char *name, meta_coll *out)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(txn, f->colls, &k, &v);
	if (rc == MDB_NOTFOUND)
		return status_set(OMEN_ENOTFOUND, "collection '%s' does not exist", name);
	if (rc)
		return status_from_mdb(rc, "reading a collection");
	return coll_decode(&k, &v, out);
}

int fsm_coll_write(fsm *f, MDB_txn *txn, const meta_coll *c, unsigned flags)
{
	unsigned char rec[COLL_SIZE];
	coll_encode(c, rec);
	MDB_val k = {strlen(c->name), (void *)c->name}, v = {COLL_SIZE, rec};
	int rc = mdb_put(txn, f->colls, &k, &v, flags);
	if (rc == MDB_KEYEXIST)
		return status_set(OMEN_ECORRUPT, "consensus: collection '%s' twice", c->name);
	return rc ? status_from_mdb(rc, "writing a collection") : OMEN_OK;
}

/* ---- nodes (nodes, key = id as u64 big-endian, so that LMDB's order is id order) ---- */

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

/* Decodes the record k/v into *out (a meta_node). */
static int node_decode(const MDB_val *k, const MDB_val *v, void *out)
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
	    !fsm_node_fields_ok(id, (const char *)p + NODE_HEAD, alen, role, state))
		return status_set(OMEN_ECORRUPT, "consensus state: node %llu out of range",
		                  (unsigned long long)id);
	meta_node n;
	memset(&n, 0, sizeof n);
	n.id = id;
	memcpy(n.addr, p + NODE_HEAD, alen);
	n.role = (int)role;
	n.state = (int)state;
	*(meta_node *)out = n;
	return OMEN_OK;
}

int fsm_node_read(fsm *f, MDB_txn *txn, uint64_t id, meta_node *out)
{
	unsigned char key[8];
	be64_put(key, id);
	MDB_val k = {8, key}, v;
	int rc = mdb_get(txn, f->nodes, &k, &v);
	if (rc == MDB_NOTFOUND)
		return status_set(OMEN_ENOTFOUND, "node %llu does not exist",
		                  (unsigned long long)id);
	if (rc)
		return status_from_mdb(rc, "reading a node");
	return node_decode(&k, &v, out);
}

int fsm_node_write(fsm *f, MDB_txn *txn, const meta_node *n, unsigned flags)
{
	unsigned char key[8], rec[NODE_HEAD + META_MAX_ADDR];
	be64_put(key, n->id);
	MDB_val k = {8, key}, v = {node_encode(n, rec), rec};
	int rc = mdb_put(txn, f->nodes, &k, &v, flags);
	if (rc == MDB_KEYEXIST)
		return status_set(OMEN_ECORRUPT, "consensus: node %llu twice",
		                  (unsigned long long)n->id);
	return rc ? status_from_mdb(rc, "writing a node") : OMEN_OK;
}

/* ---- whole tables ---- */

typedef int (*decode_fn)(const MDB_val *k, const MDB_val *v, void *out);

/* Decodes every record of dbi, in key order, into a malloc'd array of elem-byte items (NULL
 * when there are none); the caller frees it. */
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

int fsm_colls_read(fsm *f, MDB_txn *txn, meta_coll **out, size_t *n)
{
	return list_all(txn, f->colls, sizeof(meta_coll), coll_decode, (void **)out, n);
}

int fsm_nodes_read(fsm *f, MDB_txn *txn, meta_node **out, size_t *n)
{
	return list_all(txn, f->nodes, sizeof(meta_node), node_decode, (void **)out, n);
}

/* ---- the shard map (shards, key = name, NUL, shard as u32 big-endian) ---- */

/* The key of logical shard s of collection name, into k (SHARD_KEY_MAX bytes): a collection's
 * shards are contiguous and in order. Returns the key length. */
static size_t shard_key(unsigned char *k, const char *name, uint32_t s)
{
	size_t n = strlen(name);
	memcpy(k, name, n);
	k[n] = 0;
	for (int i = 0; i < 4; i++)
		k[n + 1 + i] = (unsigned char)(s >> (24 - 8 * i));
	return n + 5;
}

/* The copies of a shard record: format 1's single node id (never 0), read as one copy in
 * sync, or format 2's copies. */
static int shard_decode(const MDB_val *v, meta_copies *c)
{
	const unsigned char *p = v->mv_data;
	if ((v->mv_size != SHARD_SIZE && v->mv_size != SHARD_SIZE_1) ||
	    !rec_check(v->mv_data, v->mv_size, SHARD_MAGIC, SHARD_SIZE_1))
		return status_set(OMEN_ECORRUPT, "consensus state: bad shard record");
	if (v->mv_size == SHARD_SIZE)
		return fsm_copies_get(p + 8, c)
		           ? OMEN_OK
		           : status_set(OMEN_ECORRUPT, "consensus state: bad copies of a shard");
	memset(c, 0, sizeof *c);
	c->n = 1;
	c->node[0] = le64_get(p + 8);
	if (c->node[0] == 0)
		return status_set(OMEN_ECORRUPT, "consensus state: shard assigned to node 0");
	return OMEN_OK;
}

int fsm_shard_write(fsm *f, MDB_txn *txn, const char *name, uint32_t s, const meta_copies *c,
                    unsigned flags)
{
	if (!fsm_copies_ok(c))
		return status_set(OMEN_ECORRUPT,
		                  "consensus: bad copies for collection '%s' shard %u", name, s);
	unsigned char key[SHARD_KEY_MAX], rec[SHARD_SIZE] = {0};
	rec_stamp(rec, SHARD_MAGIC);
	fsm_copies_put(rec + 8, c);
	MDB_val k = {shard_key(key, name, s), key}, v = {SHARD_SIZE, rec};
	int rc = mdb_put(txn, f->shards, &k, &v, flags);
	if (rc == MDB_KEYEXIST)
		return status_set(OMEN_ECORRUPT, "consensus: collection '%s' shard %u twice", name,
		                  s);
	return rc ? status_from_mdb(rc, "writing the shard map") : OMEN_OK;
}

int fsm_shards_read(fsm *f, MDB_txn *txn, const char *name, uint32_t nshards, meta_copies *out)
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
			st = shard_decode(&v, &out[s]);
	}
	mdb_cursor_close(cur);
	return st;
}

int fsm_shards_delete(fsm *f, MDB_txn *txn, const char *name)
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
