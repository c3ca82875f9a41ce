/*
 * The IVF index's internal header, shared by engine/ivf_*.c and by nothing else (engine.h
 * declares what the rest of the engine calls). An inverted-file index: k-means centroids
 * split the collection into nlist lists, and each point is stored in its list as a RaBitQ code
 * (J. Gao and C. Long, "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical Error
 * Bound for Approximate Nearest Neighbor Search", SIGMOD 2024): its residual to the centroid,
 * randomly rotated, kept as one sign bit per dimension and three factors. A search estimates
 * distances from the codes with SIMD table look-ups (FastScan: blocks of 32 codes), and the
 * estimator's error bound decides which candidates are re-ranked with their float vector from
 * the collection's chunks. docs/IVF.md explains the method and its parameters.
 *
 * Persisted layout, in the collection's index sub-database (c<ID>.g, shared with HNSW: a
 * collection has one index at a time; docs/FORMAT.md). Integers little-endian; keys are a
 * one-byte tag, and for list blocks the list and block numbers as u32 big-endian. Every record
 * starts with base's 8-byte record header (magic, u16 REC_VERSION, u16 zero).
 *
 *   key "I", magic OMIV, 64 bytes (IVF_HDR_SIZE):
 *     off size field
 *       0    8 record header
 *       8    4 dim
 *      12    4 nlist
 *      16    4 bits per dimension of the codes (1..OMEN_IVF_BITS_MAX)
 *      20    4 nprobe: the default, calibrated by the build (docs/IVF.md)
 *      24    4 padded dimensions: dim rounded up to a multiple of 8 (two 4-dim groups)
 *      28    4 flags (0; any bit set: OMEN_EVERSION)
 *      32    8 seed of the random rotation
 *      40    8 rows assigned by the build (later rows are assigned as they are written)
 *      48    4 recall the calibration measured at nprobe, f32
 *      52   12 reserved, zero
 *
 *   key "C", magic OMIC: 8 + 4 nlist dim bytes: the record header, then the centroids, nlist x
 *   dim f32 row-major (in the collection's space: unit vectors' space for cosine).
 *
 *   key "R", magic OMIR: 8 + 4 dim dim + 4 nlist dim bytes: the record header, the rotation R
 *   (dim x dim f32, orthogonal, row-major: a rotated vector is R x), then the rotated centroids
 *   R c (nlist x dim f32).
 *
 *   key "L" + list + block, magic OMIL: one block of at most 32 codes of a list, B bits per
 *   dimension (the header's bits), G = padded dim / 4:
 *     off                 size        field
 *       0                 16          record header; count of codes at 8 (u32, 1..32); 12..15
 *                                     zero
 *      16                 16 G B      B planes of codes, FastScan layout: plane p holds bit
 *                                     B - 1 - p of each dimension's code u (plane 0: the sign);
 *                                     for each group g of 4 rotated dimensions, 16 bytes; byte
 *                                     j holds the 4 bits of code j in its low nibble and those
 *                                     of code j + 16 in its high nibble (bit i of a nibble:
 *                                     dimension 4 g + i)
 *      16 + 16 G B        4 x 32      fa: |r|^2, f32 (r: the point's residual to its centroid)
 *         ...             4 x 32      fb: -2 |r| / x0, f32 (x0 = <o-bar, o>: the cosine of the
 *                                     point's direction and its 1-bit code's)
 *         ...             4 x 32      fe: 2 |r| sqrt(1 - x0^2) / x0 * eps0 / sqrt(dim - 1), f32
 *         ...             2 x 32      pc: the number of sign bits set, u16
 *         ...             4 x 32      rows, u32
 *     and for B > 1 (extended RaBitQ: u in 0 .. 2^B - 1 reconstructs y = u - (2^B - 1) / 2):
 *         ...             4 x 32      fb2: -2 |r| / (x0' |y|), f32 (x0': the cosine of the
 *                                     point's direction and y)
 *         ...             4 x 32      fe2: 2 |r| sqrt(1 - x0'^2) / x0' * eps0 / sqrt(dim - 1)
 *     Unused slots of a block hold zeros.
 */
#ifndef OMEN_IVF_H
#define OMEN_IVF_H

#include "engine/distance.h"
#include "engine/engine.h"

#define IVF_MAGIC_HDR   "OMIV"
#define IVF_MAGIC_CENT  "OMIC"
#define IVF_MAGIC_ROT   "OMIR"
#define IVF_MAGIC_BLOCK "OMIL"
#define IVF_HDR_SIZE    64
#define IVF_BLOCK       32 /* codes per block: one FastScan register of AVX2 lanes */
#define IVF_BLOCK_HEAD  16 /* the record header and the count */
#define IVF_EPS0                                                                                   \
	2.5f                  /* RaBitQ's confidence parameter: the bound holds with               \
	                         probability about 1 - 2 exp(-c eps0^2) */
#define IVF_EX_GRID        64 /* values of the scale t tried per multi-bit code */
#define IVF_TRAIN_PER_LIST 64 /* k-means sample: this many points per list (at most all) */
#define IVF_SEED_PER_LIST  16 /* k-means++ seeding: over this many points per list */
#define IVF_KMEANS_ITERS   10 /* Lloyd's iterations after the seeding */
#define IVF_TAG_HDR        'I'
#define IVF_TAG_CENT       'C'
#define IVF_TAG_ROT        'R'
#define IVF_TAG_LIST       'L'

/* The index as a search (or an append) reads it, mapped from one transaction: pointers into
 * the map, valid while it lives. */
typedef struct ivf_index {
	uint32_t dim, nlist, bits, nprobe, dpad;
	uint64_t seed, rows_built;
	float recall;           /* measured by the calibration at nprobe */
	const float *centroids; /* nlist x dim */
	const float *rot;       /* dim x dim */
	const float *rcent;     /* nlist x dim: R c */
	uint64_t bytes;         /* persisted size of the header, centroids and rotation */
	void *scratch[2];       /* aligned copies of the centroids and rotation, when the map's
	                           were not aligned for float (ivf_unmap frees them) */
} ivf_index;

/* Byte sizes of a block's parts, for padded dimension dpad and bits planes of codes. */
static inline size_t ivf_codes_bytes(uint32_t dpad) /* one plane of 32 codes */
{
	return (size_t)dpad / 4 * 16;
}
static inline size_t ivf_block_bytes(uint32_t dpad, uint32_t bits)
{
	return IVF_BLOCK_HEAD + bits * ivf_codes_bytes(dpad) + IVF_BLOCK * (4 + 4 + 4 + 2 + 4) +
	       (bits > 1 ? IVF_BLOCK * (4 + 4) : 0);
}

/* A view of one block record (pointers into the map, or into a builder's buffer). Floats and
 * u16s may be unaligned: read them with memcpy or unaligned loads. codes is the sign plane;
 * ex the bits - 1 further planes (each ivf_codes_bytes), fb2 and fe2 their factors (NULL for
 * 1-bit codes). */
typedef struct ivf_block {
	uint32_t count;
	const unsigned char *codes, *fa, *fb, *fe, *pc, *rows, *ex, *fb2, *fe2;
} ivf_block;

/* Validates a block record into *b: false when it is malformed. */
bool ivf_block_view(const void *bytes, size_t len, uint32_t dpad, uint32_t bits, ivf_block *b);

/* The parts of the block image at p, unchecked (for a block being written). */
void ivf_block_at(const unsigned char *p, uint32_t dpad, uint32_t bits, ivf_block *b);

/* The factors of one encoded point; its bits are kept apart (ivf_code_size). fb2 and fe2 are
 * the multi-bit code's (extended RaBitQ), zero for 1-bit codes. */
typedef struct ivf_code {
	float fa, fb, fe, fb2, fe2;
	uint16_t pc;
	uint32_t row, list;
} ivf_code;

/* Bytes of one plane of one point's code: bit d % 8 of byte d / 8 is rotated dimension d's
 * (padded dimensions zero). */
static inline size_t ivf_code_bits(uint32_t dpad)
{
	return (size_t)dpad / 8;
}

/* Bytes of one point's whole code: its bits planes, the sign plane first, then the lower bits
 * of the multi-bit code from the highest. */
static inline size_t ivf_code_size(const struct ivf_index *ix)
{
	return ix->bits * ivf_code_bits(ix->dpad);
}

/* ---- persistence (ivf_persist.c) ---- */

/* Reads the index of collection c in txn into *ix: OMEN_ENOTFOUND (no message) when it has
 * none (or an HNSW index), OMEN_ECORRUPT / OMEN_EVERSION with a message when its records are
 * damaged or newer. */
int ivf_map(eng_coll *c, MDB_txn *txn, ivf_index *ix);

/* Releases what ivf_map allocated. */
void ivf_unmap(ivf_index *ix);

/* Key of a list block. */
void ivf_block_key(unsigned char kb[9], uint32_t list, uint32_t block);

/* Appends n encoded points (codes[i] with bits + i * ivf_code_size) to their lists
 * in txn: the last block of a list is filled first, then new blocks are added. */
int ivf_write_codes(eng_coll *c, MDB_txn *txn, const ivf_index *ix, const ivf_code *codes,
                    const uint8_t *bits, size_t n);

/* Writes a new index in txn, replacing whatever index the collection had: the header (nprobe
 * as given), the centroids, the rotation and the rotated centroids; the lists follow with
 * ivf_write_codes. */
int ivf_write_index(eng_coll *c, MDB_txn *txn, const ivf_index *ix);

/* Sets the header's nprobe and measured recall in txn. */
int ivf_write_nprobe(eng_coll *c, MDB_txn *txn, uint32_t nprobe, float recall);

/* ---- RaBitQ codes (ivf_code.c) ---- */

/* Encodes the points vecs (n x dim) whose lists and rows codes[i].list and .row already hold:
 * the residual to the list's centroid, rotated by R (SGEMM), gives the code's planes (bits,
 * n x ivf_code_size) and the factors. tmp holds 2 n x dim floats. */
void ivf_encode(const ivf_index *ix, const float *vecs, size_t n, ivf_code *codes, uint8_t *bits,
                float *tmp);

/* A query prepared for one list: look-up tables of its 4-bit quantized rotated residual, and
 * the constants that turn a block's integer inner products into distance estimates. */
typedef struct ivf_query {
	uint8_t *lut;     /* dpad / 4 x 16 entries */
	float k1, k2, k3; /* <x-bar, q'> = k1 ip + k2 pc + k3 */
	/* A code's estimated distance, in the collection's metric, is
	 * base + sa fa + sb fb (k1 ip + k2 pc + k3), and its error bound se fe:
	 *   l2:     base |q_r|^2,   sa 1,   sb 1,   se |q_r|
	 *   cosine: the same halved (1 - cos = |q - o|^2 / 2 between unit vectors)
	 *   ip:     base -<c, q>,   sa 0,   sb 1/2, se |q| / 2  (q' is the rotated query) */
	float base, sa, sb, se;
	/* multi-bit codes: per group of 4 dimensions, the float sums of the rotated residual over
	 * each subset (dpad / 4 x 16), and the residual's sum */
	float *ftab;
	float qsum;
} ivf_query;

/* Prepares rotated residual qr (dim floats, the rest of dpad zero) into *q (lut holds
 * dpad / 4 x 16 bytes). seed makes the randomized rounding repeatable. */
void ivf_query_prepare(const ivf_index *ix, const float *qr, uint64_t seed, ivf_query *q);

/* <y, q_r> for code j of block b: y the multi-bit code's reconstruction (levels centred on
 * zero), q_r the residual q->ftab was prepared from. */
float ivf_ex_dot(const ivf_index *ix, const ivf_query *q, const ivf_block *b, uint32_t j);

/* ip[j] = sum over set sign bits of code j of the query's 4-bit value, for the 32 codes of a
 * block (unused slots: anything). */
void ivf_scan_block(const ivf_query *q, const unsigned char *codes, uint32_t dpad,
                    uint16_t ip[IVF_BLOCK]);

/* The 1-bit estimate (est) and error bound (err) of each of the block's 32 codes from their
 * FastScan sums ip (slots past the count: anything). */
void ivf_block_estimates(const ivf_query *q, const ivf_block *b, const uint16_t ip[IVF_BLOCK],
                         float est[IVF_BLOCK], float err[IVF_BLOCK]);

/* The two kernels behind ivf_scan_block (groups = dpad / 4), for tests: the scalar reference
 * and the AVX2 one (only where the CPU has AVX2). */
void ivf_scan_scalar(const uint8_t *lut, const unsigned char *codes, uint32_t groups,
                     uint16_t ip[IVF_BLOCK]);
void ivf_scan_avx2(const uint8_t *lut, const unsigned char *codes, uint32_t groups,
                   uint16_t ip[IVF_BLOCK]);

/* ---- the random rotation and k-means (ivf_train.c) ---- */

/* Fills rot (dim x dim) with a random orthogonal matrix drawn from seed (Gaussian entries,
 * orthonormalised by modified Gram-Schmidt in double). OMEN_ENOMEM on failure. */
int ivf_rotation(uint32_t dim, uint64_t seed, float *rot);

/* k-means over the sample x (n x dim): k-means++ seeding on a subsample, then Lloyd's
 * iterations with SGEMM assignments; centroids (k x dim) receive the result. progress counts
 * sample points processed. */
typedef struct ivf_progress {
	void (*fn)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
	uint64_t done, total, next; /* next: when to call fn again */
} ivf_progress;

int ivf_kmeans(const float *x, size_t n, uint32_t dim, uint32_t k, uint64_t seed, int threads,
               float *centroids, ivf_progress *pr);

/* Assigns each of the n vectors x to its nearest centroid (l2, SGEMM): lists[i]. For ip, the
 * largest inner product. */
int ivf_assign(const float *x, size_t n, uint32_t dim, const float *centroids, uint32_t k,
               omen_metric metric, int threads, uint32_t *lists);

void ivf_progress_add(ivf_progress *pr, uint64_t n);

#endif
