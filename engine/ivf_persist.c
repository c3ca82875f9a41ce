/*
 * IVF records in the collection's index sub-database (layout in ivf.h): the header, the
 * centroids, the rotation, and the lists' blocks of 32 codes; mapping them for a search, and
 * writing a new index or appending codes to its lists, each inside the caller's write
 * transaction so that an index or a batch lands whole or not at all.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ivf.h"

void ivf_block_key(unsigned char kb[9], uint32_t list, uint32_t block)
{
	kb[0] = IVF_TAG_LIST;
	be32_put(kb + 1, list);
	be32_put(kb + 5, block);
}

static int get_rec(eng_coll *c, MDB_txn *txn, char tag, MDB_val *v)
{
	MDB_val k = {1, &tag};
	int rc = mdb_get(txn, c->graph_dbi, &k, v);
	if (rc == MDB_NOTFOUND)
		return OMEN_ENOTFOUND;
	return rc ? status_from_mdb(rc, "index") : OMEN_OK;
}

static int header_parse(eng_coll *c, const MDB_val *v, ivf_index *ix)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size != IVF_HDR_SIZE || !rec_check(p, v->mv_size, IVF_MAGIC_HDR, IVF_HDR_SIZE))
		return status_set(OMEN_ECORRUPT, "collection '%s': IVF header is corrupt", c->name);
	ix->dim = le32_get(p + 8);
	ix->nlist = le32_get(p + 12);
	ix->bits = le32_get(p + 16);
	ix->nprobe = le32_get(p + 20);
	ix->dpad = le32_get(p + 24);
	uint32_t flags = le32_get(p + 28);
	ix->seed = le64_get(p + 32);
	ix->rows_built = le64_get(p + 40);
	memcpy(&ix->recall, p + 48, 4);
	if (flags != 0 || ix->bits < 1 || ix->bits > OMEN_IVF_BITS_MAX)
		return status_set(OMEN_EVERSION,
		                  "collection '%s': its IVF index was written by a newer OmenDB "
		                  "(flags %u, %u bits)",
		                  c->name, flags, ix->bits);
	if (ix->dim != c->dim || ix->dpad != (ix->dim + 7) / 8 * 8 || ix->nlist < 1 ||
	    ix->nlist > OMEN_IVF_NLIST_MAX || ix->nprobe < 1 || ix->nprobe > ix->nlist)
		return status_set(OMEN_ECORRUPT, "collection '%s': IVF header is inconsistent",
		                  c->name);
	return OMEN_OK;
}

/* Points *out at len bytes of floats at p, copied into *scratch when p is not aligned for
 * float (small LMDB values are 2-byte aligned). */
static int floats_at(const unsigned char *p, size_t len, void **scratch, const float **out)
{
	if ((uintptr_t)p % sizeof(float) == 0) {
		*out = (const float *)p;
		return OMEN_OK;
	}
	*scratch = mem_alloc(len);
	if (!*scratch)
		return status_set(OMEN_ENOMEM, "out of memory");
	memcpy(*scratch, p, len);
	*out = *scratch;
	return OMEN_OK;
}

int ivf_map(eng_coll *c, MDB_txn *txn, ivf_index *ix)
{
	MDB_val h, cv, rv;
	memset(ix, 0, sizeof *ix);
	int st = get_rec(c, txn, IVF_TAG_HDR, &h);
	if (st == OMEN_OK)
		st = header_parse(c, &h, ix);
	if (st == OMEN_OK)
		st = get_rec(c, txn, IVF_TAG_CENT, &cv);
	if (st == OMEN_OK)
		st = get_rec(c, txn, IVF_TAG_ROT, &rv);
	if (st == OMEN_ENOTFOUND && h.mv_data && ix->dim)
		st = status_set(OMEN_ECORRUPT, "collection '%s': IVF records missing", c->name);
	if (st != OMEN_OK)
		return st;
	size_t cbytes = 4 * (size_t)ix->nlist * ix->dim, rbytes = 4 * (size_t)ix->dim * ix->dim;
	if (!rec_check(cv.mv_data, cv.mv_size, IVF_MAGIC_CENT, REC_HEADER) ||
	    cv.mv_size != REC_HEADER + cbytes ||
	    !rec_check(rv.mv_data, rv.mv_size, IVF_MAGIC_ROT, REC_HEADER) ||
	    rv.mv_size != REC_HEADER + rbytes + cbytes)
		return status_set(OMEN_ECORRUPT, "collection '%s': IVF centroids are corrupt",
		                  c->name);
	const unsigned char *cp = (const unsigned char *)cv.mv_data + REC_HEADER;
	const unsigned char *rp = (const unsigned char *)rv.mv_data + REC_HEADER;
	st = floats_at(cp, cbytes, &ix->scratch[0], &ix->centroids);
	if (st == OMEN_OK)
		st = floats_at(rp, rbytes + cbytes, &ix->scratch[1], &ix->rot);
	if (st != OMEN_OK) {
		ivf_unmap(ix);
		return st;
	}
	ix->rcent = ix->rot + (size_t)ix->dim * ix->dim;
	ix->bytes = h.mv_size + cv.mv_size + rv.mv_size;
	return OMEN_OK;
}

void ivf_unmap(ivf_index *ix)
{
	mem_free(ix->scratch[0]);
	mem_free(ix->scratch[1]);
	ix->scratch[0] = ix->scratch[1] = NULL;
}

/* Puts a record of len bytes under the one-byte key tag, its header stamped with magic;
 * returns where its body (after the record header) goes, or NULL with *st set. */
static unsigned char *put_rec(eng_coll *c, MDB_txn *txn, char tag, const char *magic, size_t len,
                              int *st)
{
	MDB_val k = {1, &tag}, v = {len, NULL};
	int rc = mdb_put(txn, c->graph_dbi, &k, &v, MDB_RESERVE);
	if (rc) {
		*st = status_from_mdb(rc, "index");
		return NULL;
	}
	rec_stamp(v.mv_data, magic);
	return (unsigned char *)v.mv_data + REC_HEADER;
}

static void header_write(unsigned char *p, const ivf_index *ix)
{
	memset(p, 0, IVF_HDR_SIZE - REC_HEADER);
	le32_put(p, ix->dim);
	le32_put(p + 4, ix->nlist);
	le32_put(p + 8, ix->bits);
	le32_put(p + 12, ix->nprobe);
	le32_put(p + 16, ix->dpad);
	le64_put(p + 24, ix->seed);
	le64_put(p + 32, ix->rows_built);
	memcpy(p + 40, &ix->recall, 4);
}

int ivf_write_index(eng_coll *c, MDB_txn *txn, const ivf_index *ix)
{
	int rc = mdb_drop(txn, c->graph_dbi, 0), st = OMEN_OK;
	if (rc)
		return status_from_mdb(rc, "index");
	size_t cbytes = 4 * (size_t)ix->nlist * ix->dim, rbytes = 4 * (size_t)ix->dim * ix->dim;
	unsigned char *p = put_rec(c, txn, IVF_TAG_HDR, IVF_MAGIC_HDR, IVF_HDR_SIZE, &st);
	if (p)
		header_write(p, ix);
	if (p && (p = put_rec(c, txn, IVF_TAG_CENT, IVF_MAGIC_CENT, REC_HEADER + cbytes, &st)))
		memcpy(p, ix->centroids, cbytes);
	if (p &&
	    (p = put_rec(c, txn, IVF_TAG_ROT, IVF_MAGIC_ROT, REC_HEADER + rbytes + cbytes, &st))) {
		memcpy(p, ix->rot, rbytes);
		memcpy(p + rbytes, ix->rcent, cbytes);
	}
	return st;
}

int ivf_write_nprobe(eng_coll *c, MDB_txn *txn, uint32_t nprobe, float recall)
{
	MDB_val v;
	ivf_index ix = {0};
	int st = get_rec(c, txn, IVF_TAG_HDR, &v);
	if (st == OMEN_OK)
		st = header_parse(c, &v, &ix);
	if (st != OMEN_OK)
		return st == OMEN_ENOTFOUND ? status_set(OMEN_ENOTFOUND, "the index was dropped")
		                            : st;
	ix.nprobe = nprobe;
	ix.recall = recall;
	unsigned char *p = put_rec(c, txn, IVF_TAG_HDR, IVF_MAGIC_HDR, IVF_HDR_SIZE, &st);
	if (p)
		header_write(p, &ix);
	return st;
}

/* ---- list blocks ---- */

/* Writes code i (factors f, planes b) into slot j of the block image at p. */
static void slot_put(unsigned char *p, const ivf_index *ix, uint32_t j, const ivf_code *f,
                     const uint8_t *b)
{
	uint32_t dpad = ix->dpad;
	for (uint32_t plane = 0; plane < ix->bits; plane++) {
		unsigned char *codes = p + IVF_BLOCK_HEAD + plane * ivf_codes_bytes(dpad);
		const uint8_t *pb = b + plane * ivf_code_bits(dpad);
		for (uint32_t g = 0; g < dpad / 4; g++) {
			unsigned nib = (pb[g / 2] >> (4 * (g % 2))) & 15;
			unsigned char *byte = codes + 16 * g + (j & 15);
			*byte = j < 16 ? (unsigned char)((*byte & 0xf0) | nib)
			               : (unsigned char)((*byte & 0x0f) | nib << 4);
		}
	}
	ivf_block v;
	ivf_block_at(p, dpad, ix->bits, &v); /* its offsets, written through p */
	memcpy(p + (v.fa - p) + 4 * j, &f->fa, 4);
	memcpy(p + (v.fb - p) + 4 * j, &f->fb, 4);
	memcpy(p + (v.fe - p) + 4 * j, &f->fe, 4);
	le16_put(p + (v.pc - p) + 2 * j, f->pc);
	le32_put(p + (v.rows - p) + 4 * j, f->row);
	if (ix->bits > 1) {
		memcpy(p + (v.fb2 - p) + 4 * j, &f->fb2, 4);
		memcpy(p + (v.fe2 - p) + 4 * j, &f->fe2, 4);
	}
}

/* The last block of list in txn: its number and count (count 0, number 0 when the list has
 * no block), and its bytes copied into img when it is partly full. */
static int last_block(eng_coll *c, MDB_txn *txn, const ivf_index *ix, uint32_t list,
                      uint32_t *number, uint32_t *count, unsigned char *img)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, c->graph_dbi, &cur);
	if (rc)
		return status_from_mdb(rc, "index");
	unsigned char kb[9];
	ivf_block_key(kb, list, UINT32_MAX);
	MDB_val k = {9, kb}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	rc = rc == MDB_NOTFOUND ? mdb_cursor_get(cur, &k, &v, MDB_LAST)
	     : rc == 0          ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
	                        : rc;
	*number = *count = 0;
	int st = OMEN_OK;
	const unsigned char *kp = k.mv_data;
	if (rc == 0 && k.mv_size == 9 && kp[0] == IVF_TAG_LIST && be32_get(kp + 1) == list) {
		ivf_block b;
		if (!ivf_block_view(v.mv_data, v.mv_size, ix->dpad, ix->bits, &b))
			st = status_set(OMEN_ECORRUPT, "collection '%s': IVF list %u is corrupt",
			                c->name, list);
		*number = be32_get(kp + 5);
		*count = b.count;
		if (st == OMEN_OK && b.count < IVF_BLOCK)
			memcpy(img, v.mv_data, v.mv_size);
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		st = status_from_mdb(rc, "index");
	}
	mdb_cursor_close(cur);
	return st;
}

/* Appends codes order[0..n) (all of list) to the list. img holds a block. */
static int list_append(eng_coll *c, MDB_txn *txn, const ivf_index *ix, uint32_t list,
                       const ivf_code *codes, const uint8_t *bits, const size_t *order, size_t n,
                       unsigned char *img)
{
	uint32_t number = 0, count = 0;
	size_t len = ivf_block_bytes(ix->dpad, ix->bits), cs = ivf_code_size(ix);
	int st = last_block(c, txn, ix, list, &number, &count, img);
	if (st == OMEN_OK && count == IVF_BLOCK)
		number++, count = 0;
	for (size_t i = 0; st == OMEN_OK && i < n;) {
		if (count == 0) {
			memset(img, 0, len);
			rec_stamp(img, IVF_MAGIC_BLOCK);
		}
		for (; i < n && count < IVF_BLOCK; i++, count++)
			slot_put(img, ix, count, &codes[order[i]], bits + order[i] * cs);
		le32_put(img + 8, count);
		unsigned char kb[9];
		ivf_block_key(kb, list, number);
		MDB_val k = {9, kb}, v = {len, img};
		int rc = mdb_put(txn, c->graph_dbi, &k, &v, 0);
		st = rc ? status_from_mdb(rc, "index") : OMEN_OK;
		if (count == IVF_BLOCK)
			number++, count = 0;
	}
	return st;
}

/* Orders code indices by list, then row (qsort_r's comparator; ctx: the codes). */
static int by_list(const void *a, const void *b, void *ctx)
{
	const ivf_code *codes = ctx;
	const ivf_code *x = &codes[*(const size_t *)a], *y = &codes[*(const size_t *)b];
	if (x->list != y->list)
		return x->list < y->list ? -1 : 1;
	return (x->row > y->row) - (x->row < y->row);
}

int ivf_write_codes(eng_coll *c, MDB_txn *txn, const ivf_index *ix, const ivf_code *codes,
                    const uint8_t *bits, size_t n)
{
	size_t *order = mem_alloc((n ? n : 1) * sizeof *order);
	unsigned char *img = mem_alloc(ivf_block_bytes(ix->dpad, ix->bits));
	int st = order && img ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; st == OMEN_OK && i < n; i++)
		order[i] = i;
	if (st == OMEN_OK)
		qsort_r(order, n, sizeof *order, by_list, (void *)codes);
	for (size_t i = 0, j; st == OMEN_OK && i < n; i = j) {
		for (j = i + 1; j < n && codes[order[j]].list == codes[order[i]].list; j++)
			;
		st = list_append(c, txn, ix, codes[order[i]].list, codes, bits, order + i, j - i,
		                 img);
	}
	mem_free(order);
	mem_free(img);
	return st;
}

int ivf_info_get(eng_coll *c, MDB_txn *txn, ivf_info *out)
{
	ivf_index ix;
	int st = ivf_map(c, txn, &ix);
	if (st != OMEN_OK)
		return st;
	ivf_unmap(&ix);
	MDB_stat ms;
	int rc = mdb_stat(txn, c->graph_dbi, &ms);
	if (rc)
		return status_from_mdb(rc, "index");
	out->nlist = ix.nlist;
	out->nprobe = ix.nprobe;
	out->bits = ix.bits;
	out->bytes =
	    (uint64_t)(ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages) * ms.ms_psize;
	return OMEN_OK;
}
