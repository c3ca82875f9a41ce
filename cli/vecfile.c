/*
 * Input vector files for load and search: .fvecs, .bvecs, .npy (float32) and .csv, chosen by
 * extension. vecfile_open validates a whole file before anyone uses it, so that a load either
 * writes everything or nothing; errors name the file and the byte offset, line or vector and
 * component at fault. Binary files are memory mapped; CSV is parsed once into memory.
 *
 * Layouts (all little-endian):
 *   fvecs  per vector: int32 dim, then dim float32
 *   bvecs  per vector: int32 dim, then dim uint8 (converted to float)
 *   npy    "\x93NUMPY", u8 major (1..3), u8 minor (0), header length (u16 for 1.x, u32 for
 *          2.x/3.x), a Python dict header {'descr': '<f4', 'fortran_order': False,
 *          'shape': (n, dim)} or shape (dim,) for one vector, then n x dim float32
 *   csv    one vector per line, comma-separated numbers; blank lines are skipped
 */
#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

enum { VF_FVECS = 1, VF_BVECS, VF_NPY, VF_CSV };

/* Longest CSV field accepted as a number. */
#define CSV_FIELD_MAX 128

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The VF_* format named by path's extension, or 0. */
static int format_of(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot == NULL || strchr(dot, '/') != NULL)
		return 0;
	if (strcasecmp(dot, ".fvecs") == 0)
		return VF_FVECS;
	if (strcasecmp(dot, ".bvecs") == 0)
		return VF_BVECS;
	if (strcasecmp(dot, ".npy") == 0)
		return VF_NPY;
	if (strcasecmp(dot, ".csv") == 0)
		return VF_CSV;
	return 0;
}

/* Reads all of fd (not a regular file) into a malloc'd buffer. Returns 0 or -1 (errno set). */
static int read_all(int fd, unsigned char **out, size_t *size)
{
	size_t cap = 1 << 16, len = 0;
	unsigned char *buf = malloc(cap);

	while (buf != NULL) {
		ssize_t got;

		if (len == cap) {
			unsigned char *bigger = realloc(buf, cap * 2);

			if (bigger == NULL)
				break;
			buf = bigger;
			cap *= 2;
		}
		got = read(fd, buf + len, cap - len);
		if (got == 0) {
			*out = buf;
			*size = len;
			return 0;
		}
		if (got < 0 && errno != EINTR)
			goto fail;
		if (got > 0)
			len += (size_t)got;
	}
	errno = ENOMEM;
fail:
	free(buf);
	return -1;
}

/* Maps (or, for pipes and such, reads) vf->path into vf->bytes and vf->size. */
static int map_file(vecfile *vf)
{
	struct stat st;
	int fd = open(vf->path, O_RDONLY | O_CLOEXEC);
	int rc = -1;

	if (fd < 0 || fstat(fd, &st) != 0)
		goto done;
	if (!S_ISREG(st.st_mode)) {
		unsigned char *buf;

		if (S_ISDIR(st.st_mode)) {
			errno = EISDIR;
			goto done;
		}
		rc = read_all(fd, &buf, &vf->size);
		vf->bytes = buf;
		goto done;
	}
	vf->size = (size_t)st.st_size;
	rc = 0;
	if (vf->size == 0)
		goto done;
	vf->bytes = mmap(NULL, vf->size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (vf->bytes == MAP_FAILED) {
		vf->bytes = NULL;
		rc = -1;
		goto done;
	}
	vf->mapped = 1;
	madvise((void *)vf->bytes, vf->size, MADV_SEQUENTIAL);
done:
	if (rc != 0)
		cli_err("%s: %s", vf->path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Validates the record structure of an fvecs (esize 4) or bvecs (esize 1) file. */
static int parse_vecs(vecfile *vf, size_t esize)
{
	size_t off, i;
	int32_t d0;

	if (vf->size < 4) {
		cli_err("%s: truncated record 0 at byte offset 0: %zu of 4 header bytes", vf->path,
		        vf->size);
		return -1;
	}
	d0 = (int32_t)get_le32(vf->bytes);
	if (d0 < 1 || d0 > OMEN_MAX_DIM) {
		cli_err("%s: record 0 at byte offset 0: bad dimension %d (1..%d)", vf->path, d0,
		        OMEN_MAX_DIM);
		return -1;
	}
	vf->dim = (size_t)d0;
	vf->data_off = 4;
	vf->stride = 4 + esize * vf->dim;
	for (off = 0, i = 0; off < vf->size; off += vf->stride, i++) {
		size_t left = vf->size - off;
		int32_t d;

		if (left < 4) {
			cli_err(
			    "%s: truncated record %zu at byte offset %zu: %zu of 4 header bytes",
			    vf->path, i, off, left);
			return -1;
		}
		d = (int32_t)get_le32(vf->bytes + off);
		if (d != d0) {
			cli_err("%s: record %zu at byte offset %zu has dimension %d, expected %d "
			        "(as in record 0)",
			        vf->path, i, off, d, d0);
			return -1;
		}
		if (left < vf->stride) {
			cli_err("%s: truncated record %zu at byte offset %zu: %zu bytes expected, "
			        "%zu left",
			        vf->path, i, off, vf->stride, left);
			return -1;
		}
	}
	vf->n = i;
	return 0;
}

/* Points past the value of 'key' in the NUL-terminated npy header dict, or NULL. */
static const char *npy_value(const char *hdr, const char *key)
{
	char quoted[32];
	const char *p;

	snprintf(quoted, sizeof(quoted), "'%s'", key);
	p = strstr(hdr, quoted);
	if (p == NULL) {
		snprintf(quoted, sizeof(quoted), "\"%s\"", key);
		p = strstr(hdr, quoted);
	}
	if (p == NULL)
		return NULL;
	p += strlen(quoted);
	while (*p == ' ')
		p++;
	if (*p++ != ':')
		return NULL;
	while (*p == ' ')
		p++;
	return p;
}

/* Parses a shape tuple "(a, b)" / "(a,)" / "()" at p into dims; returns the count or -1. */
static int npy_shape(const char *p, uint64_t dims[3])
{
	int n = 0;

	if (*p++ != '(')
		return -1;
	for (;;) {
		char *end;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == ')')
			return n;
		if (!isdigit((unsigned char)*p) || n == 3)
			return -1;
		errno = 0;
		dims[n++] = strtoull(p, &end, 10);
		if (errno != 0)
			return -1;
		p = end;
		if (*p == 'L')
			p++;
		if (*p != ',' && *p != ' ' && *p != ')')
			return -1;
	}
}

/* Checks the header dict hdr (NUL-terminated) and sets vf->n and vf->dim. */
static int npy_dict(vecfile *vf, const char *hdr)
{
	const char *descr = npy_value(hdr, "descr");
	const char *fortran = npy_value(hdr, "fortran_order");
	const char *shape = npy_value(hdr, "shape");
	uint64_t dims[3];
	int nd;

	if (hdr[0] != '{' || descr == NULL || fortran == NULL || shape == NULL) {
		cli_err("%s: corrupt npy header (descr, fortran_order and shape expected)",
		        vf->path);
		return -1;
	}
	if (strncmp(descr, "'<f4'", 5) != 0 && strncmp(descr, "\"<f4\"", 5) != 0) {
		size_t len = strcspn(descr, ",}");

		cli_err("%s: npy dtype %.*s is not supported: float32 ('<f4') only; convert with "
		        "a.astype(numpy.float32)",
		        vf->path, (int)(len < 40 ? len : 40), descr);
		return -1;
	}
	if (strncmp(fortran, "False", 5) != 0) {
		cli_err("%s: npy arrays in Fortran order are not supported (use "
		        "numpy.ascontiguousarray)",
		        vf->path);
		return -1;
	}
	nd = npy_shape(shape, dims);
	if (nd < 1 || nd > 2) {
		cli_err("%s: npy shape must be (n, dim) or (dim,)%s", vf->path,
		        nd < 0 ? ": corrupt shape" : "");
		return -1;
	}
	vf->n = nd == 2 ? dims[0] : 1;
	vf->dim = nd == 2 ? dims[1] : dims[0];
	if (vf->dim < 1 || vf->dim > OMEN_MAX_DIM) {
		cli_err("%s: npy vectors have dimension %zu (1..%d)", vf->path, vf->dim,
		        OMEN_MAX_DIM);
		return -1;
	}
	return 0;
}

/* Validates an npy file: magic, version, header and a data size that matches the shape. */
static int parse_npy(vecfile *vf)
{
	const unsigned char *b = vf->bytes;
	size_t hlen, hoff, need;
	char *hdr;
	int rc;

	if (vf->size < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
		cli_err("%s: not an npy file (bad magic)", vf->path);
		return -1;
	}
	if (b[6] < 1 || b[6] > 3 || b[7] != 0) {
		cli_err("%s: npy format version %u.%u is not supported (1.0, 2.0, 3.0)", vf->path,
		        b[6], b[7]);
		return -1;
	}
	hoff = b[6] == 1 ? 10 : 12;
	if (vf->size < hoff) {
		cli_err("%s: corrupt npy header: the file ends inside it", vf->path);
		return -1;
	}
	hlen = b[6] == 1 ? (size_t)(b[8] | b[9] << 8) : (size_t)get_le32(b + 8);
	if (hlen > vf->size - hoff) {
		cli_err("%s: corrupt npy header: length %zu exceeds the file", vf->path, hlen);
		return -1;
	}
	hdr = strndup((const char *)b + hoff, hlen);
	if (hdr == NULL) {
		cli_err("out of memory");
		return -1;
	}
	rc = npy_dict(vf, hdr);
	free(hdr);
	if (rc != 0)
		return -1;
	vf->data_off = hoff + hlen;
	vf->stride = 4 * vf->dim;
	if (__builtin_mul_overflow(vf->n, vf->stride, &need) || need != vf->size - vf->data_off) {
		cli_err("%s: npy data is %zu bytes but shape (%zu, %zu) needs %zu x %zu", vf->path,
		        vf->size - vf->data_off, vf->n, vf->dim, vf->n, vf->stride);
		return -1;
	}
	return 0;
}

/* Parses one CSV field [b, e) into *out. Returns 0 or -1. */
static int csv_number(const char *b, const char *e, float *out)
{
	char buf[CSV_FIELD_MAX + 1];
	char *end;

	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (b == e || (size_t)(e - b) > CSV_FIELD_MAX)
		return -1;
	memcpy(buf, b, (size_t)(e - b));
	buf[e - b] = '\0';
	*out = strtof(buf, &end);
	return *end == '\0' ? 0 : -1;
}

/* Makes room in vf->parsed for float number at (0-based), doubling *cap as needed. */
static int csv_room(vecfile *vf, size_t at, size_t *cap)
{
	float *bigger;

	if (at < *cap)
		return 0;
	bigger = realloc(vf->parsed, 2 * *cap * sizeof(float));
	if (bigger == NULL) {
		cli_err("out of memory");
		return -1;
	}
	vf->parsed = bigger;
	*cap *= 2;
	return 0;
}

/* Appends the numbers of CSV line [b, e) (line number lineno) to vf->parsed, growing it. The
 * first line sets the dimension; every later line must have as many numbers. */
static int csv_line(vecfile *vf, const char *b, const char *e, size_t lineno, size_t *cap)
{
	size_t count = 0;
	const char *f = b;

	for (;;) {
		const char *comma = memchr(f, ',', (size_t)(e - f));
		const char *fe = comma ? comma : e;
		size_t at = vf->n * vf->dim + count;

		if (vf->n > 0 && count == vf->dim) {
			cli_err("%s: line %zu has more than %zu values (as on the first line)",
			        vf->path, lineno, vf->dim);
			return -1;
		}
		if (csv_room(vf, at, cap) != 0)
			return -1;
		if (csv_number(f, fe, &vf->parsed[at]) != 0) {
			cli_err("%s: line %zu field %zu: '%.*s' is not a number", vf->path, lineno,
			        count + 1, (int)(fe - f > 40 ? 40 : fe - f), f);
			return -1;
		}
		count++;
		if (comma == NULL)
			break;
		f = comma + 1;
	}
	if (vf->n == 0)
		vf->dim = count;
	if (count != vf->dim) {
		cli_err("%s: line %zu has %zu values, expected %zu (as on the first line)",
		        vf->path, lineno, count, vf->dim);
		return -1;
	}
	vf->n++;
	return 0;
}

/* Parses a CSV file into vf->parsed. */
static int parse_csv(vecfile *vf)
{
	const char *p = (const char *)vf->bytes, *end = p + vf->size;
	size_t cap = 1024, lineno = 0;

	vf->parsed = malloc(cap * sizeof(float));
	if (vf->parsed == NULL) {
		cli_err("out of memory");
		return -1;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		const char *q = p;

		lineno++;
		if (e > p && e[-1] == '\r')
			e--;
		while (q < e && (*q == ' ' || *q == '\t'))
			q++;
		if (q < e && csv_line(vf, p, e, lineno, &cap) != 0)
			return -1;
		if (vf->dim > OMEN_MAX_DIM) {
			cli_err("%s: %zu values per line, more than %d", vf->path, vf->dim,
			        OMEN_MAX_DIM);
			return -1;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

void vecfile_read(const vecfile *vf, size_t first, size_t count, float *out)
{
	if (vf->format == VF_CSV) {
		memcpy(out, vf->parsed + first * vf->dim, count * vf->dim * sizeof(float));
		return;
	}
	for (size_t i = 0; i < count; i++) {
		const unsigned char *src = vf->bytes + vf->data_off + (first + i) * vf->stride;
		float *dst = out + i * vf->dim;

		if (vf->format == VF_BVECS) {
			for (size_t j = 0; j < vf->dim; j++)
				dst[j] = (float)src[j];
		} else {
			memcpy(dst, src, vf->dim * sizeof(float));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			for (size_t j = 0; j < vf->dim; j++) {
				uint32_t u;

				memcpy(&u, dst + j, 4);
				u = le32toh(u);
				memcpy(dst + j, &u, 4);
			}
#endif
		}
	}
}

/* Checks that every component is finite; names the first vector and component that is not. */
static int check_finite(const vecfile *vf)
{
	float row[OMEN_MAX_DIM];

	if (vf->format == VF_BVECS)
		return 0;
	for (size_t i = 0; i < vf->n; i++) {
		vecfile_read(vf, i, 1, row);
		for (size_t j = 0; j < vf->dim; j++) {
			if (!isfinite(row[j])) {
				cli_err(
				    "%s: vector %zu component %zu is %s (values must be finite)",
				    vf->path, i, j, isnan(row[j]) ? "NaN" : "infinite");
				return -1;
			}
		}
	}
	return 0;
}

size_t vecfile_find_zero(const vecfile *vf)
{
	float row[OMEN_MAX_DIM];
	size_t i, j;

	for (i = 0; i < vf->n; i++) {
		vecfile_read(vf, i, 1, row);
		for (j = 0; j < vf->dim && row[j] == 0.0f; j++)
			;
		if (j == vf->dim)
			break;
	}
	return i;
}

void vecfile_close(vecfile *vf)
{
	if (vf->mapped)
		munmap((void *)vf->bytes, vf->size);
	else
		free((void *)vf->bytes);
	free(vf->parsed);
	memset(vf, 0, sizeof(*vf));
}

/* Parses the structure of vf by its format. */
static int parse_format(vecfile *vf)
{
	switch (vf->format) {
	case VF_FVECS:
		return parse_vecs(vf, 4);
	case VF_BVECS:
		return parse_vecs(vf, 1);
	case VF_NPY:
		return parse_npy(vf);
	default:
		return parse_csv(vf);
	}
}

int vecfile_open(const char *path, vecfile *out)
{
	vecfile vf = {.path = path, .format = format_of(path)};

	if (vf.format == 0) {
		cli_err("%s: unknown file format (expected .fvecs, .bvecs, .npy or .csv)", path);
		return -1;
	}
	if (map_file(&vf) != 0)
		return -1;
	if (vf.format != VF_NPY && vf.size == 0) {
		cli_err("%s: the file is empty", path);
		goto fail;
	}
	if (parse_format(&vf) != 0 || check_finite(&vf) != 0)
		goto fail;
	if (vf.n == 0) {
		cli_err("%s: the file holds no vectors", path);
		goto fail;
	}
	*out = vf;
	return 0;
fail:
	vecfile_close(&vf);
	return -1;
}
