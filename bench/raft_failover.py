#!/usr/bin/python3
"""Failover of the Raft leader among three coordinators (docs/BENCHMARKS.md, section Raft).

  PYTHONPATH=build/python /usr/bin/python3 bench/raft_failover.py [--trials 10]
      [--election-ms 1000] [--dir DIR] [--json OUT]

Starts `ops/cluster up 2 --coordinators 3`, loads 10,000 points, then for each trial: two
client threads work through a coordinator that is not the leader (one searches, one upserts
batches of 100 points with ids), the leader is killed with SIGKILL, and we measure the time
until another coordinator reports itself leader (polling /health every 10 ms) and, for each
client, the longest gap between two successful calls and the calls that failed meanwhile. The
killed coordinator is restarted between trials. Prints JSON; medians over the trials.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np

import omendb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "ops", "cluster")


def cluster(*args):
    return subprocess.run([CLUSTER, *map(str, args)], check=True, capture_output=True,
                          text=True).stdout


def coordinators(d):
    """name -> (tcp url, http url, role, up)."""
    out = {}
    for line in cluster("status", "--dir", d).splitlines():
        f = line.split()
        if f[0] != "coordinator":
            continue
        role = f[-2] if f[-2] in ("leader", "follower") else ""
        out[f[-1].split("=")[1]] = (f[1], f[2], role, " up" in line)
    return out


def is_leader(http):
    try:
        with urllib.request.urlopen(http + "/health", timeout=1) as r:
            return bool(json.load(r).get("raft", {}).get("leader"))
    except (OSError, ValueError):
        return False


class Client(threading.Thread):
    """Calls fn in a loop; records the longest gap between successes and the failures."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.stop, self.last = fn, threading.Event(), None
        self.gap, self.failures, self.calls = 0.0, 0, 0

    def run(self):
        self.last = time.perf_counter()
        while not self.stop.is_set():
            try:
                self.fn()
                now = time.perf_counter()
                self.gap = max(self.gap, now - self.last)
                self.last = now
                self.calls += 1
            except omendb.Error:
                self.failures += 1


def trial(d, col, vecs, next_id):
    coords = coordinators(d)
    leader = next(n for n, c in coords.items() if c[2] == "leader")
    rng = np.random.default_rng(len(next_id))

    def search():
        col.search(vecs[rng.integers(0, len(vecs))], k=10, exact=True)

    def upsert():
        start = next_id[0]
        next_id[0] += 100
        col.add(vecs[:100], ids=np.arange(start, start + 100, dtype=np.uint64))

    clients = [Client(search), Client(upsert)]
    for c in clients:
        c.start()
    time.sleep(0.5)
    others = [c[1] for n, c in coords.items() if n != leader]
    t0 = time.perf_counter()
    cluster("kill", leader, "--dir", d)
    while not any(is_leader(h) for h in others):
        time.sleep(0.01)
    elected = time.perf_counter() - t0
    time.sleep(0.5)
    for c in clients:
        c.stop.set()
        c.join()
    cluster("start", leader, "--dir", d)
    return {"new_leader_s": elected,
            "search": {"calls": clients[0].calls, "failures": clients[0].failures,
                       "longest_gap_s": clients[0].gap},
            "upsert": {"calls": clients[1].calls, "failures": clients[1].failures,
                       "longest_gap_s": clients[1].gap}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--election-ms", type=int, default=1000)
    ap.add_argument("--dir", default=os.path.join(ROOT, "data", "scratch", "raft"))
    ap.add_argument("--json")
    a = ap.parse_args()
    subprocess.run([CLUSTER, "down", "--dir", a.dir], capture_output=True)
    subprocess.run(["rm", "-rf", a.dir])
    cluster("up", 2, "--coordinators", 3, "--dir", a.dir, "--election-ms", a.election_ms)
    try:
        vecs = np.random.default_rng(1).normal(0, 1, (10000, 64)).astype(np.float32)
        coords = coordinators(a.dir)
        results, next_id = [], [10000]
        with omendb.connect(next(iter(coords.values()))[0]) as db:
            db.create_collection("f", 64).add(vecs)
        for t in range(a.trials):
            coords = coordinators(a.dir)
            follower = next(c[0] for c in coords.values() if c[2] == "follower")
            with omendb.connect(follower, timeout_ms=10000) as db:
                results.append(trial(a.dir, db["f"], vecs, next_id))
            print(json.dumps(results[-1]), file=sys.stderr)
            time.sleep(1)
        med = lambda xs: sorted(xs)[len(xs) // 2]
        out = {"trials": a.trials, "election_ms": a.election_ms,
               "new_leader_s_median": med([r["new_leader_s"] for r in results]),
               "new_leader_s_max": max(r["new_leader_s"] for r in results),
               "search_failures": sum(r["search"]["failures"] for r in results),
               "upsert_failures": sum(r["upsert"]["failures"] for r in results),
               "search_longest_gap_s_median": med([r["search"]["longest_gap_s"] for r in results]),
               "upsert_longest_gap_s_median": med([r["upsert"]["longest_gap_s"] for r in results]),
               "runs": results}
        print(json.dumps(out, indent=2))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=2)
    finally:
        subprocess.run([CLUSTER, "down", "--dir", a.dir], capture_output=True)


if __name__ == "__main__":
    main()
