/*
 * Strict reading of a JSON object's fields (jsonf.c), shared by the HTTP endpoint's request
 * bodies and omendb-node's configuration file: unknown fields are refused, a field given as
 * null is the same as one left out, and a wrong type or range is an error naming the field.
 * Each reader returns OMEN_OK or OMEN_EINVAL with a one-line reason in the reader's err buffer.
 */
#ifndef OMEN_JSONF_H
#define OMEN_JSONF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The object being read and where its reasons go. */
typedef struct jf {
	const json_t *obj;
	const char *where; /* prefixes every reason, e.g. "shard: "; NULL for none */
	char *err;         /* receives the reason (errlen bytes; NULL is fine) */
	size_t errlen;
} jf;

/* The value of key, or NULL when the field is absent or null. Borrowed from obj. */
json_t *jf_get(const jf *f, const char *key);

/* OMEN_EINVAL "unknown field 'K'" for a field not in keys (NULL-terminated), so that a misspelt
 * option is an error instead of a silent default. */
int jf_keys(const jf *f, const char *const *keys);

/* OMEN_EINVAL "'K' is required" when the field is absent or null. */
int jf_required(const jf *f, const char *key);

/* Each reads one field into *out; an absent or null field leaves *out as it was (the caller's
 * default). jf_uint: an integer in min..max; jf_bool: true or false (1 or 0); jf_str: a
 * string, borrowed from obj (valid while obj is). */
int jf_uint(const jf *f, const char *key, uint64_t min, uint64_t max, uint64_t *out);
int jf_bool(const jf *f, const char *key, int *out);
int jf_str(const jf *f, const char *key, const char **out);

#endif
