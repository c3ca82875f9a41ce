/*
 * Commands that manage collections rather than points: create, drop and info. info opens the
 * database read-only and reports what omen_collection_stats_get and omen_db_stats_get say, as
 * text (one line per collection) or JSON, index included. Building and checking indexes is in
 * cmd_index.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Reads --shards and --replicas (each optional, 1..its limit) into *opt. 0 or CLI_USAGE. */
static int layout_opts(const char *shards_s, const char *replicas_s, omen_collection_options *opt)
{
	uint64_t v;

	omen_collection_options_init(opt);
	if (shards_s != NULL) {
		if (cli_opt_u64("create", "--shards", shards_s, 1, OMEN_MAX_SHARDS, &v) != 0)
			return CLI_USAGE;
		opt->shards = (uint32_t)v;
	}
	if (replicas_s != NULL) {
		if (cli_opt_u64("create", "--replicas", replicas_s, 1, OMEN_MAX_REPLICAS, &v) != 0)
			return CLI_USAGE;
		opt->replicas = (uint32_t)v;
	}
	return 0;
}

int cmd_create(int argc, char **argv)
{
	const char *dim_s = NULL, *metric_s = "l2", *shards_s = NULL, *replicas_s = NULL;
	const cli_opt opts[] = {{"--dim", 1, &dim_s},
	                        {"--metric", 1, &metric_s},
	                        {"--shards", 1, &shards_s},
	                        {"--replicas", 1, &replicas_s}};
	omen_collection_options layout;
	omen_metric metric;
	uint64_t dim;
	omen_db *db;
	size_t npos;
	int rc = cli_getopts("create", argc, argv, opts, 4, &npos);

	if (rc != 0)
		return rc;
	if (npos != 2)
		return cli_usage_err("create", "DB and COLL expected");
	if (dim_s == NULL)
		return cli_usage_err("create", "--dim is required");
	if (cli_opt_u64("create", "--dim", dim_s, 1, OMEN_MAX_DIM, &dim) != 0)
		return CLI_USAGE;
	if (omen_metric_parse(metric_s, &metric) != OMEN_OK)
		return cli_usage_err("create", "--metric: '%s' is not l2, ip or cosine", metric_s);
	if (layout_opts(shards_s, replicas_s, &layout) != 0)
		return CLI_USAGE;
	if (cli_open_db(argv[0], CLI_DB_CREATE, &db) != 0)
		return CLI_FAIL;
	rc = omen_create_collection_opts(db, argv[1], (size_t)dim, metric, &layout);
	if (rc != OMEN_OK)
		cli_lib_err(rc, "create collection '%s'", argv[1]);
	else
		printf("created collection '%s' (dim %llu, metric %s)\n", argv[1],
		       (unsigned long long)dim, omen_metric_name(metric));
	omen_close(db);
	return rc == OMEN_OK ? CLI_OK : CLI_FAIL;
}

int cmd_drop(int argc, char **argv)
{
	omen_db *db;
	size_t npos;
	int rc = cli_getopts("drop", argc, argv, NULL, 0, &npos);

	if (rc != 0)
		return rc;
	if (npos != 2)
		return cli_usage_err("drop", "DB and COLL expected");
	if (cli_open_db(argv[0], 0, &db) != 0)
		return CLI_FAIL;
	rc = omen_drop_collection(db, argv[1]);
	if (rc != OMEN_OK)
		cli_lib_err(rc, "drop collection '%s'", argv[1]);
	else
		printf("dropped collection '%s'\n", argv[1]);
	omen_close(db);
	return rc == OMEN_OK ? CLI_OK : CLI_FAIL;
}

/* Reads the statistics of collection name into *st. Returns 0 or -1 after reporting. */
static int coll_stats(omen_db *db, const char *name, omen_collection_stats *st)
{
	omen_collection *coll;
	int rc;

	if (cli_open_coll(db, name, &coll) != 0)
		return -1;
	rc = omen_collection_stats_get(coll, st);
	if (rc != OMEN_OK)
		cli_lib_err(rc, "collection '%s': statistics", name);
	omen_collection_close(coll);
	return rc == OMEN_OK ? 0 : -1;
}

static void print_stats(const omen_collection_stats *st)
{
	printf("%s: dim %u, metric %s, points %llu, deleted %llu, segments %llu, "
	       "vector bytes %llu, index %s, indexed %llu, index bytes %llu",
	       st->name, st->dim, omen_metric_name(st->metric), (unsigned long long)st->points,
	       (unsigned long long)st->deleted, (unsigned long long)st->segments,
	       (unsigned long long)st->vector_bytes, st->index ? st->index : "?",
	       (unsigned long long)st->indexed, (unsigned long long)st->index_bytes);
	if (st->hnsw_m != 0)
		printf(", m %u, ef_construction %u%s", st->hnsw_m, st->hnsw_ef_construction,
		       st->hnsw_int8 ? ", int8" : "");
	if (st->ivf_nlist != 0)
		printf(", nlist %u, nprobe %u, bits %u", st->ivf_nlist, st->ivf_nprobe,
		       st->ivf_bits);
	if (st->replicas > 1)
		printf(", replicas %u, stale copies %u", st->replicas, st->copies_stale);
	putchar('\n');
}

/* The JSON object describing one collection; NULL when out of memory. hnsw_m,
 * hnsw_ef_construction and hnsw_int8 are always present, 0 (false) without an HNSW index;
 * ivf_nlist, ivf_nprobe and ivf_bits likewise, 0 without an IVF index. */
static json_t *stats_json(const omen_collection_stats *st)
{
	return json_pack(
	    "{s:s, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:I, s:I, s:b, s:I, s:I, "
	    "s:I, s:I, s:I}",
	    "name", st->name, "dim", (json_int_t)st->dim, "metric", omen_metric_name(st->metric),
	    "points", cli_json_u64(st->points), "deleted", cli_json_u64(st->deleted), "next_id",
	    cli_json_u64(st->next_id), "segments", cli_json_u64(st->segments), "vector_bytes",
	    cli_json_u64(st->vector_bytes), "index", st->index ? st->index : "?", "indexed",
	    cli_json_u64(st->indexed), "index_bytes", cli_json_u64(st->index_bytes), "hnsw_m",
	    (json_int_t)st->hnsw_m, "hnsw_ef_construction", (json_int_t)st->hnsw_ef_construction,
	    "hnsw_int8", st->hnsw_int8 != 0, "ivf_nlist", (json_int_t)st->ivf_nlist, "ivf_nprobe",
	    (json_int_t)st->ivf_nprobe, "ivf_bits", (json_int_t)st->ivf_bits, "replicas",
	    (json_int_t)st->replicas, "copies_stale", (json_int_t)st->copies_stale);
}

/* info DB: every collection, in the library's (byte) order. */
static int info_db(omen_db *db, int as_json)
{
	json_t *list = as_json ? json_array() : NULL;
	omen_db_stats dbst;
	omen_collection_stats st;
	char **names;
	size_t n;
	int rc = omen_list_collections(db, &names, &n);

	if (rc != OMEN_OK) {
		cli_lib_err(rc, "list collections");
		json_decref(list);
		return CLI_FAIL;
	}
	for (size_t i = 0; i < n && rc == OMEN_OK; i++) {
		if (coll_stats(db, names[i], &st) != 0)
			rc = -1;
		else if (as_json)
			json_array_append_new(list, stats_json(&st));
		else
			print_stats(&st);
	}
	omen_free_strings(names, n);
	if (rc == OMEN_OK && as_json && (rc = omen_db_stats_get(db, &dbst)) != OMEN_OK)
		cli_lib_err(rc, "database statistics");
	if (rc != OMEN_OK || !as_json) {
		json_decref(list);
		return rc == OMEN_OK ? CLI_OK : CLI_FAIL;
	}
	return cli_print_json(json_pack("{s:o, s:o}", "collections", list, "file_bytes",
	                                cli_json_u64(dbst.file_bytes)),
	                      1);
}

int cmd_info(int argc, char **argv)
{
	const char *json_flag = NULL;
	const cli_opt opts[] = {{"--json", 0, &json_flag}};
	omen_collection_stats st;
	omen_db *db;
	size_t npos;
	int rc = cli_getopts("info", argc, argv, opts, 1, &npos);

	if (rc != 0)
		return rc;
	if (npos < 1 || npos > 2)
		return cli_usage_err("info", "DB and optionally COLL expected");
	if (cli_open_db(argv[0], CLI_DB_READONLY, &db) != 0)
		return CLI_FAIL;
	if (npos == 1) {
		rc = info_db(db, json_flag != NULL);
	} else if (coll_stats(db, argv[1], &st) != 0) {
		rc = CLI_FAIL;
	} else if (json_flag) {
		rc = cli_print_json(stats_json(&st), 1);
	} else {
		print_stats(&st);
		rc = CLI_OK;
	}
	omen_close(db);
	return rc;
}
