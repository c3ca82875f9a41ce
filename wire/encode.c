/*
 * Encoding of wire requests and replies (wire.h, docs/WIRE.md): one msgpack map each.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "base/base.h"
#include "wire/codec.h"
#include "wire/wire.h"

/* ---- encoding ---- */

/* An encoding pass: the first pass only counts the fields of a map, the second packs them. */
typedef struct enc {
	msgpack_packer pk;
	bool counting;
	uint32_t count;
	bool failed;
} enc;

static void ok(enc *e, int rc)
{
	if (rc != 0)
		e->failed = true;
}

/* Counts a field, or packs its key. True when the caller must pack the value. */
static bool field(enc *e, const char *key)
{
	if (e->counting) {
		e->count++;
		return false;
	}
	ok(e, msgpack_pack_str_with_body(&e->pk, key, strlen(key)));
	return true;
}

static void put_uint(enc *e, const char *key, uint64_t v)
{
	if (v && field(e, key))
		ok(e, msgpack_pack_uint64(&e->pk, v));
}

static void put_bool(enc *e, const char *key, int v)
{
	if (v && field(e, key))
		ok(e, msgpack_pack_true(&e->pk));
}

static void put_str(enc *e, const char *key, const char *s)
{
	if (s && field(e, key))
		ok(e, msgpack_pack_str_with_body(&e->pk, s, strlen(s)));
}

/* Packs count values of width bytes as a bin of little-endian values; nothing when empty. */
static void put_bin(enc *e, const char *key, const void *p, uint64_t count, size_t width)
{
	size_t bytes = (size_t)(count * width);
	if (!p || bytes == 0 || !field(e, key))
		return;
	ok(e, msgpack_pack_bin(&e->pk, bytes));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	void *tmp = mem_alloc(bytes);
	if (!tmp) {
		e->failed = true;
		return;
	}
	memcpy(tmp, p, bytes);
	wire_swap_le(tmp, count, width);
	ok(e, msgpack_pack_bin_body(&e->pk, tmp, bytes));
	mem_free(tmp);
#else
	ok(e, msgpack_pack_bin_body(&e->pk, p, bytes));
#endif
}

/* Packs n strings (NULL entries as nil) as an array; nothing when empty. */
static void put_strs(enc *e, const char *key, char *const *v, uint64_t n)
{
	if (!v || n == 0 || !field(e, key))
		return;
	ok(e, msgpack_pack_array(&e->pk, (size_t)n));
	for (uint64_t i = 0; i < n; i++)
		if (v[i])
			ok(e, msgpack_pack_str_with_body(&e->pk, v[i], strlen(v[i])));
		else
			ok(e, msgpack_pack_nil(&e->pk));
}

typedef void (*emit_fn)(enc *e, const void *msg);

/* Packs a nested map whose fields emit writes. */
static void put_map(enc *e, const char *key, emit_fn emit, const void *arg)
{
	if (!field(e, key))
		return;
	enc sub = {.counting = true};
	emit(&sub, arg);
	ok(e, msgpack_pack_map(&e->pk, sub.count));
	emit(e, arg);
}

static void emit_req(enc *e, const void *msg)
{
	const wire_req *r = msg;
	const char *const *K = req_keys;
	put_uint(e, K[RQ_V], WIRE_VERSION);
	put_str(e, K[RQ_OP], op_names[r->op]);
	put_str(e, K[RQ_TOKEN], r->token);
	put_uint(e, K[RQ_EPOCH], r->epoch);
	if (r->shard != -1 && field(e, K[RQ_SHARD]))
		ok(e, msgpack_pack_int32(&e->pk, r->shard));
	put_str(e, K[RQ_NAME], r->name[0] ? r->name : NULL);
	put_uint(e, K[RQ_DIM], r->dim);
	put_uint(e, K[RQ_METRIC], (uint64_t)r->metric);
	put_uint(e, K[RQ_NSHARDS], r->nshards);
	put_uint(e, K[RQ_N], r->n);
	put_bin(e, K[RQ_IDS], r->ids, r->n, 8);
	put_bin(e, K[RQ_VEC], r->vectors, r->n * r->dim, 4);
	put_strs(e, K[RQ_META], r->meta, r->n);
	put_uint(e, K[RQ_K], r->k);
	put_uint(e, K[RQ_EF], r->ef);
	put_bool(e, K[RQ_EXACT], r->exact);
	put_bool(e, K[RQ_PARTIAL], r->partial);
	put_uint(e, K[RQ_DEADLINE], r->deadline_ms);
	put_str(e, K[RQ_FILTER], r->filter);
	put_uint(e, K[RQ_ITYPE], (uint64_t)r->index_type);
	put_uint(e, K[RQ_M], r->m);
	put_uint(e, K[RQ_EFC], r->ef_construction);
	put_bool(e, K[RQ_INT8], r->int8);
	put_uint(e, K[RQ_NLIST], r->nlist);
	put_uint(e, K[RQ_BITS], r->bits);
	put_uint(e, K[RQ_RAM], r->ram_budget);
	put_uint(e, K[RQ_NPROBE], r->nprobe);
	put_uint(e, K[RQ_START], r->start);
	put_uint(e, K[RQ_MODE], r->mode);
	put_uint(e, K[RQ_NODE], r->node);
	put_str(e, K[RQ_ADDR], r->addr);
	put_uint(e, K[RQ_REPLICAS], r->replicas);
	put_strs(e, K[RQ_COPIES], r->copies, r->ncopies);
}

static void emit_stats(enc *e, const void *msg)
{
	const omen_collection_stats *s = msg;
	const char *const *K = stats_keys;
	put_str(e, K[CS_NAME], s->name[0] ? s->name : NULL);
	put_uint(e, K[CS_DIM], s->dim);
	put_uint(e, K[CS_METRIC], (uint64_t)s->metric);
	put_uint(e, K[CS_POINTS], s->points);
	put_uint(e, K[CS_DELETED], s->deleted);
	put_uint(e, K[CS_NEXT_ID], s->next_id);
	put_uint(e, K[CS_SEGMENTS], s->segments);
	put_uint(e, K[CS_VBYTES], s->vector_bytes);
	put_str(e, K[CS_INDEX], s->index);
	put_uint(e, K[CS_INDEXED], s->indexed);
	put_uint(e, K[CS_IBYTES], s->index_bytes);
	put_uint(e, K[CS_M], s->hnsw_m);
	put_uint(e, K[CS_EFC], s->hnsw_ef_construction);
	put_bool(e, K[CS_INT8], s->hnsw_int8);
	put_uint(e, K[CS_NLIST], s->ivf_nlist);
	put_uint(e, K[CS_NPROBE], s->ivf_nprobe);
	put_uint(e, K[CS_BITS], s->ivf_bits);
	put_uint(e, K[CS_REPLICAS], s->replicas);
	put_uint(e, K[CS_STALE], s->copies_stale);
}

static void emit_dbstats(enc *e, const void *msg)
{
	const omen_db_stats *s = msg;
	put_uint(e, dbstats_keys[DS_COLLS], s->collections);
	put_uint(e, dbstats_keys[DS_FBYTES], s->file_bytes);
	put_uint(e, dbstats_keys[DS_MBYTES], s->map_bytes);
}

static void emit_rep(enc *e, const void *msg)
{
	const wire_rep *r = msg;
	const char *const *K = rep_keys;
	put_uint(e, K[RP_V], WIRE_VERSION);
	put_uint(e, K[RP_ST], (uint64_t)r->status);
	put_str(e, K[RP_MSG], r->message);
	put_uint(e, K[RP_N], r->n);
	put_uint(e, K[RP_K], r->k);
	put_uint(e, K[RP_DIM], r->dim);
	put_bin(e, K[RP_IDS], r->ids, r->n * (r->k ? r->k : 1), 8);
	put_bin(e, K[RP_DISTS], r->dists, r->n * r->k, 4);
	put_bin(e, K[RP_FOUND], r->found, r->n, 1);
	put_bin(e, K[RP_VEC], r->vectors, r->n * r->dim, 4);
	put_strs(e, K[RP_META], r->meta, r->n);
	put_uint(e, K[RP_COUNT], r->count);
	put_uint(e, K[RP_SHT], r->shards_total);
	put_uint(e, K[RP_SHA], r->shards_answered);
	put_uint(e, K[RP_FAILED], r->failed);
	put_strs(e, K[RP_NAMES], r->names, r->nnames);
	put_str(e, K[RP_REPORT], r->report);
	if (r->has_stats)
		put_map(e, K[RP_STATS], emit_stats, &r->stats);
	if (r->has_dbstats)
		put_map(e, K[RP_DBSTATS], emit_dbstats, &r->dbstats);
}

/* Packs the map that emit describes into a malloc'd buffer. OMEN_OK or OMEN_ENOMEM. */
static int encode(emit_fn emit, const void *msg, void **out, size_t *len)
{
	msgpack_sbuffer sb;
	enc e = {.counting = true};
	emit(&e, msg);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&e.pk, &sb, msgpack_sbuffer_write);
	e.counting = false;
	ok(&e, msgpack_pack_map(&e.pk, e.count));
	if (!e.failed)
		emit(&e, msg);
	if (e.failed) {
		msgpack_sbuffer_destroy(&sb);
		return OMEN_ENOMEM;
	}
	*len = sb.size;
	*out = msgpack_sbuffer_release(&sb);
	return OMEN_OK;
}

int wire_req_encode(const wire_req *r, void **out, size_t *len)
{
	if (!r || !out || !len || wire_req_check(r, NULL) != OMEN_OK)
		return OMEN_EINVAL;
	return encode(emit_req, r, out, len);
}

int wire_rep_encode(const wire_rep *r, void **out, size_t *len)
{
	if (!r || !out || !len || wire_rep_check(r, NULL) != OMEN_OK)
		return OMEN_EINVAL;
	return encode(emit_rep, r, out, len);
}
