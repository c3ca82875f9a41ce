/*
 * Helpers shared by the benchmark programs: clocks, .fvecs files, medians, small JSON output
 * and process memory figures. Benchmarks use only the public OmenDB API; nothing here reaches
 * into the library.
 */
#ifndef OMEN_BENCH_UTIL_H
#define OMEN_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Monotonic wall-clock time in seconds. */
double bu_now(void);

/* Prints "what: message" to stderr and exits with status 2. */
void bu_die(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Exits with a message naming what, the status string and omen_errmsg() when rc != OMEN_OK. */
void bu_check(int rc, const char *what);

/* malloc that exits on failure. */
void *bu_xmalloc(size_t bytes);

/* An open .fvecs file (per row: int32 dimension, then dim little-endian float32). */
typedef struct bu_fvecs {
	int fd;
	size_t n;   /* rows in the file */
	size_t dim; /* floats per row */
	char path[4096];
} bu_fvecs;

/* Opens path and checks that its size is a whole number of rows; exits on error. */
void bu_fvecs_open(bu_fvecs *f, const char *path);

/* Reads rows [first, first + count) into out (count x dim floats, contiguous); exits on
 * error or when a row's dimension header is wrong. */
void bu_fvecs_read(const bu_fvecs *f, size_t first, size_t count, float *out);

void bu_fvecs_close(bu_fvecs *f);

/* Loads the first min(limit, rows) rows of path (limit 0 = all) into a new buffer that the
 * caller frees; *n and *dim receive its shape. */
float *bu_fvecs_load(const char *path, size_t limit, size_t *n, size_t *dim);

/* Reads a whole file into a new buffer (caller frees); *len receives its size. Exits on error. */
uint8_t *bu_read_file(const char *path, size_t *len);

/* The p-quantile (0..1, nearest rank) and the median of v[0..n), n > 0; v is left unchanged. */
double bu_quantile(const double *v, size_t n, double p);
double bu_median(const double *v, size_t n);

/* Removes path recursively if it exists (a benchmark's own scratch directory). */
void bu_rm_rf(const char *path);

/* Total bytes of the regular files directly in dir; *largest (may be NULL) receives the path
 * of the biggest one (buffer of 4096 bytes). */
uint64_t bu_dir_bytes(const char *dir, char *largest);

/* A field of /proc/self/status in kB (e.g. "VmHWM", "RssAnon"), or -1 if absent. */
long bu_proc_status_kb(const char *field);

/* Command-line options of the benchmark programs: `--name value` (or `--name` alone for a
 * flag), in any order, each stored through dst as its kind says. */
typedef enum { BU_STR, BU_SIZE, BU_U32, BU_INT, BU_DOUBLE, BU_FLAG } bu_kind;
typedef struct bu_opt {
	const char *name; /* "--k" */
	bu_kind kind;
	void *dst; /* const char **, size_t *, uint32_t *, int *, double *, int * (flag: set 1) */
} bu_opt;

/* Parses argv into the options' destinations and collects up to maxpos positional arguments
 * into pos (may be NULL with maxpos 0); returns how many there were. An unknown option, a
 * missing value, a malformed number or too many positionals calls usage(), which exits. */
size_t bu_parse(int argc, char **argv, const bu_opt *opts, size_t nopts, const char **pos,
                size_t maxpos, void (*usage)(void));

/* Logical CPUs online. */
int bu_ncpu(void);

/* Writes a JSON array of n doubles to f. */
void bu_json_doubles(FILE *f, const double *v, size_t n);

/* Opens path for writing ("-" or NULL = stdout); exits on error. */
FILE *bu_open_out(const char *path);
void bu_close_out(FILE *f);

#endif
