/*
 * Strict command-line parsing for the omendb tool: options by table, and numbers that must be
 * plain decimal digits within a range. Anything else is a usage error, so that "--k abc",
 * "--dim -5" or "12x" never silently become 0 or a wrapped-around value.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	/* strtoull accepts spaces and a sign (and negates!); allow digits only. */
	if (s == NULL || s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int cli_opt_u64(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
                uint64_t *out)
{
	if (cli_parse_u64(s, min, max, out) != 0)
		return cli_usage_err(cmd, "%s: '%s' is not an integer in %llu..%llu", opt, s,
		                     (unsigned long long)min, (unsigned long long)max);
	return 0;
}

/* Finds the option named name (length len) in opts, or NULL. */
static const cli_opt *find_opt(const cli_opt *opts, size_t nopts, const char *name, size_t len)
{
	for (size_t i = 0; i < nopts; i++)
		if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
			return &opts[i];
	return NULL;
}

/* Handles option argument argv[*i]; may consume the next argument as its value. */
static int take_opt(const char *cmd, int argc, char **argv, int *i, const cli_opt *opts,
                    size_t nopts)
{
	const char *arg = argv[*i];
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const cli_opt *o = find_opt(opts, nopts, arg, len);

	if (o == NULL)
		return cli_usage_err(cmd, "unknown option '%.*s'", (int)len, arg);
	if (!o->has_arg) {
		if (eq)
			return cli_usage_err(cmd, "option %s takes no value", o->name);
		*o->value = "";
		return 0;
	}
	if (eq) {
		*o->value = eq + 1;
		return 0;
	}
	if (*i + 1 >= argc)
		return cli_usage_err(cmd, "option %s needs a value", o->name);
	*i += 1;
	*o->value = argv[*i];
	return 0;
}

int cli_getopts(const char *cmd, int argc, char **argv, const cli_opt *opts, size_t nopts,
                size_t *npos)
{
	size_t n = 0;
	int only_pos = 0;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!only_pos && strcmp(arg, "--") == 0) {
			only_pos = 1;
		} else if (!only_pos && arg[0] == '-' && arg[1] != '\0') {
			int rc = take_opt(cmd, argc, argv, &i, opts, nopts);

			if (rc != 0)
				return rc;
		} else {
			argv[n++] = argv[i];
		}
	}
	*npos = n;
	return 0;
}

int cli_parse_ids(const char *cmd, char **args, size_t n, uint64_t **out)
{
	uint64_t *ids = malloc((n ? n : 1) * sizeof(*ids));

	if (ids == NULL) {
		cli_err("out of memory");
		return CLI_FAIL;
	}
	for (size_t i = 0; i < n; i++) {
		if (cli_parse_u64(args[i], 0, OMEN_NO_ID - 1, &ids[i]) != 0) {
			free(ids);
			return cli_usage_err(cmd, "'%s' is not a point id (0..%llu)", args[i],
			                     (unsigned long long)(OMEN_NO_ID - 1));
		}
	}
	*out = ids;
	return 0;
}
