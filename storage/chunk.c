/*
 * Record formats of a collection's data: vector chunks (contiguous rows that exact search scans
 * straight from the memory map), tombstone bitsets and metadata records. Each validates the
 * bytes it reads, so a damaged file gives OMEN_ECORRUPT, never a crash. Layouts: docs/FORMAT.md.
 */
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

#define CHUNK_MAGIC "OMVC"
#define TOMB_MAGIC  "OMTB"
#define META_MAGIC  "OMMD"

uint32_t chunk_cap_for_dim(uint32_t dim)
{
	uint32_t fit = CHUNK_TARGET_BYTES / (dim * 4 + 12), cap = 16;
	while (cap * 2 <= fit && cap < 65536)
		cap *= 2;
	return cap;
}

int chunk_view_init(chunk_view *v, const void *bytes, size_t len, uint32_t dim, uint32_t cap)
{
	const unsigned char *p = bytes;
	memset(v, 0, sizeof *v);
	if (!rec_check(p, len, CHUNK_MAGIC, CHUNK_HEADER))
		return status_set(OMEN_ECORRUPT, "vector chunk header is corrupt");
	uint32_t count = le32_get(p + 8);
	if (count == 0 || count > cap || le32_get(p + 12) != cap || len != chunk_bytes(count, dim))
		return status_set(OMEN_ECORRUPT, "vector chunk of %zu bytes is inconsistent", len);
	size_t vec_bytes = (size_t)count * dim * 4;
	const unsigned char *body = p + CHUNK_HEADER;
	if ((uintptr_t)body % sizeof(float) != 0) {
		/* Small values live inside LMDB's leaf pages, only 2-byte aligned: copy them. */
		v->scratch = mem_alloc(vec_bytes + (size_t)count * 4);
		if (!v->scratch)
			return status_set(OMEN_ENOMEM, "out of memory");
		memcpy(v->scratch, body, vec_bytes + (size_t)count * 4);
		body = v->scratch;
	}
	v->count = count;
	v->vecs = (const float *)body;
	v->norms = (const float *)(body + vec_bytes);
	v->ids = p + CHUNK_HEADER + vec_bytes + (size_t)count * 4;
	return OMEN_OK;
}

void chunk_view_release(chunk_view *v)
{
	mem_free(v->scratch);
	v->scratch = NULL;
}

void chunk_write(unsigned char *dst, uint32_t dim, const chunk_view *old, uint32_t old_count,
                 const float *vecs, const float *norms, const uint64_t *ids, uint32_t n_new)
{
	uint32_t count = old_count + n_new;
	size_t row = (size_t)dim * 4;
	rec_stamp(dst, CHUNK_MAGIC);
	le32_put(dst + 8, count);
	le32_put(dst + 12, chunk_cap_for_dim(dim));
	unsigned char *pv = dst + CHUNK_HEADER;
	unsigned char *pn = pv + (size_t)count * row;
	unsigned char *pi = pn + (size_t)count * 4;
	if (old_count) {
		memcpy(pv, old->vecs, old_count * row);
		memcpy(pn, old->norms, (size_t)old_count * 4);
		memcpy(pi, old->ids, (size_t)old_count * 8);
	}
	memcpy(pv + old_count * row, vecs, n_new * row);
	memcpy(pn + (size_t)old_count * 4, norms, (size_t)n_new * 4);
	for (uint32_t i = 0; i < n_new; i++)
		le64_put(pi + (size_t)(old_count + i) * 8, ids[i]);
}

int seg_count(MDB_txn *txn, MDB_dbi vec_dbi, uint32_t cap, uint64_t *out)
{
	MDB_stat ms;
	int rc = mdb_stat(txn, vec_dbi, &ms);
	if (rc != 0)
		return status_from_mdb(rc, "vector chunks");
	uint64_t per = SEGMENT_ROWS / cap; /* cap is a power of two of at most 65,536 */
	*out = (ms.ms_entries + per - 1) / per;
	return OMEN_OK;
}

int tomb_load(const void *bytes, size_t len, uint32_t cap, uint64_t *words)
{
	const unsigned char *p = bytes;
	if (len != tomb_bytes(cap) || !rec_check(p, len, TOMB_MAGIC, TOMB_HEADER))
		return status_set(OMEN_ECORRUPT, "tombstone record is corrupt");
	size_t nw = ((size_t)cap + 63) / 64;
	for (size_t i = 0; i < nw; i++)
		words[i] = le64_get(p + TOMB_HEADER + i * 8);
	return OMEN_OK;
}

void tomb_store(unsigned char *dst, uint32_t cap, const uint64_t *words)
{
	rec_stamp(dst, TOMB_MAGIC);
	size_t nw = ((size_t)cap + 63) / 64;
	for (size_t i = 0; i < nw; i++)
		le64_put(dst + TOMB_HEADER + i * 8, words[i]);
}

int meta_rec_body(const void *bytes, size_t len, const unsigned char **mp, size_t *mp_len)
{
	if (len <= META_HEADER || !rec_check(bytes, len, META_MAGIC, META_HEADER))
		return status_set(OMEN_ECORRUPT, "metadata record is corrupt");
	*mp = (const unsigned char *)bytes + META_HEADER;
	*mp_len = len - META_HEADER;
	return OMEN_OK;
}

void meta_rec_header(unsigned char *dst)
{
	rec_stamp(dst, META_MAGIC);
}
