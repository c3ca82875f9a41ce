#!/usr/bin/python3
"""Batch search: OmenDB against FAISS IndexFlatL2 on Fashion-MNIST, alternating, same run.

  batch.py --bin BUILD/bench/omendb-bench-batch --data DATADIR --db SCRATCH [--nq 1000]
           [--k 10] [--threads 2] [--rounds 5] [--reps 5] [--json OUT]

Each round runs the OmenDB program and FAISS, each in a fresh process (load, one warm-up call,
then --reps timed calls of one batch of --nq queries), in turn, rotating the order every round.
A round's figure is the median of its reps; the result is the median over rounds. Once,
FAISS's ids are compared with ours (recall of ours against FAISS).

FAISS runs in two configurations: "faiss" with OMP_WAIT_POLICY=PASSIVE (the reference figure)
and "faiss_default" with the environment as given. Debian's FAISS calls OpenBLAS built with
pthreads; with OpenMP's default spin-waiting, FAISS's idle OpenMP threads compete with
OpenBLAS's threads for the 2 cores, so the default configuration is much slower here. The
ratio is taken against the faster one. OmenDB runs without OMP_WAIT_POLICY set.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def read_fvecs(path, limit=None):
    raw = np.fromfile(path, dtype="<f4")
    dim = raw[:1].view("<i4")[0]
    x = raw.reshape(-1, dim + 1)[:, 1:]
    return np.ascontiguousarray(x[:limit] if limit else x)


def clean_env():
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    return env


def run_json(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_omendb(a, extra=()):
    cmd = [a.bin, "--db", a.db, "--queries", a.queries, "--nq", str(a.nq), "--k", str(a.k),
           "--threads", str(a.threads), "--reps", str(a.reps)] + list(extra)
    return run_json(cmd, clean_env())


def run_faiss(a, passive, ids_out=None):
    env = clean_env()
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--data", a.data,
           "--nq", str(a.nq), "--k", str(a.k), "--threads", str(a.threads),
           "--reps", str(a.reps), "--bin", "-", "--db", "-"]
    if ids_out:
        cmd += ["--ids-out", ids_out]
    return run_json(cmd, env)


def faiss_worker(a):
    """One FAISS process: IndexFlatL2 over the base, one warm-up, --reps timed searches."""
    import faiss
    faiss.omp_set_num_threads(a.threads)
    base = read_fvecs(os.path.join(a.data, "fashion-mnist", "base.fvecs"))
    q = read_fvecs(os.path.join(a.data, "fashion-mnist", "query.fvecs"), a.nq)
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    _, ids = index.search(q, a.k)
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        _, ids = index.search(q, a.k)
        times.append(time.perf_counter() - t0)
    if a.ids_out:
        ids.astype("<u8").tofile(a.ids_out)
    print(json.dumps({"seconds": times, "faiss_version": faiss.__version__,
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ids-out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        faiss_worker(a)
        return

    base_path = os.path.join(a.data, "fashion-mnist", "base.fvecs")
    a.queries = os.path.join(a.data, "fashion-mnist", "query.fvecs")
    n = os.path.getsize(base_path) // (4 + 4 * 784)

    ours_path, theirs_path = a.db + ".ids", a.db + ".faiss.ids"
    first = run_omendb(a, ["--build", base_path, "--ids-out", ours_path])
    run_faiss(a, True, theirs_path)
    ours_ids = np.fromfile(ours_path, dtype="<u8").reshape(a.nq, a.k)
    faiss_ids = np.fromfile(theirs_path, dtype="<u8").reshape(a.nq, a.k)
    agree = float(np.mean([len(set(ours_ids[i]) & set(faiss_ids[i])) / a.k
                           for i in range(a.nq)]))
    exact_rows = int(np.sum(np.all(ours_ids == faiss_ids, axis=1)))
    print(f"batch: recall of OmenDB against FAISS top-{a.k}: {agree:.5f} "
          f"({exact_rows} of {a.nq} rows identical in order)", file=sys.stderr)

    sides = ["omendb", "faiss", "faiss_default"]
    rounds = []
    faiss_version = None
    for r in range(a.rounds):
        rec = {}
        for who in sides[r % 3:] + sides[:r % 3]:
            if who == "omendb":
                rec[who] = run_omendb(a)["seconds"]
            else:
                out = run_faiss(a, who == "faiss")
                rec[who], faiss_version = out["seconds"], out["faiss_version"]
        med = {k: statistics.median(v) for k, v in rec.items()}
        print(f"  round {r + 1}: " + ", ".join(f"{k} {a.nq / med[k]:.0f} q/s" for k in sides),
              file=sys.stderr)
        rounds.append({"median_s": med, "seconds": rec})

    qps = {k: a.nq / statistics.median(x["median_s"][k] for x in rounds) for k in sides}
    peer = max(qps["faiss"], qps["faiss_default"])
    result = {
        "bench": "batch", "data": "fashion-mnist", "n": n, "dim": 784, "nq": a.nq, "k": a.k,
        "threads": a.threads, "reps": a.reps, "rounds": rounds,
        "omendb_qps": qps["omendb"], "faiss_qps": peer,
        "faiss_passive_qps": qps["faiss"], "faiss_default_qps": qps["faiss_default"],
        "ratio": qps["omendb"] / peer, "recall_vs_faiss": agree,
        "rows_identical_to_faiss": exact_rows, "faiss_version": faiss_version,
        "omendb_first_call": first,
    }
    text = json.dumps(result, indent=1)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    print(text if not a.json else f"batch: wrote {a.json}")
    os.unlink(ours_path)
    os.unlink(theirs_path)


if __name__ == "__main__":
    main()
