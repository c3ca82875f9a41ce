/*
 * omendb.Collection (pyomen.h): one collection of a database.
 */
#include "pyomen.h"

/* ---- Collection ---- */

/* Checks that the collection is open; a NULL return has raised ValueError. */
CollectionObject *open_coll(CollectionObject *c)
{
	if (!c->coll)
		return (CollectionObject *)closed_error("collection");
	return c;
}

static void coll_unlink(CollectionObject *c)
{
	DatabaseObject *d = c->owner;
	if (c->prev)
		c->prev->next = c->next;
	else if (d && d->colls == c)
		d->colls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Closes the handle; the caller holds the GIL and not the database's lock. */
void coll_close_handle(CollectionObject *c)
{
	if (!c->coll)
		return;
	omen_collection *h = c->coll;
	DatabaseObject *d = c->owner;
	Py_BEGIN_ALLOW_THREADS pthread_rwlock_wrlock(&d->lock);
	c->coll = NULL;
	omen_collection_close(h);
	pthread_rwlock_unlock(&d->lock);
	Py_END_ALLOW_THREADS
}

static void Collection_dealloc(CollectionObject *c)
{
	coll_close_handle(c);
	coll_unlink(c);
	Py_XDECREF(c->owner);
	Py_TYPE(c)->tp_free((PyObject *)c);
}

/* Makes the Python object of an open handle, owned by database d. */
PyObject *coll_wrap(DatabaseObject *d, omen_collection *h)
{
	omen_collection_stats s;
	int st = omen_collection_stats_get(h, &s);
	if (st != OMEN_OK) {
		raise_status(st);
		omen_collection_close(h);
		return NULL;
	}
	CollectionObject *c = PyObject_New(CollectionObject, &CollectionType);
	if (!c) {
		omen_collection_close(h);
		return NULL;
	}
	c->coll = h;
	Py_INCREF(d);
	c->owner = d;
	strcpy(c->name, s.name);
	c->dim = s.dim;
	c->metric = s.metric;
	c->prev = NULL;
	c->next = d->colls;
	if (d->colls)
		d->colls->prev = c;
	d->colls = c;
	return (PyObject *)c;
}

#define CALL_UNLOCKED(c, st, expr)                                                                 \
	do {                                                                                       \
		Py_BEGIN_ALLOW_THREADS pthread_rwlock_rdlock(&(c)->owner->lock);                   \
		st = (c)->coll ? (expr) : -1;                                                      \
		pthread_rwlock_unlock(&(c)->owner->lock);                                          \
		Py_END_ALLOW_THREADS                                                               \
	} while (0)

/* Builds the n metadata JSON strings (kept alive in *keep) of a list of dicts/None. */
static int meta_strings(PyObject *metadata, size_t n, const char ***out, PyObject **keep)
{
	PyObject *seq = PySequence_Fast(metadata, "metadata must be a list");
	if (!seq)
		return -1;
	if ((size_t)PySequence_Fast_GET_SIZE(seq) != n) {
		PyErr_Format(PyExc_ValueError, "metadata has %zd entries for %zu vectors",
		             PySequence_Fast_GET_SIZE(seq), n);
		Py_DECREF(seq);
		return -1;
	}
	const char **m = PyMem_Calloc(n ? n : 1, sizeof *m);
	PyObject *list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; m && list && i < n; i++) {
		PyObject *e = PySequence_Fast_GET_ITEM(seq, i);
		if (e == Py_None) {
			Py_INCREF(Py_None);
			PyList_SET_ITEM(list, i, Py_None);
			continue;
		}
		PyObject *key;
		Py_ssize_t pos = 0;
		while (PyDict_Check(e) && PyDict_Next(e, &pos, &key, NULL))
			if (!PyUnicode_Check(key)) {
				PyErr_Format(PyExc_ValueError,
				             "metadata[%zu]: keys must be str, got %s", i,
				             Py_TYPE(key)->tp_name);
				break;
			}
		PyObject *s = PyDict_Check(e) && !PyErr_Occurred() ? as_json(e, "metadata") : NULL;
		if (!s) {
			if (!PyErr_Occurred())
				PyErr_Format(PyExc_ValueError,
				             "metadata[%zu] must be a dict or None, got %s", i,
				             Py_TYPE(e)->tp_name);
			PyMem_Free(m);
			m = NULL;
			break;
		}
		PyList_SET_ITEM(list, i, s);
		m[i] = PyUnicode_AsUTF8(s);
	}
	Py_DECREF(seq);
	if (!m || !list) {
		Py_XDECREF(list);
		PyMem_Free(m);
		return -1;
	}
	*out = m;
	*keep = list;
	return 0;
}

static PyObject *Collection_add(CollectionObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"vectors", "ids", "metadata", NULL};
	PyObject *vobj, *idobj = Py_None, *mobj = Py_None, *keep = NULL, *out = NULL;
	PyArrayObject *v = NULL, *ids = NULL;
	const char **meta = NULL;
	int single;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:add", kwlist, &vobj, &idobj, &mobj) ||
	    !open_coll(self) || !(v = as_vectors(vobj, &single)))
		return NULL;
	size_t n, dim;
	vec_shape(v, &n, &dim);
	if (idobj != Py_None && !(ids = as_ids(idobj)))
		goto done;
	if (ids && (size_t)PyArray_SIZE(ids) != n) {
		PyErr_Format(PyExc_ValueError, "%zd ids for %zu vectors", PyArray_SIZE(ids), n);
		goto done;
	}
	if (mobj != Py_None && meta_strings(mobj, n, &meta, &keep) != 0)
		goto done;
	npy_intp dims[1] = {(npy_intp)n};
	if (!(out = PyArray_SimpleNew(1, dims, NPY_UINT64)))
		goto done;
	if (n == 0)
		goto done;
	omen_batch b = {n, dim, ids ? PyArray_DATA(ids) : NULL, PyArray_DATA(v), meta};
	int st;
	CALL_UNLOCKED(self, st, omen_upsert(self->coll, &b, PyArray_DATA((PyArrayObject *)out)));
	if (st != OMEN_OK) {
		Py_CLEAR(out);
		st < 0 ? closed_error("collection") : raise_status(st);
	}
done:
	Py_XDECREF(v);
	Py_XDECREF(ids);
	Py_XDECREF(keep);
	PyMem_Free(meta);
	return out;
}

static PyObject *search_result(PyObject *ids, PyObject *dists, int single,
                               const omen_search_info *info)
{
	if (single) { /* one 1-D query: (k,) arrays */
		PyObject *i1 = PySequence_GetItem(ids, 0), *d1 = PySequence_GetItem(dists, 0);
		Py_DECREF(ids);
		Py_DECREF(dists);
		if (!i1 || !d1) {
			Py_XDECREF(i1);
			Py_XDECREF(d1);
			return NULL;
		}
		ids = i1, dists = d1;
	}
	if (info)
		return Py_BuildValue("(NN{s:s,s:I,s:I,s:K})", ids, dists, "path",
		                     info->path ? info->path : "?", "shards_answered",
		                     info->shards_answered, "shards_total", info->shards_total,
		                     "vectors_read", (unsigned long long)info->vectors_read);
	return Py_BuildValue("(NN)", ids, dists);
}

static PyObject *Collection_search(CollectionObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"queries", "k",       "filter", "ef",          "nprobe", "exact",
	                         "threads", "partial", "device", "return_info", NULL};
	PyObject *qobj, *fobj = Py_None, *ftext = NULL, *ids = NULL, *dists = NULL;
	PyObject *nprobe_obj = Py_None;
	Py_ssize_t k = 10, ef = 0, nprobe = 0;
	int exact = 0, threads = 0, partial = 0, want_info = 0, single;
	const char *device = "auto";
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n$OnOpipsp:search", kwlist, &qobj, &k, &fobj,
	                                 &ef, &nprobe_obj, &exact, &threads, &partial, &device,
	                                 &want_info))
		return overflow_as_value();
	/* None: the index's calibrated default; given, at least 1 */
	if (nprobe_obj != Py_None && (nprobe = PyNumber_AsSsize_t(nprobe_obj, NULL)) < 1) {
		if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError) ||
		    PyErr_ExceptionMatches(PyExc_TypeError)) {
			PyErr_Clear();
			return PyErr_Format(
			    PyExc_ValueError,
			    "nprobe must be at least 1 (None: the index's default)");
		}
		return NULL;
	}
	omen_device dev;
	if (omen_device_parse(device, &dev) != OMEN_OK)
		return PyErr_Format(PyExc_ValueError, "device: %s", omen_errmsg(NULL));
	if (!open_coll(self))
		return NULL;
	if (k < 1 || ef < 0) {
		PyErr_Format(PyExc_ValueError,
		             k < 1 ? "k must be at least 1, got %zd"
		                   : "ef must not be negative, got %zd",
		             k < 1 ? k : ef);
		return NULL;
	}
	PyArrayObject *q = as_vectors(qobj, &single);
	if (!q)
		return NULL;
	size_t nq, dim;
	vec_shape(q, &nq, &dim);
	if (fobj != Py_None && !(ftext = as_json(fobj, "filter")))
		goto fail;
	npy_intp dims[2] = {(npy_intp)nq, k};
	ids = PyArray_SimpleNew(2, dims, NPY_UINT64);
	dists = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
	if (!ids || !dists)
		goto fail;
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = (size_t)k;
	p.filter = ftext ? PyUnicode_AsUTF8(ftext) : NULL;
	p.ef = (size_t)ef;
	p.nprobe = (size_t)nprobe;
	p.exact = exact;
	p.threads = threads;
	p.partial = partial;
	p.device = dev;
	omen_search_info info = {0, 0, NULL, 0}; /* filled by the library, for no queries too */
	p.info = &info;
	int st;
	CALL_UNLOCKED(self, st,
	              omen_search(self->coll, PyArray_DATA(q), nq, dim, &p,
	                          PyArray_DATA((PyArrayObject *)ids),
	                          PyArray_DATA((PyArrayObject *)dists)));
	if (st != OMEN_OK) {
		st < 0 ? closed_error("collection") : raise_status(st);
		goto fail;
	}
	Py_DECREF(q);
	Py_XDECREF(ftext);
	return search_result(ids, dists, single, want_info ? &info : NULL);
fail:
	Py_DECREF(q);
	Py_XDECREF(ftext);
	Py_XDECREF(ids);
	Py_XDECREF(dists);
	return NULL;
}

/* A list of n metadata dicts (or None) from the engine's JSON strings, which it frees. */
static PyObject *meta_list(char **meta, size_t n)
{
	PyObject *list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; i < n; i++) {
		PyObject *m = Py_None;
		if (list && meta[i])
			m = PyObject_CallFunction(json_loads, "s", meta[i]);
		else
			Py_INCREF(Py_None);
		omen_free(meta[i]);
		if (!list)
			continue;
		if (!m) {
			Py_CLEAR(list);
			continue;
		}
		PyList_SET_ITEM(list, i, m);
	}
	return list;
}

static PyObject *Collection_get(CollectionObject *self, PyObject *idobj)
{
	if (!open_coll(self))
		return NULL;
	PyArrayObject *ids = as_ids(idobj);
	if (!ids)
		return NULL;
	size_t n = (size_t)PyArray_SIZE(ids);
	npy_intp vd[2] = {(npy_intp)n, self->dim}, fd[1] = {(npy_intp)n};
	PyObject *vec = PyArray_ZEROS(2, vd, NPY_FLOAT32, 0);
	PyObject *found = PyArray_ZEROS(1, fd, NPY_BOOL, 0);
	char **meta = PyMem_Calloc(n ? n : 1, sizeof *meta);
	PyObject *out = NULL;
	int st = OMEN_OK;
	if (vec && found && meta && n > 0)
		CALL_UNLOCKED(self, st,
		              omen_get(self->coll, PyArray_DATA(ids), n,
		                       PyArray_DATA((PyArrayObject *)vec), meta,
		                       PyArray_DATA((PyArrayObject *)found)));
	if (!vec || !found || !meta)
		PyErr_NoMemory();
	else if (st != OMEN_OK)
		st < 0 ? closed_error("collection") : raise_status(st);
	else
		out = Py_BuildValue("(ONO)", vec, meta_list(meta, n), found);
	Py_DECREF(ids);
	Py_XDECREF(vec);
	Py_XDECREF(found);
	PyMem_Free(meta);
	return out;
}

static PyObject *Collection_delete(CollectionObject *self, PyObject *idobj)
{
	if (!open_coll(self))
		return NULL;
	PyArrayObject *ids = as_ids(idobj);
	if (!ids)
		return NULL;
	size_t n = (size_t)PyArray_SIZE(ids), deleted = 0;
	int st = OMEN_OK;
	if (n > 0)
		CALL_UNLOCKED(self, st, omen_delete(self->coll, PyArray_DATA(ids), n, &deleted));
	Py_DECREF(ids);
	if (st != OMEN_OK)
		return st < 0 ? closed_error("collection") : raise_status(st);
	return PyLong_FromSize_t(deleted);
}

/* ids(start=0, limit=-1): the live ids >= start in ascending order (all of them, or at most
 * limit), read page by page. */
static PyObject *Collection_ids(CollectionObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"start", "limit", NULL};
	PyObject *startobj = NULL;
	unsigned long long start = 0;
	long long limit = -1;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OL:ids", kwlist, &startobj, &limit))
		return overflow_as_value();
	if (startobj) { /* checked: a negative or too large start is an error, not wrapped */
		start = PyLong_AsUnsignedLongLong(startobj);
		if (PyErr_Occurred())
			return NULL;
	}
	if (!open_coll(self))
		return NULL;
	size_t want = limit < 0 ? SIZE_MAX : (size_t)limit, have = 0, cap = 0;
	uint64_t *all = NULL;
	int st = OMEN_OK;
	while (have < want) {
		size_t page = want - have < 65536 ? want - have : 65536, got = 0;
		if (cap < have + page) {
			uint64_t *grown = realloc(all, (have + page) * sizeof *grown);
			if (!grown) {
				free(all);
				return PyErr_NoMemory();
			}
			all = grown;
			cap = have + page;
		}
		CALL_UNLOCKED(self, st, omen_list_ids(self->coll, start, page, all + have, &got));
		if (st != OMEN_OK)
			break;
		have += got;
		if (got < page || all[have - 1] == UINT64_MAX)
			break;
		start = all[have - 1] + 1;
	}
	if (st != OMEN_OK) {
		free(all);
		return st < 0 ? closed_error("collection") : raise_status(st);
	}
	npy_intp dims[1] = {(npy_intp)have};
	PyObject *out = PyArray_SimpleNew(1, dims, NPY_UINT64);
	if (out && have)
		memcpy(PyArray_DATA((PyArrayObject *)out), all, have * sizeof *all);
	free(all);
	return out;
}

/* True when v fits a uint32_t field of omen_index_params. */
static bool fits_u32(long long v)
{
	return v >= 0 && v <= UINT32_MAX;
}

/* Reads build_index's arguments into *p. Each number must fit its field; its range is the
 * engine's to check, so that the messages are the engine's. 0, or -1 with ValueError set. */
static int index_params_parse(PyObject *args, PyObject *kw, omen_index_params *p)
{
	static char *kwlist[] = {"type",  "m",    "ef_construction", "threads", "int8",
	                         "nlist", "bits", "ram_budget",      NULL};
	const char *type = "auto";
	long long m = OMEN_HNSW_M_DEFAULT, efc = OMEN_HNSW_EFC_DEFAULT, nlist = 0,
	          bits = OMEN_IVF_BITS_DEFAULT;
	PyObject *budget = NULL, *nlist_obj = Py_None;
	int threads = 0, int8 = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|s$LLipOLO:build_index", kwlist, &type, &m,
	                                 &efc, &threads, &int8, &nlist_obj, &bits, &budget))
		return overflow_as_value(), -1;
	/* None: chosen from the points; given, at least 1 */
	if (nlist_obj != Py_None) {
		nlist = PyLong_Check(nlist_obj) ? PyLong_AsLongLong(nlist_obj) : -1;
		if (nlist < 1) {
			if (PyErr_Occurred())
				PyErr_Clear();
			return PyErr_Format(PyExc_ValueError,
			                    "nlist must be 1 to %d (None: chosen from the points)",
			                    OMEN_IVF_NLIST_MAX),
			       -1;
		}
	}
	omen_index_params_init(p);
	/* checked: a negative budget is an error, not wrapped around to a huge one */
	PyObject *ix = budget ? PyNumber_Index(budget) : NULL;
	if (ix)
		p->ram_budget = PyLong_AsUnsignedLongLong(ix);
	Py_XDECREF(ix);
	if (budget && PyErr_Occurred()) {
		if (!PyErr_ExceptionMatches(PyExc_OverflowError))
			return -1;
		PyErr_Clear();
		return PyErr_Format(PyExc_ValueError, "ram_budget must be 0 to 2**64 - 1 bytes"),
		       -1;
	}
	if (omen_index_type_parse(type, &p->type) != OMEN_OK)
		return PyErr_Format(PyExc_ValueError, "type: %s", omen_errmsg(NULL)), -1;
	if (!fits_u32(m) || !fits_u32(efc))
		return PyErr_Format(
		           PyExc_ValueError, "m must be %d to %d and ef_construction %d to %d",
		           OMEN_HNSW_M_MIN, OMEN_HNSW_M_MAX, OMEN_HNSW_EFC_MIN, OMEN_HNSW_EFC_MAX),
		       -1;
	if (!fits_u32(nlist) || !fits_u32(bits))
		return PyErr_Format(PyExc_ValueError, "nlist must be 1 to %d and bits 1 to %d",
		                    OMEN_IVF_NLIST_MAX, OMEN_IVF_BITS_MAX),
		       -1;
	p->m = (uint32_t)m;
	p->ef_construction = (uint32_t)efc;
	p->threads = threads;
	p->int8 = int8;
	p->nlist = (uint32_t)nlist;
	p->bits = (uint32_t)bits;
	return 0;
}

static PyObject *Collection_build_index(CollectionObject *self, PyObject *args, PyObject *kw)
{
	omen_index_params p;
	if (index_params_parse(args, kw, &p) != 0 || !open_coll(self))
		return NULL;
	int st;
	CALL_UNLOCKED(self, st, omen_build_index(self->coll, &p));
	if (st != OMEN_OK)
		return st < 0 ? closed_error("collection") : raise_status(st);
	Py_RETURN_NONE;
}

static PyObject *Collection_check(CollectionObject *self, PyObject *unused)
{
	if (!open_coll(self))
		return NULL;
	char *report = NULL;
	int st;
	CALL_UNLOCKED(self, st, omen_check(self->coll, &report));
	if (st != OMEN_OK && st != OMEN_ECORRUPT) {
		omen_free(report);
		return st < 0 ? closed_error("collection") : raise_status(st);
	}
	PyObject *out =
	    Py_BuildValue("(Os)", st == OMEN_OK ? Py_True : Py_False, report ? report : "");
	omen_free(report);
	return out;
}

static PyObject *Collection_stats(CollectionObject *self, PyObject *unused)
{
	if (!open_coll(self))
		return NULL;
	omen_collection_stats s;
	int st;
	CALL_UNLOCKED(self, st, omen_collection_stats_get(self->coll, &s));
	if (st != OMEN_OK)
		return st < 0 ? closed_error("collection") : raise_status(st);
	return Py_BuildValue(
	    "{s:s,s:I,s:s,s:K,s:K,s:K,s:K,s:K,s:s,s:K,s:K,s:I,s:I,s:O,s:I,s:I,s:I,s:I,s:I}", "name",
	    s.name, "dim", s.dim, "metric", omen_metric_name(s.metric), "points",
	    (unsigned long long)s.points, "deleted", (unsigned long long)s.deleted, "next_id",
	    (unsigned long long)s.next_id, "segments", (unsigned long long)s.segments,
	    "vector_bytes", (unsigned long long)s.vector_bytes, "index", s.index, "indexed",
	    (unsigned long long)s.indexed, "index_bytes", (unsigned long long)s.index_bytes,
	    "hnsw_m", s.hnsw_m, "hnsw_ef_construction", s.hnsw_ef_construction, "hnsw_int8",
	    s.hnsw_int8 ? Py_True : Py_False, "ivf_nlist", s.ivf_nlist, "ivf_nprobe", s.ivf_nprobe,
	    "ivf_bits", s.ivf_bits, "replicas", s.replicas, "copies_stale", s.copies_stale);
}

static Py_ssize_t Collection_len(CollectionObject *self)
{
	if (!open_coll(self))
		return -1;
	uint64_t n = 0;
	int st;
	CALL_UNLOCKED(self, st, omen_count(self->coll, &n));
	if (st != OMEN_OK) {
		st < 0 ? closed_error("collection") : raise_status(st);
		return -1;
	}
	return (Py_ssize_t)n;
}

static PyObject *Collection_count(CollectionObject *self, PyObject *unused)
{
	Py_ssize_t n = Collection_len(self);
	return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *Collection_close(CollectionObject *self, PyObject *unused)
{
	coll_close_handle(self);
	Py_RETURN_NONE;
}

static PyObject *Collection_enter(CollectionObject *self, PyObject *unused)
{
	if (!open_coll(self))
		return NULL;
	Py_INCREF(self);
	return (PyObject *)self;
}

static PyObject *Collection_exit(CollectionObject *self, PyObject *args)
{
	coll_close_handle(self);
	Py_RETURN_FALSE;
}

static PyObject *Collection_get_name(CollectionObject *self, void *unused)
{
	return PyUnicode_FromString(self->name);
}

static PyObject *Collection_get_dim(CollectionObject *self, void *unused)
{
	return PyLong_FromUnsignedLong(self->dim);
}

static PyObject *Collection_get_metric(CollectionObject *self, void *unused)
{
	return PyUnicode_FromString(omen_metric_name(self->metric));
}

static PyObject *Collection_repr(CollectionObject *self)
{
	return PyUnicode_FromFormat("<omendb.Collection '%s' dim=%u metric=%s%s>", self->name,
	                            self->dim, omen_metric_name(self->metric),
	                            self->coll ? "" : " closed");
}

static PyMethodDef Collection_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Collection_add, METH_VARARGS | METH_KEYWORDS,
     "add(vectors, ids=None, metadata=None) -> ids\n\n"
     "Inserts or replaces points, atomically. vectors: (n, dim) or (dim,), float32 or float64\n"
     "(any layout); ids: n non-negative integers, or None to assign the next ids; metadata:\n"
     "None or n entries, each None or a dict of str to int, float, str or bool. Returns the\n"
     "n ids written as a uint64 array. The GIL is released while writing."},
    {"upsert", (PyCFunction)(void (*)(void))Collection_add, METH_VARARGS | METH_KEYWORDS,
     "upsert(vectors, ids=None, metadata=None) -> ids\n\nThe same as add()."},
    {"search", (PyCFunction)(void (*)(void))Collection_search, METH_VARARGS | METH_KEYWORDS,
     "search(queries, k=10, *, filter=None, ef=0, nprobe=None, exact=False, threads=0,\n"
     "       partial=False, device='auto', return_info=False) -> (ids, distances[, info])\n\n"
     "The k nearest points of each query: ids (uint64) and distances (float32) of shape\n"
     "(nq, k) for (nq, dim) queries, (k,) for one (dim,) query; closest first, ties by the\n"
     "smaller id. filter: a dict or JSON string (docs/FILTERS.md); rows with fewer than k\n"
     "matches are padded with NO_ID and inf. ef: HNSW candidate list (0 = 64); nprobe: IVF\n"
     "lists probed (None = the index's calibrated default; 1 to its nlist); exact: skip\n"
     "the index; threads: 0 = all cores; partial: on a cluster, accept the shards that\n"
     "answered. device: where exact searches run: 'cpu', 'gpu' (the CPU when no GPU is\n"
     "usable) or 'auto'. return_info: also return a dict with the path that served the\n"
     "search ('cpu-exact', 'gpu-exact', 'cpu-hnsw', 'cpu-ivf', 'cluster'), the shards'\n"
     "coverage and vectors_read (float vectors read for exact distances; 0 for HNSW and\n"
     "clusters). The GIL is released while searching."},
    {"get", (PyCFunction)Collection_get, METH_O,
     "get(ids) -> (vectors, metadata, found)\n\n"
     "Reads points by id: vectors (n, dim) float32 (zeros where not found), a list of\n"
     "metadata dicts (or None), and a bool array saying which ids were found."},
    {"delete", (PyCFunction)Collection_delete, METH_O,
     "delete(ids) -> int\n\nDeletes points by id, atomically; returns how many existed."},
    {"build_index", (PyCFunction)(void (*)(void))Collection_build_index,
     METH_VARARGS | METH_KEYWORDS,
     "build_index(type='auto', *, m=16, ef_construction=200, threads=0, int8=False,\n"
     "            nlist=None, bits=1, ram_budget=0)\n\n"
     "Builds or extends the approximate index: 'auto' (flat below 10,000 points, HNSW below\n"
     "1,000,000, else IVF; IVF earlier when the vectors exceed ram_budget bytes), 'hnsw',\n"
     "'ivf' (nlist lists, None = from the points; bits per dimension; at least 1,000 points)\n"
     "or 'flat' (drops it). The GIL is released while building."},
    {"check", (PyCFunction)Collection_check, METH_NOARGS,
     "check() -> (ok, report)\n\nVerifies the index; ok is False when it is damaged."},
    {"stats", (PyCFunction)Collection_stats, METH_NOARGS,
     "stats() -> dict\n\nThe collection's statistics (points, deleted, index, ...)."},
    {"count", (PyCFunction)Collection_count, METH_NOARGS, "count() -> int\n\nLive points."},
    {"ids", (PyCFunction)(void (*)(void))Collection_ids, METH_VARARGS | METH_KEYWORDS,
     "ids(start=0, limit=-1) -> numpy.ndarray\n\nThe ids of the live points that are >= "
     "start, ascending: all of them, or at most limit."},
    {"close", (PyCFunction)Collection_close, METH_NOARGS,
     "close()\n\nCloses the handle (also done when the database closes)."},
    {"__enter__", (PyCFunction)Collection_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Collection_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Collection_getset[] = {
    {"name", (getter)Collection_get_name, NULL, "the collection's name", NULL},
    {"dim", (getter)Collection_get_dim, NULL, "the vectors' dimension", NULL},
    {"metric", (getter)Collection_get_metric, NULL, "'l2', 'ip' or 'cosine'", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PySequenceMethods Collection_as_sequence = {.sq_length = (lenfunc)Collection_len};

PyTypeObject CollectionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "omendb.Collection",
    .tp_basicsize = sizeof(CollectionObject),
    .tp_dealloc = (destructor)Collection_dealloc,
    .tp_repr = (reprfunc)Collection_repr,
    .tp_as_sequence = &Collection_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A collection of points: ids, float32 vectors of one dimension, metadata.\n"
              "Get one from Database.create_collection() or Database.collection().",
    .tp_methods = Collection_methods,
    .tp_getset = Collection_getset,
};
