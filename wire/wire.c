/*
 * The wire protocol codec (wire.h): every request and every reply is one msgpack map of short
 * string keys, listed in docs/WIRE.md. Decoding runs a bounded structural pre-scan over the raw
 * bytes before msgpack-c sees them, because msgpack-c allocates by the container sizes a message
 * declares; after unpacking, every field is checked for type, range and size.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "base/base.h"
#include "wire/codec.h"
#include "wire/wire.h"

const char *wire_op_name(wire_op op)
{
	return (unsigned)op < WIRE_OP_COUNT ? op_names[op] : NULL;
}

void wire_req_init(wire_req *r)
{
	memset(r, 0, sizeof *r);
	r->shard = -1;
}

void wire_rep_init(wire_rep *r)
{
	memset(r, 0, sizeof *r);
}

void wire_free_strs(char **v, uint64_t n)
{
	if (!v)
		return;
	for (uint64_t i = 0; i < n; i++)
		mem_free(v[i]);
	mem_free(v);
}

void wire_req_free(wire_req *r)
{
	if (!r)
		return;
	mem_free(r->token);
	mem_free(r->ids);
	mem_free(r->vectors);
	wire_free_strs(r->meta, r->n);
	mem_free(r->filter);
	mem_free(r->addr);
	wire_free_strs(r->copies, r->ncopies);
	wire_req_init(r);
}

void wire_rep_free(wire_rep *r)
{
	if (!r)
		return;
	mem_free(r->message);
	mem_free(r->ids);
	mem_free(r->dists);
	mem_free(r->found);
	mem_free(r->vectors);
	wire_free_strs(r->meta, r->n);
	wire_free_strs(r->names, r->nnames);
	mem_free(r->report);
	wire_rep_init(r);
}

/* ---- shared checks (the encoder refuses what the decoder would refuse) ---- */

/* True when the fixed-size name field holds "" or a valid name. */
bool wire_name_field_ok(const char *name)
{
	size_t len = strnlen(name, OMEN_MAX_NAME + 1);
	return len == 0 || name_valid(name, len);
}

bool wire_too_long(const char *s)
{
	return s && strnlen(s, WIRE_MAX_STRING + 1) > WIRE_MAX_STRING;
}

bool wire_strs_too_long(char *const *v, uint64_t n)
{
	for (uint64_t i = 0; v && i < n; i++)
		if (wire_too_long(v[i]))
			return true;
	return false;
}

/* True when count values of width bytes fit one msgpack bin (32-bit length). */
bool wire_bin_fits(uint64_t count, uint64_t width)
{
	uint64_t bytes;
	return !__builtin_mul_overflow(count, width, &bytes) && bytes <= UINT32_MAX;
}

static int req_check_needs(const wire_req *r, char *err)
{
	unsigned need = op_needs[r->op];
	const char *op = op_names[r->op];
	if ((need & NEED_NAME) && !r->name[0])
		return fail(err, OMEN_EPROTO, "%s: 'name' missing", op);
	if ((need & NEED_N) && r->n == 0)
		return fail(err, OMEN_EPROTO, "%s: 'n' must be 1..%d", op, OMEN_MAX_BATCH);
	if ((need & NEED_DIM) && r->dim == 0)
		return fail(err, OMEN_EPROTO, "%s: 'dim' must be 1..%d", op, OMEN_MAX_DIM);
	if ((need & NEED_K) && r->k == 0)
		return fail(err, OMEN_EPROTO, "%s: 'k' must be 1..%d", op, OMEN_MAX_K);
	if ((need & NEED_IDS) && !r->ids)
		return fail(err, OMEN_EPROTO, "%s: 'ids' missing", op);
	if ((need & NEED_VEC) && !r->vectors)
		return fail(err, OMEN_EPROTO, "%s: 'vec' missing", op);
	if ((need & NEED_ADDR) && (!r->addr || !r->addr[0] || r->node == 0))
		return fail(err, OMEN_EPROTO, "%s: 'node' and 'addr' required", op);
	return OMEN_OK;
}

/* Checks a request's ranges and what its op requires. OMEN_OK or OMEN_EPROTO with a reason. */
int wire_req_check(const wire_req *r, char *err)
{
	if ((unsigned)r->op >= WIRE_OP_COUNT)
		return fail(err, OMEN_EPROTO, "op %d out of range", (int)r->op);
	if (r->shard < -1 || r->shard >= WIRE_MAX_SHARDS)
		return fail(err, OMEN_EPROTO, "'shard' %d out of range", (int)r->shard);
	if (!wire_name_field_ok(r->name))
		return fail(err, OMEN_EPROTO, "'name' is not 1..%d bytes of [A-Za-z0-9_.-]",
		            OMEN_MAX_NAME);
	if (r->n > OMEN_MAX_BATCH || r->dim > OMEN_MAX_DIM || r->k > OMEN_MAX_K ||
	    r->nshards > WIRE_MAX_SHARDS)
		return fail(err, OMEN_EPROTO, "'n', 'dim', 'k' or 'nshards' beyond its limit");
	if (r->mode >= FENCE_MODES || (r->op == WIRE_IDS && r->mode > WIRE_IDS_TRACKED) ||
	    (r->op == WIRE_BUILD && r->mode > WIRE_BUILD_BACKGROUND))
		return fail(err, OMEN_EPROTO, "'mode' %u out of range", r->mode);
	if (r->addr && strnlen(r->addr, WIRE_MAX_ADDR + 1) > WIRE_MAX_ADDR)
		return fail(err, OMEN_EPROTO, "'addr' is longer than %d bytes", WIRE_MAX_ADDR);
	if (r->replicas > WIRE_MAX_REPLICAS || r->ncopies > WIRE_MAX_REPLICAS - 1 ||
	    (r->ncopies && !r->copies))
		return fail(err, OMEN_EPROTO, "'replicas' or 'copies' beyond its limit");
	for (uint32_t i = 0; i < r->ncopies; i++)
		if (!r->copies[i] || !r->copies[i][0] ||
		    strnlen(r->copies[i], WIRE_MAX_ADDR + 1) > WIRE_MAX_ADDR)
			return fail(err, OMEN_EPROTO, "'copies'[%u] is not a URL of 1..%d bytes", i,
			            WIRE_MAX_ADDR);
	if (wire_too_long(r->token) || wire_too_long(r->filter) ||
	    wire_strs_too_long(r->meta, r->n))
		return fail(err, OMEN_EPROTO, "a string is longer than %u bytes", WIRE_MAX_STRING);
	if ((unsigned)r->metric > OMEN_METRIC_COSINE || (unsigned)r->index_type > OMEN_INDEX_IVF)
		return fail(err, OMEN_EPROTO, "'metric' or 'itype' out of range");
	if (r->nlist > OMEN_IVF_NLIST_MAX || r->nprobe > OMEN_IVF_NLIST_MAX ||
	    r->bits > OMEN_IVF_BITS_MAX)
		return fail(err, OMEN_EPROTO, "'nlist', 'nprobe' or 'bits' beyond its limit");
	if (!wire_bin_fits(r->n * r->dim, 4))
		return fail(err, OMEN_EPROTO, "'vec' exceeds 4 GiB");
	return req_check_needs(r, err);
}

int wire_stats_check(const omen_collection_stats *s, char *err)
{
	if (!wire_name_field_ok(s->name) || s->dim > OMEN_MAX_DIM ||
	    (unsigned)s->metric > OMEN_METRIC_COSINE)
		return fail(err, OMEN_EPROTO, "'stats': bad name, dim or metric");
	if (s->index && strnlen(s->index, MAX_INDEX_NAME + 1) > MAX_INDEX_NAME)
		return fail(err, OMEN_EPROTO, "'stats': index name too long");
	if (s->ivf_nlist > OMEN_IVF_NLIST_MAX || s->ivf_nprobe > OMEN_IVF_NLIST_MAX ||
	    s->ivf_bits > OMEN_IVF_BITS_MAX)
		return fail(err, OMEN_EPROTO, "'stats': nlist, nprobe or bits beyond its limit");
	return OMEN_OK;
}

static int rep_check_arrays(const wire_rep *r, char *err)
{
	if (r->n > OMEN_MAX_BATCH || r->k > OMEN_MAX_K || r->dim > OMEN_MAX_DIM ||
	    r->nnames > OMEN_MAX_BATCH)
		return fail(err, OMEN_EPROTO, "'n', 'k', 'dim' or 'names' beyond its limit");
	if (!wire_bin_fits(r->n * (r->k ? r->k : 1), 8) || !wire_bin_fits(r->n * r->dim, 4))
		return fail(err, OMEN_EPROTO, "'ids', 'dists' or 'vec' exceeds 4 GiB");
	if (r->nnames && !r->names)
		return fail(err, OMEN_EPROTO, "'names' missing");
	for (uint64_t i = 0; i < r->nnames; i++)
		if (!r->names[i] ||
		    !name_valid(r->names[i], strnlen(r->names[i], OMEN_MAX_NAME + 1)))
			return fail(err, OMEN_EPROTO, "'names'[%llu] is not a collection name",
			            (ull)i);
	for (uint64_t i = 0; r->found && i < r->n; i++)
		if (r->found[i] > 1)
			return fail(err, OMEN_EPROTO, "'found' holds a value other than 0 or 1");
	return OMEN_OK;
}

/* Checks a reply's ranges. OMEN_OK or OMEN_EPROTO with a reason. */
int wire_rep_check(const wire_rep *r, char *err)
{
	if (r->status < 0)
		return fail(err, OMEN_EPROTO, "'st' %d is negative", r->status);
	TRY(rep_check_arrays(r, err));
	if (wire_too_long(r->message) || wire_too_long(r->report) ||
	    wire_strs_too_long(r->meta, r->n))
		return fail(err, OMEN_EPROTO, "a string is longer than %u bytes", WIRE_MAX_STRING);
	return r->has_stats ? wire_stats_check(&r->stats, err) : OMEN_OK;
}

/* ---- little-endian arrays ---- */

/* Converts count values of width bytes between little-endian and host order, in place. */
void wire_swap_le(void *p, uint64_t count, size_t width)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	uint8_t *b = p;
	for (uint64_t i = 0; i < count; i++, b += width)
		for (size_t j = 0; j < width / 2; j++) {
			uint8_t t = b[j];
			b[j] = b[width - 1 - j];
			b[width - 1 - j] = t;
		}
#else
	(void)p;
	(void)count;
	(void)width;
#endif
}
