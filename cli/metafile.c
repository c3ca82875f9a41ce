/*
 * Metadata files for load --metadata: JSON lines, line i holding vector i's metadata. Every
 * line is validated before the load writes anything, against the rules the library applies to
 * omen_batch.metadata, so that a bad line cannot stop a load half way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Reads the whole file into a NUL-terminated malloc'd buffer. */
static int slurp(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 16, n = 0;
	char *buf = NULL;

	if (f == NULL) {
		cli_err("%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		char *bigger = realloc(buf, cap + 1);

		if (bigger == NULL) {
			cli_err("out of memory");
			goto fail;
		}
		buf = bigger;
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		cap *= 2;
	}
	if (ferror(f)) {
		cli_err("%s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	fclose(f);
	return -1;
}

/* Validates line number lineno (1-based) of length len with the library's own rules; returns
 * the text to store (NULL for none) through *out. Returns 0 or -1 after reporting. */
static int check_line(const metafile *mf, size_t lineno, char *line, size_t len, const char **out)
{
	while (len > 0 && strchr(" \t\r", line[len - 1]) != NULL)
		line[--len] = '\0';
	while (len > 0 && (*line == ' ' || *line == '\t'))
		line++, len--;
	*out = NULL;
	if (len == 0 || strcmp(line, "null") == 0)
		return 0;
	if (omen_metadata_check(line) != OMEN_OK) {
		cli_err("%s: line %zu: %s", mf->path, lineno, omen_errmsg(NULL));
		return -1;
	}
	*out = line;
	return 0;
}

/* Splits mf->text into lines; a final newline does not start another line. */
static int split_lines(metafile *mf, size_t len)
{
	size_t n = 0, cap = 1024;
	char *p = mf->text, *end = mf->text + len;

	mf->lines = malloc(cap * sizeof(*mf->lines));
	while (mf->lines != NULL && p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *e = nl ? nl : end;

		if (n == cap) {
			const char **bigger = realloc(mf->lines, 2 * cap * sizeof(*mf->lines));

			if (bigger == NULL)
				break;
			mf->lines = bigger;
			cap *= 2;
		}
		*e = '\0';
		if (check_line(mf, n + 1, p, (size_t)(e - p), &mf->lines[n]) != 0)
			return -1;
		n++;
		p = e + 1;
	}
	if (mf->lines == NULL || p < end) {
		cli_err("out of memory");
		return -1;
	}
	mf->n = n;
	return 0;
}

int metafile_open(const char *path, metafile *out)
{
	metafile mf = {.path = path};
	size_t len;

	if (slurp(path, &mf.text, &len) != 0)
		return -1;
	if (split_lines(&mf, len) != 0) {
		metafile_close(&mf);
		return -1;
	}
	*out = mf;
	return 0;
}

void metafile_close(metafile *mf)
{
	free(mf->text);
	free(mf->lines);
	memset(mf, 0, sizeof(*mf));
}
