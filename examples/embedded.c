/*
 * The example program of docs/API.md: open a database, create a cosine collection, upsert two
 * points with metadata, and run a filtered search. Built and run by the test suite.
 */
#include <omendb/omendb.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	omen_db *db;
	omen_collection *docs;
	if (omen_open(argc > 1 ? argv[1] : "vectors.db", NULL, &db) != OMEN_OK) {
		fprintf(stderr, "open: %s\n", omen_errmsg(NULL));
		return 1;
	}
	omen_create_collection(db, "docs", 4, OMEN_METRIC_COSINE); /* OMEN_EEXIST the 2nd time */
	omen_collection_open(db, "docs", &docs);

	float vecs[2][4] = {{1, 0, 0, 0}, {0.6f, 0.8f, 0, 0}};
	const char *meta[2] = {"{\"year\": 2021, \"lang\": \"en\"}", "{\"year\": 2019}"};
	uint64_t ids[2];
	omen_batch batch = {
	    .n = 2, .dim = 4, .ids = NULL, .vectors = &vecs[0][0], .metadata = meta};
	if (omen_upsert(docs, &batch, ids) != OMEN_OK) /* ids receive 0 and 1 */
		fprintf(stderr, "upsert: %s\n", omen_errmsg(db));

	float q[4] = {1, 0.1f, 0, 0};
	uint64_t res[1];
	float dist[1];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = 1;
	p.filter = "{\"year\": {\"$gte\": 2020}}";
	if (omen_search(docs, q, 1, 4, &p, res, dist) == OMEN_OK)
		printf("best: id %llu at %.4f\n", (unsigned long long)res[0], dist[0]);

	omen_collection_close(docs);
	omen_close(db);
	return 0;
}
