/*
 * Lists of point ids: sorting, removing repeats, and the check every batch passes (no
 * reserved id, none twice), whichever layer receives it first.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

void ids_sort(uint64_t *ids, size_t n)
{
	qsort(ids, n, sizeof *ids, u64_cmp);
}

size_t ids_unique(uint64_t *ids, size_t n)
{
	if (n == 0)
		return 0;
	ids_sort(ids, n);
	size_t m = 1;
	for (size_t i = 1; i < n; i++)
		if (ids[i] != ids[m - 1])
			ids[m++] = ids[i];
	return m;
}

static int twice(uint64_t id)
{
	return status_set(OMEN_EINVAL, "id %llu appears twice in the batch",
	                  (unsigned long long)id);
}

int ids_check(const uint64_t *ids, size_t n)
{
	bool ascending = true;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == OMEN_NO_ID)
			return status_set(OMEN_EINVAL,
			                  "id %zu of the batch is the reserved value 2^64-1", i);
		ascending = ascending && (i == 0 || ids[i] > ids[i - 1]);
	}
	if (ascending)
		return OMEN_OK;
	uint64_t *s = mem_alloc(n * sizeof *s);
	if (!s)
		return status_set(OMEN_ENOMEM, "out of memory checking %zu ids", n);
	memcpy(s, ids, n * sizeof *s);
	ids_sort(s, n);
	int st = OMEN_OK;
	for (size_t i = 1; i < n && st == OMEN_OK; i++)
		if (s[i] == s[i - 1])
			st = twice(s[i]);
	mem_free(s);
	return st;
}
