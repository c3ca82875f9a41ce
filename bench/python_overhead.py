#!/usr/bin/python3
"""The Python layer's cost per call of Collection.search, over the same work done by the C API.

  PYTHONPATH=build/python /usr/bin/python3 bench/python_overhead.py [--n 1000] [--dim 128]
      [--k 10] [--batch 100] [--rounds 7] [--calls-one 3000] [--calls-batch 300] [--json OUT]

One embedded collection of --n clustered --dim-d points (fixed seed, L2) is searched exactly
with k=--k on one thread, for one query (a 1-D vector, the usual single-query call) and for a
batch of --batch queries (2-D). The C side is omendb._omendb._time_search, which returns the
seconds spent inside omen_search calls on the same queries, with no Python in its loop.

Two estimates, each the median over --rounds rounds, the order of the two sides swapped every
round:

- interleaved (the figure reported as overhead_us): each round alternates single calls, one
  col.search timed with time.perf_counter around it, then one omen_search timed inside
  _time_search(..., repeats=1), --calls-* times; the round's overhead is the difference of the
  two medians. Alternating call by call exposes both sides to the same state of the machine,
  which matters for the batch: a call takes about 1 ms there, and its run-to-run spread is
  larger than the few us being measured.
- blocks (overhead_us_blocks, a cross-check): the same number of calls as one Python loop and
  one _time_search(..., repeats=calls) loop; (python - c) / calls.

The goal is an overhead under 5 us per call. `add` is not measured: the extension has no C loop
for it to compare with, and timing repeated upserts measures the storage's growth as much as
the Python layer.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

import omendb
from omendb import _omendb

GOAL_US = 5.0


def clustered(n, dim, seed, clusters=16):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    pick = rng.integers(0, clusters, n)
    return (centres[pick] + 0.35 * rng.standard_normal((n, dim))).astype(np.float32)


def interleaved(col, q, q2d, k, calls, python_first):
    """Medians (us) of single col.search calls and of single omen_search calls, alternated."""
    search, clock = col.search, time.perf_counter
    tsearch = _omendb._time_search
    py, c = [], []
    for _ in range(calls):
        if python_first:
            t0 = clock()
            search(q, k=k, exact=True, threads=1)
            py.append(clock() - t0)
            c.append(tsearch(col, q2d, k, 1, True, 1))
        else:
            c.append(tsearch(col, q2d, k, 1, True, 1))
            t0 = clock()
            search(q, k=k, exact=True, threads=1)
            py.append(clock() - t0)
    return statistics.median(py) * 1e6, statistics.median(c) * 1e6


def blocks(col, q, q2d, k, calls, python_first):
    """Mean us per call of a Python loop of col.search and of a C loop of omen_search."""
    def python():
        search = col.search
        t0 = time.perf_counter()
        for _ in range(calls):
            search(q, k=k, exact=True, threads=1)
        return time.perf_counter() - t0

    def c():
        return _omendb._time_search(col, q2d, k, calls, True, 1)

    if python_first:
        tp, tc = python(), c()
    else:
        tc, tp = c(), python()
    return tp / calls * 1e6, tc / calls * 1e6


def measure(col, q, k, calls, rounds):
    """Both estimates for queries q (1-D: one query; 2-D: a batch), medians over rounds."""
    q2d = np.ascontiguousarray(q.reshape(-1, q.shape[-1]), dtype=np.float32)
    interleaved(col, q, q2d, k, max(1, calls // 10), True)  # warm-up
    py, c, over, over_blocks = [], [], [], []
    for r in range(rounds):
        tp, tc = interleaved(col, q, q2d, k, calls, r % 2 == 0)
        py.append(tp)
        c.append(tc)
        over.append(tp - tc)
        bp, bc = blocks(col, q, q2d, k, calls, r % 2 == 1)
        over_blocks.append(bp - bc)
    med = statistics.median
    return {"queries": int(q2d.shape[0]), "calls_per_round": calls, "rounds": rounds,
            "python_us": round(med(py), 3), "c_us": round(med(c), 3),
            "overhead_us": round(med(over), 3),
            "overhead_us_rounds": [round(min(over), 3), round(max(over), 3)],
            "overhead_us_blocks": round(med(over_blocks), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls-one", type=int, default=3000)
    ap.add_argument("--calls-batch", type=int, default=300)
    ap.add_argument("--json", help="also write the result to this file")
    a = ap.parse_args()

    x = clustered(a.n, a.dim, 1)
    queries = clustered(a.batch, a.dim, 2)
    tmp = tempfile.mkdtemp(prefix="omendb-pyoverhead-")
    try:
        with omendb.open(os.path.join(tmp, "db"), durability="relaxed",
                         background_index=False) as db:
            col = db.create_collection("bench", a.dim)
            col.add(x)
            # Both paths must answer the same: a quick check that the C loop does the work.
            ids, _ = col.search(queries, k=a.k, exact=True, threads=1)
            if ids.shape != (a.batch, a.k):
                sys.exit(f"unexpected result shape {ids.shape}")
            one = measure(col, queries[0], a.k, a.calls_one, a.rounds)
            batch = measure(col, queries, a.k, a.calls_batch, a.rounds)
            col.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "bench": "python_overhead",
        "omendb": omendb.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "collection": {"n": a.n, "dim": a.dim, "metric": "l2", "k": a.k, "exact": True,
                       "threads": 1},
        "one_query": one,
        f"batch_{a.batch}": batch,
        "goal_overhead_us": GOAL_US,
        "meets_goal": one["overhead_us"] < GOAL_US and batch["overhead_us"] < GOAL_US,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
