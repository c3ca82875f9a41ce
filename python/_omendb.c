/*
 * The omendb Python extension: the public C API (include/omendb/omendb.h) as two types,
 * Database and Collection, taking numpy arrays (or anything numpy can read) and returning
 * numpy arrays. There is no second implementation here: every call is one call of the C API.
 *
 * Locking: the GIL is released around every call that may take time (loads, builds,
 * searches, gets, deletes). A per-database read-write lock keeps handles alive meanwhile:
 * calls hold it for reading, close() and drop take it for writing, so closing a database
 * from one thread while another searches waits for the search instead of freeing its handle.
 */
#define OMEN_PY_IMPORT_ARRAY
#include "pyomen.h"

PyObject *omen_error;
PyObject *json_dumps, *json_loads;

/* ---- errors ---- */

/* Raises the exception for status st with the engine's message of this thread: ValueError
 * for bad arguments, KeyError for an unknown collection, omendb.Error otherwise. */
PyObject *raise_status(int st)
{
	const char *msg = omen_errmsg(NULL);
	if (!msg || !*msg)
		msg = omen_strerror(st);
	if (st == OMEN_EINVAL || st == OMEN_ELIMIT) {
		PyErr_SetString(PyExc_ValueError, msg);
	} else if (st == OMEN_ENOTFOUND) {
		PyErr_SetString(PyExc_KeyError, msg);
	} else {
		PyObject *e = PyObject_CallFunction(omen_error, "s", msg);
		if (e) {
			PyObject *code = PyLong_FromLong(st);
			if (code && PyObject_SetAttrString(e, "status", code) == 0)
				PyErr_SetObject(omen_error, e);
			Py_XDECREF(code);
			Py_DECREF(e);
		}
	}
	return NULL;
}

/* After a failed argument parse: a number too large for its C type is a bad value. */
PyObject *overflow_as_value(void)
{
	if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
		PyObject *t, *v, *tb;
		PyErr_Fetch(&t, &v, &tb);
		PyErr_Format(PyExc_ValueError, "%S", v ? v : Py_None);
		Py_XDECREF(t);
		Py_XDECREF(v);
		Py_XDECREF(tb);
	}
	return NULL;
}

PyObject *closed_error(const char *what)
{
	PyErr_Format(PyExc_ValueError, "%s is closed", what);
	return NULL;
}

/* ---- conversions ---- */

/* A C-contiguous float32 array of the vectors in obj: (n, dim) from a 2-D input, (1, dim)
 * from a 1-D one (*single is then set). Refuses other shapes and non-real dtypes. */
PyArrayObject *as_vectors(PyObject *obj, int *single)
{
	if (PyArray_Check(obj)) {
		char kind = PyArray_DESCR((PyArrayObject *)obj)->kind;
		if (kind != 'f' && kind != 'i' && kind != 'u') {
			PyErr_Format(PyExc_ValueError, "vectors must be real numbers, got dtype %R",
			             (PyObject *)PyArray_DESCR((PyArrayObject *)obj));
			return NULL;
		}
	}
	PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(
	    obj, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
	if (!a) {
		if (PyErr_ExceptionMatches(PyExc_TypeError)) /* e.g. strings */
			PyErr_SetString(PyExc_ValueError,
			                "vectors must be an array of real numbers");
		return NULL;
	}
	int nd = PyArray_NDIM(a);
	if (nd != 1 && nd != 2) {
		PyErr_Format(PyExc_ValueError, "vectors must have 1 or 2 dimensions, got %d", nd);
		Py_DECREF(a);
		return NULL;
	}
	*single = nd == 1;
	return a;
}

void vec_shape(PyArrayObject *a, size_t *n, size_t *dim)
{
	if (PyArray_NDIM(a) == 1) {
		*n = 1;
		*dim = (size_t)PyArray_DIM(a, 0);
	} else {
		*n = (size_t)PyArray_DIM(a, 0);
		*dim = (size_t)PyArray_DIM(a, 1);
	}
}

/* 1 when obj is a list or tuple of Python ints (bools excluded), -1 when such a list holds
 * a negative one, 0 otherwise. */
static int all_ints(PyObject *obj)
{
	if (!PyList_Check(obj) && !PyTuple_Check(obj))
		return 0;
	PyObject *seq = PySequence_Fast(obj, ""), *zero = PyLong_FromLong(0);
	Py_ssize_t n = seq ? PySequence_Fast_GET_SIZE(seq) : 0;
	int ok = seq && zero;
	for (Py_ssize_t i = 0; ok == 1 && i < n; i++) {
		PyObject *e = PySequence_Fast_GET_ITEM(seq, i);
		ok = PyLong_Check(e) && !PyBool_Check(e);
		if (ok && PyObject_RichCompareBool(e, zero, Py_LT) == 1)
			ok = -1;
	}
	Py_XDECREF(seq);
	Py_XDECREF(zero);
	return ok;
}

/* A C-contiguous uint64 array of ids: integers only, none negative; a scalar gives one. */
PyArrayObject *as_ids(PyObject *obj)
{
	int ints = all_ints(obj);
	if (ints < 0) {
		PyErr_SetString(PyExc_ValueError, "ids must be non-negative integers");
		return NULL;
	}
	if (ints) { /* numpy would make ints on both sides of 2**63 float64 */
		PyArrayObject *a =
		    (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_UINT64, NPY_ARRAY_IN_ARRAY);
		if (!a && (PyErr_ExceptionMatches(PyExc_OverflowError) ||
		           PyErr_ExceptionMatches(PyExc_ValueError))) {
			PyErr_Clear();
			PyErr_SetString(PyExc_ValueError,
			                "ids must be integers from 0 to 2**64 - 1");
		}
		return a;
	}
	PyArrayObject *raw = (PyArrayObject *)PyArray_FROM_O(obj);
	if (!raw)
		return NULL;
	char kind = PyArray_DESCR(raw)->kind;
	if (PyArray_SIZE(raw) > 0 && kind != 'i' && kind != 'u') {
		PyErr_SetString(PyExc_ValueError, "ids must be non-negative integers");
		Py_DECREF(raw);
		return NULL;
	}
	if (kind == 'i' && PyArray_SIZE(raw) > 0) {
		PyObject *min = PyArray_Min(raw, NPY_MAXDIMS, NULL), *zero = PyLong_FromLong(0);
		int neg = min && zero && PyObject_RichCompareBool(min, zero, Py_LT) == 1;
		Py_XDECREF(zero);
		Py_XDECREF(min);
		if (neg || !min) {
			if (!PyErr_Occurred())
				PyErr_SetString(PyExc_ValueError,
				                "ids must be non-negative integers");
			Py_DECREF(raw);
			return NULL;
		}
	}
	PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(
	    (PyObject *)raw, NPY_UINT64, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
	Py_DECREF(raw);
	if (a && PyArray_NDIM(a) > 1) {
		PyErr_SetString(PyExc_ValueError, "ids must be a scalar or a 1-D sequence");
		Py_DECREF(a);
		return NULL;
	}
	return a;
}

/* JSON text of a dict (json.dumps, NaN refused), or the string itself; NULL on error. The
 * returned object owns the text. */
PyObject *as_json(PyObject *obj, const char *what)
{
	if (PyUnicode_Check(obj)) {
		Py_INCREF(obj);
		return obj;
	}
	if (!PyDict_Check(obj)) {
		PyErr_Format(PyExc_ValueError, "%s must be a dict or a JSON string, got %s", what,
		             Py_TYPE(obj)->tp_name);
		return NULL;
	}
	PyObject *args = PyTuple_Pack(1, obj), *kw = Py_BuildValue("{s:O}", "allow_nan", Py_False);
	PyObject *s = args && kw ? PyObject_Call(json_dumps, args, kw) : NULL;
	Py_XDECREF(args);
	Py_XDECREF(kw);
	if (!s &&
	    (PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError))) {
		PyObject *t, *v, *tb;
		PyErr_Fetch(&t, &v, &tb);
		PyErr_Format(PyExc_ValueError, "%s: %S", what, v ? v : Py_None);
		Py_XDECREF(t);
		Py_XDECREF(v);
		Py_XDECREF(tb);
	}
	return s;
}

/* ---- module functions ---- */

static PyObject *mod_open(PyObject *m, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"path",      "durability",       "read_only", "create",
	                         "max_bytes", "background_index", NULL};
	PyObject *path;
	const char *durability = "sync";
	int read_only = 0, create = 1, background = 1;
	long long max_bytes = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|$sppLp:open", kwlist, PyUnicode_FSConverter,
	                                 &path, &durability, &read_only, &create, &max_bytes,
	                                 &background))
		return overflow_as_value();
	if (max_bytes < 0) {
		Py_DECREF(path);
		return PyErr_Format(PyExc_ValueError, "max_bytes must not be negative");
	}
	omen_open_options o;
	omen_open_options_init(&o);
	if (strcmp(durability, "relaxed") == 0)
		o.durability = OMEN_DURABLE_RELAXED;
	else if (strcmp(durability, "sync") != 0) {
		Py_DECREF(path);
		return PyErr_Format(PyExc_ValueError, "durability must be 'sync' or 'relaxed'");
	}
	o.read_only = read_only;
	o.no_create = !create;
	o.max_bytes = (uint64_t)max_bytes;
	o.no_background_index = !background;
	const char *p = PyBytes_AS_STRING(path);
	omen_db *db = NULL;
	int st;
	Py_BEGIN_ALLOW_THREADS st = omen_open(p, &o, &db);
	Py_END_ALLOW_THREADS Py_DECREF(path);
	if (st != OMEN_OK)
		return raise_status(st);
	return db_wrap(db, 0);
}

static PyObject *mod_connect(PyObject *m, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"url", "token", "timeout_ms", NULL};
	const char *url, *token = NULL;
	unsigned int timeout = 30000;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$zI:connect", kwlist, &url, &token, &timeout))
		return NULL;
	omen_connect_options o;
	omen_connect_options_init(&o);
	o.token = token;
	o.timeout_ms = timeout;
	omen_db *db = NULL;
	int st = omen_connect(url, &o, &db);
	if (st != OMEN_OK)
		return raise_status(st);
	return db_wrap(db, 1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* For bench/python_overhead.py: seconds spent in `repeats` omen_search calls on the same
 * queries, with no Python in the loop. */
static PyObject *mod_time_search(PyObject *m, PyObject *args)
{
	CollectionObject *c;
	PyArrayObject *q;
	Py_ssize_t k, repeats;
	int exact, threads;
	if (!PyArg_ParseTuple(args, "O!O!nnpi", &CollectionType, &c, &PyArray_Type, &q, &k,
	                      &repeats, &exact, &threads) ||
	    !open_coll(c))
		return NULL;
	if (PyArray_TYPE(q) != NPY_FLOAT32 || PyArray_NDIM(q) != 2 || !PyArray_IS_C_CONTIGUOUS(q))
		return PyErr_Format(PyExc_ValueError, "queries: a C-contiguous 2-D float32 array");
	size_t nq = (size_t)PyArray_DIM(q, 0), dim = (size_t)PyArray_DIM(q, 1);
	uint64_t *ids = PyMem_Malloc(nq * (size_t)k * sizeof *ids);
	float *d = PyMem_Malloc(nq * (size_t)k * sizeof *d);
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = (size_t)k;
	p.exact = exact;
	p.threads = threads;
	int st = ids && d ? OMEN_OK : OMEN_ENOMEM;
	double t0 = now_s();
	for (Py_ssize_t r = 0; st == OMEN_OK && r < repeats; r++)
		st = omen_search(c->coll, PyArray_DATA(q), nq, dim, &p, ids, d);
	double t = now_s() - t0;
	PyMem_Free(ids);
	PyMem_Free(d);
	if (st != OMEN_OK)
		return raise_status(st);
	return PyFloat_FromDouble(t);
}

static PyObject *mod_gpu_info(PyObject *m, PyObject *unused)
{
	char name[256];
	int st = omen_gpu_info(name, sizeof name);
	return Py_BuildValue("(Os)", st == OMEN_OK ? Py_True : Py_False, name);
}

static PyMethodDef module_methods[] = {
    {"gpu_info", (PyCFunction)mod_gpu_info, METH_NOARGS,
     "gpu_info() -> (usable, description)\n\n"
     "Whether searches can run on a GPU here: the device's name, or why not."},
    {"open", (PyCFunction)(void (*)(void))mod_open, METH_VARARGS | METH_KEYWORDS,
     "open(path, *, durability='sync', read_only=False, create=True, max_bytes=0,\n"
     "     background_index=True) -> Database\n\n"
     "Opens (creating, unless create=False) the embedded database in directory path.\n"
     "durability 'relaxed' syncs at checkpoints and on flush()/close() (bulk loads)."},
    {"connect", (PyCFunction)(void (*)(void))mod_connect, METH_VARARGS | METH_KEYWORDS,
     "connect(url, *, token=None, timeout_ms=30000) -> Database\n\n"
     "A cluster's coordinator at 'tcp://host:port', with the same API as open()."},
    {"_time_search", (PyCFunction)mod_time_search, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "omendb._omendb",
                                    "The OmenDB C API for Python (see the omendb package).", -1,
                                    module_methods};

PyMODINIT_FUNC PyInit__omendb(void);

PyMODINIT_FUNC PyInit__omendb(void)
{
	import_array();
	if (PyType_Ready(&DatabaseType) < 0 || PyType_Ready(&CollectionType) < 0)
		return NULL;
	PyObject *json = PyImport_ImportModule("json");
	if (!json)
		return NULL;
	json_dumps = PyObject_GetAttrString(json, "dumps");
	json_loads = PyObject_GetAttrString(json, "loads");
	Py_DECREF(json);
	PyObject *m = PyModule_Create(&module);
	if (!m || !json_dumps || !json_loads)
		return NULL;
	omen_error = PyErr_NewExceptionWithDoc(
	    "omendb.Error",
	    "An engine error other than a bad argument (ValueError) or an unknown collection\n"
	    "(KeyError); .status is the OMEN_* code.",
	    NULL, NULL);
	if (!omen_error || PyModule_AddObject(m, "Error", omen_error) < 0)
		return NULL;
	Py_INCREF(omen_error);
	Py_INCREF(&DatabaseType);
	Py_INCREF(&CollectionType);
	PyModule_AddObject(m, "Database", (PyObject *)&DatabaseType);
	PyModule_AddObject(m, "Collection", (PyObject *)&CollectionType);
	PyModule_AddObject(m, "NO_ID", PyLong_FromUnsignedLongLong(OMEN_NO_ID));
	PyModule_AddStringConstant(m, "__version__", OMEN_VERSION_STRING);
	return m;
}
