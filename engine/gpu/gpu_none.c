/*
 * The GPU interface in a build without the CUDA toolkit: no device is ever usable, and the
 * engine serves every search on the CPU (engine/gpu/gpu.h).
 */
#include <stdio.h>

#include "engine/gpu/gpu.h"

int gpu_init(char *name, size_t len)
{
	snprintf(name, len, "this build has no GPU support (no CUDA toolkit when it was built)");
	return -1;
}

gpu_coll *gpu_coll_new(uint32_t dim)
{
	(void)dim;
	return NULL;
}

void gpu_coll_free(gpu_coll *g)
{
	(void)g;
}

uint64_t gpu_coll_rows(const gpu_coll *g)
{
	(void)g;
	return 0;
}

int gpu_coll_upload(gpu_coll *g, uint64_t first, const float *vecs, const float *norms, uint64_t n,
                    char *err, size_t errlen)
{
	(void)g, (void)first, (void)vecs, (void)norms, (void)n;
	snprintf(err, errlen, "no GPU support in this build");
	return -1;
}

int gpu_coll_search(gpu_coll *g, const gpu_search *s, char *err, size_t errlen)
{
	(void)g, (void)s;
	snprintf(err, errlen, "no GPU support in this build");
	return -1;
}
