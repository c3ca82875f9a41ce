/*
 * Files (base/file.c): directories created with their parents, and a text file replaced whole:
 * its new content, no temporary file left, and a clear error where it cannot be written.
 */
#include <sys/stat.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"

static void test_dir_create(void **state)
{
	(void)state;
	char dir[512], deep[700];
	tmp_dir(dir, sizeof dir, "file");
	snprintf(deep, sizeof deep, "%s/a/b/c", dir);
	assert_omen_ok(dir_create(deep));
	struct stat st;
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_omen_ok(dir_create(deep)); /* already there */
	assert_omen_status(dir_create(""), OMEN_EINVAL);
	/* a path through a file */
	char file[720];
	snprintf(file, sizeof file, "%s/f", dir);
	FILE *f = fopen(file, "w");
	fclose(f);
	snprintf(deep, sizeof deep, "%s/f/x", dir);
	assert_omen_status(dir_create(deep), OMEN_EIO);
	rm_tree(dir);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 4096);
	size_t n = fread(buf, 1, 4095, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static void test_write_atomic(void **state)
{
	(void)state;
	char dir[512], path[600], tmp[620];
	tmp_dir(dir, sizeof dir, "file");
	snprintf(path, sizeof path, "%s/node.id", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	assert_omen_ok(file_write_atomic(path, "first\n"));
	char *got = slurp(path);
	assert_string_equal(got, "first\n");
	free(got);
	assert_omen_ok(file_write_atomic(path, "second\n"));
	got = slurp(path);
	assert_string_equal(got, "second\n");
	free(got);
	assert_null(slurp(tmp)); /* renamed over, not left behind */
	snprintf(path, sizeof path, "%s/missing/x", dir);
	assert_omen_status(file_write_atomic(path, "x"), OMEN_EIO);
	assert_non_null(strstr(status_msg(), "missing/x"));
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dir_create),
	    cmocka_unit_test(test_write_atomic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
