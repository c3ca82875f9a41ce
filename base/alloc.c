/*
 * Allocation for the engine and the wire, with a fault countdown for tests: after
 * mem_fault_after(n), n allocations succeed and the next one fails, so that a test can fail
 * each allocation of an operation in turn and check that every path gives OMEN_ENOMEM and
 * leaves things as they were (after canonical/raft's test/lib/fault.h).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

/* Allocations left before the failure; negative: no failure armed. */
static atomic_long countdown = -1;
static atomic_long failed;

/* True when this allocation is the one to fail. */
static bool fault(void)
{
	if (atomic_load_explicit(&countdown, memory_order_relaxed) < 0)
		return false;
	if (atomic_fetch_sub(&countdown, 1) != 0)
		return false;
	atomic_fetch_add(&failed, 1);
	return true;
}

void mem_fault_after(long n)
{
	atomic_store(&failed, 0);
	atomic_store(&countdown, n);
}

void mem_fault_clear(void)
{
	atomic_store(&countdown, -1);
}

long mem_fault_count(void)
{
	return atomic_load(&failed);
}

void *mem_alloc(size_t size)
{
	return fault() ? NULL : malloc(size);
}

void *mem_calloc(size_t n, size_t size)
{
	return fault() ? NULL : calloc(n, size);
}

void *mem_realloc(void *p, size_t size)
{
	return fault() ? NULL : realloc(p, size);
}

char *mem_strdup(const char *s)
{
	return fault() ? NULL : strdup(s);
}

char *mem_strndup(const char *s, size_t n)
{
	return fault() ? NULL : strndup(s, n);
}

void mem_free(void *p)
{
	free(p);
}
