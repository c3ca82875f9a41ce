#!/usr/bin/python3
"""The HNSW benchmark protocol of omendb-bench-hnsw, for hnswlib and FAISS.

  hnsw_peers.py --system hnswlib|faiss --base BASE.fvecs --query QUERY.fvecs --metric l2|cosine
                --gt GT.ivecs --index-file PATH [--n N] [--nq NQ] [--m 16] [--efc 200]
                [--threads T] [--efs 10,16,32,64,128,256,512] [--k 10] [--reps 3] [--min-time S]
                [--single 0|1] [--exclude-self] [--reuse] [--json OUT]

Without --reuse: builds the index over the first N base rows with labels = row numbers
(timed: build), saves it to PATH (timed separately; its size / N is the bytes per vector) and
records the growth of the process's RssAnon over the build (after it, and its peak, sampled
every 5 ms from a thread). With --reuse: loads PATH.
Then, after one untimed warm-up call, for each ef: --reps timed calls with all NQ queries in
one call on T threads, more (up to 200) until they add up to --min-time seconds (the median is
the figure), and with --single 1 every query alone on one
thread (each timed: latency; this includes the Python call, a few microseconds). Recall@k is
measured against GT, rows of row numbers written by omendb-bench-gt.

hnswlib (python3-hnswlib): hnswlib.Index(space='l2' or 'cosine'), init_index(N, M, efc),
add_items(x, ids, num_threads=T), set_ef(ef), knn_query(q, k, num_threads=T). 'cosine'
normalises the vectors inside hnswlib and ranks by inner product.
FAISS (python3-faiss): IndexHNSWFlat(d, M) with hnsw.efConstruction = efc, add(x),
hnsw.efSearch = ef, search(q, k), faiss.omp_set_num_threads(T). For cosine the base and the
queries are normalised to unit length (faiss.normalize_L2) and the index ranks by L2, which
orders exactly as 1 - cos.
--exclude-self: the queries are the first NQ base rows (--query is ignored); k + 1 results are
asked and the query's own id is dropped, as in hnsw_util.h.
Prints (or writes to --json) one JSON object with the same fields as omendb-bench-hnsw.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time

import numpy as np


def read_fvecs(path, limit=0):
    """The first limit rows (0 = all) of an .fvecs file as a float32 array."""
    dim = int(np.fromfile(path, dtype="<i4", count=1)[0])
    raw = np.fromfile(path, dtype="<f4", count=limit * (dim + 1) if limit else -1)
    return np.ascontiguousarray(raw.reshape(-1, dim + 1)[:, 1:])


def read_ivecs(path):
    raw = np.fromfile(path, dtype="<i4")
    k = int(raw[0])
    return raw.reshape(-1, k + 1)[:, 1:].astype(np.int64)


def recall(res, gt, k, exclude_self):
    """Recall@k of result rows against ground-truth rows (hu_recall in hnsw_util.c)."""
    hits = 0
    for q in range(res.shape[0]):
        row = [int(i) for i in res[q]]
        if exclude_self:
            if q in row:
                row.remove(q)
        hits += len(set(row[:k]) & set(int(i) for i in gt[q, :k]))
    return hits / (res.shape[0] * k)


def rss_kb(field="RssAnon"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def write_json(out, path):
    """Writes the result object out to path, or to stdout when path is None."""
    text = json.dumps(out, indent=1)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


class RssPeak:
    """Samples RssAnon every 5 ms from a thread (the builds release the GIL) for its peak."""

    def __enter__(self):
        self.peak = rss_kb()
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()
        return self

    def run(self):
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, rss_kb())

    def __exit__(self, *exc):
        self.stop.set()
        self.th.join()
        self.peak = max(self.peak, rss_kb())


def pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001 - Debian's module may carry no metadata
        return None


class Hnswlib:
    name = "hnswlib"

    def __init__(self, a, dim):
        import hnswlib
        self.lib, self.a, self.dim = hnswlib, a, dim
        self.index = None
        self.version = pkg_version("hnswlib")

    def build(self, x):
        self.index = self.lib.Index(space=self.a.metric, dim=self.dim)
        self.index.init_index(max_elements=x.shape[0], M=self.a.m,
                              ef_construction=self.a.efc)
        self.index.add_items(x, np.arange(x.shape[0]), num_threads=self.a.threads)

    def save(self, path):
        self.index.save_index(path)

    def load(self, path, n):
        self.index = self.lib.Index(space=self.a.metric, dim=self.dim)
        self.index.load_index(path, max_elements=n)

    def set_ef(self, ef):
        self.index.set_ef(ef)

    def search(self, q, k, threads):
        ids, _ = self.index.knn_query(q, k=k, num_threads=threads)
        return ids


class Faiss:
    name = "faiss"

    def __init__(self, a, dim):
        import faiss
        self.lib, self.a, self.dim = faiss, a, dim
        self.index = None
        self.version = faiss.__version__
        faiss.omp_set_num_threads(a.threads)

    def prepare(self, x):
        if self.a.metric == "cosine":
            x = x.copy()
            self.lib.normalize_L2(x)
        return x

    def build(self, x):
        self.index = self.lib.IndexHNSWFlat(self.dim, self.a.m)
        self.index.hnsw.efConstruction = self.a.efc
        self.index.add(x)

    def save(self, path):
        self.lib.write_index(self.index, path)

    def load(self, path, n):
        self.index = self.lib.read_index(path)
        if self.index.ntotal != n:
            sys.exit(f"{path}: {self.index.ntotal} vectors, expected {n}")

    def set_ef(self, ef):
        self.index.hnsw.efSearch = ef

    def search(self, q, k, threads):
        if threads != self.a.threads:
            self.lib.omp_set_num_threads(threads)
        _, ids = self.index.search(q, k)
        if threads != self.a.threads:
            self.lib.omp_set_num_threads(self.a.threads)
        return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=["hnswlib", "faiss"], required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--query")
    ap.add_argument("--metric", choices=["l2", "cosine"], required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--index-file", required=True)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--nq", type=int, default=0)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--efs", default="10,16,32,64,128,256,512")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.0)
    ap.add_argument("--single", type=int, default=1)
    ap.add_argument("--exclude-self", action="store_true")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    efs = [int(e) for e in a.efs.split(",")]
    if not a.query and not a.exclude_self:
        ap.error("--query is needed unless --exclude-self")

    x = read_fvecs(a.base, a.n)
    n, dim = x.shape
    if a.exclude_self:
        q = np.ascontiguousarray(x[:a.nq] if a.nq else x)
    else:
        q = read_fvecs(a.query, a.nq)
    nq = q.shape[0]
    gt = read_ivecs(a.gt)
    if gt.shape[0] < nq or gt.shape[1] < a.k:
        sys.exit(f"{a.gt}: {gt.shape[0]} rows of {gt.shape[1]}; {nq} queries, k={a.k} needed")
    kres = a.k + (1 if a.exclude_self else 0)

    sysm = Hnswlib(a, dim) if a.system == "hnswlib" else Faiss(a, dim)
    if hasattr(sysm, "prepare"):
        x, q = sysm.prepare(x), sysm.prepare(q)
    out = {"bench": "hnsw", "system": a.system, "version": sysm.version, "base": a.base, "n": n,
           "dim": dim, "metric": a.metric, "nq": nq, "k": a.k, "exclude_self": a.exclude_self,
           "m": a.m, "efc": a.efc, "threads": a.threads, "reps": a.reps, "reused": a.reuse,
           "load_s": None, "build_s": None, "save_s": None, "open_s": None,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    if not a.reuse:
        rss0 = rss_kb()
        with RssPeak() as peak:
            t0 = time.perf_counter()
            sysm.build(x)
            out["build_s"] = time.perf_counter() - t0
        rss1 = rss_kb()
        print(f"{a.system}: index built in {out['build_s']:.2f} s, {a.threads} threads",
              file=sys.stderr)
        t0 = time.perf_counter()
        sysm.save(a.index_file)
        out["save_s"] = time.perf_counter() - t0
        out["bytes"] = {"rss_anon_growth_build_per_vector": 1024.0 * (rss1 - rss0) / n,
                        "rss_anon_peak_growth_build_per_vector": 1024.0 * (peak.peak - rss0) / n}
    else:
        t0 = time.perf_counter()
        sysm.load(a.index_file, n)
        out["open_s"] = time.perf_counter() - t0
        out["bytes"] = {}
    fsize = os.path.getsize(a.index_file)
    out["bytes"].update({"file_per_vector": fsize / n, "file_bytes": fsize})
    del x

    sysm.set_ef(efs[0])
    t0 = time.perf_counter()
    sysm.search(q, kres, a.threads)
    out["warmup_s"] = time.perf_counter() - t0
    sweep = []
    for ef in efs:
        sysm.set_ef(ef)
        times = []
        while len(times) < a.reps or (sum(times) < a.min_time and len(times) < 200):
            t0 = time.perf_counter()
            ids = sysm.search(q, kres, a.threads)
            times.append(time.perf_counter() - t0)
        r = {"ef": ef, "recall": recall(ids, gt, a.k, a.exclude_self), "batch_s": times,
             "batch_median_s": statistics.median(times)}
        r["batch_qps"] = nq / r["batch_median_s"]
        msg = (f"{a.system}: ef {ef:4d}: recall@{a.k} {r['recall']:.4f}, batch "
               f"{r['batch_qps']:.0f} q/s ({a.threads} thr)")
        if a.single:
            lat = np.empty(nq)
            ids = np.empty((nq, kres), dtype=np.int64)
            for i in range(nq):
                qi = q[i:i + 1]
                t0 = time.perf_counter()
                got = sysm.search(qi, kres, 1)
                lat[i] = time.perf_counter() - t0
                ids[i] = got[0]
            lat_sorted = np.sort(lat)
            r.update({"single_total_s": float(lat.sum()), "single_qps": nq / float(lat.sum()),
                      # nearest rank, as bu_quantile in bench_util.c
                      "latency_p50_ms": 1e3 * float(lat_sorted[min(nq - 1, int(0.5 * nq))]),
                      "latency_p99_ms": 1e3 * float(lat_sorted[min(nq - 1, int(0.99 * nq))]),
                      "single_recall": recall(ids, gt, a.k, a.exclude_self)})
            msg += (f", single {r['single_qps']:.0f} q/s, p50 {r['latency_p50_ms']:.3f} ms, "
                    f"p99 {r['latency_p99_ms']:.3f} ms")
        print(msg, file=sys.stderr)
        sweep.append(r)
    out["sweep"] = sweep
    write_json(out, a.json)


if __name__ == "__main__":
    main()
