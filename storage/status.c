/*
 * The translation of LMDB and errno codes into omen status codes at the storage boundary.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "storage/storage.h"

int status_from_mdb(int rc, const char *what)
{
	switch (rc) {
	case MDB_MAP_FULL:
		return status_set(OMEN_EFULL, "%s: database reached its maximum size", what);
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_BAD_TXN:
	case MDB_BAD_VALSIZE:
		return status_set(OMEN_ECORRUPT, "%s: %s", what, mdb_strerror(rc));
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
		return status_set(OMEN_ENOTDB, "%s: not an OmenDB database (%s)", what,
		                  mdb_strerror(rc));
	case MDB_PANIC:
		return status_set(OMEN_EIO, "%s: storage failed earlier and must be reopened",
		                  what);
	case MDB_DBS_FULL:
		return status_set(OMEN_ELIMIT, "%s: too many collections", what);
	case MDB_READERS_FULL:
		return status_set(OMEN_EBUSY, "%s: too many concurrent readers", what);
	case ENOMEM:
		return status_set(OMEN_ENOMEM, "%s: out of memory", what);
	case ENOSPC:
	case EFBIG:
	case EDQUOT:
		return status_set(OMEN_EIO,
		                  "%s: disk full (%s); nothing from this write was stored", what,
		                  strerror(rc));
	case EIO:
		return status_set(OMEN_EIO,
		                  "%s: write failed (%s: disk full or failing); nothing from this "
		                  "write was stored",
		                  what, strerror(rc));
	default:
		if (rc > 0)
			return status_set(OMEN_EIO, "%s: %s", what, strerror(rc));
		return status_set(OMEN_EIO, "%s: %s", what, mdb_strerror(rc));
	}
}
