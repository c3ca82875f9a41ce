/*
 * The header every persisted record starts with (base.h has its layout): one writer and one
 * checker, used by the vector chunks, the catalog, the HNSW graph, the coordinator's metadata
 * and the Raft state machine alike.
 */
#include <string.h>

#include "base/base.h"

void rec_stamp(unsigned char *p, const char *magic)
{
	memcpy(p, magic, 4);
	le16_put(p + 4, REC_VERSION);
	le16_put(p + 6, 0);
}

bool rec_check(const void *bytes, size_t len, const char *magic, size_t min)
{
	const unsigned char *p = bytes;
	return len >= min && len >= REC_HEADER && memcmp(p, magic, 4) == 0 &&
	       le16_get(p + 4) == REC_VERSION;
}
