/*
 * The handles behind the public API. An omen_db or omen_collection is either the embedded
 * engine's (engine/) or the remote client's (client/); both start with this base, and api.c
 * sends each public call to the implementation that made the handle.
 */
#ifndef OMEN_API_H
#define OMEN_API_H

#include <stdbool.h>

#include "omendb/omendb.h"

struct omen_db {
	bool remote; /* false: engine's eng_db; true: client's rdb */
};

struct omen_collection {
	bool remote; /* false: engine's eng_coll; true: client's rcoll */
};

#endif
