/*
 * The status table (base/status.c) against the public header: every OMEN_E* code that
 * include/omendb/omendb.h declares has a row, named as the enum names it, with an HTTP status
 * and a text; codes out of range are EUNKNOWN, 500, "unknown status". And the thread's
 * message: set, read back, formatted with itself, separate per thread.
 */
#include <pthread.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"

/* Reads the public header (OMEN_SOURCE: the source tree) and calls fn for each "OMEN_Exxx = N"
 * of the status enum. Returns how many it found. */
static int each_declared_code(void (*fn)(const char *name, int code))
{
	const char *src = getenv("OMEN_SOURCE");
	char path[1024], line[512];
	snprintf(path, sizeof path, "%s/include/omendb/omendb.h", src ? src : ".");
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot read %s (OMEN_SOURCE is the source tree)", path);
	int found = 0;
	while (fgets(line, sizeof line, f)) {
		char name[64];
		int code;
		if (sscanf(line, " OMEN_%63[A-Z] = %d", name, &code) == 2 && name[0] == 'E') {
			fn(name, code);
			found++;
		}
	}
	fclose(f);
	return found;
}

static void check_row(const char *name, int code)
{
	if (strcmp(status_name(code), name) != 0)
		fail_msg("OMEN_%s = %d is named %s in base's table", name, code, status_name(code));
	unsigned http = status_http(code);
	assert_true(http >= 400 && http <= 599);
	assert_true(strlen(status_text(code)) > 0);
	assert_string_not_equal(status_text(code), "unknown status");
	assert_true(code < STATUS_COUNT);
}

static void test_table_matches_header(void **state)
{
	(void)state;
	int n = each_declared_code(check_row);
	/* OMEN_OK is not an E code: every other code has a row, and no row is extra. */
	assert_int_equal(n + 1, STATUS_COUNT);
	assert_string_equal(status_name(OMEN_OK), "OK");
	assert_int_equal(status_http(OMEN_OK), 200);
}

/* The codes clients act on, with the HTTP statuses docs/HTTP.md promises. */
static void test_http_statuses(void **state)
{
	(void)state;
	assert_int_equal(status_http(OMEN_EINVAL), 400);
	assert_int_equal(status_http(OMEN_ENOTFOUND), 404);
	assert_int_equal(status_http(OMEN_EEXIST), 409);
	assert_int_equal(status_http(OMEN_EAUTH), 401);
	assert_int_equal(status_http(OMEN_EUNAVAIL), 503);
	assert_string_equal(status_name(OMEN_ESTALE), "ESTALE");
	assert_int_equal(status_http(OMEN_ESTALE), 503);
}

static void test_out_of_range(void **state)
{
	(void)state;
	int bad[] = {-1, STATUS_COUNT, 99, -1000};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_string_equal(status_name(bad[i]), "EUNKNOWN");
		assert_int_equal(status_http(bad[i]), 500);
		assert_string_equal(status_text(bad[i]), "unknown status");
	}
}

static void *other_thread(void *arg)
{
	(void)arg;
	status_set(OMEN_EIO, "from another thread");
	return NULL;
}

static void test_message(void **state)
{
	(void)state;
	assert_int_equal(status_set(OMEN_EINVAL, "k must be %d", 5), OMEN_EINVAL);
	assert_string_equal(status_msg(), "k must be 5");
	/* The message may be formatted with itself. */
	status_set(OMEN_EINVAL, "point %d: %s", 3, status_msg());
	assert_string_equal(status_msg(), "point 3: k must be 5");
	/* Each thread has its own. */
	pthread_t t;
	pthread_create(&t, NULL, other_thread, NULL);
	pthread_join(t, NULL);
	assert_string_equal(status_msg(), "point 3: k must be 5");
	/* A long message is cut, not overflowed. */
	char big[3000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	status_set(OMEN_EINVAL, "%s", big);
	assert_true(strlen(status_msg()) < sizeof big - 1 && strlen(status_msg()) > 500);
}

static void test_err_set(void **state)
{
	(void)state;
	char err[8];
	assert_int_equal(err_set(err, sizeof err, OMEN_EPROTO, "abc %d", 1234567), OMEN_EPROTO);
	assert_string_equal(err, "abc 123"); /* cut to the buffer */
	assert_int_equal(err_set(NULL, 0, -1, "nowhere"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_matches_header),
	    cmocka_unit_test(test_http_statuses),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_message),
	    cmocka_unit_test(test_err_set),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
