/*
 * Crash safety. A child process loads batches and reports each acknowledged batch through a
 * pipe; the parent kills it with SIGKILL at a random moment, reopens the database, and checks
 * that every acknowledged batch is there whole, that no batch is there in part, and that the
 * database opens without repair. The same for a disk that fills up (RLIMIT_FSIZE).
 */
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "helpers.h"

#define DIM   32
#define BATCH 500

static float *batch_vectors(uint64_t b)
{
	return rnd_vectors(BATCH, DIM, 1000 + b);
}

/* Child: loads batches from `first` on, writing each batch number to fd once acknowledged.
 * Exits with the failing status in its low byte, or 0 after `limit` batches. */
static void child_load(const char *dir, int durability, uint64_t first, uint64_t limit, int fd)
{
	omen_open_options o;
	omen_open_options_init(&o);
	o.durability = durability;
	omen_db *db;
	omen_collection *c;
	int st = omen_open(dir, &o, &db);
	if (st == OMEN_OK)
		st = omen_collection_open(db, "c", &c);
	for (uint64_t b = first; st == OMEN_OK && b < first + limit; b++) {
		float *v = batch_vectors(b);
		uint64_t ids[BATCH];
		const char *meta[BATCH];
		char mb[BATCH][32];
		for (int i = 0; i < BATCH; i++) {
			ids[i] = b * BATCH + (uint64_t)i;
			snprintf(mb[i], sizeof mb[i], "{\"batch\": %llu}", (unsigned long long)b);
			meta[i] = mb[i];
		}
		omen_batch batch = {BATCH, DIM, ids, v, meta};
		st = omen_upsert(c, &batch, NULL);
		free(v);
		if (st == OMEN_OK && write(fd, &b, sizeof b) != sizeof b)
			_exit(99);
	}
	if (st != OMEN_OK) {
		char msg[256];
		snprintf(msg, sizeof msg, "%s", omen_errmsg(NULL));
		fprintf(stderr, "child stopped: %s\n", msg);
	}
	_exit(st);
}

/* Reopens the database and checks it holds exactly batches 0..n-1, whole, with n >= acked.
 * Returns n. */
static uint64_t verify(const char *dir, uint64_t acked)
{
	omen_db *db;
	omen_collection *c;
	assert_omen_ok(omen_open(dir, NULL, &db));
	assert_omen_ok(omen_collection_open(db, "c", &c));
	uint64_t cnt;
	assert_omen_ok(omen_count(c, &cnt));
	if (cnt % BATCH != 0)
		fail_msg("%llu points: a partial batch survived", (unsigned long long)cnt);
	uint64_t n = cnt / BATCH;
	if (n < acked)
		fail_msg("%llu batches acknowledged, only %llu found", (unsigned long long)acked,
		         (unsigned long long)n);
	float got[BATCH * DIM];
	uint8_t found[BATCH];
	char *meta[BATCH];
	for (uint64_t b = 0; b <= n; b++) {
		uint64_t ids[BATCH];
		for (int i = 0; i < BATCH; i++)
			ids[i] = b * BATCH + (uint64_t)i;
		assert_omen_ok(omen_get(c, ids, BATCH, got, meta, found));
		float *v = batch_vectors(b);
		for (int i = 0; i < BATCH; i++) {
			assert_int_equal(found[i], b < n);
			if (b < n) {
				assert_memory_equal(got + i * DIM, v + i * DIM, DIM * sizeof *v);
				assert_non_null(meta[i]);
			}
			omen_free(meta[i]);
		}
		free(v);
	}
	/* The database is writable again at once: no repair step. */
	float *v = batch_vectors(999999);
	omen_batch probe = {1, DIM, NULL, v, NULL};
	uint64_t pid;
	assert_omen_ok(omen_upsert(c, &probe, &pid));
	size_t del;
	assert_omen_ok(omen_delete(c, &pid, 1, &del));
	assert_int_equal(del, 1);
	free(v);
	omen_close(db);
	return n;
}

/* Reads acknowledgements until EOF; returns the count. */
static uint64_t drain(int fd, uint64_t have)
{
	uint64_t b;
	while (read(fd, &b, sizeof b) == sizeof b)
		have = b + 1;
	return have;
}

/* Makes a database in a fresh directory with the empty collection "c". */
static void fresh_db(char *dir, size_t len, const char *tag)
{
	omen_db *db;
	tmp_dir(dir, len, tag);
	assert_omen_ok(omen_open(dir, NULL, &db));
	assert_omen_ok(omen_create_collection(db, "c", DIM, OMEN_METRIC_L2));
	omen_close(db);
}

static void kill_rounds(int durability)
{
	char dir[512];
	fresh_db(dir, sizeof dir, "crash");
	uint64_t batches = 0, seed = (uint64_t)time(NULL);
	for (int round = 0; round < 6; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child_load(dir, durability, batches, 100000, p[1]);
		}
		close(p[1]);
		/* Kill after a random number of acknowledgements, plus a random delay. */
		uint64_t want = 2 + rnd_next(&seed) % 20, acked = batches, b;
		while (acked < batches + want && read(p[0], &b, sizeof b) == sizeof b)
			acked = b + 1;
		struct timespec ts = {0, (long)(rnd_next(&seed) % 3000000)};
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		assert_true(WIFSIGNALED(status));
		acked = drain(p[0], acked);
		close(p[0]);
		batches = verify(dir, acked);
		assert_true(batches >= acked && batches <= acked + 1);
	}
	rm_tree(dir);
}

static void test_kill_durable(void **state)
{
	(void)state;
	kill_rounds(OMEN_DURABLE_SYNC);
}

static void test_kill_relaxed(void **state)
{
	(void)state;
	kill_rounds(OMEN_DURABLE_RELAXED);
}

/* A disk that fills: the child's file size is capped; the load fails with a clear error and
 * everything acknowledged stays. */
static void test_disk_full(void **state)
{
	(void)state;
	char dir[512];
	fresh_db(dir, sizeof dir, "diskfull");
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = {3u << 20, 3u << 20};
		setrlimit(RLIMIT_FSIZE, &rl);
		child_load(dir, OMEN_DURABLE_SYNC, 0, 100000, p[1]);
	}
	close(p[1]);
	uint64_t acked = drain(p[0], 0);
	close(p[0]);
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	int st = WEXITSTATUS(status);
	if (st != OMEN_EIO && st != OMEN_EFULL)
		fail_msg("child ended with status %d (%s)", st, omen_strerror(st));
	assert_true(acked > 0);
	uint64_t n = verify(dir, acked);
	assert_true(n >= acked && n <= acked + 1);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kill_durable),
	    cmocka_unit_test(test_kill_relaxed),
	    cmocka_unit_test(test_disk_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
