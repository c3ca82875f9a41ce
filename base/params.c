/*
 * The documented defaults of the public API's option structs (include/omendb/omendb.h), in one
 * place for the api's omen_*_init functions and for the layers that fill a struct a caller
 * left NULL.
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

void connect_options_default(omen_connect_options *opt)
{
	memset(opt, 0, sizeof *opt);
	opt->timeout_ms = CONNECT_TIMEOUT_DEFAULT;
}
