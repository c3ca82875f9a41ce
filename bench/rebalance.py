#!/usr/bin/python3
"""Rebalancing under load (docs/BENCHMARKS.md, section Rebalancing).

  PYTHONPATH=build/python /usr/bin/python3 bench/rebalance.py [--points 400000] [--dim 64]
      [--shards 8] [--dir DIR] [--json OUT] [--plot PNG]

Starts `ops/cluster up 2 --coordinators 3`, loads POINTS clustered vectors into a collection of
SHARDS logical shards with an HNSW index, then runs two client threads through a follower
coordinator (one upserts batches of 100 points with ids, one searches 1 query at k=10) and
adds a third shard node (`ops/cluster add-shard`). The leader moves logical shards to it. We
record every call's latency and outcome, before and during the moves, the moves' own figures
from the leader's log (duration, points, the time writes to the moving shard waited), and
afterwards check that every acknowledged point is listed once. Prints JSON.
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.request

import numpy as np

import omendb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "ops", "cluster")
MOVED = re.compile(r"moved (\S+) to node \d+ in ([\d.]+) s: (\d+) points, then (\d+) written "
                   r"meanwhile \((\d+) present\); writes waited ([\d.]+) s; map epoch \d+; "
                   r"copy ([\d.]+) s, index ([\d.]+) s")


def cluster(*args):
    return subprocess.run([CLUSTER, *map(str, args)], check=True, capture_output=True,
                          text=True).stdout


def status(d):
    out = {}
    for line in cluster("status", "--dir", d).splitlines():
        f = line.split()
        out[f[-1].split("=")[1]] = {"url": f[1], "http": f[2] if f[2].startswith("http") else "",
                                    "leader": " leader" in line}
    return out


def admin_nodes(http):
    with urllib.request.urlopen(http + "/admin/nodes", timeout=5) as r:
        return json.load(r)


def clustered(n, dim, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (64, dim)).astype(np.float32)
    return (centres[rng.integers(0, 64, n)] +
            0.2 * rng.standard_normal((n, dim)).astype(np.float32))


def pct(v, p):
    return float(np.percentile(v, p)) * 1000 if len(v) else None


def summary(calls, t0, t1):
    """Latency (ms) and failures of the calls that started in [t0, t1)."""
    lat = [dt for start, dt, ok in calls if t0 <= start < t1 and ok]
    bad = sum(1 for start, dt, ok in calls if t0 <= start < t1 and not ok)
    return {"calls": len(lat) + bad, "failed": bad, "p50_ms": pct(lat, 50),
            "p99_ms": pct(lat, 99), "max_ms": max(lat) * 1000 if lat else None,
            "per_s": (len(lat) / (t1 - t0)) if t1 > t0 else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=400_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--dir")
    ap.add_argument("--json")
    ap.add_argument("--plot")
    args = ap.parse_args()
    d = args.dir or tempfile.mkdtemp(prefix="omen-rebalance-bench-")
    cluster("up", 2, "--coordinators", 3, "--dir", d, "--shards", args.shards)
    try:
        run(args, d)
    finally:
        cluster("down", "--dir", d)


def run(args, d):
    st = status(d)
    lead = next(n for n, s in st.items() if s["leader"])
    follower = next(n for n in st if n.startswith("coord") and n != lead)
    db = omendb.connect(st[follower]["url"])
    coll = db.create_collection("bench", args.dim)
    x = clustered(args.points, args.dim, 1)
    t = time.time()
    for i in range(0, args.points, 50_000):
        coll.upsert(x[i:i + 50_000], ids=np.arange(i, min(i + 50_000, args.points),
                                                   dtype=np.uint64))
    load_s = time.time() - t
    coll.build_index("hnsw")
    acked = set(range(args.points))
    writes, searches, errors = [], [], []
    stop = threading.Event()
    t_start = time.time()

    def writer():
        c = omendb.connect(st[follower]["url"]).collection("bench")
        nid = args.points
        rng = np.random.default_rng(2)
        while not stop.is_set():
            ids = np.arange(nid, nid + 100, dtype=np.uint64)
            v = clustered(100, args.dim, int(rng.integers(1 << 30)))
            s = time.time()
            try:
                c.upsert(v, ids=ids)
                writes.append((s, time.time() - s, True))
                acked.update(range(nid, nid + 100))
            except omendb.Error as e:
                writes.append((s, time.time() - s, False))
                errors.append(f"upsert at {s - t_start:.1f} s after {time.time() - s:.2f} s: {e}")
            nid += 100

    def searcher():
        c = omendb.connect(st[follower]["url"]).collection("bench")
        q = clustered(1000, args.dim, 3)
        i = 0
        while not stop.is_set():
            s = time.time()
            try:
                c.search(q[i % 1000], k=10)
                searches.append((s, time.time() - s, True))
            except omendb.Error as e:
                searches.append((s, time.time() - s, False))
                errors.append(f"search at {s - t_start:.1f} s after {time.time() - s:.2f} s: {e}")
            i += 1

    threads = [threading.Thread(target=writer), threading.Thread(target=searcher)]
    for th in threads:
        th.start()
    time.sleep(5)
    t_add = time.time()
    cluster("add-shard", "--dir", d)
    http = status(d)[lead]["http"]
    while not admin_nodes(http)["balanced"]:
        time.sleep(0.05)
    t_done = time.time()
    time.sleep(5)
    t_end = time.time()
    stop.set()
    for th in threads:
        th.join()
    moves = [dict(zip(("shard", "seconds", "points", "tracked", "present", "writes_waited_s",
                       "copy_s", "index_s"),
                      (m[0], *map(float, m[1:]))))
             for m in MOVED.findall(open(os.path.join(d, lead + ".log")).read())]
    ids = coll.ids()
    t0 = writes[0][0] if writes else t_add - 5
    out = {
        "data": f"clustered {args.points} x {args.dim} (64 Gaussian centres), "
                f"{args.shards} logical shards, HNSW M=16 efC=200",
        "setup": "3 coordinators (Raft), 2 shard nodes + 1 added, all on this host; clients "
                 "through a follower: 1 thread upserting 100 points with ids, 1 thread "
                 "searching 1 query k=10",
        "load_s": round(load_s, 2),
        "rebalance_s": round(t_done - t_add, 2),
        "moves": moves,
        "writes": {"before": summary(writes, t0, t_add),
                   "during": summary(writes, t_add, t_done),
                   "after": summary(writes, t_done, t_end)},
        "searches": {"before": summary(searches, t0, t_add),
                     "during": summary(searches, t_add, t_done),
                     "after": summary(searches, t_done, t_end)},
        "errors": errors[:10],
        "acked": len(acked), "listed": int(len(ids)),
        "listed_unique": int(len(set(ids.tolist()))),
        "missing": len(acked - set(ids.tolist())),
        "shards_per_node": sorted(n["shards"] for n in admin_nodes(http)["nodes"]
                                  if n["role"] == "shard"),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if args.plot:
        plot(args.plot, writes, searches, t_add, t_done, moves, out["data"])


def plot(path, writes, searches, t_add, t_done, moves, data):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    base = min(w[0] for w in writes + searches)
    fig, ax = plt.subplots(figsize=(9, 4))
    for calls, label, mark in ((writes, "upsert 100", "."), (searches, "search k=10", "x")):
        ok = [(s - base, dt * 1000) for s, dt, good in calls if good]
        ax.scatter([p[0] for p in ok], [p[1] for p in ok], s=3, marker=mark, label=label)
    ax.axvspan(t_add - base, t_done - base, color="orange", alpha=0.2,
               label=f"node added -> balanced ({len(moves)} moves)")
    ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("call latency (ms)")
    ax.set_title(f"Rebalancing under load: {data}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
