/*
 * Internals shared by the state machine's files (fsm*.c): the handle, its transactions, the
 * LMDB records and the msgpack helpers of commands and snapshots. consensus/consensus.h is the
 * layer's contract with the coordinator; nothing here is part of it. The byte layouts are in
 * docs/CONSENSUS.md.
 */
#ifndef OMEN_CONSENSUS_INTERNAL_H
#define OMEN_CONSENSUS_INTERNAL_H

#include <lmdb.h>
#include <msgpack.h>
#include <stdbool.h>

#include "consensus/consensus.h"
#include "storage/storage.h"

#define FSM_MAX_SHARDS 4096 /* logical shards of one collection */

struct fsm {
	lenv e; /* the growable environment shared with the database store (storage/env.c) */
	MDB_dbi meta, colls, nodes, shards;
	char *path;
};

/* ---- transactions (fsm.c) ---- */

/* Runs fn(f, txn, arg) in one write transaction and commits it; all of fn's writes land or
 * none do (the map grows and fn runs again when it fills, so fn must have no effect outside the
 * transaction). Takes the environment's writer lock. Returns fn's status. Read transactions
 * are lenv_read_begin/lenv_read_end on f->e. */
typedef int (*fsm_write_fn)(fsm *f, MDB_txn *txn, void *arg);
int fsm_write(fsm *f, fsm_write_fn fn, void *arg);

/* ---- records (fsm_records.c) ----
 * Each reader validates what it reads (size, magic, version, ranges) and gives OMEN_ECORRUPT
 * for a bad record; each writer translates LMDB's codes, MDB_KEYEXIST (a write with
 * MDB_NOOVERWRITE over a record that exists) as OMEN_ECORRUPT. Readers write their outputs on
 * success only. */

/* True when name is NUL-terminated within OMEN_MAX_NAME + 1 bytes and a collection name. */
bool fsm_name_ok(const char *name);

/* The ranges every collection and node holds to, on disk, in commands and in snapshots. */
bool fsm_coll_fields_ok(uint32_t dim, int64_t metric, uint32_t nshards, uint32_t replicas);
bool fsm_node_fields_ok(uint64_t id, const char *addr, size_t alen, int64_t role, int64_t state);

/* The state record: the last applied Raft index and the epoch. OMEN_EVERSION for a newer
 * format of the environment. fsm_state_write stamps the current format. */
int fsm_state_read(fsm *f, MDB_txn *txn, uint64_t *applied, uint64_t *epoch);
int fsm_state_write(fsm *f, MDB_txn *txn, uint64_t applied, uint64_t epoch);

/* Collection name (a valid name): OMEN_ENOTFOUND with a message when absent. */
int fsm_coll_read(fsm *f, MDB_txn *txn, const char *name, meta_coll *out);
int fsm_coll_write(fsm *f, MDB_txn *txn, const meta_coll *c, unsigned flags);

/* Node id: OMEN_ENOTFOUND with a message when absent. */
int fsm_node_read(fsm *f, MDB_txn *txn, uint64_t id, meta_node *out);
int fsm_node_write(fsm *f, MDB_txn *txn, const meta_node *n, unsigned flags);

/* Every collection (name order) or node (id order), decoded into an array the caller frees
 * with free() (NULL when there are none). */
int fsm_colls_read(fsm *f, MDB_txn *txn, meta_coll **out, size_t *n);
int fsm_nodes_read(fsm *f, MDB_txn *txn, meta_node **out, size_t *n);

/* A shard's copies as they may be stored: 1..META_MAX_COPIES of them on distinct nodes (never
 * node 0), each state META_COPY_*, at least one in sync. */
bool fsm_copies_ok(const meta_copies *c);

/* The copies' layout in shard records and snapshots (FSM_COPIES_BYTES bytes): n as u8, the
 * META_MAX_COPIES states as u8, 2 zero bytes, the META_MAX_COPIES node ids as u64 LE (unused
 * ones 0). fsm_copies_get is false when the bytes are not copies that fsm_copies_ok accepts. */
#define FSM_COPIES_BYTES 48
void fsm_copies_put(unsigned char *p, const meta_copies *c);
bool fsm_copies_get(const unsigned char *p, meta_copies *c);

/* Logical shard s of collection name has copies c. */
int fsm_shard_write(fsm *f, MDB_txn *txn, const char *name, uint32_t s, const meta_copies *c,
                    unsigned flags);

/* The copies of the nshards shards of collection name, into out (nshards of them). A missing,
 * extra or out-of-order shard record is OMEN_ECORRUPT. */
int fsm_shards_read(fsm *f, MDB_txn *txn, const char *name, uint32_t nshards, meta_copies *out);

/* Deletes every shard record of collection name. */
int fsm_shards_delete(fsm *f, MDB_txn *txn, const char *name);

/* ---- msgpack helpers shared by commands and snapshots (fsm_cmd.c) ---- */

/* Packs s as a msgpack string; msgpack-c's status (nonzero on failure). */
int fsm_pack_str(msgpack_packer *pk, const char *s);

/* Skips one value of any type, nested at most 16 deep; false when it is malformed. */
bool fsm_skip(mpc *r);

/* The index in keys[0..n) of the key k (kn bytes), or n when it is none of them. */
unsigned fsm_key_find(const char *const *keys, unsigned n, const char *k, size_t kn);

#endif
