/*
 * Helpers shared by the benchmark programs (see bench_util.h). Errors here are the
 * benchmark's own (missing data, full disk): they end the program with a message.
 */
#include "bench_util.h"

#include <omendb/omendb.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double bu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void bu_die(const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

void bu_check(int rc, const char *what)
{
	if (rc != OMEN_OK)
		bu_die(what, "%s (%s)", omen_strerror(rc), omen_errmsg(NULL));
}

void *bu_xmalloc(size_t bytes)
{
	void *p = malloc(bytes ? bytes : 1);
	if (!p)
		bu_die("malloc", "%zu bytes: out of memory", bytes);
	return p;
}

void bu_fvecs_open(bu_fvecs *f, const char *path)
{
	struct stat st;
	int32_t d;

	snprintf(f->path, sizeof f->path, "%s", path);
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		bu_die(path, "%s (make it with bench/data.py)", strerror(errno));
	if (fstat(f->fd, &st) != 0 || pread(f->fd, &d, 4, 0) != 4)
		bu_die(path, "cannot read the first row header");
	if (d <= 0 || d > OMEN_MAX_DIM)
		bu_die(path, "bad dimension %d in the first row", (int)d);
	f->dim = (size_t)d;
	if ((size_t)st.st_size % (4 + 4 * f->dim) != 0)
		bu_die(path, "size %lld is not a whole number of %zu-d rows", (long long)st.st_size,
		       f->dim);
	f->n = (size_t)st.st_size / (4 + 4 * f->dim);
}

/* Reads exactly len bytes at off, retrying short reads. */
static void pread_full(int fd, void *buf, size_t len, off_t off, const char *path)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t r = pread(fd, p, len, off);
		if (r <= 0)
			bu_die(path, "read failed: %s", r < 0 ? strerror(errno) : "unexpected end");
		p += r;
		off += r;
		len -= (size_t)r;
	}
}

void bu_fvecs_read(const bu_fvecs *f, size_t first, size_t count, float *out)
{
	const size_t row = 4 + 4 * f->dim;
	const size_t step = 4096; /* rows per read */
	uint8_t *buf;

	if (first + count > f->n)
		bu_die(f->path, "rows %zu..%zu asked, %zu present", first, first + count, f->n);
	buf = bu_xmalloc((count < step ? count : step) * row);
	for (size_t done = 0; done < count;) {
		size_t m = count - done < step ? count - done : step;
		pread_full(f->fd, buf, m * row, (off_t)((first + done) * row), f->path);
		for (size_t i = 0; i < m; i++) {
			int32_t d;
			memcpy(&d, buf + i * row, 4);
			if ((size_t)d != f->dim)
				bu_die(f->path, "row %zu: dimension %d, expected %zu",
				       first + done + i, (int)d, f->dim);
			memcpy(out + (done + i) * f->dim, buf + i * row + 4, 4 * f->dim);
		}
		done += m;
	}
	free(buf);
}

void bu_fvecs_close(bu_fvecs *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

float *bu_fvecs_load(const char *path, size_t limit, size_t *n, size_t *dim)
{
	bu_fvecs f;
	float *x;
	size_t rows;

	bu_fvecs_open(&f, path);
	rows = limit && limit < f.n ? limit : f.n;
	x = bu_xmalloc(rows * f.dim * sizeof(float));
	bu_fvecs_read(&f, 0, rows, x);
	*n = rows;
	*dim = f.dim;
	bu_fvecs_close(&f);
	return x;
}

uint8_t *bu_read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) != 0)
		bu_die(path, "%s", strerror(errno));
	p = bu_xmalloc((size_t)st.st_size);
	pread_full(fd, p, (size_t)st.st_size, 0, path);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bu_quantile(const double *v, size_t n, double p)
{
	double *s = bu_xmalloc(n * sizeof *s);
	size_t i;
	double r;

	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp_double);
	i = (size_t)(p * (double)n);
	if (p >= 1.0 || i >= n)
		i = n - 1;
	r = s[i];
	free(s);
	return r;
}

double bu_median(const double *v, size_t n)
{
	double *s = bu_xmalloc(n * sizeof *s);
	double r;

	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp_double);
	r = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
	free(s);
	return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		bu_die(path, "cannot remove: %s", strerror(errno));
	return 0;
}

void bu_rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return;
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t bu_dir_bytes(const char *dir, char *largest)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t total = 0, best = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char p[4096];
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		total += (uint64_t)st.st_size;
		if ((uint64_t)st.st_size >= best && largest) {
			best = (uint64_t)st.st_size;
			snprintf(largest, 4096, "%s", p);
		}
	}
	closedir(d);
	return total;
}

long bu_proc_status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t flen = strlen(field);
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

int bu_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

void bu_json_doubles(FILE *f, const double *v, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%.9g", i ? ", " : "", v[i]);
	fputc(']', f);
}

FILE *bu_open_out(const char *path)
{
	FILE *f;
	if (!path || strcmp(path, "-") == 0)
		return stdout;
	f = fopen(path, "w");
	if (!f)
		bu_die(path, "%s", strerror(errno));
	return f;
}

void bu_close_out(FILE *f)
{
	if (f == stdout) {
		fflush(f);
		return;
	}
	if (fclose(f) != 0)
		bu_die("output", "write failed: %s", strerror(errno));
}

/* Stores the value v of option o; false when v is not a number of the option's kind. */
static bool opt_store(const bu_opt *o, const char *v)
{
	char *end = NULL;
	errno = 0;
	switch (o->kind) {
	case BU_STR:
		*(const char **)o->dst = v;
		return true;
	case BU_SIZE:
	case BU_U32: {
		if (*v == '-')
			return false;
		unsigned long long x = strtoull(v, &end, 10);
		if (o->kind == BU_U32 && x > UINT32_MAX)
			return false;
		if (o->kind == BU_SIZE)
			*(size_t *)o->dst = (size_t)x;
		else
			*(uint32_t *)o->dst = (uint32_t)x;
		break;
	}
	case BU_INT: {
		long x = strtol(v, &end, 10);
		if (x < INT_MIN || x > INT_MAX)
			return false;
		*(int *)o->dst = (int)x;
		break;
	}
	case BU_DOUBLE:
		*(double *)o->dst = strtod(v, &end);
		break;
	case BU_FLAG:
		return false;
	}
	return errno == 0 && end != v && *end == 0;
}

size_t bu_parse(int argc, char **argv, const bu_opt *opts, size_t nopts, const char **pos,
                size_t maxpos, void (*usage)(void))
{
	size_t npos = 0;
	for (int i = 1; i < argc; i++) {
		const bu_opt *o = NULL;
		for (size_t j = 0; j < nopts && !o; j++)
			if (strcmp(argv[i], opts[j].name) == 0)
				o = &opts[j];
		if (!o && argv[i][0] == '-')
			usage();
		if (!o) {
			if (npos == maxpos)
				usage();
			pos[npos++] = argv[i];
		} else if (o->kind == BU_FLAG) {
			*(int *)o->dst = 1;
		} else if (i + 1 >= argc || !opt_store(o, argv[++i])) {
			usage();
		}
	}
	return npos;
}
