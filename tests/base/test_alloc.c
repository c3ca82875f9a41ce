/*
 * The allocation fault countdown (base/alloc.c): after mem_fault_after(n), n allocations of
 * any kind succeed, the next fails once, later ones succeed; mem_fault_count says how many
 * failed; concurrent allocations fail exactly once.
 */
#include <pthread.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"

static void test_countdown(void **state)
{
	(void)state;
	mem_fault_after(2);
	void *a = mem_alloc(8), *b = mem_calloc(2, 8);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(mem_fault_count(), 0);
	assert_null(mem_strdup("x")); /* the third fails */
	assert_int_equal(mem_fault_count(), 1);
	void *c = mem_realloc(NULL, 16); /* and the next ones succeed */
	assert_non_null(c);
	assert_int_equal(mem_fault_count(), 1);
	mem_free(a);
	mem_free(b);
	mem_free(c);
	mem_fault_after(0);
	assert_null(mem_realloc(NULL, 1));
	mem_fault_clear();
	void *d = mem_alloc(1);
	assert_non_null(d);
	mem_free(d);
	mem_free(NULL);
}

static void *allocate_many(void *arg)
{
	long *failed = arg;
	for (int i = 0; i < 1000; i++) {
		void *p = mem_alloc(16);
		if (!p)
			__atomic_add_fetch(failed, 1, __ATOMIC_RELAXED);
		mem_free(p);
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	long failed = 0;
	pthread_t t[4];
	mem_fault_after(1234);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, allocate_many, &failed);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(failed, 1);
	assert_int_equal(mem_fault_count(), 1);
	mem_fault_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_countdown),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
