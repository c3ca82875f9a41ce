/*
 * The state machine's queries: the last applied index and the epoch, collections, nodes and a
 * collection's shard map. Each runs in one read transaction of its own, from any thread, so
 * it sees one committed state however the loop thread applies entries meanwhile.
 */
#include <stdlib.h>

#include "consensus/internal.h"

/* Ends read transaction txn and passes st on: the last step of every query, written
 * `return st != OMEN_OK ? st : read_done(f, txn, query(txn))` after lenv_read_begin. */
static int read_done(fsm *f, MDB_txn *txn, int st)
{
	lenv_read_end(&f->e, txn);
	return st;
}

/* The state record, read in a transaction of its own. */
static int state_get(fsm *f, uint64_t *applied, uint64_t *epoch)
{
	MDB_txn *txn;
	int st = lenv_read_begin(&f->e, &txn);
	return st != OMEN_OK ? st : read_done(f, txn, fsm_state_read(f, txn, applied, epoch));
}

uint64_t fsm_last_applied(fsm *f)
{
	uint64_t applied = 0, epoch = 0;
	return state_get(f, &applied, &epoch) == OMEN_OK ? applied : 0;
}

uint64_t fsm_epoch(fsm *f)
{
	uint64_t applied = 0, epoch = 0;
	return state_get(f, &applied, &epoch) == OMEN_OK ? epoch : 0;
}

int fsm_coll_get(fsm *f, const char *name, meta_coll *out)
{
	if (!name || !fsm_name_ok(name))
		return status_set(OMEN_ENOTFOUND, "no collection with that name");
	MDB_txn *txn;
	int st = lenv_read_begin(&f->e, &txn);
	return st != OMEN_OK ? st : read_done(f, txn, fsm_coll_read(f, txn, name, out));
}

int fsm_coll_list(fsm *f, meta_coll **out, size_t *n)
{
	MDB_txn *txn;
	int st = lenv_read_begin(&f->e, &txn);
	return st != OMEN_OK ? st : read_done(f, txn, fsm_colls_read(f, txn, out, n));
}

int fsm_node_get(fsm *f, uint64_t id, meta_node *out)
{
	MDB_txn *txn;
	int st = lenv_read_begin(&f->e, &txn);
	return st != OMEN_OK ? st : read_done(f, txn, fsm_node_read(f, txn, id, out));
}

int fsm_node_list(fsm *f, meta_node **out, size_t *n)
{
	MDB_txn *txn;
	int st = lenv_read_begin(&f->e, &txn);
	return st != OMEN_OK ? st : read_done(f, txn, fsm_nodes_read(f, txn, out, n));
}

/* The collection's copies and the epoch (when epoch is not NULL), both from txn, so that the
 * copies are those of that epoch; *copies is malloc'd. */
static int copies_read(fsm *f, MDB_txn *txn, const char *name, meta_copies **copies,
                       uint32_t *nshards, uint64_t *epoch)
{
	meta_coll c;
	uint64_t applied = 0, e = 0;
	meta_copies *arr = NULL;
	int st = fsm_state_read(f, txn, &applied, &e);
	if (st == OMEN_OK)
		st = fsm_coll_read(f, txn, name, &c);
	if (st == OMEN_OK && !(arr = malloc(c.nshards * sizeof *arr)))
		st = status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK)
		st = fsm_shards_read(f, txn, name, c.nshards, arr);
	if (st != OMEN_OK) {
		free(arr);
		return st;
	}
	*copies = arr;
	*nshards = c.nshards;
	if (epoch)
		*epoch = e;
	return OMEN_OK;
}

int fsm_shard_copies(fsm *f, const char *name, meta_copies **copies, uint32_t *nshards,
                     uint64_t *epoch)
{
	if (!name || !fsm_name_ok(name))
		return status_set(OMEN_ENOTFOUND, "no collection with that name");
	MDB_txn *txn;
	int st = lenv_read_begin(&f->e, &txn);
	return st != OMEN_OK ? st
	                     : read_done(f, txn, copies_read(f, txn, name, copies, nshards, epoch));
}

int fsm_shard_map(fsm *f, const char *name, uint64_t **nodes, uint32_t *nshards, uint64_t *epoch)
{
	meta_copies *cp = NULL;
	uint32_t n = 0;
	int st = fsm_shard_copies(f, name, &cp, &n, epoch);
	uint64_t *arr = st == OMEN_OK ? malloc((n ? n : 1) * sizeof *arr) : NULL;
	if (st == OMEN_OK && !arr)
		st = status_set(OMEN_ENOMEM, "out of memory");
	for (uint32_t s = 0; st == OMEN_OK && s < n; s++) {
		int p = meta_copies_primary(&cp[s]);
		arr[s] = cp[s].node[p < 0 ? 0 : p];
	}
	free(cp);
	if (st != OMEN_OK)
		return st;
	*nodes = arr;
	*nshards = n;
	return OMEN_OK;
}
