/*
 * The omendb command-line tool: entry point, command table, usage texts, and the reporting and
 * opening helpers its commands share. Each command lives in a cmd_*.c file and speaks to the
 * database through the public API only. Exit statuses: 0 success, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage; /* synopsis and options, each line ending in a newline */
} command;

static const command commands[] = {
    {"create", cmd_create,
     "usage: omendb create DB COLL --dim D [--metric l2|ip|cosine] [--shards S]\n"
     "                     [--replicas R]\n"
     "  Creates collection COLL (and the database directory DB if needed).\n"
     "  --dim D          dimension, 1..16384 (required)\n"
     "  --metric M       l2 (squared Euclidean, default), ip (negative inner product),\n"
     "                   cosine (1 - cosine similarity)\n"
     "  --shards S       cluster only: logical shards, 1..4096 (default: the coordinator's\n"
     "                   default_shards)\n"
     "  --replicas R     cluster only: copies of each logical shard, each on a different\n"
     "                   shard node, 1..5 (default 1)\n"},
    {"load", cmd_load,
     "usage: omendb load DB COLL FILE [--start-id N] [--batch N] [--metadata FILE.jsonl]\n"
     "                   [--relaxed]\n"
     "  Loads the vectors of FILE (.fvecs, .bvecs, .npy or .csv) with ids N, N+1, ... in\n"
     "  file order. The whole input is validated before anything is written.\n"
     "  --start-id N     first id (default: the collection's next id)\n"
     "  --batch N        vectors per write batch (default 10000)\n"
     "  --metadata F     JSON lines: line i is vector i's metadata object, empty or null\n"
     "  --relaxed        relaxed durability, one flush at the end (faster bulk loads)\n"},
    {"search", cmd_search,
     "usage: omendb search DB COLL QUERIES --k K [--threads T] [--filter JSON] [--ef N]\n"
     "                     [--nprobe N] [--exact] [--device cpu|gpu|auto] [--partial]\n"
     "                     [--out FILE.ivecs] [--json]\n"
     "  Searches the k nearest points of every vector of QUERIES (.fvecs, .bvecs, .npy or\n"
     "  .csv) in one batch, through the collection's index when it has one.\n"
     "  --k K            results per query (required)\n"
     "  --threads T      search threads (default 0 = all cores)\n"
     "  --filter JSON    metadata filter, e.g. '{\"color\": \"red\"}' (see docs/FILTERS.md)\n"
     "  --ef N           HNSW candidate list size, at most 16384 (default 0 = 64); raised\n"
     "                   to k when smaller\n"
     "  --nprobe N       IVF lists probed per query, at most the index's nlist (default 0 =\n"
     "                   the index's calibrated default, shown by info)\n"
     "  --exact          exact search even when the collection has an index\n"
     "  --device D       exact searches on cpu, gpu (when usable; else the CPU) or auto\n"
     "                   (default: the GPU for batches large enough to win)\n"
     "  --partial        cluster: accept results from the shards that answered in time\n"
     "                   (a note on stderr and \"coverage\" in --json say how many)\n"
     "  --out F          write the result ids as .ivecs (int32 k, then k int32 ids)\n"
     "  --json           print one JSON object: queries, k, seconds, qps, coverage, path,\n"
     "                   vectors_read, results\n"},
    {"get", cmd_get,
     "usage: omendb get DB COLL ID... [--json]\n"
     "  Prints the vector and metadata of each id. Exit status 1 if an id is not found.\n"
     "  --json           print JSON with complete vectors\n"},
    {"delete", cmd_delete,
     "usage: omendb delete DB COLL ID...\n"
     "  Deletes the points with these ids; ids not present are ignored.\n"},
    {"index", cmd_index,
     "usage: omendb index DB COLL [--type auto|flat|hnsw|ivf] [--m M] [--ef-construction N]\n"
     "                    [--int8] [--nlist N] [--bits B] [--ram-budget BYTES] [--threads T]\n"
     "  Builds (or extends) the approximate index of COLL over its points; flat drops it.\n"
     "  --type T         auto (default): flat below 10000 points, hnsw below 1000000, else\n"
     "                   ivf (or ivf earlier, see --ram-budget); flat; hnsw; ivf\n"
     "  --m M            HNSW links per node per level, 4..64 (default 16)\n"
     "  --int8           traverse int8-quantized vectors, re-rank exactly (docs/HNSW.md)\n"
     "  --ef-construction N\n"
     "                   HNSW candidate list size while building, 8..4096 (default 200)\n"
     "  --nlist N        IVF inverted lists, 1..65536 and at most the points (default 0 =\n"
     "                   chosen from the points; docs/IVF.md)\n"
     "  --bits B         IVF code bits per dimension, 1 (the only value today, default)\n"
     "  --ram-budget BYTES\n"
     "                   auto: bytes the float vectors may take in RAM; above, ivf is\n"
     "                   chosen from 10000 points on (default 0 = no budget)\n"
     "  --threads T      build threads (default 0 = all cores)\n"},
    {"check", cmd_check,
     "usage: omendb check DB COLL\n"
     "  Verifies the index of COLL and prints the report. Exit status 1 if it is damaged.\n"},
    {"info", cmd_info,
     "usage: omendb info DB [COLL] [--json]\n"
     "  Describes every collection of DB, or collection COLL.\n"
     "  --json           print JSON\n"},
    {"drop", cmd_drop,
     "usage: omendb drop DB COLL\n"
     "  Drops collection COLL and all its points.\n"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char main_usage[] =
    "usage: omendb COMMAND ARGS...\n"
    "       omendb COMMAND --help\n"
    "       omendb --help | --version\n"
    "\n"
    "commands:\n"
    "  create DB COLL --dim D [--metric l2|ip|cosine] [--shards S] [--replicas R]\n"
    "  load   DB COLL FILE [--start-id N] [--batch N] [--metadata FILE.jsonl] [--relaxed]\n"
    "  search DB COLL QUERIES --k K [--threads T] [--filter JSON] [--ef N] [--nprobe N]\n"
    "                        [--exact] [--device cpu|gpu|auto] [--partial] [--out FILE.ivecs]\n"
    "                        [--json]\n"
    "  get    DB COLL ID... [--json]\n"
    "  delete DB COLL ID...\n"
    "  index  DB COLL [--type auto|flat|hnsw|ivf] [--m M] [--ef-construction N] [--int8]\n"
    "                [--nlist N] [--bits B] [--ram-budget BYTES] [--threads T]\n"
    "  check  DB COLL\n"
    "  info   DB [COLL] [--json]\n"
    "  drop   DB COLL\n"
    "\n"
    "DB is a database directory, or tcp://HOST:PORT for a cluster's coordinator (the token,\n"
    "if the cluster requires one, is read from $OMENDB_TOKEN).\n"
    "Vector files: .fvecs, .bvecs, .npy (float32), .csv. Exit status: 0 success, 1 error,\n"
    "2 usage error. See docs/CLI.md.\n";

static const command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("omendb: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_lib_err(int rc, const char *fmt, ...)
{
	const char *detail = omen_errmsg(NULL);
	va_list ap;

	if (detail == NULL || detail[0] == '\0')
		detail = omen_strerror(rc);
	fputs("omendb: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", detail);
}

int cli_usage_err(const char *cmd, const char *fmt, ...)
{
	const command *c = cmd ? find_command(cmd) : NULL;
	va_list ap;

	fputs("omendb: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(c ? c->usage : main_usage, stderr);
	return CLI_USAGE;
}

int cli_open_db(const char *path, int flags, omen_db **out)
{
	omen_open_options opt;
	int rc;

	if (omen_is_remote_url(path)) {
		omen_connect_options co;
		omen_connect_options_init(&co);
		co.token = getenv("OMENDB_TOKEN");
		rc = omen_connect(path, &co, out);
		if (rc != OMEN_OK) {
			cli_lib_err(rc, "connect to '%s'", path);
			return -1;
		}
		return 0;
	}
	omen_open_options_init(&opt);
	if (!(flags & CLI_DB_CREATE))
		opt.no_create = 1;
	if (flags & CLI_DB_READONLY)
		opt.read_only = 1;
	if (flags & CLI_DB_RELAXED)
		opt.durability = OMEN_DURABLE_RELAXED;
	rc = omen_open(path, &opt, out);
	if (rc != OMEN_OK) {
		const char *detail = omen_errmsg(NULL);

		/* The library's messages about opening name the path already. */
		if (detail != NULL && strstr(detail, path) != NULL)
			cli_err("%s", detail);
		else
			cli_lib_err(rc, "database '%s'", path);
		return -1;
	}
	return 0;
}

int cli_open_coll(omen_db *db, const char *name, omen_collection **out)
{
	int rc = omen_collection_open(db, name, out);

	if (rc != OMEN_OK) {
		cli_lib_err(rc, "collection '%s'", name);
		return -1;
	}
	return 0;
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

json_t *cli_json_u64(uint64_t v)
{
	if (v <= INT64_MAX)
		return json_integer((json_int_t)v);
	return json_real((double)v);
}

int cli_print_json(json_t *json, int indent)
{
	size_t flags = JSON_REAL_PRECISION(9) | (indent ? JSON_INDENT(2) : JSON_COMPACT);
	int rc;

	if (json == NULL) {
		cli_err("out of memory");
		return CLI_FAIL;
	}
	rc = json_dumpf(json, stdout, flags);
	json_decref(json);
	if (rc != 0 || fputc('\n', stdout) == EOF) {
		cli_err("writing JSON to standard output failed");
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* Runs command c with argv[0] = its name; handles its --help here so that commands need not. */
static int run_command(const command *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(c->usage, stdout);
			return CLI_OK;
		}
	}
	return c->run(argc, argv);
}

int main(int argc, char **argv)
{
	const command *c;
	int rc;

	if (argc < 2)
		return cli_usage_err(NULL, "no command given");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(main_usage, stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("omendb %s\n", OMEN_VERSION_STRING);
		return CLI_OK;
	}
	c = find_command(argv[1]);
	if (c == NULL)
		return cli_usage_err(NULL, "unknown command '%s'", argv[1]);
	rc = run_command(c, argc - 1, argv + 1);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_err("writing standard output: %s", strerror(errno));
		return CLI_FAIL;
	}
	return rc;
}
