/*
 * Tests for the coordinator's request metrics (coordinator/metrics.c): the counts a scrape
 * shows, the cumulative histogram buckets, the label sets, and the Prometheus text format 0.0.4
 * line by line. Self-contained: built from metrics.c alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "coordinator/coordinator.h"

/* ---- Helpers ---------------------------------------------------------------------------- */

static char *scrape(metrics *m)
{
	char *text = NULL;
	assert_int_equal(metrics_text(m, &text), OMEN_OK);
	assert_non_null(text);
	return text;
}

/* The value of the sample whose name and labels are exactly series, or -1 when absent. */
static double sample(const char *text, const char *series)
{
	size_t len = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, series, len) == 0 && p[len] == ' ')
			return strtod(p + len + 1, NULL);
	}
	return -1.0;
}

static double bucket(const char *text, const char *endpoint, const char *op, const char *le)
{
	char series[256];
	snprintf(series, sizeof series,
	         "omendb_request_duration_seconds_bucket{endpoint=\"%s\",op=\"%s\",le=\"%s\"}",
	         endpoint, op, le);
	return sample(text, series);
}

static const char *const les[] = {"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                  "0.005", "0.01",   "0.025",   "0.05",   "0.1",   "0.25",
                                  "0.5",   "1",      "2.5",     "5",      "10",    "+Inf"};
#define NLES (sizeof les / sizeof les[0])

/* ---- Tests ------------------------------------------------------------------------------ */

static void test_empty_has_headers_only(void **state)
{
	metrics *m = metrics_new();
	assert_non_null(m);
	char *text = scrape(m);
	assert_non_null(strstr(text, "# TYPE omendb_requests_total counter\n"));
	assert_non_null(strstr(text, "# TYPE omendb_request_errors_total counter\n"));
	assert_non_null(strstr(text, "# TYPE omendb_request_duration_seconds histogram\n"));
	assert_non_null(strstr(text, "# HELP omendb_requests_total "));
	for (const char *p = text; *p; p = strchr(p, '\n') + 1)
		assert_int_equal(p[0], '#'); /* no samples before any request */
	free(text);
	metrics_free(m);
}

static void test_counts_by_endpoint_op_and_code(void **state)
{
	metrics *m = metrics_new();
	for (int i = 0; i < 3; i++)
		metrics_observe(m, "http", WIRE_SEARCH, OMEN_OK, 0.001);
	metrics_observe(m, "http", WIRE_SEARCH, OMEN_EINVAL, 0.001);
	metrics_observe(m, "http", WIRE_SEARCH, OMEN_EINVAL, 0.001);
	metrics_observe(m, "http", WIRE_SEARCH, OMEN_EUNAVAIL, 0.001);
	metrics_observe(m, "nng", WIRE_UPSERT, OMEN_OK, 0.002);
	char *text = scrape(m);
	assert_true(sample(text, "omendb_requests_total{endpoint=\"http\",op=\"search\"}") == 6);
	assert_true(sample(text, "omendb_requests_total{endpoint=\"nng\",op=\"upsert\"}") == 1);
	assert_true(sample(text, "omendb_requests_total{endpoint=\"nng\",op=\"search\"}") == -1);
	assert_true(sample(text, "omendb_request_errors_total{endpoint=\"http\",op=\"search\","
	                         "code=\"EINVAL\"}") == 2);
	assert_true(sample(text, "omendb_request_errors_total{endpoint=\"http\",op=\"search\","
	                         "code=\"EUNAVAIL\"}") == 1);
	assert_null(strstr(text, "code=\"OK\""));
	assert_null(strstr(text, "omendb_request_errors_total{endpoint=\"nng\""));
	assert_true(sample(text, "omendb_request_duration_seconds_count{endpoint=\"http\","
	                         "op=\"search\"}") == 6);
	free(text);
	metrics_free(m);
}

static void test_buckets_are_cumulative(void **state)
{
	metrics *m = metrics_new();
	const double secs[] = {0.00001, 0.0003, 0.003, 0.3, 20.0};
	for (size_t i = 0; i < 5; i++)
		metrics_observe(m, "http", WIRE_GET, OMEN_OK, secs[i]);
	char *text = scrape(m);
	/* expected cumulative counts, bucket by bucket */
	const double want[NLES] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5};
	for (size_t b = 0; b < NLES; b++)
		if (bucket(text, "http", "get", les[b]) != want[b])
			fail_msg("bucket le=%s: got %g, want %g", les[b],
			         bucket(text, "http", "get", les[b]), want[b]);
	double sum = sample(text, "omendb_request_duration_seconds_sum{endpoint=\"http\","
	                          "op=\"get\"}");
	assert_true(fabs(sum - 20.30331) < 1e-6);
	assert_true(sample(text, "omendb_request_duration_seconds_count{endpoint=\"http\","
	                         "op=\"get\"}") == 5);
	free(text);
	metrics_free(m);
}

/* le is an inclusive upper bound: a request of exactly 1 ms is in the le="0.001" bucket. */
static void test_bucket_bounds_inclusive(void **state)
{
	metrics *m = metrics_new();
	metrics_observe(m, "nng", WIRE_HEALTH, OMEN_OK, 0.001);
	metrics_observe(m, "nng", WIRE_HEALTH, OMEN_OK, 10.0);
	metrics_observe(m, "nng", WIRE_HEALTH, OMEN_OK, -1.0); /* a clock step: counted as 0 */
	char *text = scrape(m);
	assert_true(bucket(text, "nng", "health", "5e-05") == 1);
	assert_true(bucket(text, "nng", "health", "0.0005") == 1);
	assert_true(bucket(text, "nng", "health", "0.001") == 2);
	assert_true(bucket(text, "nng", "health", "5") == 2);
	assert_true(bucket(text, "nng", "health", "10") == 3);
	assert_true(bucket(text, "nng", "health", "+Inf") == 3);
	free(text);
	metrics_free(m);
}

static void test_unknown_labels_go_to_other(void **state)
{
	metrics *m = metrics_new();
	metrics_observe(m, "grpc", WIRE_OP_COUNT, 99, 0.0);
	metrics_observe(m, NULL, (wire_op)-1, -5, 0.0);
	char *text = scrape(m);
	assert_true(sample(text, "omendb_requests_total{endpoint=\"other\",op=\"other\"}") == 2);
	assert_true(sample(text, "omendb_request_errors_total{endpoint=\"other\",op=\"other\","
	                         "code=\"EUNKNOWN\"}") == 2);
	free(text);
	metrics_free(m);
}

/* Every op and every error code 1..STATUS_COUNT-1 gets a series named by base's table; OK
 * (code 0) is no error and gets none. */
static void test_every_op_and_code_named(void **state)
{
	metrics *m = metrics_new();
	static const char *const ops[] = {
	    "health", "create", "drop",  "list",  "stats", "dbstats", "upsert", "get",  "delete",
	    "count",  "search", "build", "check", "flush", "ids",     "fence",  "join", "copyfail"};
	assert_int_equal(sizeof ops / sizeof ops[0], WIRE_OP_COUNT);
	for (int o = 0; o < WIRE_OP_COUNT; o++)
		for (int c = 0; c < STATUS_COUNT; c++)
			metrics_observe(m, "nng", (wire_op)o, c, 0.01);
	char *text = scrape(m);
	for (int o = 0; o < WIRE_OP_COUNT; o++)
		for (int c = 0; c < STATUS_COUNT; c++) {
			char series[200];
			snprintf(
			    series, sizeof series,
			    "omendb_request_errors_total{endpoint=\"nng\",op=\"%s\",code=\"%s\"}",
			    ops[o], status_name(c));
			if (sample(text, series) != (c == OMEN_OK ? -1 : 1))
				fail_msg("missing or wrong: %s", series);
		}
	assert_null(strstr(text, "EUNKNOWN")); /* every code in range has a name */
	/* The newest code by its own name, not through the table the metrics use. */
	assert_true(sample(text, "omendb_request_errors_total{endpoint=\"nng\",op=\"upsert\","
	                         "code=\"ESTALE\"}") == 1);
	free(text);
	metrics_free(m);
}

/* base's names: distinct, one per code; ESTALE is code 16; codes out of range are EUNKNOWN. */
static void test_status_names(void **state)
{
	assert_int_equal(OMEN_ESTALE, 16);
	assert_int_equal(STATUS_COUNT, 17);
	assert_string_equal(status_name(16), "ESTALE");
	assert_string_equal(status_name(OMEN_OK), "OK");
	assert_string_equal(status_name(STATUS_COUNT), "EUNKNOWN");
	assert_string_equal(status_name(-1), "EUNKNOWN");
	for (int c = 1; c < STATUS_COUNT; c++) {
		const char *name = status_name(c);
		assert_non_null(name);
		assert_true(name[0] == 'E' && strcmp(name, "EUNKNOWN") != 0);
		for (int d = 0; d < c; d++)
			assert_string_not_equal(name, status_name(d));
	}
}

/* Each line is a comment (# HELP name text / # TYPE name type) or name{labels} value; each
 * family's HELP and TYPE come before its samples; buckets never decrease within a series. */
static void test_text_format_lines(void **state)
{
	metrics *m = metrics_new();
	metrics_observe(m, "http", WIRE_SEARCH, OMEN_OK, 0.004);
	metrics_observe(m, "http", WIRE_SEARCH, OMEN_ENOTFOUND, 0.2);
	metrics_observe(m, "nng", WIRE_FLUSH, OMEN_OK, 3.0);
	char *text = scrape(m);
	size_t len = strlen(text);
	assert_true(len > 0 && text[len - 1] == '\n');
	char family[128] = "", typed[128] = "";
	double last_bucket = -1;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], kind[32];
		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line, "# HELP %127s", family), 1);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line, "# TYPE %127s %31s", typed, kind), 2);
			assert_string_equal(typed, family);
			assert_true(strcmp(kind, "counter") == 0 || strcmp(kind, "histogram") == 0);
			continue;
		}
		assert_int_not_equal(line[0], '#');
		char *brace = strchr(line, '{'), *close = strrchr(line, '}');
		assert_non_null(brace);
		assert_non_null(close);
		assert_true(close[1] == ' ' && close[2] != '\0');
		char *end;
		double v = strtod(close + 2, &end);
		assert_true(*end == '\0' && v >= 0);
		snprintf(name, sizeof name, "%.*s", (int)(brace - line), line);
		assert_true(strncmp(name, typed, strlen(typed)) == 0); /* family declared first */
		if (strstr(name, "_bucket")) {
			if (strstr(line, "le=\"5e-05\""))
				last_bucket = -1;
			assert_true(v >= last_bucket);
			last_bucket = v;
		}
	}
	free(text);
	metrics_free(m);
}

typedef struct {
	metrics *m;
	int n;
} hammer_arg;

static void *hammer(void *p)
{
	hammer_arg *a = p;
	for (int i = 0; i < a->n; i++)
		metrics_observe(a->m, "http", WIRE_UPSERT, i % 10 ? OMEN_OK : OMEN_EBUSY, 0.0002);
	return NULL;
}

/* Concurrent observers lose no count. */
static void test_concurrent_observe(void **state)
{
	metrics *m = metrics_new();
	pthread_t t[4];
	hammer_arg a = {m, 20000};
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &a), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	char *text = scrape(m);
	assert_true(sample(text, "omendb_requests_total{endpoint=\"http\",op=\"upsert\"}") ==
	            80000);
	assert_true(sample(text, "omendb_request_errors_total{endpoint=\"http\",op=\"upsert\","
	                         "code=\"EBUSY\"}") == 8000);
	assert_true(bucket(text, "http", "upsert", "0.00025") == 80000);
	assert_true(bucket(text, "http", "upsert", "0.0001") == 0);
	free(text);
	metrics_free(m);
}

static void test_null_is_harmless(void **state)
{
	metrics_observe(NULL, "http", WIRE_GET, OMEN_OK, 1.0);
	metrics_free(NULL);
	char *text = NULL;
	assert_int_equal(metrics_text(NULL, &text), OMEN_OK);
	assert_non_null(text);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_has_headers_only),
	    cmocka_unit_test(test_counts_by_endpoint_op_and_code),
	    cmocka_unit_test(test_buckets_are_cumulative),
	    cmocka_unit_test(test_bucket_bounds_inclusive),
	    cmocka_unit_test(test_unknown_labels_go_to_other),
	    cmocka_unit_test(test_every_op_and_code_named),
	    cmocka_unit_test(test_status_names),
	    cmocka_unit_test(test_text_format_lines),
	    cmocka_unit_test(test_concurrent_observe),
	    cmocka_unit_test(test_null_is_harmless),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
