#!/usr/bin/python3
"""IVF: OmenDB against FAISS's IVF indexes at the same nlist, alternating, same run.

  ivf.py --build BUILD --data DATADIR --scratch DIR --dataset fashion|synth1m|synth10m|synth2m768
         [--n N] [--nq NQ] [--threads 1,2] [--rounds R] [--reps 3] [--min-time 0.3]
         [--nlist 0] [--bits 0] [--nprobes LIST] [--k-factors 4,8,16,32] [--k 10]
         [--systems omendb,faiss-ivfflat,faiss-ivfsq8,faiss-ivfpqfs-rflat[,omendb-hnsw]]
         [--efs LIST] [--m 16] [--efc 200] [--gt-check-nq 100] [--out RESULTS_DIR]

Data sets (made by bench/data.py; l2, k = 10):
  fashion     Fashion-MNIST, 60,000 x 784, the first NQ (default 1,000) test images as queries.
  synth1m     synth-clustered-1000000-128.fvecs (clustered Gaussian mixture, 256 centres) and
              its 1,000 queries; also runs "omendb-hnsw", OmenDB's HNSW index (M 16,
              efConstruction 200, ef sweep --efs), to compare our two indexes at 1M.
  synth10m    synth-clustered-10000000-128.fvecs and its 1,000 queries.
  synth2m768  synth-clustered-2000000-768.fvecs and its 1,000 queries.
Ground truth: omendb-bench-gt (independent brute force, bench/exact.c), k = 100, cached as
DATADIR/gt/<base>-n<N>-q<NQ>.ivecs, and checked once against FAISS IndexFlatL2 on its first
--gt-check-nq queries (base streamed in chunks; the agreement is cached beside it as
<gt>.faiss-check.json).

Systems: "omendb" is omendb-bench-ivf (OMEN_INDEX_IVF); "faiss-ivfflat", "faiss-ivfsq8" and
"faiss-ivfpqfs-rflat" are bench/ivf_peers.py (IndexIVFFlat, IndexIVFScalarQuantizer QT_8bit,
IndexRefineFlat over IndexIVFPQFastScan with M = d/2 4-bit codes, k_factor swept over
--k-factors). Every system uses the same nlist: --nlist, or by default (0) the nlist OmenDB's
engine chooses, read from the statistics of its first build (OmenDB runs first in round 1 of
the first thread count, and later builds are given that number). FAISS sweeps the same nprobes
as OmenDB (0, the engine's calibrated default, replaced by its number).

For each thread count T: round 1 runs every system in a fresh process that builds its index
with T threads (timed), saves it, and sweeps nprobe (per point one warm-up call, then at least
--reps batch calls of all queries on T threads, and more until they add up to --min-time
seconds; the median); rounds 2..R run every system in a fresh process that loads the saved
index and sweeps again. The order of the systems rotates every round. A system's QPS at a
point is NQ / the median over rounds of its per-round median time; its recall is round 1's.
QPS at recall 0.90 / 0.95 / 0.99: interpolated linearly in recall along the system's upper
envelope of (recall, QPS) points (the points no other point beats on both), which for
ivfpqfs-rflat picks the best k_factor at each recall, and for one-knob systems is their curve
less any point that a point of higher recall outruns (ann-benchmarks' convention).
FAISS runs with OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS=T; OmenDB without
OMP_WAIT_POLICY. A thread count's saved indexes are removed after its rounds.

Writes RESULTS_DIR/ivf-<dataset>-t<T>.json; bench/ivf_report.py prints the tables.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from hnsw import library_sha256, machine, qps_at, read_ivecs, run_process
from hnsw_peers import read_fvecs
from ivf_peers import base_chunks, fvecs_shape

HERE = os.path.dirname(os.path.abspath(__file__))
FAISS_SYSTEMS = ["faiss-ivfflat", "faiss-ivfsq8", "faiss-ivfpqfs-rflat"]
TARGETS = (0.9, 0.95, 0.99)
NPROBES_SMALL = "0,1,2,3,4,6,8,12,16,24,32,48,64,96,128"
DATASETS = {
    "fashion": {"label": "Fashion-MNIST", "base": "fashion-mnist/base.fvecs",
                "query": "fashion-mnist/query.fvecs", "nprobes": NPROBES_SMALL},
    "synth1m": {"label": "synthetic clustered", "base": "synth-clustered-1000000-128.fvecs",
                "query": "synth-clustered-1000000-128.query.fvecs",
                "nprobes": NPROBES_SMALL + ",192,256"},
    "synth10m": {"label": "synthetic clustered", "base": "synth-clustered-10000000-128.fvecs",
                 "query": "synth-clustered-10000000-128.query.fvecs",
                 "nprobes": NPROBES_SMALL + ",192,256,384,512"},
    "synth2m768": {"label": "synthetic clustered", "base": "synth-clustered-2000000-768.fvecs",
                   "query": "synth-clustered-2000000-768.query.fvecs",
                   "nprobes": NPROBES_SMALL + ",192,256"},
}
HNSW_EFS = "10,16,32,64,96,128,192,256,384"


def dataset(a):
    d = dict(DATASETS[a.dataset], name=a.dataset, metric="l2")
    d["base"] = os.path.join(a.data, d["base"])
    d["query"] = os.path.join(a.data, d["query"])
    for key in ("base", "query"):
        if not os.path.exists(d[key]):
            sys.exit(f"ivf: {d[key]} missing: make it with bench/data.py (bench/run.sh ivf "
                     f"{a.dataset} does)")
    rows, d["dim"] = fvecs_shape(d["base"])
    d["n"] = min(a.n, rows) if a.n else rows
    qrows, _ = fvecs_shape(d["query"])
    d["nq"] = min(a.nq or 1000, qrows)
    stem = os.path.basename(d["base"]).removesuffix(".fvecs")
    if a.dataset == "fashion":
        stem = "fashion"
    d["gt"] = os.path.join(a.data, "gt", f"{stem}-n{d['n']}-q{d['nq']}.ivecs")
    return d


def make_gt(a, ds):
    if os.path.exists(ds["gt"]):
        return None
    os.makedirs(os.path.dirname(ds["gt"]), exist_ok=True)
    cmd = [os.path.join(a.build, "bench", "omendb-bench-gt"), "--base", ds["base"],
           "--query", ds["query"], "--metric", ds["metric"], "--out", ds["gt"], "--k", "100",
           "--n", str(ds["n"]), "--nq", str(ds["nq"])]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def check_gt(a, ds):
    """Fraction of the ground truth's top-k, over its first --gt-check-nq queries, that FAISS
    IndexFlatL2 also returns; computed once per ground-truth file and cached beside it."""
    cache = ds["gt"] + ".faiss-check.json"
    st = os.stat(ds["gt"])
    key = {"gt_bytes": st.st_size, "gt_mtime": st.st_mtime, "nq": a.gt_check_nq, "k": a.k}
    if os.path.exists(cache):
        with open(cache) as f:
            c = json.load(f)
        if all(c.get(k) == v for k, v in key.items()):
            return c
    import faiss
    faiss.omp_set_num_threads(max(a.threads))
    q = read_fvecs(ds["query"], min(a.gt_check_nq, ds["nq"]))
    best_d = np.full((q.shape[0], a.k), np.inf, dtype=np.float32)
    best_i = np.full((q.shape[0], a.k), -1, dtype=np.int64)
    t0 = time.perf_counter()
    for first, x in base_chunks(ds["base"], ds["n"], ds["dim"]):
        index = faiss.IndexFlatL2(ds["dim"])
        index.add(x)
        dist, ids = index.search(q, a.k)
        dd = np.concatenate([best_d, dist], axis=1)
        ii = np.concatenate([best_i, ids + first], axis=1)
        order = np.argsort(dd, axis=1, kind="stable")[:, :a.k]
        best_d = np.take_along_axis(dd, order, axis=1)
        best_i = np.take_along_axis(ii, order, axis=1)
    gt = read_ivecs(ds["gt"])
    hits = sum(len(set(best_i[i]) & set(gt[i, :a.k])) for i in range(q.shape[0]))
    c = dict(key, agreement=hits / (q.shape[0] * a.k), seconds=time.perf_counter() - t0,
             faiss=faiss.__version__)
    with open(cache, "w") as f:
        json.dump(c, f, indent=1)
        f.write("\n")
    return c


def nprobe_list(a, default):
    """The nprobes FAISS sweeps: ours, 0 replaced by our calibrated default when known."""
    vals = {int(v) for v in a.nprobes.split(",")}
    if 0 in vals:
        vals.discard(0)
        if default:
            vals.add(default)
    return ",".join(str(v) for v in sorted(vals))


def command(a, ds, system, t, reuse, out_json, nlist, default):
    common = ["--base", ds["base"], "--query", ds["query"], "--metric", ds["metric"],
              "--gt", ds["gt"], "--n", str(ds["n"]), "--nq", str(ds["nq"]),
              "--threads", str(t), "--k", str(a.k), "--reps", str(a.reps),
              "--min-time", str(a.min_time), "--json", out_json]
    if reuse:
        common.append("--reuse")
    stem = os.path.join(a.scratch, f"ivf-{ds['name']}-t{t}.{system}")
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if system == "omendb":
        cmd = [os.path.join(a.build, "bench", "omendb-bench-ivf"), "--db", stem,
               "--nlist", str(nlist or 0), "--bits", str(a.bits), "--nprobes", a.nprobes]
    elif system == "omendb-hnsw":
        cmd = [os.path.join(a.build, "bench", "omendb-bench-hnsw"), "--db", stem,
               "--m", str(a.m), "--efc", str(a.efc), "--efs", a.efs, "--single", "0"]
    else:
        cmd = [sys.executable, os.path.join(HERE, "ivf_peers.py"),
               "--system", system.removeprefix("faiss-"), "--index-file", stem,
               "--nlist", str(nlist), "--nprobes", nprobe_list(a, default),
               "--k-factors", a.k_factors]
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        env["OPENBLAS_NUM_THREADS"] = str(t)
    return cmd + common, env


def run_one(a, ds, system, t, reuse, nlist, default):
    out_json = os.path.join(a.scratch, f"ivf-{ds['name']}-{system}-t{t}.json")
    cmd, env = command(a, ds, system, t, reuse, out_json, nlist, default)
    return run_process(cmd, env, out_json, system)


def point_key(p):
    """A sweep point's knob: nprobe (and k_factor) for IVF, ef for HNSW."""
    if "ef" in p:
        return ("ef", p["ef"])
    return ("nprobe", p["nprobe"], p.get("k_factor"), p.get("calibrated_default", False))


def envelope(points):
    """The upper envelope of (recall, qps): the points that no other point beats on both,
    in increasing recall (and so decreasing QPS)."""
    best = []
    for p in sorted(points, key=lambda p: (-p["recall"], -p["qps"])):
        if not best or p["qps"] > best[-1]["qps"]:
            best.append(p)
    return best[::-1]


def aggregate(system, rounds, nq):
    first = rounds[0]
    sweep = []
    for j, p0 in enumerate(first["sweep"]):
        key = point_key(p0)
        pts = [r["sweep"][j] for r in rounds]
        if any(point_key(p) != key for p in pts):
            sys.exit(f"ivf: {system}: the rounds' sweeps differ at point {j}")
        meds = [p["batch_median_s"] for p in pts]
        p = {k: v for k, v in p0.items() if k not in ("batch_s", "batch_median_s", "qps",
                                                      "batch_qps", "warmup_s")}
        p.update({"recall_rounds": [q["recall"] for q in pts],
                  "qps": nq / statistics.median(meds), "qps_rounds": [nq / m for m in meds]})
        sweep.append(p)
    front = envelope(sweep)
    at = {}
    for target in TARGETS:
        v, how = qps_at(front, target)
        at[str(target)] = {"qps": v, "how": how}
    out = {"system": system, "version": first.get("version"), "build_s": first.get("build_s"),
           "bytes": first.get("bytes", {}), "sweep": sweep,
           "envelope": [point_key(p) for p in front], "qps_at": at, "rounds": len(rounds),
           "command_build": first["command"],
           "command_reuse": rounds[1]["command"] if len(rounds) > 1 else None}
    for key in ("load_s", "flush_after_build_s", "check", "check_s", "index", "save_s",
                "train_s", "add_s", "train_rows", "nlist", "nprobe_default", "k_factors",
                "by_residual", "blas", "omp_wait_policy", "index_kind", "skipped_nprobes",
                "m", "efc"):
        if key in first:
            out[key] = first[key]
    return out


def ratios(res):
    """OmenDB's QPS over the best FAISS variant's at each target."""
    out = {}
    if "omendb" not in res:
        return out
    for target in TARGETS:
        t = str(target)
        ours = res["omendb"]["qps_at"][t]
        peers = [(res[s]["qps_at"][t]["qps"], s) for s in FAISS_SYSTEMS
                 if s in res and res[s]["qps_at"][t]["qps"]]
        if not peers:
            out[t] = {"ratio": None, "peer": None}
            continue
        best, peer = max(peers)
        out[t] = {"ratio": ours["qps"] / best if ours["qps"] else None, "peer": peer,
                  "peer_qps": best, "how": [ours["how"], res[peer]["qps_at"][t]["how"]]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--dataset", choices=list(DATASETS), required=True)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--nq", type=int, default=0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--nlist", type=int, default=0)
    ap.add_argument("--bits", type=int, default=0)
    ap.add_argument("--nprobes", default="")
    ap.add_argument("--k-factors", default="4,8,16,32")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--systems", default="")
    ap.add_argument("--efs", default=HNSW_EFS)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--gt-check-nq", type=int, default=100)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    a.threads = [int(t) for t in a.threads.split(",")]
    a.nprobes = a.nprobes or DATASETS[a.dataset]["nprobes"]
    default_systems = ["omendb"] + FAISS_SYSTEMS + (["omendb-hnsw"] if a.dataset == "synth1m"
                                                     else [])
    systems = [s for s in (a.systems.split(",") if a.systems else default_systems) if s]
    known = set(default_systems) | {"omendb-hnsw"}
    if any(s not in known for s in systems) or a.rounds < 1:
        ap.error(f"systems are among {sorted(known)}; rounds >= 1")
    if "omendb" in systems:
        systems.remove("omendb")
        systems.insert(0, "omendb")  # first, so that its nlist is known to the others
    elif not a.nlist:
        ap.error("without omendb in --systems, --nlist must be given")
    os.makedirs(a.scratch, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)

    ds = dataset(a)
    gt_s = make_gt(a, ds)
    gt_check = check_gt(a, ds)
    print(f"ivf: {ds['label']}: ground truth {ds['gt']} agrees with FAISS IndexFlatL2 on "
          f"{gt_check['agreement']:.5f} of the top-{a.k} of its first {gt_check['nq']} queries",
          file=sys.stderr)

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    lib_sha = library_sha256()
    nlist, default = a.nlist, 0
    for t in a.threads:
        runs = {s: [] for s in systems}
        for r in range(a.rounds):
            order = systems[r % len(systems):] + systems[:r % len(systems)]
            for s in order:
                print(f"ivf: {ds['name']} threads {t} round {r + 1}: {s}", file=sys.stderr)
                res = run_one(a, ds, s, t, r > 0, nlist, default)
                runs[s].append(res)
                if s == "omendb":
                    if nlist and res["nlist"] != nlist:
                        sys.exit(f"ivf: OmenDB's index has {res['nlist']} lists, the others "
                                 f"{nlist}")
                    nlist, default = res["nlist"], res["nprobe_default"]
        res = {s: aggregate(s, runs[s], runs[s][0]["nq"]) for s in systems}
        first = runs[systems[0]][0]
        out = {"bench": "ivf", "dataset": ds["name"], "label": ds["label"],
               "metric": ds["metric"], "n": first["n"], "dim": first["dim"], "nq": first["nq"],
               "k": a.k, "threads": t, "rounds": a.rounds, "reps": a.reps,
               "min_time": a.min_time, "targets": list(TARGETS), "nlist": nlist,
               "nlist_source": "--nlist" if a.nlist else "OmenDB's default",
               "nprobe_default": default or None, "nprobes": a.nprobes,
               "k_factors": a.k_factors, "gt": ds["gt"], "gt_seconds": gt_s,
               "gt_check_vs_faiss_flat": gt_check, "started": started,
               "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "machine": machine(), "library_sha256": lib_sha, "systems": res,
               "ratio_omendb_vs_best_faiss": ratios(res),
               "raw": runs}
        path = os.path.join(a.out, f"ivf-{ds['name']}-t{t}.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"ivf: wrote {path}", file=sys.stderr)
        for s in systems:
            stem = os.path.join(a.scratch, f"ivf-{ds['name']}-t{t}.{s}")
            subprocess.run(["rm", "-rf", stem], check=True)


if __name__ == "__main__":
    main()
