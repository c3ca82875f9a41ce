/*
 * The HNSW graph's records in LMDB (hnsw.h has their layout): writing a built graph in one
 * transaction, mapping the persisted graph for a search without copying or rebuilding
 * anything, reading the header, and dropping the index. Every byte read from the map is
 * checked here or by the accessors in hnsw.h, so a damaged record gives OMEN_ECORRUPT, never a
 * read out of bounds.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/hnsw.h"

static void key_make(unsigned char *kb, char tag, uint64_t n)
{
	kb[0] = (unsigned char)tag;
	be64_put(kb + 1, n);
}

static bool rec_ok(const MDB_val *v, const char *magic, size_t min)
{
	return rec_check(v->mv_data, v->mv_size, magic, min);
}

/* Nodes in the record of number i (level-0 links, codes) of a graph of n nodes. */
static size_t rec_nodes(uint64_t n, size_t i)
{
	uint64_t left = n - ((uint64_t)i << HNSW_L0_SHIFT);
	return left < HNSW_L0_NODES ? (size_t)left : HNSW_L0_NODES;
}

static size_t rec_count(uint64_t n)
{
	return (size_t)((n + HNSW_L0_NODES - 1) >> HNSW_L0_SHIFT);
}

/* Reads record tag (numbered i when numbered) into v; false when absent or unreadable. */
static bool rec_get(eng_coll *c, MDB_txn *txn, char tag, bool numbered, size_t i, MDB_val *v)
{
	unsigned char kb[9];
	key_make(kb, tag, i);
	MDB_val k = {numbered ? 9 : 1, kb};
	return mdb_get(txn, c->graph_dbi, &k, v) == 0;
}

/* ---- reading ---- */

/* The header's fields into g, checked against what this code knows and against each other. */
static int header_parse(eng_coll *c, const unsigned char *p, hnsw_mapped *g)
{
	g->m = le32_get(p + 8);
	g->m0 = le32_get(p + 12);
	g->efc = le32_get(p + 16);
	g->max_level = le32_get(p + 20);
	g->entry = le64_get(p + 24);
	g->n = le64_get(p + 32);
	uint32_t flags = le32_get(p + 44);
	g->bytes = le64_get(p + 48);
	g->idw = le32_get(p + 56);
	if (flags & ~HNSW_FLAGS_KNOWN || (g->idw != 2 && g->idw != 4))
		return status_set(OMEN_EVERSION,
		                  "collection '%s': index written by a newer OmenDB (header flags "
		                  "%#x, level-0 id width %u)",
		                  c->name, flags, g->idw);
	g->int8 = (flags & HNSW_FLAG_INT8) != 0;
	g->dim = c->dim;
	if (g->m < OMEN_HNSW_M_MIN || g->m > OMEN_HNSW_M_MAX || g->m0 != 2 * g->m ||
	    g->max_level >= HNSW_MAX_LEVEL || (g->n && g->entry >= g->n) || g->n > HNSW_MAX_NODES ||
	    (g->idw == 2 && g->n > HNSW_NARROW_MAX))
		return status_set(OMEN_ECORRUPT, "collection '%s': index header is invalid",
		                  c->name);
	return OMEN_OK;
}

/* Reads the header into g (its fields only). OMEN_ENOTFOUND without a message when absent. */
static int header_read(eng_coll *c, MDB_txn *txn, hnsw_mapped *g)
{
	unsigned char kb[9];
	key_make(kb, 'H', 0);
	MDB_val k = {1, kb}, v;
	int rc = mdb_get(txn, c->graph_dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return OMEN_ENOTFOUND;
	if (rc != 0)
		return status_from_mdb(rc, "index header");
	if (!rec_ok(&v, HNSW_MAGIC_HDR, HNSW_HDR_SIZE))
		return status_set(OMEN_ECORRUPT, "collection '%s': index header is corrupt",
		                  c->name);
	return header_parse(c, v.mv_data, g);
}

int hnsw_info_get(eng_coll *c, MDB_txn *txn, hnsw_info *out)
{
	hnsw_mapped g = {0};
	int st = header_read(c, txn, &g);
	if (st != OMEN_OK)
		return st;
	out->m = g.m;
	out->efc = g.efc;
	out->int8 = g.int8;
	out->rows = g.n;
	out->bytes = g.bytes;
	return OMEN_OK;
}

/* Maps level-0 record i of nodes nodes into r: its offsets must start at 0 and end at the
 * id area's length. */
static bool map_l0_rec(const MDB_val *v, size_t nodes, uint32_t idw, hnsw_l0rec *r)
{
	const unsigned char *p = v->mv_data;
	size_t head = HNSW_REC_HEADER + 4 * (nodes + 1);
	if (!rec_ok(v, HNSW_MAGIC_L0, head) || (v->mv_size - head) % idw != 0)
		return false;
	r->off = p + HNSW_REC_HEADER;
	r->ids = p + head;
	r->words = (uint32_t)((v->mv_size - head) / idw);
	return ld32(r->off) == 0 && ld32(r->off + 4 * nodes) == (v->mv_size - head) / idw;
}

static int map_l0(eng_coll *c, MDB_txn *txn, hnsw_mapped *g)
{
	size_t nrec = rec_count(g->n);
	g->l0r = mem_calloc(nrec ? nrec : 1, sizeof *g->l0r);
	if (!g->l0r)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; i < nrec; i++) {
		MDB_val v;
		if (!rec_get(c, txn, 'L', true, i, &v) ||
		    !map_l0_rec(&v, rec_nodes(g->n, i), g->idw, &g->l0r[i]))
			return status_set(OMEN_ECORRUPT, "collection '%s': index links %zu corrupt",
			                  c->name, i);
	}
	return OMEN_OK;
}

static int map_upper(eng_coll *c, MDB_txn *txn, hnsw_mapped *g)
{
	MDB_val v;
	if (!rec_get(c, txn, 'U', false, 0, &v) || !rec_ok(&v, HNSW_MAGIC_UP, HNSW_REC_HEADER))
		return status_set(OMEN_ECORRUPT, "collection '%s': index levels corrupt", c->name);
	const unsigned char *p = v.mv_data;
	g->n_up = le32_get(p + 8);
	size_t need = HNSW_REC_HEADER + 8 * (size_t)g->n_up + 4;
	if (v.mv_size < need)
		return status_set(OMEN_ECORRUPT, "collection '%s': index levels truncated",
		                  c->name);
	g->up_ids = p + HNSW_REC_HEADER;
	g->up_off = g->up_ids + 4 * (size_t)g->n_up;
	g->up_links = g->up_off + 4 * ((size_t)g->n_up + 1);
	g->up_words = ld32(g->up_off + 4 * (size_t)g->n_up);
	if (v.mv_size != need + 4 * g->up_words)
		return status_set(OMEN_ECORRUPT, "collection '%s': index levels truncated",
		                  c->name);
	return OMEN_OK;
}

/* Copies the quantizer and maps the int8 code records. */
static int map_codes(eng_coll *c, MDB_txn *txn, hnsw_mapped *g)
{
	MDB_val v;
	size_t want = HNSW_REC_HEADER + 8 * (size_t)g->dim;
	if (!rec_get(c, txn, 'S', false, 0, &v) || !rec_ok(&v, HNSW_MAGIC_QUANT, want) ||
	    v.mv_size != want)
		return status_set(OMEN_ECORRUPT, "collection '%s': index quantizer corrupt",
		                  c->name);
	const unsigned char *p = (const unsigned char *)v.mv_data + HNSW_REC_HEADER;
	int st = hnsw_quant_set(&g->quant, g->dim, p, p + 4 * (size_t)g->dim);
	if (st != OMEN_OK)
		return st;
	size_t nrec = rec_count(g->n);
	g->qc = mem_calloc(nrec ? nrec : 1, sizeof *g->qc);
	if (!g->qc)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; i < nrec; i++) {
		size_t bytes = HNSW_REC_HEADER + rec_nodes(g->n, i) * g->dim;
		if (!rec_get(c, txn, 'Q', true, i, &v) || !rec_ok(&v, HNSW_MAGIC_CODES, bytes) ||
		    v.mv_size != bytes)
			return status_set(OMEN_ECORRUPT, "collection '%s': index codes %zu corrupt",
			                  c->name, i);
		g->qc[i] = v.mv_data;
	}
	return OMEN_OK;
}

int hnsw_map(eng_coll *c, MDB_txn *txn, hnsw_mapped *g)
{
	int st = header_read(c, txn, g);
	if (st == OMEN_OK)
		st = map_l0(c, txn, g);
	if (st == OMEN_OK)
		st = map_upper(c, txn, g);
	if (st == OMEN_OK && g->int8)
		st = map_codes(c, txn, g);
	return st;
}

void hnsw_mapped_free(hnsw_mapped *g)
{
	mem_free(g->l0r);
	mem_free((void *)g->qc);
	hnsw_quant_free(&g->quant);
	memset(g, 0, sizeof *g);
}

/* ---- writing ---- */

typedef struct persist_ctx {
	eng_coll *c;
	const hnsw_build_graph *g;
	uint64_t bytes; /* written so far */
} persist_ctx;

/* Reserves size bytes for record tag (numbered i when numbered) and stamps its header (magic,
 * the rest of the HNSW_REC_HEADER bytes zero); NULL (with *st set) on failure. */
static unsigned char *put_rec(persist_ctx *x, MDB_txn *txn, char tag, bool numbered, size_t i,
                              const char *magic, size_t size, int *st)
{
	unsigned char kb[9];
	key_make(kb, tag, i);
	MDB_val k = {numbered ? 9 : 1, kb}, v = {size, NULL};
	int rc = mdb_put(txn, x->c->graph_dbi, &k, &v, MDB_RESERVE);
	*st = rc ? status_from_mdb(rc, "index") : OMEN_OK;
	if (rc)
		return NULL;
	unsigned char *p = v.mv_data;
	memset(p, 0, HNSW_REC_HEADER);
	rec_stamp(p, magic);
	x->bytes += size;
	return p;
}

/* Writes the level-0 records: per node only the links it has (18 of m0 = 32 on average on the
 * benchmark sets), found through an offset table, each id hnsw_id_width(n) bytes. */
static int persist_l0(persist_ctx *x, MDB_txn *txn)
{
	const hnsw_build_graph *g = x->g;
	uint32_t idw = hnsw_id_width(g->n);
	for (size_t r = 0; r < rec_count(g->n); r++) {
		uint64_t c0 = (uint64_t)r << HNSW_L0_SHIFT;
		size_t cnt = rec_nodes(g->n, r), words = 0;
		for (size_t j = 0; j < cnt; j++)
			words += mem_links(g, c0 + j, 0)[0];
		size_t head = HNSW_REC_HEADER + 4 * (cnt + 1);
		int st;
		unsigned char *p =
		    put_rec(x, txn, 'L', true, r, HNSW_MAGIC_L0, head + idw * words, &st);
		if (!p)
			return st;
		unsigned char *off = p + HNSW_REC_HEADER, *ids = p + head;
		uint32_t w = 0;
		for (size_t j = 0; j < cnt; j++) {
			const uint32_t *l = mem_links(g, c0 + j, 0);
			le32_put(off + 4 * j, w);
			for (uint32_t i = 0; i < l[0]; i++)
				link_id_put(ids, idw, w++, l[1 + i]);
		}
		le32_put(off + 4 * cnt, w);
	}
	return OMEN_OK;
}

static int persist_upper(persist_ctx *x, MDB_txn *txn)
{
	const hnsw_build_graph *g = x->g;
	size_t n_up = 0, words = 0;
	for (uint64_t i = 0; i < g->n; i++)
		if (g->level[i]) {
			n_up++;
			words += (size_t)g->level[i] * (1 + g->m);
		}
	int st;
	size_t size = HNSW_REC_HEADER + 8 * n_up + 4 + 4 * words;
	unsigned char *p = put_rec(x, txn, 'U', false, 0, HNSW_MAGIC_UP, size, &st);
	if (!p)
		return st;
	le32_put(p + 8, (uint32_t)n_up);
	unsigned char *ids = p + HNSW_REC_HEADER, *off = ids + 4 * n_up;
	unsigned char *links = off + 4 * (n_up + 1);
	size_t u = 0, w = 0;
	for (uint64_t i = 0; i < g->n; i++) {
		if (!g->level[i])
			continue;
		size_t nw = (size_t)g->level[i] * (1 + g->m);
		le32_put(ids + 4 * u, (uint32_t)i);
		le32_put(off + 4 * u++, (uint32_t)w);
		memcpy(links + 4 * w, g->up[i], nw * 4);
		w += nw;
	}
	le32_put(off + 4 * u, (uint32_t)w);
	return OMEN_OK;
}

/* Writes the quantizer ("S") and the codes ("Q" records of 4096 nodes). */
static int persist_codes(persist_ctx *x, MDB_txn *txn)
{
	const hnsw_build_graph *g = x->g;
	size_t dim = g->dim;
	int st;
	unsigned char *p =
	    put_rec(x, txn, 'S', false, 0, HNSW_MAGIC_QUANT, HNSW_REC_HEADER + 8 * dim, &st);
	if (!p)
		return st;
	memcpy(p + HNSW_REC_HEADER, g->quant.min, 4 * dim);
	memcpy(p + HNSW_REC_HEADER + 4 * dim, g->quant.step, 4 * dim);
	for (size_t r = 0; r < rec_count(g->n); r++) {
		size_t bytes = rec_nodes(g->n, r) * dim;
		p = put_rec(x, txn, 'Q', true, r, HNSW_MAGIC_CODES, HNSW_REC_HEADER + bytes, &st);
		if (!p)
			return st;
		memcpy(p + HNSW_REC_HEADER, g->codes + ((uint64_t)r << HNSW_L0_SHIFT) * dim, bytes);
	}
	return OMEN_OK;
}

/* Writes the header, last: bytes counts every record, its own 64 included. */
static int persist_header(persist_ctx *x, MDB_txn *txn)
{
	const hnsw_build_graph *g = x->g;
	int st;
	unsigned char *p = put_rec(x, txn, 'H', false, 0, HNSW_MAGIC_HDR, HNSW_HDR_SIZE, &st);
	if (!p)
		return st;
	memset(p + HNSW_REC_HEADER, 0, HNSW_HDR_SIZE - HNSW_REC_HEADER);
	le32_put(p + 8, g->m);
	le32_put(p + 12, g->m0);
	le32_put(p + 16, g->efc);
	le32_put(p + 20, g->max_level);
	le64_put(p + 24, g->entry);
	le64_put(p + 32, g->n);
	le32_put(p + 40, HNSW_L0_NODES);
	le32_put(p + 44, g->int8 ? HNSW_FLAG_INT8 : 0);
	le64_put(p + 48, x->bytes);
	le32_put(p + 56, hnsw_id_width(g->n));
	return OMEN_OK;
}

static int persist_fn(MDB_txn *txn, void *arg)
{
	persist_ctx *x = arg;
	catalog_rec r;
	int st = coll_catalog(x->c, txn, &r);
	int rc = st == OMEN_OK ? mdb_drop(txn, x->c->graph_dbi, 0) : 0;
	if (rc != 0)
		return status_from_mdb(rc, "index");
	x->bytes = 0;
	if (st == OMEN_OK)
		st = persist_l0(x, txn);
	if (st == OMEN_OK)
		st = persist_upper(x, txn);
	if (st == OMEN_OK && x->g->int8)
		st = persist_codes(x, txn);
	if (st == OMEN_OK)
		st = persist_header(x, txn);
	return st;
}

int hnsw_persist(eng_coll *c, const hnsw_build_graph *g)
{
	persist_ctx x = {c, g, 0};
	return store_write(c->db->st, persist_fn, &x, g->n * (4 + 4 * (uint64_t)g->m0));
}
