/*
 * A primary's forwarding of writes to the other copies of its logical shard (docs/CLUSTER.md,
 * "Copies"): peers to other shard nodes by URL, opened on first use and kept. Internal to
 * shard/.
 */
#ifndef OMEN_SHARD_FORWARD_H
#define OMEN_SHARD_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

typedef struct fwd fwd;

/* max_message: the receive cap of each peer; token: sent with every forwarded request (the
 * cluster's token, or NULL). */
int fwd_open(size_t max_message, const char *token, fwd **out);
void fwd_close(fwd *f);

/* Sends write q (UPSERT or DELETE) to each of q->copies at once, as a request that carries no
 * copies, and waits for every answer at most timeout_ms. Returns a mask: bit i set when
 * copies[i] did not take the write (no answer in time, no connection, or a refusal other than
 * the next); *newer gets bit i when copies[i] refused it for a newer shard map than q's
 * (OMEN_ESTALE: the sender should ask again with its newer map). */
uint32_t fwd_write(fwd *f, const wire_req *q, uint32_t timeout_ms, uint32_t *newer);

#endif
