#!/usr/bin/python3
"""HNSW: OmenDB against hnswlib and FAISS IndexHNSWFlat, alternating, same run.

  hnsw.py --build BUILD --data DATADIR --scratch DIR --dataset fashion|minilm|synth
          [--n N] [--nq NQ] [--threads 1,2] [--rounds R] [--reps 3] [--min-time 0.3]
          [--m 16] [--efc 200]
          [--efs 10,16,32,64,128,256,512] [--k 10]
          [--systems omendb,omendb-int8,hnswlib,faiss,hnswlib-native] [--faiss-default-env]
          [--out RESULTS_DIR]

Data sets (made by bench/data.py):
  fashion  Fashion-MNIST, 60,000 x 784 base, the first NQ (default 1,000) of the 10,000 test
           images as queries, l2.
  minilm   the 778 x 384 MiniLM embeddings, cosine; every vector is a query against the index
           that holds it, self excluded (k + 1 asked, its own id dropped; --exclude-self).
  synth    the first N (default 200,000) rows of synth-clustered-1000000-128.fvecs (clustered
           Gaussian mixture) and its 1,000 queries, l2.
Ground truth: omendb-bench-gt (independent brute force, bench/exact.c), k = 100, cached as
DATADIR/gt/<dataset>[-N].ivecs and checked once per run against FAISS IndexFlatL2.

For each thread count T: round 1 runs every system in a fresh process that builds its index
with T threads (timed), saves it, and sweeps ef (per ef at least --reps batch calls of all
queries on T threads, and more until they add up to --min-time seconds; the median; with T = 1 also every query alone, for latency); rounds 2..R run every system
in a fresh process that loads the saved index and sweeps again. The order of the systems
rotates every round. "omendb-int8" is OmenDB with omen_index_params.int8 (int8-quantized
traversal, exact re-ranking). A system's QPS at an ef is NQ / the median over rounds of its per-round
median time. FAISS runs with OMP_WAIT_POLICY=PASSIVE ("faiss"); --faiss-default-env adds
"faiss-default", FAISS with the environment as given. The others run without OMP_WAIT_POLICY.
hnswlib-native (hnswlib compiled here with -march=native) runs when BUILD/bench/hnswlib-native
exists.

Writes RESULTS_DIR/hnsw-<dataset>[-N]-t<T>.json.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ALL_SYSTEMS = ["omendb", "omendb-int8", "hnswlib", "faiss", "hnswlib-native"]
TARGETS = (0.9, 0.95, 0.99)


def read_fvecs(path, limit=0):
    """The first limit rows (0 = all) of an .fvecs file as a float32 array."""
    dim = int(np.fromfile(path, dtype="<i4", count=1)[0])
    raw = np.fromfile(path, dtype="<f4", count=limit * (dim + 1) if limit else -1)
    return np.ascontiguousarray(raw.reshape(-1, dim + 1)[:, 1:])


def read_ivecs(path):
    raw = np.fromfile(path, dtype="<i4")
    return raw.reshape(-1, int(raw[0]) + 1)[:, 1:].astype(np.int64)


def dataset(a):
    d = a.data
    if a.dataset == "fashion":
        return {"name": "fashion", "label": "Fashion-MNIST", "metric": "l2",
                "base": os.path.join(d, "fashion-mnist", "base.fvecs"),
                "query": os.path.join(d, "fashion-mnist", "query.fvecs"),
                "n": 0, "nq": a.nq or 1000, "exclude_self": False,
                "gt": os.path.join(d, "gt", "fashion.ivecs")}
    if a.dataset == "minilm":
        return {"name": "minilm", "label": "MiniLM embeddings", "metric": "cosine",
                "base": os.path.join(d, "minilm", "base.fvecs"), "query": None,
                "n": 0, "nq": a.nq or 0, "exclude_self": True,
                "gt": os.path.join(d, "gt", "minilm-self.ivecs")}
    n = a.n or 200000
    return {"name": f"synth-{n}", "label": "synthetic clustered", "metric": "l2",
            "base": os.path.join(d, "synth-clustered-1000000-128.fvecs"),
            "query": os.path.join(d, "synth-clustered-1000000-128.query.fvecs"),
            "n": n, "nq": a.nq or 0, "exclude_self": False,
            "gt": os.path.join(d, "gt", f"synth-clustered-1000000-128-n{n}.ivecs")}


def make_gt(a, ds):
    if os.path.exists(ds["gt"]):
        return None
    os.makedirs(os.path.dirname(ds["gt"]), exist_ok=True)
    cmd = [os.path.join(a.build, "bench", "omendb-bench-gt"), "--base", ds["base"],
           "--metric", ds["metric"], "--out", ds["gt"], "--k", "100", "--n", str(ds["n"])]
    cmd += ["--exclude-self"] if ds["exclude_self"] else ["--query", ds["query"]]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def check_gt(a, ds, k):
    """Fraction of the ground truth's top-k that FAISS IndexFlatL2 also returns."""
    import faiss
    faiss.omp_set_num_threads(max(a.threads))
    x = read_fvecs(ds["base"], ds["n"])
    q = x[:ds["nq"] or x.shape[0]] if ds["exclude_self"] else read_fvecs(ds["query"], ds["nq"])
    if ds["metric"] == "cosine":
        x, q = x.copy(), q.copy()
        faiss.normalize_L2(x)
        faiss.normalize_L2(q)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    kk = k + (1 if ds["exclude_self"] else 0)
    _, ids = index.search(q, kk)
    gt = read_ivecs(ds["gt"])
    hits = 0
    for i in range(q.shape[0]):
        row = list(ids[i])
        if ds["exclude_self"] and i in row:
            row.remove(i)
        hits += len(set(row[:k]) & set(gt[i, :k]))
    return hits / (q.shape[0] * k)


def command(a, ds, system, t, reuse, single, out_json):
    common = ["--base", ds["base"], "--metric", ds["metric"], "--gt", ds["gt"],
              "--n", str(ds["n"]), "--nq", str(ds["nq"]), "--m", str(a.m), "--efc", str(a.efc),
              "--threads", str(t), "--efs", a.efs, "--k", str(a.k), "--reps", str(a.reps),
              "--min-time", str(a.min_time),
              "--single", "1" if single else "0", "--json", out_json]
    if ds["exclude_self"]:
        common.append("--exclude-self")
    else:
        common += ["--query", ds["query"]]
    if reuse:
        common.append("--reuse")
    stem = os.path.join(a.scratch, f"hnsw-{ds['name']}-t{t}")
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if system in ("omendb", "omendb-int8"):
        cmd = [os.path.join(a.build, "bench", "omendb-bench-hnsw"), "--db", f"{stem}.{system}",
               "--int8", "1" if system == "omendb-int8" else "0"]
    elif system == "hnswlib-native":
        cmd = [os.path.join(a.build, "bench", "hnswlib-native"),
               "--index-file", stem + ".hnswlib-native"]
    else:
        peer = "faiss" if system.startswith("faiss") else "hnswlib"
        cmd = [sys.executable, os.path.join(HERE, "hnsw_peers.py"), "--system", peer,
               "--index-file", f"{stem}.{system}"]
        if system == "faiss":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        elif system == "faiss-default" and "OMP_WAIT_POLICY" in os.environ:
            env["OMP_WAIT_POLICY"] = os.environ["OMP_WAIT_POLICY"]
    return cmd + common, env


def run_process(cmd, env, out_json, system):
    """Runs one benchmark process that writes its JSON to out_json; returns that JSON (the
    file removed) with the process's wall seconds, command line and load average added."""
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, env=env).returncode
    wall = time.perf_counter() - t0
    # The OmenDB programs exit 1 after a complete run when omen_check found the index
    # corrupt: the result is kept (its "check" field says "failed") and reported.
    if rc != 0 and not (rc == 1 and system.startswith("omendb") and os.path.exists(out_json)):
        raise subprocess.CalledProcessError(rc, cmd)
    with open(out_json) as f:
        r = json.load(f)
    os.unlink(out_json)
    r["wall_s"] = wall
    r["command"] = " ".join(cmd)
    # 1-minute load average before and after: other work on the machine shows up here.
    r["loadavg"] = [load0, os.getloadavg()[0]]
    return r


def run_one(a, ds, system, t, reuse, single):
    out_json = os.path.join(a.scratch, f"hnsw-{ds['name']}-{system}-t{t}.json")
    cmd, env = command(a, ds, system, t, reuse, single, out_json)
    return run_process(cmd, env, out_json, system)


def qps_at(points, target):
    """QPS at a recall target on the measured curve (points in ef order): linear interpolation
    in recall between the last point below the target and the first point at or above it.
    Returns (qps, how): how is "interpolated", "measured" (a point hits it exactly),
    "above" (already above at the smallest ef: the QPS of that ef, a lower bound) or
    "not reached" (qps None)."""
    for i, p in enumerate(points):
        if p["recall"] >= target:
            if p["recall"] == target:
                return p["qps"], "measured"
            if i == 0:
                return p["qps"], "above"
            lo = points[i - 1]
            f = (target - lo["recall"]) / (p["recall"] - lo["recall"])
            return lo["qps"] + f * (p["qps"] - lo["qps"]), "interpolated"
    return None, "not reached"


def aggregate(system, rounds, nq):
    first = rounds[0]
    sweep = []
    for j, p0 in enumerate(first["sweep"]):
        meds = [r["sweep"][j]["batch_median_s"] for r in rounds]
        recalls = [r["sweep"][j]["recall"] for r in rounds]
        p = {"ef": p0["ef"], "recall": p0["recall"], "recall_rounds": recalls,
             "qps": nq / statistics.median(meds), "qps_rounds": [nq / m for m in meds]}
        for key in ("single_qps", "latency_p50_ms", "latency_p99_ms", "single_recall"):
            if key in p0:
                p[key] = p0[key]
        sweep.append(p)
    at = {}
    for target in TARGETS:
        v, how = qps_at(sweep, target)
        at[str(target)] = {"qps": v, "how": how}
    out = {"system": system, "version": first.get("version"), "build_s": first.get("build_s"),
           "bytes": first.get("bytes", {}), "sweep": sweep, "qps_at": at,
           "rounds": len(rounds), "command_build": first["command"],
           "command_reuse": rounds[1]["command"] if len(rounds) > 1 else None,
           "omp_wait_policy": first.get("omp_wait_policy")}
    for key in ("load_s", "flush_after_build_s", "check", "check_s", "index", "save_s",
                "warmup_s"):
        if key in first:
            out[key] = first[key]
    return out


def library_sha256():
    """sha256 of the concatenated library sources (engine/*.{c,h}, storage/*.{c,h}, the public
    header) at the start of the run: the library is under development."""
    import glob
    import hashlib
    root = os.path.dirname(HERE)
    h = hashlib.sha256()
    files = []
    for d in ("engine", "storage"):
        files += sorted(glob.glob(os.path.join(root, d, "*.c")) +
                        glob.glob(os.path.join(root, d, "*.h")))
    files.append(os.path.join(root, "include", "omendb", "omendb.h"))
    for path in files:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def machine():
    info = {"platform": platform.platform(), "ncpu": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--dataset", choices=["fashion", "minilm", "synth"], required=True)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--nq", type=int, default=0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=0, help="default 3 (minilm: 5)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--efs", default="10,16,32,64,128,256,512")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    ap.add_argument("--faiss-default-env", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    a.threads = [int(t) for t in a.threads.split(",")]
    # MiniLM's 778 queries take milliseconds: more rounds for a steadier median.
    a.rounds = a.rounds or (5 if a.dataset == "minilm" else 3)
    systems = [s for s in a.systems.split(",") if s]
    if "hnswlib-native" in systems and not os.path.exists(
            os.path.join(a.build, "bench", "hnswlib-native")):
        print("hnsw: BUILD/bench/hnswlib-native missing: hnswlib-native skipped",
              file=sys.stderr)
        systems.remove("hnswlib-native")
    if a.faiss_default_env:
        systems.append("faiss-default")
    os.makedirs(a.scratch, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)

    ds = dataset(a)
    gt_s = make_gt(a, ds)
    nq = ds["nq"]
    if not nq:
        nq = read_ivecs(ds["gt"]).shape[0]
    gt_check = check_gt(a, ds, a.k)
    print(f"hnsw: {ds['label']}: ground truth {ds['gt']} agrees with FAISS IndexFlatL2 on "
          f"{gt_check:.5f} of the top-{a.k}", file=sys.stderr)

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    lib_sha = library_sha256()
    for t in a.threads:
        runs = {s: [] for s in systems}
        for r in range(a.rounds):
            order = systems[r % len(systems):] + systems[:r % len(systems)]
            for s in order:
                print(f"hnsw: {ds['name']} threads {t} round {r + 1}: {s}", file=sys.stderr)
                runs[s].append(run_one(a, ds, s, t, reuse=r > 0, single=(r == 0 and t == 1)))
        res = {s: aggregate(s, runs[s], runs[s][0]["nq"]) for s in systems}
        first = runs[systems[0]][0]
        out = {"bench": "hnsw", "dataset": ds["name"], "label": ds["label"],
               "metric": ds["metric"], "n": first["n"], "dim": first["dim"], "nq": first["nq"],
               "k": a.k, "exclude_self": ds["exclude_self"], "m": a.m, "efc": a.efc,
               "threads": t, "rounds": a.rounds, "reps": a.reps, "min_time": a.min_time, "targets": list(TARGETS),
               "gt": ds["gt"], "gt_seconds": gt_s, "gt_check_vs_faiss_flat": gt_check,
               "started": started,
               "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "machine": machine(), "library_sha256": lib_sha, "systems": res, "raw": runs}
        for mine in ("omendb", "omendb-int8"):
            for peer in ("hnswlib", "hnswlib-native"):
                if peer in res and mine in res:
                    ratios = {}
                    for target in TARGETS:
                        ours = res[mine]["qps_at"][str(target)]["qps"]
                        theirs = res[peer]["qps_at"][str(target)]["qps"]
                        ratios[str(target)] = ours / theirs if ours and theirs else None
                    out[f"ratio_{mine}_vs_{peer}"] = ratios
        path = os.path.join(a.out, f"hnsw-{ds['name']}-t{t}.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"hnsw: wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
