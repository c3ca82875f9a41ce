/*
 * Internal header of the omendb command-line tool, shared by the files in cli/. The tool is a
 * client of the public API (include/omendb/omendb.h) and of nothing else in the library; this
 * header holds what its commands share: exit codes, error reporting, strict argument parsing,
 * database opening, input vector files, metadata files and the progress bar.
 */
#ifndef OMEN_CLI_H
#define OMEN_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <omendb/omendb.h>

/* Exit statuses: success, failure (reported on stderr), usage error (usage on stderr). */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* ---- omendb.c: reporting and opening ---- */

/* Prints "omendb: <message>" and a newline to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "omendb: <context>: <library detail>" for a failed library call that returned rc,
 * using omen_errmsg() and falling back to omen_strerror(rc) when the detail is empty. */
void cli_lib_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "omendb: <message>" and then the usage of command cmd to stderr. Returns CLI_USAGE so
 * that callers can write `return cli_usage_err(...)`. */
int cli_usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* How cli_open_db opens a database. */
enum {
	CLI_DB_CREATE = 1,   /* create the database if the directory does not exist */
	CLI_DB_READONLY = 2, /* open read-only */
	CLI_DB_RELAXED = 4   /* OMEN_DURABLE_RELAXED */
};

/* Opens the database at path with the CLI_DB_* flags. Without CLI_DB_CREATE a path that does
 * not exist is an error (the library would otherwise create an empty database there). On
 * success stores the handle in *out (close with omen_close) and returns 0; on failure reports
 * the error and returns -1. */
int cli_open_db(const char *path, int flags, omen_db **out);

/* Opens collection name of db into *out (close with omen_collection_close). Reports the error
 * and returns -1 on failure, 0 on success. */
int cli_open_coll(omen_db *db, const char *name, omen_collection **out);

/* Seconds on the monotonic clock. */
double cli_now(void);

/* A JSON number for v: an integer up to INT64_MAX, beyond that (jansson's integers are
 * signed 64-bit) a real, which is approximate. A new reference, or NULL when out of memory. */
json_t *cli_json_u64(uint64_t v);

/* Prints json (indented when indent is nonzero) and a newline to stdout, then releases it.
 * json NULL means an allocation failed: reports it. Returns CLI_OK or CLI_FAIL. */
int cli_print_json(json_t *json, int indent);

/* ---- args.c: strict argument parsing ---- */

/* One option of a command. A flag (has_arg 0) sets *value to "" when present; an option with
 * an argument sets *value to it, borrowed from argv. */
typedef struct cli_opt {
	const char *name; /* "--k" */
	int has_arg;
	const char **value;
} cli_opt;

/* Parses argv[1..argc-1] of command cmd (argv[0] is the command name) against opts, accepting
 * "--name value" and "--name=value" and "--" to end options. Positional arguments are moved to
 * argv[0..*npos-1] in order (argv[0] is overwritten). --help is handled before commands run.
 * Returns 0, or CLI_USAGE after reporting a usage error. */
int cli_getopts(const char *cmd, int argc, char **argv, const cli_opt *opts, size_t nopts,
                size_t *npos);

/* Parses s as a decimal integer in [min, max]: digits only, no sign, no spaces, no trailing
 * characters. Returns 0 and sets *out, or -1. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* cli_parse_u64 for option opt of command cmd; reports a usage error naming the option and the
 * range. Returns 0 or CLI_USAGE. */
int cli_opt_u64(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
                uint64_t *out);

/* Parses the point ids args[0..n-1] into a malloc'd array *out (caller frees with free()).
 * Returns 0, CLI_USAGE after a usage error, or CLI_FAIL when out of memory. */
int cli_parse_ids(const char *cmd, char **args, size_t n, uint64_t **out);

/* ---- vecfile.c: input vector files ---- */

/* An input file of vectors, opened and validated in full by vecfile_open. The file is memory
 * mapped where possible; CSV is parsed into memory. */
typedef struct vecfile {
	const char *path;           /* borrowed from the caller, for messages */
	int format;                 /* VF_* in vecfile.c */
	const unsigned char *bytes; /* file contents (mapped or read) */
	size_t size;                /* bytes in the file */
	int mapped;                 /* bytes is a mapping (else malloc'd) */
	size_t n;                   /* vectors */
	size_t dim;                 /* components per vector */
	size_t data_off;            /* offset of vector 0's first component */
	size_t stride;              /* bytes from one vector to the next */
	float *parsed;              /* CSV: n x dim floats, malloc'd */
} vecfile;

/* Opens path, picks the format by extension (.fvecs, .bvecs, .npy, .csv) and validates the
 * whole file: structure, a consistent dimension, size, and every component finite. On success
 * fills *vf (release with vecfile_close) and returns 0; on failure reports an error naming the
 * file and the place of the problem and returns -1, leaving nothing to release. */
int vecfile_open(const char *path, vecfile *vf);

/* Copies vectors first..first+count-1 as float32 into out (count x dim). The range must lie
 * inside the file. */
void vecfile_read(const vecfile *vf, size_t first, size_t count, float *out);

/* Returns the index of the first all-zero vector, or vf->n if there is none. */
size_t vecfile_find_zero(const vecfile *vf);

/* Releases what vecfile_open acquired. Safe on a zeroed struct. */
void vecfile_close(vecfile *vf);

/* ---- metafile.c: JSON-lines metadata ---- */

/* A metadata file: line i is vector i's metadata, a JSON object, or empty or `null` for none. */
typedef struct metafile {
	const char *path;   /* borrowed, for messages */
	char *text;         /* file contents, NUL-terminated, lines split in place; malloc'd */
	size_t n;           /* lines */
	const char **lines; /* n entries pointing into text, NULL for "no metadata" */
} metafile;

/* Reads and validates path: every line empty, `null`, or a JSON object of integer, float,
 * string or boolean values within OMEN_MAX_METADATA bytes. On success fills *mf (release with
 * metafile_close) and returns 0; otherwise reports the file and line and returns -1. */
int metafile_open(const char *path, metafile *mf);

/* Releases what metafile_open acquired. Safe on a zeroed struct. */
void metafile_close(metafile *mf);

/* ---- progress.c: progress bar on stderr ---- */

typedef struct progress {
	int enabled; /* stderr is a terminal */
	uint64_t total;
	double start; /* cli_now() at progress_start */
	double shown; /* cli_now() of the last redraw */
} progress;

/* Starts a progress bar for total items; it draws only when stderr is a terminal. */
void progress_start(progress *p, uint64_t total);

/* Redraws (at most ten times a second, and always when done == total): percentage, items per
 * second and the estimated time left. */
void progress_update(progress *p, uint64_t done);

/* Erases the bar. */
void progress_end(progress *p);

/* ---- commands, each given argv[0] = the command name ---- */

int cmd_create(int argc, char **argv);
int cmd_drop(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_check(int argc, char **argv);

#endif
