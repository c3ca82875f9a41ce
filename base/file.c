/*
 * Files outside LMDB: directories created with their parents, and small text files replaced
 * durably (temporary file, fsync, rename, fsync of the directory), after Redis's rdb.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"

/* Syncs the directory that holds path, so that a rename in it is durable. */
static int dir_sync_of(const char *path)
{
	char copy[4096];
	snprintf(copy, sizeof copy, "%s", path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int file_write_atomic(const char *path, const char *text)
{
	char tmp[4200];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
		return status_set(OMEN_EINVAL, "path too long: %.100s...", path);
	FILE *f = fopen(tmp, "w");
	int ok = f && fputs(text, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (f && fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) != 0 || dir_sync_of(path) != 0)
		return status_set(OMEN_EIO, "cannot write %s: %s", path, strerror(errno));
	return OMEN_OK;
}

int dir_create(const char *dir)
{
	char path[4096];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof path)
		return status_set(OMEN_EINVAL, "bad directory name '%s'", dir);
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != 0)
			continue;
		char saved = path[i];
		path[i] = 0;
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return status_set(OMEN_EIO, "cannot create %s: %s", path, strerror(errno));
		path[i] = saved;
	}
	return OMEN_OK;
}
