/*
 * Metadata filters.
 *
 * Filters are Mongo-style JSON, compiled once per search and then matched against each point's
 * stored metadata map (storage.h, "point metadata"). See docs/FILTERS.md for the syntax.
 */
#ifndef OMEN_FILTER_H
#define OMEN_FILTER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct filter filter;

/* Compiles a JSON filter. Syntax: an object whose keys are field names (implicit $and) or
 * $and/$or (arrays of filters) or $not (a filter); a field maps to a scalar (equality) or to an
 * object of operators $eq $ne $lt $lte $gt $gte (scalar operand) and $in $nin (array of
 * scalars). Integers and floats compare numerically; strings bytewise; booleans only by
 * equality. A field missing from a point matches only $ne and $nin (as in MongoDB). Returns 0
 * and *out (free with filter_free), OMEN_EINVAL with a reason in err, or OMEN_ENOMEM. */
int filter_compile(const char *json, filter **out, char *err, size_t errlen);

/* True if the stored msgpack map (as produced by meta_encode_json) matches. mp may be NULL with
 * len 0 for a point without metadata (every field missing). Corrupt bytes never match. */
bool filter_match(const filter *f, const unsigned char *mp, size_t len);

/* filter_free(NULL) does nothing. */
void filter_free(filter *f);

#endif
