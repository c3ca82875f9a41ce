/*
 * Logging (base/log.c): one line per message on stderr with a UTC time, the level and the
 * node's name; messages above the level dropped; level names parsed.
 */
#include <fcntl.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"

/* Runs the logging calls of fn with stderr sent to a file, and returns what was written. */
static char *captured(void (*fn)(void))
{
	char path[] = "/tmp/omen-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char *buf = calloc(1, 4096);
	ssize_t n = pread(fd, buf, 4095, 0);
	assert_true(n >= 0);
	close(fd);
	unlink(path);
	return buf;
}

static void write_some(void)
{
	log_init(LOG_INFO, "node-7");
	log_msg(LOG_INFO, "started on port %d", 7700);
	log_msg(LOG_DEBUG, "dropped");
	log_msg(LOG_ERROR, "disk %s", "full");
}

static void test_lines(void **state)
{
	(void)state;
	char *out = captured(write_some);
	int y, mo, d, h, mi, s, ms, port;
	char level[8], name[16];
	assert_int_equal(sscanf(out, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %7s %15[^:]: started on port %d",
	                        &y, &mo, &d, &h, &mi, &s, &ms, level, name, &port),
	                 10);
	assert_string_equal(level, "INFO");
	assert_string_equal(name, "node-7");
	assert_int_equal(port, 7700);
	assert_null(strstr(out, "dropped"));
	assert_non_null(strstr(out, "ERROR node-7: disk full\n"));
	int lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2);
	free(out);
}

static void test_levels(void **state)
{
	(void)state;
	assert_int_equal(log_level_parse("error"), LOG_ERROR);
	assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
	assert_int_equal(log_level_parse("DEBUG"), -1);
	assert_int_equal(log_level_parse(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_levels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
