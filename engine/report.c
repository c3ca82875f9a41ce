/*
 * The text report of an index check (omen_check): lines appended as the check goes, the first
 * REPORT_MAX problems described and the rest counted, handed to the caller at the end.
 */
#include <stdarg.h>
#include <stdio.h>

#include "engine/engine.h"

void report_say(check_report *r, const char *fmt, ...)
{
	va_list ap;
	for (int pass = 0; pass < 2; pass++) {
		va_start(ap, fmt);
		int n = vsnprintf(r->text ? r->text + r->len : NULL, r->text ? r->cap - r->len : 0,
		                  fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (r->text && r->len + (size_t)n < r->cap) {
			r->len += (size_t)n;
			return;
		}
		size_t cap = (r->cap + (size_t)n + 1) * 2;
		char *t = mem_realloc(r->text, cap);
		if (!t)
			return;
		r->text = t;
		r->cap = cap;
	}
}

bool report_problem(check_report *r)
{
	return r->errors++ < REPORT_MAX;
}

int report_finish(eng_coll *c, check_report *r, int st, char **out)
{
	if (st == OMEN_OK && r->errors)
		st = status_set(OMEN_ECORRUPT, "collection '%s': index check found %llu problems",
		                c->name, (unsigned long long)r->errors);
	if (out && st != OMEN_OK && st != OMEN_ECORRUPT) {
		mem_free(r->text);
		return st;
	}
	if (out)
		*out = r->text ? r->text : mem_strdup("");
	else
		mem_free(r->text);
	return st;
}
