/*
 * Names users type: the collection-name rule, and the names of metrics, index types and
 * devices, each in one table that parsing and printing share.
 */
#include <string.h>

#include "base/base.h"

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-' || ch == '.';
}

bool name_valid(const char *s, size_t len)
{
	if (len < 1 || len > OMEN_MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i]))
			return false;
	return true;
}

int name_check(const char *name)
{
	if (!name)
		return status_set(OMEN_EINVAL, "collection name is NULL");
	size_t n = strlen(name);
	if (n < 1 || n > OMEN_MAX_NAME)
		return status_set(OMEN_EINVAL, "collection name must be 1 to %d bytes, got %zu",
		                  OMEN_MAX_NAME, n);
	if (!name_valid(name, n))
		return status_set(OMEN_EINVAL,
		                  "collection name '%s': only letters, digits, '_', '-' and '.' "
		                  "are allowed",
		                  name);
	return OMEN_OK;
}

/* The index in names[0..n) of name, or -1; OMEN_EINVAL's message lists the names. */
static int lookup(const char *const *names, int n, const char *what, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	char list[128] = "";
	for (int i = 0; i < n; i++) {
		strcat(list, names[i]);
		strcat(list, i + 2 < n ? ", " : i + 1 < n ? " or " : "");
	}
	status_set(OMEN_EINVAL, "unknown %s '%s' (use %s)", what, name ? name : "(null)", list);
	return -1;
}

#define NAMES(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const metrics[] = {
    [OMEN_METRIC_L2] = "l2", [OMEN_METRIC_IP] = "ip", [OMEN_METRIC_COSINE] = "cosine"};
static const char *const index_types[] = {[OMEN_INDEX_AUTO] = "auto",
                                          [OMEN_INDEX_FLAT] = "flat",
                                          [OMEN_INDEX_HNSW] = "hnsw",
                                          [OMEN_INDEX_IVF] = "ivf"};
static const char *const devices[] = {
    [OMEN_DEVICE_AUTO] = "auto", [OMEN_DEVICE_CPU] = "cpu", [OMEN_DEVICE_GPU] = "gpu"};

/* Defines type's parse and name functions over table. */
#define NAMED(type, parse, print, what, table)                                                     \
	int parse(const char *name, type *out)                                                     \
	{                                                                                          \
		int i = lookup(table, NAMES(table), what, name);                                   \
		if (i < 0)                                                                         \
			return OMEN_EINVAL;                                                        \
		*out = (type)i;                                                                    \
		return OMEN_OK;                                                                    \
	}                                                                                          \
	const char *print(type value)                                                              \
	{                                                                                          \
		return (unsigned)value < (unsigned)NAMES(table) ? table[value] : "?";              \
	}

NAMED(omen_metric, metric_parse, metric_name, "metric", metrics)
NAMED(omen_index_type, index_type_parse, index_type_name, "index type", index_types)
NAMED(omen_device, device_parse, device_name, "device", devices)
