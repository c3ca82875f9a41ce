/*
 * The documented defaults of the public API's option structs (include/omendb/omendb.h), in one
 * place for the api's omen_*_init functions and for the layers that fill a struct a caller
 * left NULL; and the ranges of the index parameters, which the engine and the remote client
 * check alike.
 */
#include <string.h>

#include "base/base.h"

void open_options_default(omen_open_options *opt)
{
	memset(opt, 0, sizeof *opt);
	opt->durability = OMEN_DURABLE_SYNC;
	opt->checkpoint_bytes = 256ull << 20;
}

void search_params_default(omen_search_params *p)
{
	memset(p, 0, sizeof *p);
	p->k = 10;
	p->device = OMEN_DEVICE_AUTO;
}

void index_params_default(omen_index_params *p)
{
	memset(p, 0, sizeof *p);
	p->type = OMEN_INDEX_AUTO;
	p->m = OMEN_HNSW_M_DEFAULT;
	p->ef_construction = OMEN_HNSW_EFC_DEFAULT;
	p->bits = OMEN_IVF_BITS_DEFAULT;
}

/* The client checks before anything is sent: bits 0, an error here, would read as the
 * default on the wire, and an unknown type cannot be encoded. */
int index_params_check(const omen_index_params *p)
{
	if (p->type != OMEN_INDEX_AUTO && p->type != OMEN_INDEX_FLAT &&
	    p->type != OMEN_INDEX_HNSW && p->type != OMEN_INDEX_IVF)
		return status_set(OMEN_EINVAL, "unknown index type %d", (int)p->type);
	if (p->m < OMEN_HNSW_M_MIN || p->m > OMEN_HNSW_M_MAX)
		return status_set(OMEN_EINVAL, "m must be %d to %d, got %u", OMEN_HNSW_M_MIN,
		                  OMEN_HNSW_M_MAX, p->m);
	if (p->ef_construction < OMEN_HNSW_EFC_MIN || p->ef_construction > OMEN_HNSW_EFC_MAX)
		return status_set(OMEN_EINVAL, "ef_construction must be %d to %d, got %u",
		                  OMEN_HNSW_EFC_MIN, OMEN_HNSW_EFC_MAX, p->ef_construction);
	if (p->threads < 0 || p->threads > 1024)
		return status_set(OMEN_EINVAL, "threads must be 0 to 1024, got %d", p->threads);
	if (p->bits < 1 || p->bits > OMEN_IVF_BITS_MAX)
		return status_set(OMEN_EINVAL, "bits must be 1 to %d, got %u", OMEN_IVF_BITS_MAX,
		                  p->bits);
	if (p->nlist > OMEN_IVF_NLIST_MAX)
		return status_set(OMEN_EINVAL, "nlist must be 0 (from the points) to %d, got %u",
		                  OMEN_IVF_NLIST_MAX, p->nlist);
	return OMEN_OK;
}

void collection_options_default(omen_collection_options *opt)
{
	memset(opt, 0, sizeof *opt);
}

void connect_options_default(omen_connect_options *opt)
{
	memset(opt, 0, sizeof *opt);
	opt->timeout_ms = CONNECT_TIMEOUT_DEFAULT;
}
