/*
 * The IVF index's integrity check (omen_check, omendb check): centroids and rotation finite,
 * the rotation orthonormal, every block well formed and numbered in order, every live point in
 * exactly one list, and every code equal to the one its float vector encodes to now (so that
 * its estimate and error bound are the ones the search relies on; a multi-bit code's lower
 * planes must reconstruct its vector as closely as a new encoding's, and its factors must be
 * those of its planes). It reports the first
 * problems in words and answers OMEN_ECORRUPT when it finds any.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ivf.h"

#define CHECK_BATCH 4096 /* codes re-encoded at a time */

typedef struct check_ctx {
	const snapshot *s;
	const ivf_index *ix;
	check_report r;
	uint8_t *seen; /* per row: found in a list */
	uint64_t codes, blocks;
	/* codes waiting to be compared with their re-encoding */
	ivf_code *want;
	uint8_t *want_bits;
	size_t pending;
} check_ctx;

static bool finite_all(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return false;
	return true;
}

static void check_parts(check_ctx *x)
{
	const ivf_index *ix = x->ix;
	uint32_t dim = ix->dim;
	if (!finite_all(ix->centroids, (size_t)ix->nlist * dim) ||
	    !finite_all(ix->rcent, (size_t)ix->nlist * dim) ||
	    !finite_all(ix->rot, (size_t)dim * dim)) {
		report_problem(&x->r);
		report_say(&x->r, "centroids or rotation hold a value that is not finite\n");
		return;
	}
	uint32_t rows = dim < 64 ? dim : 64; /* each against every row: enough to catch damage */
	for (uint32_t a = 0; a < rows; a++)
		for (uint32_t b = 0; b < dim; b++) {
			float dot = x->s->dk->dot(ix->rot + (size_t)a * dim,
			                          ix->rot + (size_t)b * dim, dim);
			if (fabsf(dot - (a == b)) > 1e-3f && report_problem(&x->r))
				report_say(&x->r, "rotation rows %u and %u: dot product %g\n", a, b,
				           dot);
		}
}

/* True when two codes' sign bits agree but where the rotated residual rot is within
 * rounding of zero (a rotation computed in another batch may flip such a sign). */
static bool same_bits(const ivf_index *ix, const uint8_t *a, const uint8_t *b, const float *rot,
                      float n2)
{
	float tiny = 1e-4f * sqrtf(n2);
	for (uint32_t d = 0; d < ix->dim; d++)
		if (((a[d / 8] ^ b[d / 8]) >> (d % 8) & 1) && fabsf(rot[d]) > tiny)
			return false;
	return true;
}

/* The cosine between the multi-bit code in planes (ivf_code_size bytes) and rotated residual
 * rr of norm |r| = norm, and the reconstruction's norm in *yn. */
static double ex_cosine(const ivf_index *ix, const uint8_t *planes, const float *rr, double norm,
                        double *yn)
{
	size_t cb = ivf_code_bits(ix->dpad);
	double ip = 0, n2 = 0, mid = 0.5 * (double)((1u << ix->bits) - 1);
	for (uint32_t d = 0; d < ix->dim; d++) {
		uint32_t u = 0;
		for (uint32_t p = 0; p < ix->bits; p++)
			u = u << 1 | (planes[p * cb + d / 8] >> (d % 8) & 1);
		double y = u - mid;
		ip += y * rr[d];
		n2 += y * y;
	}
	*yn = sqrt(n2);
	return ip / (*yn * norm);
}

static bool near(float a, float b)
{
	return fabsf(a - b) <= 1e-3f * (1 + fabsf(b)) || (isinf(a) && isinf(b));
}

/* A multi-bit code w (planes a) against a new encoding g (planes b) of rotated residual rr. */
static bool same_ex(const ivf_index *ix, const ivf_code *w, const uint8_t *a, const ivf_code *g,
                    const uint8_t *b, const float *rr)
{
	double norm = sqrt(g->fa), yw, yg;
	if (ix->bits == 1 || g->fb2 == 0)
		return w->fb2 == 0 && w->fe2 == 0;
	double xw = ex_cosine(ix, a, rr, norm, &yw), xg = ex_cosine(ix, b, rr, norm, &yg);
	xw = xw > 1 ? 1 : xw;
	double fe2 = ix->dim > 1
	                 ? 2 * norm * sqrt(1 - xw * xw) / xw * IVF_EPS0 / sqrt((double)ix->dim - 1)
	                 : INFINITY;
	return xw >= xg - 1e-3 && near(w->fb2, (float)(-2 * norm / (xw * yw))) &&
	       near(w->fe2, (float)fe2);
}

/* Re-encodes the pending codes from their float vectors and compares. */
static void compare_pending(check_ctx *x)
{
	const ivf_index *ix = x->ix;
	size_t n = x->pending, cb = ivf_code_size(ix);
	ivf_code *got = mem_alloc(n * sizeof *got);
	uint8_t *bits = mem_alloc(n * cb);
	float *v = mem_alloc(n * ix->dim * sizeof *v), *tmp = mem_alloc(2 * n * ix->dim * 4);
	if (!got || !bits || !v || !tmp) {
		x->r.errors++;
		report_say(&x->r, "out of memory re-encoding codes\n");
	}
	for (size_t i = 0; got && bits && v && tmp && i < n; i++) {
		got[i] = x->want[i];
		memcpy(v + i * ix->dim, snap_vec(x->s, x->want[i].row), ix->dim * sizeof *v);
	}
	if (got && bits && v && tmp)
		ivf_encode(ix, v, n, got, bits, tmp);
	for (size_t i = 0; got && bits && v && tmp && i < n; i++) {
		const ivf_code *w = &x->want[i], *g = &got[i];
		bool same = same_bits(ix, bits + i * cb, x->want_bits + i * cb,
		                      tmp + (n + i) * ix->dim, g->fa) &&
		            near(w->fa, g->fa) && near(w->fb, g->fb) && near(w->fe, g->fe) &&
		            same_ex(ix, w, x->want_bits + i * cb, g, bits + i * cb,
		                    tmp + (n + i) * ix->dim);
		if (!same && report_problem(&x->r))
			report_say(&x->r, "row %u in list %u: its code differs from its vector's\n",
			           w->row, w->list);
	}
	mem_free(got), mem_free(bits), mem_free(v), mem_free(tmp);
	x->pending = 0;
}

/* Reads code i of block b of list into the pending batch. */
static void take_code(check_ctx *x, uint32_t list, const ivf_block *b, uint32_t i)
{
	const ivf_index *ix = x->ix;
	size_t cb = ivf_code_bits(ix->dpad);
	ivf_code *w = &x->want[x->pending];
	uint8_t *bits = x->want_bits + x->pending * ivf_code_size(ix);
	memset(bits, 0, ivf_code_size(ix));
	for (uint32_t p = 0; p < ix->bits; p++)
		for (uint32_t g = 0; g < ix->dpad / 4; g++) {
			const unsigned char *plane =
			    p ? b->ex + (p - 1) * ivf_codes_bytes(ix->dpad) : b->codes;
			unsigned char byte = plane[16 * g + (i & 15)];
			unsigned nib = i < 16 ? byte & 15 : byte >> 4;
			bits[p * cb + g / 2] |= (uint8_t)(nib << (4 * (g % 2)));
		}
	w->fb2 = w->fe2 = 0;
	if (b->fb2) {
		memcpy(&w->fb2, b->fb2 + 4 * i, 4);
		memcpy(&w->fe2, b->fe2 + 4 * i, 4);
	}
	memcpy(&w->fa, b->fa + 4 * i, 4);
	memcpy(&w->fb, b->fb + 4 * i, 4);
	memcpy(&w->fe, b->fe + 4 * i, 4);
	w->pc = le16_get(b->pc + 2 * i);
	w->row = le32_get(b->rows + 4 * i);
	w->list = list;
	if (++x->pending == CHECK_BATCH)
		compare_pending(x);
}

/* Checks block b, the idx-th of its list in key order (the last of it when last), and its
 * codes. */
static void check_block(check_ctx *x, uint32_t list, uint32_t number, uint32_t idx,
                        const ivf_block *b, bool last)
{
	x->blocks++;
	if ((number != idx || (!last && b->count != IVF_BLOCK)) && report_problem(&x->r))
		report_say(&x->r, "list %u: block %u is the list's block %u%s\n", list, number, idx,
		           last ? "" : " and not full");
	for (uint32_t i = 0; i < b->count; i++) {
		uint32_t row = le32_get(b->rows + 4 * i);
		x->codes++;
		if (row >= x->s->rec.rows) {
			if (report_problem(&x->r))
				report_say(&x->r, "list %u: row %u beyond the %llu rows\n", list,
				           row, (unsigned long long)x->s->rec.rows);
			continue;
		}
		if (x->seen[row]++ && report_problem(&x->r))
			report_say(&x->r, "row %u is in more than one list\n", row);
		take_code(x, list, b, i);
	}
}

/* Walks every list block in key order; a block is checked once the next one tells whether it
 * was the last of its list. */
static int check_lists(eng_coll *c, MDB_txn *txn, check_ctx *x)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, c->graph_dbi, &cur);
	if (rc)
		return status_from_mdb(rc, "index");
	unsigned char kb[9];
	ivf_block_key(kb, 0, 0);
	MDB_val k = {9, kb}, v;
	ivf_block b, prev = {0};
	uint32_t prev_list = 0, prev_number = 0, prev_idx = 0;
	bool have_prev = false;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const unsigned char *kp = k.mv_data;
		if (k.mv_size != 9 || kp[0] != IVF_TAG_LIST)
			break;
		uint32_t l = be32_get(kp + 1), number = be32_get(kp + 5);
		if (l >= x->ix->nlist ||
		    !ivf_block_view(v.mv_data, v.mv_size, x->ix->dpad, x->ix->bits, &b)) {
			if (report_problem(&x->r))
				report_say(&x->r, "list %u block %u: malformed\n", l, number);
			continue;
		}
		uint32_t idx = have_prev && l == prev_list ? prev_idx + 1 : 0;
		if (have_prev)
			check_block(x, prev_list, prev_number, prev_idx, &prev, l != prev_list);
		prev = b, prev_list = l, prev_number = number, prev_idx = idx, have_prev = true;
	}
	if (have_prev)
		check_block(x, prev_list, prev_number, prev_idx, &prev, true);
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? OMEN_OK : status_from_mdb(rc, "index");
}

static int check_in(eng_coll *c, MDB_txn *txn, check_ctx *x)
{
	snapshot s;
	ivf_index ix;
	int st = snap_open(c, txn, NULL, &s);
	if (st != OMEN_OK)
		return st;
	st = ivf_map(c, txn, &ix);
	if (st != OMEN_OK) {
		snap_close(&s);
		return st;
	}
	x->s = &s;
	x->ix = &ix;
	size_t cb = ivf_code_size(&ix);
	x->seen = mem_calloc(s.rec.rows ? s.rec.rows : 1, 1);
	x->want = mem_alloc(CHECK_BATCH * sizeof *x->want);
	x->want_bits = mem_alloc(CHECK_BATCH * cb);
	if (!x->seen || !x->want || !x->want_bits)
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK) {
		check_parts(x);
		st = check_lists(c, txn, x);
	}
	if (st == OMEN_OK && x->pending)
		compare_pending(x);
	uint64_t missing = 0;
	for (uint64_t r = 0; st == OMEN_OK && r < s.rec.rows; r++)
		if (!x->seen[r] && !snap_tomb(&s, r)) {
			missing++;
			if (report_problem(&x->r))
				report_say(&x->r, "live row %llu is in no list\n",
				           (unsigned long long)r);
		}
	if (st == OMEN_OK)
		report_say(
		    &x->r,
		    "ivf: %u lists, nprobe %u (recall %.3f at calibration), %llu codes in %llu "
		    "blocks, %llu live rows in no list\n",
		    ix.nlist, ix.nprobe, ix.recall, (unsigned long long)x->codes,
		    (unsigned long long)x->blocks, (unsigned long long)missing);
	mem_free(x->seen), mem_free(x->want), mem_free(x->want_bits);
	ivf_unmap(&ix);
	snap_close(&s);
	return st;
}

int ivf_check(eng_coll *c, char **report)
{
	check_ctx x = {0};
	MDB_txn *txn;
	int st = store_read_begin(c->db->st, &txn);
	if (st != OMEN_OK)
		return st;
	st = check_in(c, txn, &x);
	store_read_end(c->db->st, txn);
	return report_finish(c, &x.r, st, report);
}
