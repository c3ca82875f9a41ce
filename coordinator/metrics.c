/*
 * Request metrics of the coordinator: counters and latency histograms per endpoint and call,
 * kept in fixed arrays of C11 atomics so that recording a request never takes a lock, and
 * rendered on demand in the Prometheus text exposition format 0.0.4 for GET /metrics.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "coordinator/coordinator.h"

/* Endpoints: "nng", "http", and a slot for anything else a caller passes. */
#define M_ENDPOINTS 3
/* Calls: the wire ops, and a last slot "other" for requests that map to no op (an unknown
 * route, GET /metrics). */
#define M_OPS (WIRE_OP_COUNT + 1)
/* Status codes: every public one, and a last slot for a code out of range ("EUNKNOWN"). */
#define M_CODES (STATUS_COUNT + 1)
/* Histogram buckets: the finite upper bounds below, then +Inf. */
#define M_BUCKETS 18

static const char *const endpoint_names[M_ENDPOINTS] = {"nng", "http", "other"};

/* Op o's label: the wire name, or "other" for the last slot. */
static const char *op_label(int o)
{
	return o < WIRE_OP_COUNT ? wire_op_name((wire_op)o) : "other";
}

/* Upper bounds in seconds, and the same bounds as Prometheus writes them in the le label. */
static const double bucket_bounds[M_BUCKETS - 1] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                    0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                                    0.5,     1.0,    2.5,     5.0,    10.0};
static const char *const bucket_labels[M_BUCKETS] = {
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",  "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf"};

/* One series per endpoint and op. buckets are per bucket, not cumulative: the exposition sums
 * them, so that _count and the +Inf bucket always agree with each other. */
typedef struct m_series {
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t errors[M_CODES];
	atomic_uint_fast64_t buckets[M_BUCKETS];
	atomic_uint_fast64_t sum_ns;
} m_series;

struct metrics {
	m_series series[M_ENDPOINTS][M_OPS];
};

metrics *metrics_new(void)
{
	metrics *m = malloc(sizeof *m);
	if (!m)
		return NULL;
	for (int e = 0; e < M_ENDPOINTS; e++) {
		for (int o = 0; o < M_OPS; o++) {
			m_series *s = &m->series[e][o];
			atomic_init(&s->requests, 0);
			atomic_init(&s->sum_ns, 0);
			for (int c = 0; c < M_CODES; c++)
				atomic_init(&s->errors[c], 0);
			for (int b = 0; b < M_BUCKETS; b++)
				atomic_init(&s->buckets[b], 0);
		}
	}
	return m;
}

void metrics_free(metrics *m)
{
	free(m);
}

static int endpoint_index(const char *endpoint)
{
	for (int e = 0; e < M_ENDPOINTS - 1; e++)
		if (endpoint && strcmp(endpoint, endpoint_names[e]) == 0)
			return e;
	return M_ENDPOINTS - 1;
}

static int bucket_index(double seconds)
{
	for (int b = 0; b < M_BUCKETS - 1; b++)
		if (seconds <= bucket_bounds[b])
			return b;
	return M_BUCKETS - 1;
}

void metrics_observe(metrics *m, const char *endpoint, wire_op op, int status, double seconds)
{
	if (!m)
		return;
	int o = (op >= 0 && op < WIRE_OP_COUNT) ? (int)op : M_OPS - 1;
	m_series *s = &m->series[endpoint_index(endpoint)][o];
	if (!(seconds >= 0.0)) /* negative or NaN: a clock went backwards */
		seconds = 0.0;
	atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
	if (status != OMEN_OK) {
		int c = (status > 0 && status < M_CODES - 1) ? status : M_CODES - 1;
		atomic_fetch_add_explicit(&s->errors[c], 1, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&s->buckets[bucket_index(seconds)], 1, memory_order_relaxed);
	uint64_t ns = seconds < 1e9 ? (uint64_t)(seconds * 1e9) : UINT64_C(1000000000000000000);
	atomic_fetch_add_explicit(&s->sum_ns, ns, memory_order_relaxed);
}

static uint64_t load(atomic_uint_fast64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

/* The counter omendb_requests_total: one line per series that has seen a request. */
static void write_requests(metrics *m, FILE *f)
{
	fputs("# HELP omendb_requests_total Requests served, by endpoint and call.\n"
	      "# TYPE omendb_requests_total counter\n",
	      f);
	for (int e = 0; e < M_ENDPOINTS; e++)
		for (int o = 0; o < M_OPS; o++) {
			uint64_t n = load(&m->series[e][o].requests);
			if (n)
				fprintf(f,
				        "omendb_requests_total{endpoint=\"%s\",op=\"%s\"} %llu\n",
				        endpoint_names[e], op_label(o), (unsigned long long)n);
		}
}

/* The counter omendb_request_errors_total: one line per series and status code seen. */
static void write_errors(metrics *m, FILE *f)
{
	fputs("# HELP omendb_request_errors_total Requests that failed, by endpoint, call and "
	      "status code.\n"
	      "# TYPE omendb_request_errors_total counter\n",
	      f);
	for (int e = 0; e < M_ENDPOINTS; e++)
		for (int o = 0; o < M_OPS; o++)
			for (int c = 1; c < M_CODES; c++) {
				uint64_t n = load(&m->series[e][o].errors[c]);
				if (n)
					fprintf(
					    f,
					    "omendb_request_errors_total{endpoint=\"%s\",op=\"%s\","
					    "code=\"%s\"} %llu\n",
					    endpoint_names[e], op_label(o), status_name(c),
					    (unsigned long long)n);
			}
}

/* One histogram series: cumulative buckets, _sum in seconds and _count. */
static void write_histogram_series(m_series *s, const char *labels, FILE *f)
{
	uint64_t cum = 0;
	for (int b = 0; b < M_BUCKETS; b++) {
		cum += load(&s->buckets[b]);
		fprintf(f, "omendb_request_duration_seconds_bucket{%s,le=\"%s\"} %llu\n", labels,
		        bucket_labels[b], (unsigned long long)cum);
	}
	uint64_t ns = load(&s->sum_ns);
	fprintf(f, "omendb_request_duration_seconds_sum{%s} %llu.%09llu\n", labels,
	        (unsigned long long)(ns / 1000000000u), (unsigned long long)(ns % 1000000000u));
	fprintf(f, "omendb_request_duration_seconds_count{%s} %llu\n", labels,
	        (unsigned long long)cum);
}

static void write_durations(metrics *m, FILE *f)
{
	fputs("# HELP omendb_request_duration_seconds Time from a request's arrival to its "
	      "reply, by endpoint and call.\n"
	      "# TYPE omendb_request_duration_seconds histogram\n",
	      f);
	for (int e = 0; e < M_ENDPOINTS; e++)
		for (int o = 0; o < M_OPS; o++) {
			m_series *s = &m->series[e][o];
			uint64_t any = 0;
			for (int b = 0; b < M_BUCKETS; b++)
				any |= load(&s->buckets[b]);
			if (!any)
				continue;
			char labels[64];
			snprintf(labels, sizeof labels, "endpoint=\"%s\",op=\"%s\"",
			         endpoint_names[e], op_label(o));
			write_histogram_series(s, labels, f);
		}
}

int metrics_text(metrics *m, char **out)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return OMEN_ENOMEM;
	if (m) {
		write_requests(m, f);
		write_errors(m, f);
		write_durations(m, f);
	}
	int failed = ferror(f);
	if (fclose(f) != 0 || failed || !buf) {
		free(buf);
		return OMEN_ENOMEM;
	}
	*out = buf;
	return OMEN_OK;
}
