/*
 * A growable LMDB environment: the memory map doubles (by at most ENV_STEP_MAX at a time,
 * never beyond a maximum) when a write transaction fills it, or earlier, once half full, at a
 * write that finds no transaction of this process open, and adopts a size grown by
 * another process (MDB_MAP_RESIZED). Every transaction of this process holds map_lock shared
 * and a resize holds it exclusively, since LMDB allows mdb_env_set_mapsize only while this
 * process has no transaction open. Used by the database store (store.c) and by the
 * coordinators' consensus state (consensus/fsm.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "storage/storage.h"

#define ENV_STEP_MAX (8ull << 30)

void lenv_init(lenv *e, uint64_t max_bytes)
{
	e->env = NULL;
	e->map_size = 0;
	e->max_bytes = max_bytes;
	pthread_mutex_init(&e->write_mu, NULL);
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&e->map_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}

void lenv_fini(lenv *e)
{
	pthread_rwlock_destroy(&e->map_lock);
	pthread_mutex_destroy(&e->write_mu);
}

/* Asks for the map to be backed by huge pages: a vector search reads it at random, and 2 MB
 * pages spare most of its TLB misses (docs/DECISIONS.md). Only while the file fits in half the
 * memory: beyond, each random read would bring in 2 MB from disk. LMDB does not tell where it
 * mapped the file (me_mapaddr is set only with MDB_FIXEDMAP), so the mapping is found in
 * /proc/self/maps by the file's device and inode. Advice only: a kernel or file system that
 * cannot keeps small pages. OMEN_HUGEPAGES=0 turns it off. */
static void map_advise(lenv *e)
{
	const char *opt = getenv("OMEN_HUGEPAGES");
	mdb_filehandle_t fd;
	struct stat st;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	if ((opt && strcmp(opt, "0") == 0) || mdb_env_get_fd(e->env, &fd) != 0 ||
	    fstat(fd, &st) != 0 || pages <= 0 || psize <= 0 ||
	    (uint64_t)st.st_size > (uint64_t)pages * (uint64_t)psize / 2)
		return;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi, ino;
		unsigned maj, mnr;
		if (sscanf(line, "%lx-%lx %*s %*x %x:%x %lu", &lo, &hi, &maj, &mnr, &ino) == 5 &&
		    ino == st.st_ino && makedev(maj, mnr) == st.st_dev && hi - lo >= e->map_size)
			(void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
	}
	fclose(f);
}

/* Adopts a map size grown by another process. */
static void map_adopt(lenv *e)
{
	pthread_rwlock_wrlock(&e->map_lock);
	mdb_env_set_mapsize(e->env, 0);
	MDB_envinfo info;
	mdb_env_info(e->env, &info);
	e->map_size = info.me_mapsize;
	map_advise(e);
	pthread_rwlock_unlock(&e->map_lock);
}

/* Doubles the map (by at most ENV_STEP_MAX, never past max_bytes). map_lock is held
 * exclusively. False when it cannot (the maximum, or LMDB refused). */
static bool grow_locked(lenv *e)
{
	uint64_t cur = e->map_size, step = cur < ENV_STEP_MAX ? cur : ENV_STEP_MAX;
	uint64_t next = cur + step;
	if (e->max_bytes && next > e->max_bytes)
		next = e->max_bytes;
	bool ok = next > cur && mdb_env_set_mapsize(e->env, next) == 0;
	if (ok) {
		e->map_size = next;
		map_advise(e);
	}
	return ok;
}

/* Grows the map after MDB_MAP_FULL, waiting until no transaction of this process is open
 * (meanwhile new transactions wait too). Called with no transaction of ours open. */
static bool map_grow(lenv *e)
{
	pthread_rwlock_wrlock(&e->map_lock);
	bool ok = grow_locked(e);
	pthread_rwlock_unlock(&e->map_lock);
	return ok;
}

/* Grows the map ahead of need, when it is half full and no transaction of this process is
 * open at this moment. A long read transaction (an index build holds one) would
 * otherwise make the write that fills the map wait for it, and every reader wait behind that
 * write. Called with no transaction of ours open. */
static void map_grow_early(lenv *e)
{
	MDB_envinfo info;
	MDB_stat st;
	if (mdb_env_info(e->env, &info) != 0 || mdb_env_stat(e->env, &st) != 0)
		return;
	uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if (used < __atomic_load_n(&e->map_size, __ATOMIC_RELAXED) / 2 ||
	    pthread_rwlock_trywrlock(&e->map_lock) != 0)
		return;
	if (used >= e->map_size / 2)
		grow_locked(e);
	pthread_rwlock_unlock(&e->map_lock);
}

int lenv_read_begin(lenv *e, MDB_txn **txn)
{
	for (;;) {
		pthread_rwlock_rdlock(&e->map_lock);
		int rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, txn);
		if (rc == 0)
			return OMEN_OK;
		pthread_rwlock_unlock(&e->map_lock);
		if (rc != MDB_MAP_RESIZED)
			return status_from_mdb(rc, "read transaction");
		map_adopt(e);
	}
}

void lenv_read_end(lenv *e, MDB_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&e->map_lock);
}

/* One attempt at a write transaction; OMEN_EFULL means "the map is full", MDB_MAP_RESIZED is
 * returned as is. */
static int write_once(lenv *e, lenv_write_fn fn, void *ctx)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(e->env, NULL, 0, &txn);
	if (rc == MDB_MAP_RESIZED)
		return rc;
	if (rc != 0)
		return status_from_mdb(rc, "write transaction");
	int st = fn(txn, ctx);
	if (st != OMEN_OK) {
		mdb_txn_abort(txn);
		return st;
	}
	rc = mdb_txn_commit(txn);
	return rc ? status_from_mdb(rc, "commit") : OMEN_OK;
}

int lenv_write(lenv *e, lenv_write_fn fn, void *ctx)
{
	int st;
	for (;;) {
		pthread_rwlock_rdlock(&e->map_lock);
		st = write_once(e, fn, ctx);
		pthread_rwlock_unlock(&e->map_lock);
		if (st == MDB_MAP_RESIZED) {
			map_adopt(e);
			continue;
		}
		if (st == OMEN_OK)
			map_grow_early(e);
		if (st != OMEN_EFULL || !map_grow(e))
			return st;
	}
}

int lenv_open(lenv *e, const char *path, unsigned maxdbs, unsigned maxreaders, uint64_t initial,
              unsigned flags)
{
	int rc = mdb_env_create(&e->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(e->env, maxdbs);
	if (rc == 0 && maxreaders)
		rc = mdb_env_set_maxreaders(e->env, maxreaders);
	if (rc == 0)
		rc = mdb_env_set_mapsize(e->env, initial);
	if (rc == 0)
		rc = mdb_env_open(e->env, path, flags, 0644);
	if (rc != 0)
		return status_from_mdb(rc, path);
	MDB_envinfo info;
	mdb_env_info(e->env, &info);
	e->map_size = info.me_mapsize;
	map_advise(e);
	return OMEN_OK;
}
