/*
 * Commands as msgpack, one per Raft entry: cmd_encode writes a versioned map padded to a
 * multiple of 8 bytes, cmd_decode reads untrusted bytes with base's bounded cursor (it never
 * allocates). Also the msgpack helpers the snapshots share. The encoding is in
 * docs/CONSENSUS.md; entries written by running clusters are read back, byte for byte.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "consensus/internal.h"

#define CMD_VERSION  1  /* of the msgpack commands */
#define MP_MAX_DEPTH 16 /* of a value skipped under an unknown key */

/* ---- msgpack helpers ---- */

int fsm_pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

bool fsm_skip(mpc *r)
{
	mpc_limits lim = {MP_MAX_DEPTH, 0, NULL};
	return mpc_skip(r, &lim, NULL, 0) == OMEN_OK;
}

unsigned fsm_key_find(const char *const *keys, unsigned n, const char *k, size_t kn)
{
	unsigned i = 0;
	while (i < n && !(strlen(keys[i]) == kn && !memcmp(keys[i], k, kn)))
		i++;
	return i;
}

/* ---- the keys of a command ---- */

/* The fields a command of each kind carries, as bits of the keys below. */
enum {
	K_V = 1 << 0,
	K_K = 1 << 1,
	K_ID = 1 << 2,
	K_ADDR = 1 << 3,
	K_ROLE = 1 << 4,
	K_STATE = 1 << 5,
	K_NAME = 1 << 6,
	K_DIM = 1 << 7,
	K_METRIC = 1 << 8,
	K_NSHARDS = 1 << 9,
	K_SHARD = 1 << 10,
	K_NODE = 1 << 11,
	K_COUNT = 1 << 12,
	K_REPLICAS = 1 << 13,
	K_FAILED = 1 << 14,
	K_EXPECT = 1 << 15,
	K_COPIES = 1 << 16,
};

static const char *const cmd_keys[] = {"v",     "k",        "id",     "addr",    "role",  "state",
                                       "name",  "dim",      "metric", "nshards", "shard", "node",
                                       "count", "replicas", "failed", "expect",  "copies"};
#define NKEYS (sizeof cmd_keys / sizeof cmd_keys[0])

/* The keys (K_* bits) a command of kind carries besides v and k; UINT_MAX for an unknown
 * kind. */
static unsigned kind_fields(int kind)
{
	switch (kind) {
	case CMD_NODE_SET:
		return K_ID | K_ADDR | K_ROLE | K_STATE;
	case CMD_COLL_CREATE:
		return K_NAME | K_DIM | K_METRIC | K_NSHARDS;
	case CMD_COLL_DROP:
		return K_NAME;
	case CMD_SHARD_ASSIGN:
		return K_NAME | K_SHARD | K_NODE;
	case CMD_IDS_ALLOC:
		return K_NAME | K_COUNT;
	case CMD_NOOP:
		return 0;
	case CMD_COPY_FAIL:
		return K_NAME | K_SHARD | K_NODE | K_FAILED;
	case CMD_COPIES_SET:
		return K_NAME | K_SHARD | K_EXPECT | K_COPIES;
	}
	return UINT_MAX;
}

/* The keys a command of kind c carries: its kind_fields, and the optional ones it uses (a
 * collection of one copy is created without "replicas", as before copies existed). */
static unsigned cmd_fields(const meta_cmd *c)
{
	unsigned f = kind_fields(c->kind);
	if (c->kind == CMD_COLL_CREATE && c->coll.replicas > 1)
		f |= K_REPLICAS;
	return f;
}

/* ---- encoding ---- */

/* Packs the key of field bit and its value from c; a packing failure sets *bad. */
static void pk_field(msgpack_packer *pk, int *bad, unsigned bit, const meta_cmd *c)
{
	int e = 0;
	for (unsigned i = 0; i < NKEYS; i++)
		if (bit == 1u << i)
			e |= fsm_pack_str(pk, cmd_keys[i]);
	switch (bit) {
	case K_ID:
		e |= msgpack_pack_uint64(pk, c->node.id);
		break;
	case K_ADDR:
		e |= fsm_pack_str(pk, c->node.addr);
		break;
	case K_ROLE:
		e |= msgpack_pack_int(pk, c->node.role);
		break;
	case K_STATE:
		e |= msgpack_pack_int(pk, c->node.state);
		break;
	case K_NAME:
		e |= fsm_pack_str(pk, c->coll.name);
		break;
	case K_DIM:
		e |= msgpack_pack_uint32(pk, c->coll.dim);
		break;
	case K_METRIC:
		e |= msgpack_pack_int(pk, (int)c->coll.metric);
		break;
	case K_NSHARDS:
		e |= msgpack_pack_uint32(pk, c->coll.nshards);
		break;
	case K_SHARD:
		e |= msgpack_pack_uint32(pk, c->shard);
		break;
	case K_NODE:
		e |= msgpack_pack_uint64(pk, c->node_id);
		break;
	case K_COUNT:
		e |= msgpack_pack_uint64(pk, c->count);
		break;
	case K_REPLICAS:
		e |= msgpack_pack_uint32(pk, c->coll.replicas);
		break;
	case K_FAILED: {
		unsigned char b[8 * META_MAX_COPIES];
		for (uint32_t i = 0; i < c->nfailed; i++)
			le64_put(b + 8 * i, c->failed[i]);
		e |= msgpack_pack_bin(pk, 8 * (size_t)c->nfailed) ||
		     msgpack_pack_bin_body(pk, b, 8 * (size_t)c->nfailed);
		break;
	}
	case K_EXPECT:
	case K_COPIES: {
		unsigned char b[FSM_COPIES_BYTES];
		fsm_copies_put(b, bit == K_EXPECT ? &c->expect : &c->copies);
		e |= msgpack_pack_bin(pk, sizeof b) || msgpack_pack_bin_body(pk, b, sizeof b);
		break;
	}
	}
	*bad |= e;
}

/* Packs the map of command c (fields: its kind_fields) into pk, padding included; returns
 * msgpack-c's status (nonzero on failure). sb is the buffer pk writes to. */
static int pk_cmd(msgpack_packer *pk, const msgpack_sbuffer *sb, const meta_cmd *c, unsigned fields)
{
	int bad = msgpack_pack_map(pk, 3 + (size_t)__builtin_popcount(fields));
	bad |= fsm_pack_str(pk, "v") || msgpack_pack_uint32(pk, CMD_VERSION);
	bad |= fsm_pack_str(pk, "k") || msgpack_pack_int(pk, (int)c->kind);
	for (unsigned bit = K_ID; bit <= K_COPIES; bit <<= 1)
		if (fields & bit)
			pk_field(pk, &bad, bit, c);
	/* Padding to a multiple of 8 bytes: raft 0.15's libuv log writes an entry's bytes as they
	 * are but reads them back as if padded to 8 (the writer only asserts it, and asserts are
	 * compiled out), so an entry of another length makes the closed segment unreadable at the
	 * next start. A string under an unknown key ("_") that decoders skip. */
	static const char zeros[8] = {0};
	bad |= fsm_pack_str(pk, "_");
	size_t pad = (8 - (sb->size + 1) % 8) % 8;
	return bad || msgpack_pack_str(pk, pad) || msgpack_pack_str_body(pk, zeros, pad);
}

int cmd_encode(const meta_cmd *c, int for_raft, void **buf, size_t *len)
{
	unsigned fields = kind_fields(c->kind);
	if (fields == UINT_MAX)
		return status_set(OMEN_EINVAL, "unknown command %d", (int)c->kind);
	fields = cmd_fields(c);
	if ((fields & K_FAILED) && c->nfailed > META_MAX_COPIES)
		return status_set(OMEN_EINVAL, "more than %d failed copies", META_MAX_COPIES);
	if ((fields & K_NAME) && strnlen(c->coll.name, OMEN_MAX_NAME + 1) > OMEN_MAX_NAME)
		return status_set(OMEN_EINVAL, "collection name longer than %d bytes",
		                  OMEN_MAX_NAME);
	if ((fields & K_ADDR) && strnlen(c->node.addr, META_MAX_ADDR) >= META_MAX_ADDR)
		return status_set(OMEN_EINVAL, "node address of %d bytes or more", META_MAX_ADDR);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	void *out = NULL;
	if (pk_cmd(&pk, &sb, c, fields) == 0)
		out = for_raft ? raft_malloc(sb.size) : malloc(sb.size);
	if (out)
		memcpy(out, sb.data, sb.size);
	size_t n = sb.size;
	msgpack_sbuffer_destroy(&sb);
	if (!out)
		return status_set(OMEN_ENOMEM, "out of memory encoding a command");
	*buf = out;
	*len = n;
	return OMEN_OK;
}

/* ---- decoding ---- */

/* Reads the value of key number i into c; false when it has the wrong type or size. */
static bool cmd_field(mpc *r, unsigned i, meta_cmd *c, uint32_t *version)
{
	const char *s;
	size_t n;
	int kind;
	switch (1u << i) {
	case K_V:
		return mpc_u32(r, version);
	case K_K:
		if (!mpc_i32(r, &kind))
			return false;
		c->kind = (cmd_kind)kind;
		return true;
	case K_ID:
		return mpc_uint(r, &c->node.id);
	case K_ADDR:
		if (!mpc_str(r, &s, &n) || n >= META_MAX_ADDR || memchr(s, 0, n))
			return false;
		memcpy(c->node.addr, s, n);
		return true;
	case K_ROLE:
		return mpc_i32(r, &c->node.role);
	case K_STATE:
		return mpc_i32(r, &c->node.state);
	case K_NAME:
		if (!mpc_str(r, &s, &n) || n > OMEN_MAX_NAME || memchr(s, 0, n))
			return false;
		memcpy(c->coll.name, s, n);
		return true;
	case K_DIM:
		return mpc_u32(r, &c->coll.dim);
	case K_METRIC:
		if (!mpc_i32(r, &kind))
			return false;
		c->coll.metric = (omen_metric)kind;
		return true;
	case K_NSHARDS:
		return mpc_u32(r, &c->coll.nshards);
	case K_SHARD:
		return mpc_u32(r, &c->shard);
	case K_NODE:
		return mpc_uint(r, &c->node_id);
	case K_COUNT:
		return mpc_uint(r, &c->count);
	case K_REPLICAS:
		return mpc_u32(r, &c->coll.replicas);
	case K_FAILED: {
		const unsigned char *b;
		if (!mpc_bin(r, &b, &n) || n % 8 || n > 8 * META_MAX_COPIES)
			return false;
		c->nfailed = (uint32_t)(n / 8);
		for (uint32_t j = 0; j < c->nfailed; j++)
			c->failed[j] = le64_get(b + 8 * j);
		return true;
	}
	case K_EXPECT:
	case K_COPIES: {
		const unsigned char *b;
		return mpc_bin(r, &b, &n) && n == FSM_COPIES_BYTES &&
		       fsm_copies_get(b, (1u << i) == K_EXPECT ? &c->expect : &c->copies);
	}
	}
	return false;
}

/* Reads the map's n entries into d: *seen gets the K_* bit of each known key, unknown keys
 * are skipped. OMEN_EPROTO for a key that is not a string or appears twice, or a bad value. */
static int cmd_entries(mpc *r, uint64_t n, meta_cmd *d, uint32_t *version, unsigned *seen)
{
	for (uint64_t e = 0; e < n; e++) {
		const char *key;
		size_t klen;
		if (!mpc_str(r, &key, &klen))
			return status_set(OMEN_EPROTO, "command: key %llu is not a string",
			                  (unsigned long long)e);
		unsigned i = fsm_key_find(cmd_keys, NKEYS, key, klen);
		if (i == NKEYS) {
			if (!fsm_skip(r))
				return status_set(OMEN_EPROTO, "command: malformed value");
			continue;
		}
		if (*seen & (1u << i))
			return status_set(OMEN_EPROTO, "command: key '%s' twice", cmd_keys[i]);
		*seen |= 1u << i;
		if (!cmd_field(r, i, d, version))
			return status_set(OMEN_EPROTO, "command: bad value for '%s'", cmd_keys[i]);
	}
	return OMEN_OK;
}

int cmd_decode(const void *buf, size_t len, meta_cmd *c)
{
	mpc r = mpc_make(buf, len);
	meta_cmd d;
	memset(&d, 0, sizeof d);
	uint64_t n;
	uint32_t version = 0;
	unsigned seen = 0;
	if (!buf || !mpc_map(&r, &n))
		return status_set(OMEN_EPROTO, "command: not a msgpack map");
	int st = cmd_entries(&r, n, &d, &version, &seen);
	if (st != OMEN_OK)
		return st;
	if (r.pos != len)
		return status_set(OMEN_EPROTO, "command: %zu bytes after the map", len - r.pos);
	if (!(seen & K_V) || version != CMD_VERSION)
		return status_set(OMEN_EPROTO, "command: version %u, not %d", version, CMD_VERSION);
	unsigned want = (seen & K_K) ? kind_fields(d.kind) : UINT_MAX;
	if (want == UINT_MAX)
		return status_set(OMEN_EPROTO, "command: unknown kind %d", (int)d.kind);
	if ((seen & want) != want)
		return status_set(OMEN_EPROTO, "command: fields missing for kind %d", (int)d.kind);
	*c = d;
	return OMEN_OK;
}
