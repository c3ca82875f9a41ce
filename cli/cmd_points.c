/*
 * Commands on points by id: get (vector and metadata of each id, as text or JSON) and delete.
 * Ids are parsed strictly as decimal integers below OMEN_NO_ID.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

/* Components of a vector that get prints without --json. */
#define GET_SHOWN 8

/* Prints one found point as text: "ID: [v0, v1, ...] METADATA". */
static void print_point(uint64_t id, const float *v, size_t dim, const char *meta)
{
	printf("%llu: [", (unsigned long long)id);
	for (size_t j = 0; j < dim && j < GET_SHOWN; j++)
		printf("%s%g", j ? ", " : "", (double)v[j]);
	printf("%s] %s\n", dim > GET_SHOWN ? ", ..." : "", meta ? meta : "null");
}

/* The JSON object for one point: id, found, and when found its vector and metadata. */
static json_t *point_json(uint64_t id, int found, const float *v, size_t dim, const char *meta)
{
	json_t *vec, *mj;

	if (!found)
		return json_pack("{s:o, s:b}", "id", cli_json_u64(id), "found", 0);
	vec = json_array();
	for (size_t j = 0; vec != NULL && j < dim; j++)
		if (json_array_append_new(vec, json_real(v[j])) != 0)
			vec = (json_decref(vec), NULL);
	mj = meta ? json_loads(meta, 0, NULL) : json_null();
	if (mj == NULL && meta != NULL)
		mj = json_string(meta); /* not expected: the library returns JSON objects */
	return json_pack("{s:o, s:b, s:o, s:o}", "id", cli_json_u64(id), "found", 1, "vector", vec,
	                 "metadata", mj);
}

/* Prints the result of omen_get for n ids; returns the number not found, or -1 when out of
 * memory building JSON. */
static long print_points(const uint64_t *ids, size_t n, const float *vecs, size_t dim, char **meta,
                         const uint8_t *found, int as_json)
{
	json_t *list = as_json ? json_array() : NULL;
	long missing = 0;

	for (size_t i = 0; i < n; i++) {
		missing += !found[i];
		if (as_json)
			json_array_append_new(
			    list, point_json(ids[i], found[i], vecs + i * dim, dim, meta[i]));
		else if (found[i])
			print_point(ids[i], vecs + i * dim, dim, meta[i]);
		else
			printf("%llu: not found\n", (unsigned long long)ids[i]);
	}
	if (as_json && cli_print_json(json_pack("{s:o}", "points", list), 0) != CLI_OK)
		return -1;
	return missing;
}

/* Reads ids[0..n-1] of coll and prints them. */
static int get_points(omen_collection *coll, const uint64_t *ids, size_t n, int as_json)
{
	omen_collection_stats st;
	float *vecs = NULL;
	char **meta = NULL;
	uint8_t *found = NULL;
	long missing = -1;
	int rc = omen_collection_stats_get(coll, &st);

	if (rc != OMEN_OK) {
		cli_lib_err(rc, "collection statistics");
		return CLI_FAIL;
	}
	vecs = malloc(n * st.dim * sizeof(float));
	meta = calloc(n, sizeof(char *));
	found = calloc(n, 1);
	if (vecs == NULL || meta == NULL || found == NULL) {
		cli_err("out of memory");
		goto done;
	}
	rc = omen_get(coll, ids, n, vecs, meta, found);
	if (rc != OMEN_OK) {
		cli_lib_err(rc, "get");
		goto done;
	}
	missing = print_points(ids, n, vecs, st.dim, meta, found, as_json);
	for (size_t i = 0; i < n; i++)
		omen_free(meta[i]);
done:
	free(vecs);
	free(meta);
	free(found);
	return missing == 0 ? CLI_OK : CLI_FAIL;
}

int cmd_get(int argc, char **argv)
{
	const char *json_flag = NULL;
	const cli_opt opts[] = {{"--json", 0, &json_flag}};
	omen_collection *coll = NULL;
	omen_db *db = NULL;
	uint64_t *ids;
	size_t npos;
	int rc = cli_getopts("get", argc, argv, opts, 1, &npos);

	if (rc != 0)
		return rc;
	if (npos < 3)
		return cli_usage_err("get", "DB, COLL and at least one ID expected");
	rc = cli_parse_ids("get", argv + 2, npos - 2, &ids);
	if (rc != 0)
		return rc;
	rc = CLI_FAIL;
	if (cli_open_db(argv[0], CLI_DB_READONLY, &db) == 0 &&
	    cli_open_coll(db, argv[1], &coll) == 0)
		rc = get_points(coll, ids, npos - 2, json_flag != NULL);
	omen_collection_close(coll);
	omen_close(db);
	free(ids);
	return rc;
}

int cmd_delete(int argc, char **argv)
{
	omen_collection *coll = NULL;
	omen_db *db = NULL;
	uint64_t *ids;
	size_t npos, deleted;
	int rc = cli_getopts("delete", argc, argv, NULL, 0, &npos);

	if (rc != 0)
		return rc;
	if (npos < 3)
		return cli_usage_err("delete", "DB, COLL and at least one ID expected");
	rc = cli_parse_ids("delete", argv + 2, npos - 2, &ids);
	if (rc != 0)
		return rc;
	rc = CLI_FAIL;
	if (cli_open_db(argv[0], 0, &db) == 0 && cli_open_coll(db, argv[1], &coll) == 0) {
		int lrc = omen_delete(coll, ids, npos - 2, &deleted);

		if (lrc != OMEN_OK) {
			cli_lib_err(lrc, "delete");
		} else {
			printf("deleted %zu of %zu\n", deleted, npos - 2);
			rc = CLI_OK;
		}
	}
	omen_collection_close(coll);
	omen_close(db);
	free(ids);
	return rc;
}
