/*
 * Point metadata and metadata filters.
 *
 * Metadata arrives as a JSON object of scalar values (integer, float, string, bool) and is
 * stored as a msgpack map. Filters are Mongo-style JSON, compiled once per search and then
 * matched against each point's stored msgpack map. See docs/FILTERS.md for the syntax.
 */
#ifndef OMEN_FILTER_H
#define OMEN_FILTER_H

#include <stdbool.h>
#include <stddef.h>

/* Converts a metadata JSON object into its stored msgpack encoding. On success returns 0 and
 * sets *out (malloc'd, caller frees with free()) and *out_len. On bad input (not an object,
 * nested values, null, arrays, keys longer than 255 bytes, more than OMEN_MAX_METADATA bytes of
 * JSON, invalid UTF-8 or JSON) returns OMEN_EINVAL and writes a one-line reason into err
 * (errlen bytes). OMEN_ENOMEM if allocation fails. */
int meta_encode_json(const char *json, unsigned char **out, size_t *out_len, char *err,
                     size_t errlen);

/* Converts a stored msgpack map back into a compact JSON object string (malloc'd, caller
 * frees). Returns 0, OMEN_ECORRUPT if the bytes are not a valid stored map, or OMEN_ENOMEM. */
int meta_decode_json(const unsigned char *mp, size_t len, char **json_out);

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
