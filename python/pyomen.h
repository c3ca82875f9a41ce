/*
 * The omendb Python extension's internal header, shared by python/_omendb.c (errors,
 * conversions, module functions), python/collection.c (Collection) and python/database.c
 * (Database). numpy's C API table is imported once, in _omendb.c.
 */
#ifndef OMEN_PYOMEN_H
#define OMEN_PYOMEN_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API  NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL omendb_ARRAY_API
#ifndef OMEN_PY_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "omendb/omendb.h"

extern PyObject *omen_error;              /* omendb.Error */
extern PyObject *json_dumps, *json_loads; /* json.dumps, json.loads */

typedef struct CollectionObject CollectionObject;

typedef struct {
	PyObject_HEAD omen_db *db;
	int remote;
	pthread_rwlock_t lock;   /* read: a call in progress; write: closing handles */
	CollectionObject *colls; /* live Collection objects of this database */
} DatabaseObject;

struct CollectionObject {
	PyObject_HEAD DatabaseObject *owner; /* strong reference */
	omen_collection *coll;               /* NULL once closed */
	char name[OMEN_MAX_NAME + 1];
	uint32_t dim;
	omen_metric metric;
	CollectionObject *prev, *next;
};

extern PyTypeObject DatabaseType, CollectionType;

PyArrayObject *as_ids(PyObject *obj);
PyObject *as_json(PyObject *obj, const char *what);
PyArrayObject *as_vectors(PyObject *obj, int *single);
PyObject *closed_error(const char *what);
PyObject *overflow_as_value(void);
PyObject *raise_status(int st);
void vec_shape(PyArrayObject *a, size_t *n, size_t *dim);
void coll_close_handle(CollectionObject *c);
PyObject *coll_wrap(DatabaseObject *d, omen_collection *h);
CollectionObject *open_coll(CollectionObject *c);
PyObject *db_wrap(omen_db *h, int remote);

#endif
