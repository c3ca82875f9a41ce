#!/usr/bin/python3
"""The IVF benchmark protocol of omendb-bench-ivf, for FAISS's IVF indexes.

  ivf_peers.py --system ivfflat|ivfsq8|ivfpqfs-rflat --base BASE.fvecs --query QUERY.fvecs
               --metric l2|cosine --gt GT.ivecs --index-file PATH --nlist NLIST [--n N] [--nq NQ]
               [--threads T] [--nprobes 1,2,4,8,16,32,64,128] [--k 10] [--reps 3]
               [--min-time S] [--k-factors 4,8,16,32] [--by-residual 0|1] [--train-size 0]
               [--reuse] [--json OUT]

Indexes (Debian's python3-faiss 1.7.3), all with an IndexFlatL2 coarse quantizer of NLIST
centroids (the driver passes the nlist OmenDB's engine chose, so every system has the same
lists):
  ivfflat        IndexIVFFlat(quantizer, d, nlist, METRIC_L2): float32 vectors in the lists.
  ivfsq8         IndexIVFScalarQuantizer(quantizer, d, nlist, QT_8bit, METRIC_L2): one byte a
                 dimension.
  ivfpqfs-rflat  IndexRefineFlat(IndexIVFPQFastScan(quantizer, d, nlist, M = d/2, 4 bits,
                 METRIC_L2)): 4-bit PQ codes of two dimensions each (M = d/2 sub-quantizers of
                 16 centroids, so M divides d), scanned with FastScan's in-register tables; the
                 best k_factor * k candidates are re-ranked with the exact float vectors. The
                 Refine wrapper is made before train and add (FAISS 1.7.3 asserts that both
                 hold the same vectors). by_residual stays at this class's default, False
                 (--by-residual 1 encodes residuals to the centroids, which needs a look-up
                 table per query and probed list instead of one per query).
k_factor is swept, not fixed: every nprobe is run with each of --k-factors (default
4,8,16,32), and the driver keeps the best points (the upper envelope of recall against QPS).
How many candidates the 4-bit codes must hand to the re-ranking depends on the data: below
the k_factor at which recall reaches IndexIVFFlat's at the same nprobe, the codes, not
nprobe, limit recall; a larger k_factor costs only the re-ranking of more candidates.
Cosine: base and queries are normalised to unit length (faiss.normalize_L2) and ranked by L2.

Without --reuse: trains on a random sample (seed 1234) of min(N, 256 * nlist) of the first N
base rows, the sample FAISS itself would take (its k-means keeps at most
max_points_per_centroid = 256 points per centroid; the IVF quantizer runs 10 iterations; the
PQ trains on 256 * 16 = 4,096 of those points, 25 iterations; SQ8 on up to 100,000), then adds
all N rows in chunks of about 256 MiB read from the file beforehand, with labels = row numbers.
Timed: build = train + add (the file reads are not timed). Saves the index to PATH
(write_index, timed separately); the growth of the process's RssAnon over the build (after it,
and its peak sampled every 5 ms) is recorded. With --reuse: loads PATH (read_index).
Bytes: "file_per_vector" is PATH's size / N. "resident_per_vector", what must stay in RAM to
search at this speed: the whole index for ivfflat and ivfsq8 (file / N); for ivfpqfs-rflat
also the whole index, since IndexRefineFlat keeps the float vectors for re-ranking in its own
IndexFlat in RAM; "codes_per_vector" gives its IVF-PQ part alone (the base index serialised,
/ N).
Then, for each nprobe (values above nlist are skipped and listed; 0 is refused: FAISS has no
calibrated default): one untimed warm-up call, then --reps timed calls with all NQ queries in
one call on T threads, more (up to 200) until they add up to --min-time seconds; the median is
the figure. Recall@k against GT (rows of row numbers from omendb-bench-gt). Per query:
"codes_scanned_per_query" (faiss.cvar.indexIVF_stats.ndis of the last call / NQ) and
"vectors_read_per_query", the float vectors read for exact distances: the codes scanned for
ivfflat (its codes are the vectors), 0 for ivfsq8, k_factor * k for ivfpqfs-rflat (each
point of its sweep carries its k_factor).
Threads: faiss.omp_set_num_threads(T) and OpenBLAS's own thread count set to T (the coarse
quantizer's distance matrices and k-means go through BLAS); the BLAS library this process
loaded, its build configuration and threading model (pthreads / OpenMP / serial, from
openblas_get_parallel) are recorded under "blas", and a run on the reference BLAS is refused
(FAISS would look ten times slower than it is).
Prints (or writes to --json) one JSON object with the same fields as omendb-bench-ivf.
"""

import argparse
import ctypes
import os
import statistics
import sys
import time

import numpy as np

from hnsw_peers import RssPeak, read_fvecs, read_ivecs, recall, rss_kb, write_json

SYSTEMS = {"ivfflat": "IndexIVFFlat", "ivfsq8": "IndexIVFScalarQuantizer QT_8bit",
           "ivfpqfs-rflat": "IndexRefineFlat(IndexIVFPQFastScan M=d/2 x 4 bits)"}
CHUNK_BYTES = 256 << 20
TRAIN_SEED = 1234
MAX_REPS = 200


def blas_info(threads):
    """The BLAS library loaded in this process, set to `threads` threads; exits when it is the
    reference BLAS."""
    libs = sorted({line.split()[-1] for line in open("/proc/self/maps")
                   if ("blas" in line or "lapack" in line) and "/" in line})
    openblas = [p for p in libs if "libopenblas" in os.path.basename(p)]
    if not openblas:
        sys.exit(f"ivf_peers: FAISS would run on {libs or 'no BLAS'}, not OpenBLAS: install "
                 "libopenblas0-pthread (ops/deps.sh --bench)")
    lib = ctypes.CDLL(openblas[0])
    lib.openblas_get_config.restype = ctypes.c_char_p
    lib.openblas_set_num_threads(threads)
    model = {0: "serial", 1: "pthreads", 2: "openmp"}.get(lib.openblas_get_parallel(), "?")
    return {"libraries": libs, "config": lib.openblas_get_config().decode(),
            "threading": model, "threads": lib.openblas_get_num_threads()}


def base_chunks(path, n, dim, first=0):
    """Yields (row, array) chunks of about CHUNK_BYTES of rows [first, n) of an .fvecs file."""
    mm = np.memmap(path, dtype="<f4", mode="r").reshape(-1, dim + 1)
    step = max(1, CHUNK_BYTES // (4 * dim))
    for i in range(first, n, step):
        yield i, np.ascontiguousarray(mm[i:min(n, i + step), 1:])


def fvecs_shape(path):
    dim = int(np.fromfile(path, dtype="<i4", count=1)[0])
    return os.path.getsize(path) // (4 * (dim + 1)), dim


class FaissIvf:
    def __init__(self, a, dim):
        import faiss
        self.faiss, self.a, self.dim = faiss, a, dim
        self.index = None

    def prepare(self, x):
        if self.a.metric == "cosine":
            self.faiss.normalize_L2(x)
        return x

    def make(self):
        f, d, a = self.faiss, self.dim, self.a
        self.quantizer = f.IndexFlatL2(d)
        if a.system == "ivfflat":
            self.index = f.IndexIVFFlat(self.quantizer, d, a.nlist, f.METRIC_L2)
        elif a.system == "ivfsq8":
            self.index = f.IndexIVFScalarQuantizer(self.quantizer, d, a.nlist,
                                                   f.ScalarQuantizer.QT_8bit, f.METRIC_L2)
        else:
            if d % 2:
                sys.exit(f"ivf_peers: ivfpqfs-rflat needs an even dimension (M = d/2), got {d}")
            self.base_index = f.IndexIVFPQFastScan(self.quantizer, d, a.nlist, d // 2, 4,
                                                   f.METRIC_L2)
            self.base_index.by_residual = bool(a.by_residual)
            self.index = f.IndexRefineFlat(self.base_index)
            self.index.k_factor = a.k_factors[0]

    def ivf(self):
        if self.a.system == "ivfpqfs-rflat":
            return self.faiss.downcast_index(self.index.base_index)
        return self.index

    def set_nprobe(self, nprobe):
        self.ivf().nprobe = nprobe

    def search(self, q, k):
        _, ids = self.index.search(q, k)
        return ids

    def code_bytes(self):
        if self.a.system == "ivfpqfs-rflat":
            return int(self.faiss.serialize_index(self.ivf()).size)
        return None


def build(sysm, a, n, dim):
    """Trains and adds; returns the timings (file reads excluded)."""
    rng = np.random.default_rng(TRAIN_SEED)
    ntrain = min(n, a.train_size or 256 * a.nlist)
    rows = np.sort(rng.choice(n, size=ntrain, replace=False)) if ntrain < n else np.arange(n)
    mm = np.memmap(a.base, dtype="<f4", mode="r").reshape(-1, dim + 1)
    xt = sysm.prepare(np.ascontiguousarray(mm[rows, 1:]))
    del mm
    sysm.make()
    t0 = time.perf_counter()
    sysm.index.train(xt)
    train_s = time.perf_counter() - t0
    del xt
    add_s = 0.0
    for i, x in base_chunks(a.base, n, dim):
        x = sysm.prepare(x)
        t0 = time.perf_counter()
        sysm.index.add(x)
        add_s += time.perf_counter() - t0
        print(f"faiss-{a.system}: added {i + x.shape[0]} / {n}", file=sys.stderr)
    return {"train_rows": int(ntrain), "train_s": train_s, "add_s": add_s,
            "build_s": train_s + add_s}


def sweep(sysm, a, q, gt, nprobes, n):
    """Per nprobe (and, for ivfpqfs-rflat, per k_factor): warm-up, timed calls, recall."""
    faiss = sysm.faiss
    nq = q.shape[0]
    refine = a.system == "ivfpqfs-rflat"
    out = []
    for nprobe in nprobes:
        sysm.set_nprobe(nprobe)
        for kf in a.k_factors if refine else [None]:
            if refine:
                sysm.index.k_factor = kf
            t0 = time.perf_counter()
            sysm.search(q, a.k)
            warm = time.perf_counter() - t0
            times = []
            while len(times) < a.reps or (sum(times) < a.min_time and len(times) < MAX_REPS):
                faiss.cvar.indexIVF_stats.reset()
                t0 = time.perf_counter()
                ids = sysm.search(q, a.k)
                times.append(time.perf_counter() - t0)
            scanned = faiss.cvar.indexIVF_stats.ndis / nq
            read = {"ivfflat": scanned, "ivfsq8": 0.0}.get(a.system, float((kf or 0) * a.k))
            r = {"nprobe": nprobe, "k_factor": kf, "calibrated_default": False,
                 "recall": recall(ids, gt, a.k, False), "warmup_s": warm, "batch_s": times,
                 "batch_median_s": statistics.median(times),
                 "codes_scanned_per_query": scanned, "vectors_read_per_query": read,
                 "vectors_read_fraction": read / n}
            r["qps"] = nq / r["batch_median_s"]
            print(f"faiss-{a.system}: nprobe {nprobe:4d}"
                  + (f", k_factor {kf:3d}" if refine else "")
                  + f": recall@{a.k} {r['recall']:.4f}, batch {r['qps']:.0f} q/s ({a.threads} "
                  f"thr), {scanned:.0f} codes scanned per query", file=sys.stderr)
            out.append(r)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=list(SYSTEMS), required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--metric", choices=["l2", "cosine"], required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--index-file", required=True)
    ap.add_argument("--nlist", type=int, required=True)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--nq", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nprobes", default="1,2,4,8,16,32,64,128")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.0)
    ap.add_argument("--k-factors", default="4,8,16,32")
    ap.add_argument("--by-residual", type=int, choices=[0, 1], default=0)
    ap.add_argument("--train-size", type=int, default=0,
                    help="training rows; 0 = min(N, 256 * nlist), FAISS's own sample")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    nprobes = [int(v) for v in a.nprobes.split(",")]
    a.k_factors = [int(v) for v in a.k_factors.split(",")]
    if a.nlist < 1 or a.threads < 1 or a.k < 1 or min(a.k_factors) < 1 or min(nprobes) < 1 \
            or not 1 <= a.reps <= MAX_REPS:
        ap.error("nlist, threads, k, reps (at most 200), every k-factor and every nprobe must "
                 "be positive (FAISS has no calibrated nprobe: give numbers)")

    rows, dim = fvecs_shape(a.base)
    n = min(a.n, rows) if a.n else rows
    q = read_fvecs(a.query, a.nq)
    if q.shape[1] != dim:
        sys.exit(f"{a.query}: dimension {q.shape[1]}, base has {dim}")
    nq = q.shape[0]
    gt = read_ivecs(a.gt)
    if gt.shape[0] < nq or gt.shape[1] < a.k:
        sys.exit(f"{a.gt}: {gt.shape[0]} rows of {gt.shape[1]}; {nq} queries, k={a.k} needed")

    sysm = FaissIvf(a, dim)
    sysm.faiss.omp_set_num_threads(a.threads)
    blas = blas_info(a.threads)
    q = sysm.prepare(q)
    out = {"bench": "ivf", "system": f"faiss-{a.system}", "version": sysm.faiss.__version__,
           "index_kind": SYSTEMS[a.system], "base": a.base, "n": n, "dim": dim,
           "metric": a.metric, "nq": nq, "k": a.k, "threads": a.threads, "reps": a.reps,
           "min_time": a.min_time, "reused": a.reuse, "nlist_requested": a.nlist,
           "nlist": a.nlist, "nprobe_default": None,
           "k_factors": a.k_factors if a.system == "ivfpqfs-rflat" else None,
           "by_residual": bool(a.by_residual) if a.system == "ivfpqfs-rflat" else None,
           "load_s": None, "build_s": None, "train_s": None, "add_s": None, "train_rows": None,
           "save_s": None, "open_s": None, "check": None, "blas": blas,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    print(f"faiss-{a.system}: BLAS {blas['config']}, {blas['threading']}, "
          f"{blas['threads']} thread(s)", file=sys.stderr)
    if not a.reuse:
        rss0 = rss_kb()
        with RssPeak() as peak:
            out.update(build(sysm, a, n, dim))
        rss1 = rss_kb()
        print(f"faiss-{a.system}: trained on {out['train_rows']} rows in {out['train_s']:.2f} s"
              f", added {n} in {out['add_s']:.2f} s, {a.threads} threads", file=sys.stderr)
        t0 = time.perf_counter()
        sysm.faiss.write_index(sysm.index, a.index_file)
        out["save_s"] = time.perf_counter() - t0
        out["bytes"] = {"rss_anon_growth_build_per_vector": 1024.0 * (rss1 - rss0) / n,
                        "rss_anon_peak_growth_build_per_vector": 1024.0 * (peak.peak - rss0) / n}
    else:
        t0 = time.perf_counter()
        sysm.index = sysm.faiss.read_index(a.index_file)
        out["open_s"] = time.perf_counter() - t0
        if sysm.index.ntotal != n or sysm.ivf().nlist != a.nlist:
            sys.exit(f"{a.index_file}: {sysm.index.ntotal} vectors in {sysm.ivf().nlist} lists,"
                     f" expected {n} in {a.nlist}")
        if a.system == "ivfpqfs-rflat":
            out["by_residual"] = bool(sysm.ivf().by_residual)
        out["bytes"] = {}
    fsize = os.path.getsize(a.index_file)
    codes = sysm.code_bytes()
    out["index"] = {"kind": SYSTEMS[a.system], "points": int(sysm.index.ntotal),
                    "nlist": int(sysm.ivf().nlist), "code_size": int(sysm.ivf().code_size)}
    out["bytes"].update({"resident_per_vector": fsize / n, "index_per_vector": fsize / n,
                         "codes_per_vector": (codes if codes is not None else fsize) / n,
                         "file_per_vector": fsize / n, "file_bytes": fsize})

    rss0 = rss_kb()
    out["sweep"] = sweep(sysm, a, q, gt, [p for p in nprobes if p <= a.nlist], n)
    out["skipped_nprobes"] = [p for p in nprobes if p > a.nlist]
    out["bytes"]["rss_anon_growth_search_per_vector"] = 1024.0 * (rss_kb() - rss0) / n
    write_json(out, a.json)


if __name__ == "__main__":
    main()
