/*
 * Metadata filters: Mongo-style JSON compiled once per search into a flat tree, then matched
 * against each point's stored metadata map (storage/metadata.c reads it). docs/FILTERS.md is
 * the user-facing syntax. Matching allocates nothing and is safe on any bytes.
 */
#include "engine/filter.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

#define FILTER_MAX_DEPTH  32  /* filter objects nested inside one another */
#define FILTER_MAX_FIELDS 256 /* distinct field names in one filter */
#define PATH_MAX_LEN      160 /* bytes of "$and[1].year" kept for error messages */

/* Writes a one-line reason into err (which may be NULL) and returns status. */
#define fail(status, err, errlen, ...) err_set(err, errlen, status, __VA_ARGS__)

/* ---- Filter representation ------------------------------------------------------------ */

enum node_kind { NK_AND, NK_OR, NK_NOT, NK_CMP, NK_IN };
enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_LTE, OP_GT, OP_GTE, OP_IN, OP_NIN };

/* The compiled filter is a tree laid out in preorder in one array: a node's children follow it,
 * and each node records where its subtree ends, so child j's next sibling is nodes[j].end. An
 * AND with no children is true (the empty filter). */
struct node {
	uint8_t kind;
	uint8_t op;            /* NK_CMP: OP_EQ..OP_GTE; NK_IN: OP_IN or OP_NIN */
	uint16_t field;        /* NK_CMP, NK_IN: index into filter.fields */
	uint32_t end;          /* one past the last node of this subtree */
	uint32_t first, count; /* NK_IN: operands[first..first+count), in value_order */
	meta_value arg;        /* NK_CMP: the operand */
};

struct field {
	const char *name; /* borrowed from filter.json */
	uint32_t len;
};

struct filter {
	json_t *json; /* the parsed filter: owns every string the nodes point to */
	struct node *nodes;
	uint32_t nnodes, cap_nodes;
	meta_value *operands;
	uint32_t noperands, cap_operands;
	struct field *fields; /* sorted bytewise once compiled, to merge with stored keys */
	uint32_t nfields;
};

/* ---- Comparison ----------------------------------------------------------------------- */

/* Exact order of an integer and a double (no NaN): no rounding of i to double, so 2^53 + 1
 * is greater than 2^53. */
static int cmp_int_double(int64_t i, double d)
{
	if (d >= 0x1p63)
		return -1;
	if (d < -0x1p63)
		return 1;
	int64_t t = (int64_t)d; /* truncates toward zero, exactly representable */
	if (i != t)
		return i < t ? -1 : 1;
	double frac = d - (double)t;
	return (frac < 0) - (frac > 0);
}

static int cmp_num(const meta_value *a, const meta_value *b)
{
	if (a->type == META_INT && b->type == META_INT)
		return (a->u.i > b->u.i) - (a->u.i < b->u.i);
	if (a->type == META_FLOAT && b->type == META_FLOAT)
		return (a->u.d > b->u.d) - (a->u.d < b->u.d);
	if (a->type == META_INT)
		return cmp_int_double(a->u.i, b->u.d);
	return -cmp_int_double(b->u.i, a->u.d);
}

/* The comparable class of a type: numbers together, strings, booleans. */
static inline int vclass(uint8_t type)
{
	return type == META_FLOAT ? META_INT : type;
}

/* Orders a and b of the same class: numbers numerically, strings bytewise, false < true. */
static inline int cmp_same_class(const meta_value *a, const meta_value *b)
{
	switch (vclass(a->type)) {
	case META_INT:
		return cmp_num(a, b);
	case META_STR:
		return meta_key_cmp(a->u.s, a->len, b->u.s, b->len);
	default:
		return (int)a->u.b - (int)b->u.b;
	}
}

/* A total order on all values (booleans, then numbers, then strings), for sorting $in lists;
 * two values are equal in it exactly when $eq holds between them. */
static int value_order(const void *pa, const void *pb)
{
	const meta_value *a = pa, *b = pb;
	int ca = vclass(a->type), cb = vclass(b->type);
	if (ca != cb)
		return ca - cb;
	return cmp_same_class(a, b);
}

/* ---- Matching ------------------------------------------------------------------------- */

static bool cmp_match(uint8_t op, const meta_value *v, const meta_value *arg)
{
	if (v->type == META_MISSING || vclass(v->type) != vclass(arg->type))
		return op == OP_NE;
	int c = cmp_same_class(v, arg);
	switch (op) {
	case OP_EQ:
		return c == 0;
	case OP_NE:
		return c != 0;
	case OP_LT:
		return c < 0;
	case OP_LTE:
		return c <= 0;
	case OP_GT:
		return c > 0;
	default:
		return c >= 0;
	}
}

/* $in: binary search of the sorted operands. A missing field is in no list. */
static bool in_match(const struct filter *f, const struct node *n, const meta_value *v)
{
	bool found = false;
	if (v->type != META_MISSING && n->count > 0) {
		const meta_value *ops = f->operands + n->first;
		uint32_t lo = 0, hi = n->count;
		while (lo < hi && !found) {
			uint32_t mid = lo + (hi - lo) / 2;
			int c = value_order(v, &ops[mid]);
			found = c == 0;
			if (c < 0)
				hi = mid;
			else
				lo = mid + 1;
		}
	}
	return found != (n->op == OP_NIN);
}

static bool eval(const struct filter *f, uint32_t i, const meta_value *vals)
{
	const struct node *n = &f->nodes[i];
	switch (n->kind) {
	case NK_AND:
		for (uint32_t j = i + 1; j < n->end; j = f->nodes[j].end)
			if (!eval(f, j, vals))
				return false;
		return true;
	case NK_OR:
		for (uint32_t j = i + 1; j < n->end; j = f->nodes[j].end)
			if (eval(f, j, vals))
				return true;
		return false;
	case NK_NOT:
		return !eval(f, i + 1, vals);
	case NK_IN:
		return in_match(f, n, &vals[n->field]);
	default:
		return cmp_match(n->op, &vals[n->field], &n->arg);
	}
}

/* Walks the stored map once, merging its sorted keys with the filter's sorted field names and
 * filling vals[] for the fields present. False if the bytes are corrupt. */
static bool gather(const struct filter *f, const unsigned char *mp, size_t len, meta_value *vals)
{
	meta_iter it;
	const char *key;
	uint32_t klen, s = 0;
	meta_value v = {0};
	int more;
	if (!meta_iter_open(&it, mp, len))
		return false;
	while ((more = meta_iter_next(&it, &key, &klen, &v)) > 0) {
		int c = -1;
		while (s < f->nfields &&
		       (c = meta_key_cmp(f->fields[s].name, f->fields[s].len, key, klen)) < 0)
			s++;
		if (c == 0)
			vals[s] = v;
	}
	return more == 0;
}

bool filter_match(const filter *f, const unsigned char *mp, size_t len)
{
	meta_value vals[FILTER_MAX_FIELDS];
	for (uint32_t s = 0; s < f->nfields; s++)
		vals[s].type = META_MISSING;
	if (len > 0 && (mp == NULL || !gather(f, mp, len, vals)))
		return false;
	return eval(f, 0, vals);
}

void filter_free(filter *f)
{
	if (f == NULL)
		return;
	mem_free(f->nodes);
	mem_free(f->operands);
	mem_free(f->fields);
	json_decref(f->json);
	mem_free(f);
}

/* ---- Compilation ---------------------------------------------------------------------- */

struct compiler {
	struct filter *f;
	uint32_t cap_fields;
	char path[PATH_MAX_LEN]; /* where in the filter we are, for messages: "$or[1].year" */
	size_t pathlen;
	char *err;
	size_t errlen;
};

static int compile_object(struct compiler *c, const json_t *obj, int depth);

/* Appends ".seg" (or "[i]" when seg is NULL) to the path; returns the length to restore. */
static size_t path_push(struct compiler *c, const char *seg, size_t i)
{
	size_t old = c->pathlen, room = sizeof(c->path) - old;
	if (seg != NULL)
		snprintf(c->path + old, room, "%s%s", old > 0 ? "." : "", seg);
	else
		snprintf(c->path + old, room, "[%zu]", i);
	c->pathlen = strlen(c->path);
	return old;
}

static void path_pop(struct compiler *c, size_t old)
{
	c->pathlen = old;
	c->path[old] = '\0';
}

static int bad(struct compiler *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports a malformed filter at the current path: "filter: $or[1].year: <reason>". */
static int bad(struct compiler *c, const char *fmt, ...)
{
	if (c->err != NULL && c->errlen > 0) {
		int n = snprintf(c->err, c->errlen,
		                 "filter: %s: ", c->pathlen > 0 ? c->path : "top level");
		if (n >= 0 && (size_t)n < c->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return OMEN_EINVAL;
}

static int oom(struct compiler *c)
{
	return fail(OMEN_ENOMEM, c->err, c->errlen, "filter: out of memory");
}

/* Returns array p (of *cap elements of size sz) grown to hold at least n, or NULL (p is then
 * unchanged and still owned by the caller). */
static void *grow(void *p, uint32_t *cap, uint32_t n, size_t sz)
{
	if (n <= *cap)
		return p;
	uint32_t ncap = *cap > 0 ? *cap * 2 : 16;
	if (ncap < n)
		ncap = n;
	void *np = mem_realloc(p, (size_t)ncap * sz);
	if (np != NULL)
		*cap = ncap;
	return np;
}

/* Appends a zeroed node of the given kind; its index goes to *idx. */
static int add_node(struct compiler *c, uint8_t kind, uint32_t *idx)
{
	struct filter *f = c->f;
	struct node *nodes = grow(f->nodes, &f->cap_nodes, f->nnodes + 1, sizeof(*nodes));
	if (nodes == NULL)
		return oom(c);
	f->nodes = nodes;
	memset(&f->nodes[f->nnodes], 0, sizeof(*f->nodes));
	f->nodes[f->nnodes].kind = kind;
	*idx = f->nnodes++;
	return 0;
}

/* Converts a JSON scalar to a value borrowing its string; false for null, arrays, objects. */
static bool to_value(const json_t *j, meta_value *v)
{
	memset(v, 0, sizeof(*v));
	switch (json_typeof(j)) {
	case JSON_INTEGER:
		v->type = META_INT;
		v->u.i = json_integer_value(j);
		return true;
	case JSON_REAL:
		v->type = META_FLOAT;
		v->u.d = json_real_value(j);
		return true;
	case JSON_STRING:
		v->type = META_STR;
		v->u.s = json_string_value(j);
		v->len = (uint32_t)json_string_length(j);
		return true;
	case JSON_TRUE:
	case JSON_FALSE:
		v->type = META_BOOL;
		v->u.b = json_is_true(j);
		return true;
	default:
		return false;
	}
}

/* Finds or adds the field name; its index goes to *out. */
static int field_index(struct compiler *c, const char *name, uint16_t *out)
{
	struct filter *f = c->f;
	size_t len = strlen(name);
	if (len == 0)
		return bad(c, "empty field name");
	if (len > META_MAX_KEY)
		return bad(c, "field name longer than %d bytes", META_MAX_KEY);
	for (uint32_t i = 0; i < f->nfields; i++)
		if (f->fields[i].len == len && memcmp(f->fields[i].name, name, len) == 0) {
			*out = (uint16_t)i;
			return 0;
		}
	if (f->nfields == FILTER_MAX_FIELDS)
		return bad(c, "more than %d distinct field names in one filter", FILTER_MAX_FIELDS);
	struct field *fields = grow(f->fields, &c->cap_fields, f->nfields + 1, sizeof(*fields));
	if (fields == NULL)
		return oom(c);
	f->fields = fields;
	f->fields[f->nfields].name = name;
	f->fields[f->nfields].len = (uint32_t)len;
	*out = (uint16_t)f->nfields++;
	return 0;
}

static const char *const op_names[] = {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin"};

/* Compiles op(field, arg) for a scalar operator. */
static int compile_cmp(struct compiler *c, uint16_t field, uint8_t op, const json_t *arg)
{
	meta_value v = {0};
	uint32_t idx;
	if (!to_value(arg, &v))
		return bad(c, "%s expects a number, string or boolean, got %s", op_names[op],
		           meta_json_kind(arg));
	if (v.type == META_BOOL && op != OP_EQ && op != OP_NE)
		return bad(c, "%s cannot order booleans (use $eq, $ne, $in or $nin)", op_names[op]);
	int rc = add_node(c, NK_CMP, &idx);
	if (rc != 0)
		return rc;
	struct node *n = &c->f->nodes[idx];
	n->op = op;
	n->field = field;
	n->arg = v;
	n->end = idx + 1;
	return 0;
}

/* Compiles $in / $nin: an array of scalars, possibly empty, sorted for binary search. */
static int compile_in(struct compiler *c, uint16_t field, uint8_t op, const json_t *arg)
{
	struct filter *f = c->f;
	uint32_t idx;
	size_t i;
	const json_t *e;
	if (!json_is_array(arg))
		return bad(c, "%s expects an array of numbers, strings or booleans, got %s",
		           op_names[op], meta_json_kind(arg));
	uint32_t first = f->noperands, count = (uint32_t)json_array_size(arg);
	if (count > 0) {
		meta_value *ops = grow(f->operands, &f->cap_operands, first + count, sizeof(*ops));
		if (ops == NULL)
			return oom(c);
		f->operands = ops;
		json_array_foreach(arg, i, e)
		{
			if (!to_value(e, &ops[first + i]))
				return bad(c, "%s[%zu] must be a number, string or boolean, got %s",
				           op_names[op], i, meta_json_kind(e));
		}
		qsort(ops + first, count, sizeof(*ops), value_order);
		f->noperands += count;
	}
	int rc = add_node(c, NK_IN, &idx);
	if (rc != 0)
		return rc;
	struct node *n = &f->nodes[idx];
	n->op = op;
	n->field = field;
	n->first = first;
	n->count = count;
	n->end = idx + 1;
	return 0;
}

/* Compiles one "$op": arg entry of a field's operator object. */
static int compile_op(struct compiler *c, uint16_t field, const char *opname, const json_t *arg)
{
	uint8_t op;
	for (op = 0; op < sizeof(op_names) / sizeof(op_names[0]); op++)
		if (strcmp(opname, op_names[op]) == 0)
			break;
	if (op == sizeof(op_names) / sizeof(op_names[0])) {
		if (opname[0] != '$')
			return bad(c,
			           "expected operators ($eq, $ne, $lt, $lte, $gt, $gte, $in, "
			           "$nin), got key '%s' (metadata values cannot be objects)",
			           opname);
		return bad(c,
		           "unknown operator '%s' (expected $eq, $ne, $lt, $lte, $gt, $gte, "
		           "$in or $nin)",
		           opname);
	}
	if (op == OP_IN || op == OP_NIN)
		return compile_in(c, field, op, arg);
	return compile_cmp(c, field, op, arg);
}

/* Compiles field: scalar (equality) or field: {operators...} (all must hold). */
static int compile_field(struct compiler *c, const char *name, const json_t *v)
{
	uint16_t field = 0;
	uint32_t and_idx = 0;
	const char *opname;
	json_t *arg;
	int rc = field_index(c, name, &field);
	if (rc != 0)
		return rc;
	if (!json_is_object(v)) {
		if (json_is_array(v) || json_is_null(v))
			return bad(c,
			           "expected a number, string, boolean or operator object, got "
			           "%s%s",
			           meta_json_kind(v), json_is_array(v) ? " (use $in)" : "");
		return compile_cmp(c, field, OP_EQ, v);
	}
	size_t nops = json_object_size(v);
	if (nops == 0)
		return bad(c, "empty operator object");
	if (nops > 1 && (rc = add_node(c, NK_AND, &and_idx)) != 0)
		return rc;
	json_object_foreach((json_t *)v, opname, arg)
	{
		if ((rc = compile_op(c, field, opname, arg)) != 0)
			return rc;
	}
	if (nops > 1)
		c->f->nodes[and_idx].end = c->f->nnodes;
	return 0;
}

/* Compiles $and / $or: a non-empty array of filter objects, one level deeper. */
static int compile_list(struct compiler *c, uint8_t kind, const json_t *v, int depth)
{
	uint32_t idx;
	size_t i;
	json_t *e;
	if (!json_is_array(v) || json_array_size(v) == 0)
		return bad(c, "expected a non-empty array of filter objects, got %s%s",
		           meta_json_kind(v), json_is_array(v) ? " with no elements" : "");
	int rc = add_node(c, kind, &idx);
	if (rc != 0)
		return rc;
	json_array_foreach(v, i, e)
	{
		size_t old = path_push(c, NULL, i);
		if (!json_is_object(e))
			return bad(c, "expected a filter object, got %s", meta_json_kind(e));
		if ((rc = compile_object(c, e, depth + 1)) != 0)
			return rc;
		path_pop(c, old);
	}
	c->f->nodes[idx].end = c->f->nnodes;
	return 0;
}

/* Compiles one key of a filter object: a field condition or $and / $or / $not. */
static int compile_entry(struct compiler *c, const char *key, const json_t *v, int depth)
{
	uint32_t idx;
	int rc;
	if (key[0] != '$')
		return compile_field(c, key, v);
	if (strcmp(key, "$and") == 0)
		return compile_list(c, NK_AND, v, depth);
	if (strcmp(key, "$or") == 0)
		return compile_list(c, NK_OR, v, depth);
	if (strcmp(key, "$not") != 0)
		return bad(c, "unknown operator (expected $and, $or, $not or a field name)");
	if (!json_is_object(v))
		return bad(c, "expected a filter object, got %s", meta_json_kind(v));
	if ((rc = add_node(c, NK_NOT, &idx)) != 0)
		return rc;
	if ((rc = compile_object(c, v, depth + 1)) != 0)
		return rc;
	c->f->nodes[idx].end = c->f->nnodes;
	return 0;
}

/* Compiles a filter object (its keys are ANDed) at nesting level depth (the top is 1). */
static int compile_object(struct compiler *c, const json_t *obj, int depth)
{
	uint32_t idx = 0;
	const char *key;
	json_t *v;
	int rc;
	if (depth > FILTER_MAX_DEPTH)
		return bad(c, "filter nested deeper than %d levels", FILTER_MAX_DEPTH);
	size_t n = json_object_size(obj);
	if (n != 1 && (rc = add_node(c, NK_AND, &idx)) != 0)
		return rc;
	json_object_foreach((json_t *)obj, key, v)
	{
		size_t old = path_push(c, key, 0);
		if ((rc = compile_entry(c, key, v, depth)) != 0)
			return rc;
		path_pop(c, old);
	}
	if (n != 1)
		c->f->nodes[idx].end = c->f->nnodes;
	return 0;
}

static int field_order(const void *pa, const void *pb)
{
	const struct field *a = pa, *b = pb;
	return meta_key_cmp(a->name, a->len, b->name, b->len);
}

/* Sorts the field names bytewise, as stored keys are, and renumbers the nodes' references. */
static void sort_fields(struct filter *f)
{
	struct field sorted[FILTER_MAX_FIELDS];
	uint16_t newidx[FILTER_MAX_FIELDS];
	if (f->nfields == 0)
		return;
	memcpy(sorted, f->fields, f->nfields * sizeof(*sorted));
	qsort(sorted, f->nfields, sizeof(*sorted), field_order);
	for (uint32_t i = 0; i < f->nfields; i++)
		for (uint32_t j = 0; j < f->nfields; j++)
			if (sorted[j].name == f->fields[i].name)
				newidx[i] = (uint16_t)j;
	for (uint32_t i = 0; i < f->nnodes; i++)
		if (f->nodes[i].kind == NK_CMP || f->nodes[i].kind == NK_IN)
			f->nodes[i].field = newidx[f->nodes[i].field];
	memcpy(f->fields, sorted, f->nfields * sizeof(*sorted));
}

int filter_compile(const char *json, filter **out, char *err, size_t errlen)
{
	struct compiler c = {.err = err, .errlen = errlen};
	int rc = 0;
	if (json == NULL)
		return fail(OMEN_EINVAL, err, errlen, "filter: NULL JSON text");
	struct filter *f = mem_calloc(1, sizeof(*f));
	if (f == NULL)
		return fail(OMEN_ENOMEM, err, errlen, "filter: out of memory");
	f->json = meta_json_parse(json, strlen(json), "filter", &rc, err, errlen);
	if (f->json == NULL)
		goto out_fail;
	if (!json_is_object(f->json)) {
		rc = fail(OMEN_EINVAL, err, errlen, "filter: expected a JSON object, got %s",
		          meta_json_kind(f->json));
		goto out_fail;
	}
	c.f = f;
	if ((rc = compile_object(&c, f->json, 1)) != 0)
		goto out_fail;
	sort_fields(f);
	*out = f;
	return 0;
out_fail:
	filter_free(f);
	return rc;
}
