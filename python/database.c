/*
 * omendb.Database (pyomen.h): an open database, embedded or remote.
 */
#include "pyomen.h"

/* ---- Database ---- */

static DatabaseObject *open_db(DatabaseObject *d)
{
	if (!d->db)
		return (DatabaseObject *)closed_error("database");
	return d;
}

/* Closes every Collection handle of d, then d; the Python objects stay, closed. */
static void db_close(DatabaseObject *d)
{
	if (!d->db)
		return;
	omen_db *h = d->db;
	Py_BEGIN_ALLOW_THREADS pthread_rwlock_wrlock(&d->lock);
	for (CollectionObject *c = d->colls; c; c = c->next) {
		omen_collection_close(c->coll);
		c->coll = NULL;
	}
	d->db = NULL;
	omen_close(h);
	pthread_rwlock_unlock(&d->lock);
	Py_END_ALLOW_THREADS
}

static void Database_dealloc(DatabaseObject *d)
{
	db_close(d);
	pthread_rwlock_destroy(&d->lock);
	Py_TYPE(d)->tp_free((PyObject *)d);
}

PyObject *db_wrap(omen_db *h, int remote)
{
	DatabaseObject *d = PyObject_New(DatabaseObject, &DatabaseType);
	if (!d) {
		omen_close(h);
		return NULL;
	}
	d->db = h;
	d->remote = remote;
	d->colls = NULL;
	pthread_rwlock_init(&d->lock, NULL);
	return (PyObject *)d;
}

#define DB_CALL(d, st, expr)                                                                       \
	do {                                                                                       \
		Py_BEGIN_ALLOW_THREADS pthread_rwlock_rdlock(&(d)->lock);                          \
		st = (d)->db ? (expr) : -1;                                                        \
		pthread_rwlock_unlock(&(d)->lock);                                                 \
		Py_END_ALLOW_THREADS                                                               \
	} while (0)

static PyObject *db_status(int st)
{
	return st < 0 ? closed_error("database") : raise_status(st);
}

static PyObject *Database_collection(DatabaseObject *self, PyObject *arg)
{
	const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
	if (!name)
		return PyErr_Format(PyExc_ValueError, "a collection name is a str, got %s",
		                    Py_TYPE(arg)->tp_name);
	if (!open_db(self))
		return NULL;
	omen_collection *h = NULL;
	int st;
	DB_CALL(self, st, omen_collection_open(self->db, name, &h));
	if (st != OMEN_OK)
		return db_status(st);
	return coll_wrap(self, h);
}

/* Reads create_collection's shards= or replicas= (what) into *out: None leaves the default,
 * else an integer 1..max. 0, or -1 with TypeError (not an integer) or ValueError set. */
static int layout_arg(PyObject *obj, const char *what, long max, const char *none_means,
                      uint32_t *out)
{
	if (obj == Py_None)
		return 0;
	PyObject *ix = PyBool_Check(obj) ? NULL : PyNumber_Index(obj);
	if (!ix) {
		PyErr_Clear();
		PyErr_Format(PyExc_TypeError, "%s must be an integer or None, got %s", what,
		             Py_TYPE(obj)->tp_name);
		return -1;
	}
	long v = PyLong_AsLong(ix);
	Py_DECREF(ix);
	if (v < 1 || v > max) {
		PyErr_Clear();
		PyErr_Format(PyExc_ValueError, "%s must be 1 to %ld (None: %s), got %S", what, max,
		             none_means, obj);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static PyObject *Database_create_collection(DatabaseObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "dim", "metric", "shards", "replicas", NULL};
	const char *name, *metric_s = "l2";
	PyObject *shards = Py_None, *replicas = Py_None;
	Py_ssize_t dim;
	omen_metric metric;
	omen_collection_options layout;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "sn|s$OO:create_collection", kwlist, &name, &dim,
	                                 &metric_s, &shards, &replicas))
		return overflow_as_value();
	omen_collection_options_init(&layout);
	if (layout_arg(shards, "shards", OMEN_MAX_SHARDS, "the cluster's default",
	               &layout.shards) != 0 ||
	    layout_arg(replicas, "replicas", OMEN_MAX_REPLICAS, "1", &layout.replicas) != 0)
		return NULL;
	if (!open_db(self))
		return NULL;
	if (omen_metric_parse(metric_s, &metric) != OMEN_OK)
		return PyErr_Format(PyExc_ValueError, "metric must be l2, ip or cosine, got '%s'",
		                    metric_s);
	if (dim < 1)
		return PyErr_Format(PyExc_ValueError, "dimension must be 1 to %d, got %zd",
		                    OMEN_MAX_DIM, dim);
	int st;
	DB_CALL(self, st,
	        omen_create_collection_opts(self->db, name, (size_t)dim, metric, &layout));
	if (st != OMEN_OK)
		return db_status(st);
	PyObject *n = PyUnicode_FromString(name);
	PyObject *c = n ? Database_collection(self, n) : NULL;
	Py_XDECREF(n);
	return c;
}

static PyObject *Database_list_collections(DatabaseObject *self, PyObject *unused)
{
	if (!open_db(self))
		return NULL;
	char **names = NULL;
	size_t n = 0;
	int st;
	DB_CALL(self, st, omen_list_collections(self->db, &names, &n));
	if (st != OMEN_OK)
		return db_status(st);
	PyObject *list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; list && i < n; i++) {
		PyObject *s = PyUnicode_FromString(names[i]);
		if (!s) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, i, s);
	}
	omen_free_strings(names, n);
	return list;
}

static int Database_contains(DatabaseObject *self, PyObject *name)
{
	PyObject *list = Database_list_collections(self, NULL);
	if (!list)
		return -1;
	int r = PySequence_Contains(list, name);
	Py_DECREF(list);
	return r;
}

static PyObject *Database_drop_collection(DatabaseObject *self, PyObject *arg)
{
	const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
	if (!name)
		return PyErr_Format(PyExc_ValueError, "a collection name is a str, got %s",
		                    Py_TYPE(arg)->tp_name);
	if (!open_db(self))
		return NULL;
	/* This database's own handles to the collection are closed first: a Python program
	 * that still holds the Collection object would otherwise always get OMEN_EBUSY. */
	for (CollectionObject *c = self->colls; c; c = c->next)
		if (c->coll && strcmp(c->name, name) == 0)
			coll_close_handle(c);
	int st;
	DB_CALL(self, st, omen_drop_collection(self->db, name));
	if (st != OMEN_OK)
		return db_status(st);
	Py_RETURN_NONE;
}

static PyObject *Database_flush(DatabaseObject *self, PyObject *unused)
{
	if (!open_db(self))
		return NULL;
	int st;
	DB_CALL(self, st, omen_flush(self->db));
	if (st != OMEN_OK)
		return db_status(st);
	Py_RETURN_NONE;
}

static PyObject *Database_stats(DatabaseObject *self, PyObject *unused)
{
	if (!open_db(self))
		return NULL;
	omen_db_stats s;
	int st;
	DB_CALL(self, st, omen_db_stats_get(self->db, &s));
	if (st != OMEN_OK)
		return db_status(st);
	return Py_BuildValue("{s:K,s:K,s:K}", "collections", (unsigned long long)s.collections,
	                     "file_bytes", (unsigned long long)s.file_bytes, "map_bytes",
	                     (unsigned long long)s.map_bytes);
}

static PyObject *Database_close(DatabaseObject *self, PyObject *unused)
{
	db_close(self);
	Py_RETURN_NONE;
}

static PyObject *Database_enter(DatabaseObject *self, PyObject *unused)
{
	if (!open_db(self))
		return NULL;
	Py_INCREF(self);
	return (PyObject *)self;
}

static PyObject *Database_exit(DatabaseObject *self, PyObject *args)
{
	db_close(self);
	Py_RETURN_FALSE;
}

static PyObject *Database_get_remote(DatabaseObject *self, void *unused)
{
	return PyBool_FromLong(self->remote);
}

static PyObject *Database_repr(DatabaseObject *self)
{
	return PyUnicode_FromFormat("<omendb.Database %s%s>", self->remote ? "remote" : "embedded",
	                            self->db ? "" : " closed");
}

static PyMethodDef Database_methods[] = {
    {"create_collection", (PyCFunction)(void (*)(void))Database_create_collection,
     METH_VARARGS | METH_KEYWORDS,
     "create_collection(name, dim, metric='l2', *, shards=None, replicas=None) -> Collection\n\n"
     "Creates a collection (name: 1..128 bytes of letters, digits, '_', '-', '.'; metric:\n"
     "'l2' squared Euclidean, 'ip' negative inner product, 'cosine' 1 - cosine) and opens it.\n"
     "Cluster only: shards, its logical shards (1..4096; None: the coordinator's default),\n"
     "and replicas, copies of each shard on different nodes (1..5; None: 1). An embedded\n"
     "database takes only None or 1 for each."},
    {"collection", (PyCFunction)Database_collection, METH_O,
     "collection(name) -> Collection\n\nOpens a collection; KeyError when there is none."},
    {"drop_collection", (PyCFunction)Database_drop_collection, METH_O,
     "drop_collection(name)\n\nDeletes a collection and its points; this database's handles\n"
     "to it are closed first."},
    {"list_collections", (PyCFunction)Database_list_collections, METH_NOARGS,
     "list_collections() -> list of str\n\nThe collection names in byte order."},
    {"flush", (PyCFunction)Database_flush, METH_NOARGS,
     "flush()\n\nMakes every acknowledged write durable (for durability='relaxed')."},
    {"stats", (PyCFunction)Database_stats, METH_NOARGS,
     "stats() -> dict\n\ncollections, file_bytes, map_bytes."},
    {"close", (PyCFunction)Database_close, METH_NOARGS,
     "close()\n\nCloses the database and every collection opened from it."},
    {"__enter__", (PyCFunction)Database_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Database_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Database_getset[] = {
    {"remote", (getter)Database_get_remote, NULL, "True for a cluster (connect())", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PySequenceMethods Database_as_sequence = {.sq_contains = (objobjproc)Database_contains};
static PyMappingMethods Database_as_mapping = {.mp_subscript = (binaryfunc)Database_collection};

PyTypeObject DatabaseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "omendb.Database",
    .tp_basicsize = sizeof(DatabaseObject),
    .tp_dealloc = (destructor)Database_dealloc,
    .tp_repr = (reprfunc)Database_repr,
    .tp_as_sequence = &Database_as_sequence,
    .tp_as_mapping = &Database_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An open database: embedded (omendb.open) or a cluster (omendb.connect).",
    .tp_methods = Database_methods,
    .tp_getset = Database_getset,
};
