/*
 * The cluster's replicated state machine: its LMDB environment, opened or created with its four
 * sub-databases, and the write transactions every change runs in. The records are in
 * fsm_records.c, commands and their execution in fsm_cmd.c and fsm_apply.c, the queries in
 * fsm_read.c, snapshots in fsm_snapshot.c; docs/CONSENSUS.md has the layouts and the rules.
 */
#include <stdlib.h>
#include <string.h>

#include "consensus/internal.h"

#define MAP_INITIAL (64ull << 20)

typedef struct wr_call {
	fsm *f;
	fsm_write_fn fn;
	void *arg;
} wr_call;

/* Adapts fsm_write_fn to storage's lenv_write_fn. */
static int wr_trampoline(MDB_txn *txn, void *ctx)
{
	wr_call *w = ctx;
	return w->fn(w->f, txn, w->arg);
}

int fsm_write(fsm *f, fsm_write_fn fn, void *arg)
{
	wr_call w = {f, fn, arg};
	pthread_mutex_lock(&f->e.write_mu);
	int st = lenv_write(&f->e, wr_trampoline, &w);
	pthread_mutex_unlock(&f->e.write_mu);
	return st;
}

/* ---- open and close ---- */

/* Opens sub-database name: a missing one (without MDB_CREATE) is OMEN_ECORRUPT, one that is
 * not a plain LMDB database OMEN_ENOTDB. */
static int dbi_open(MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *out)
{
	int rc = mdb_dbi_open(txn, name, flags, out);
	if (rc == MDB_NOTFOUND)
		return status_set(OMEN_ECORRUPT, "consensus state: sub-database %s missing", name);
	if (rc == MDB_INCOMPATIBLE)
		return status_set(OMEN_ENOTDB, "not an OmenDB consensus state (%s)", name);
	return rc ? status_from_mdb(rc, name) : OMEN_OK;
}

/* Opens colls, nodes and shards (creating them with MDB_CREATE in flags). */
static int tables_open(fsm *f, MDB_txn *txn, unsigned flags)
{
	int st = dbi_open(txn, "colls", flags, &f->colls);
	if (st == OMEN_OK)
		st = dbi_open(txn, "nodes", flags, &f->nodes);
	if (st == OMEN_OK)
		st = dbi_open(txn, "shards", flags, &f->shards);
	return st;
}

/* Makes a consensus state in an environment without "meta": it must hold nothing else (a
 * foreign LMDB environment is OMEN_ENOTDB). Creates the sub-databases and a zero state. */
static int state_create(fsm *f, MDB_txn *txn)
{
	MDB_dbi main_dbi;
	MDB_stat ms;
	int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (rc == 0)
		rc = mdb_stat(txn, main_dbi, &ms);
	if (rc)
		return status_from_mdb(rc, f->path);
	if (ms.ms_entries != 0)
		return status_set(OMEN_ENOTDB, "%s: an LMDB environment, but not a consensus state",
		                  f->path);
	int st = dbi_open(txn, "meta", MDB_CREATE, &f->meta);
	if (st == OMEN_OK)
		st = tables_open(f, txn, MDB_CREATE);
	return st == OMEN_OK ? fsm_state_write(f, txn, 0, 0) : st;
}

/* Opens the sub-databases, creating them and a zero state in an empty environment; checks the
 * state record of an existing one (OMEN_EVERSION for a newer format). */
static int init_fn(fsm *f, MDB_txn *txn, void *arg)
{
	(void)arg;
	int rc = mdb_dbi_open(txn, "meta", 0, &f->meta);
	if (rc == MDB_NOTFOUND)
		return state_create(f, txn);
	if (rc)
		return rc == MDB_INCOMPATIBLE
		           ? status_set(OMEN_ENOTDB, "%s: not a consensus state", f->path)
		           : status_from_mdb(rc, f->path);
	int st = tables_open(f, txn, 0);
	uint64_t applied = 0, epoch = 0;
	return st == OMEN_OK ? fsm_state_read(f, txn, &applied, &epoch) : st;
}

int fsm_open(const char *dir, fsm **out)
{
	int st = dir_create(dir);
	if (st != OMEN_OK)
		return st;
	fsm *f = calloc(1, sizeof *f);
	if (!f || !(f->path = strdup(dir))) {
		free(f);
		return status_set(OMEN_ENOMEM, "out of memory");
	}
	lenv_init(&f->e, 0);
	/* MDB_NOTLS: read transactions are not tied to threads. MDB_NOMETASYNC: a system crash
	 * may undo the last commits, never corrupts; Raft replays what was undone (its log and
	 * snapshot are durable, and fsm_apply skips what was kept), see docs/CONSENSUS.md. */
	st = lenv_open(&f->e, dir, 8, 0, MAP_INITIAL, MDB_NOTLS | MDB_NOMETASYNC);
	if (st == OMEN_OK)
		st = fsm_write(f, init_fn, NULL);
	if (st != OMEN_OK) {
		fsm_close(f);
		return st;
	}
	*out = f;
	return OMEN_OK;
}

void fsm_close(fsm *f)
{
	if (!f)
		return;
	if (f->e.env) {
		mdb_env_sync(f->e.env, 1);
		mdb_env_close(f->e.env);
	}
	lenv_fini(&f->e);
	free(f->path);
	free(f);
}
