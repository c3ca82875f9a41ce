"""OmenDB for Python: an embedded vector database, and a client of OmenDB clusters.

    import numpy as np, omendb
    with omendb.open("vectors.db") as db:
        col = db.create_collection("docs", dim=768, metric="cosine")
        ids = col.add(vectors, metadata=[{"year": 2024}, ...])
        col.build_index()
        ids, dists = col.search(queries, k=10, filter={"year": {"$gte": 2020}})

omendb.connect("tcp://host:port") gives the same API on a cluster. Arrays go in as numpy
arrays (float32 or float64, any layout) or anything with the buffer protocol and come back as
numpy arrays. See docs/PYTHON.md.
"""
from ._omendb import NO_ID, Collection, Database, Error, __version__, connect, gpu_info, open

__all__ = ["open", "connect", "gpu_info", "Database", "Collection", "Error", "NO_ID",
           "__version__"]
