#!/usr/bin/python3
"""Copies of logical shards (docs/CLUSTER.md, "Copies"): what they cost and how they recover.

  PYTHONPATH=build/python /usr/bin/python3 bench/replicas.py [--rounds 3] [--seconds S]
      [--writers 4] [--batch 100] [--shards 4] [--points 1000000] [--grace-ms 3000]
      [--dir DIR] [--json OUT] [--only write|faults|restore] [--netns]

Each part starts its own `ops/cluster up 3 --coordinators 1` (three shard nodes, a Raft group
of one coordinator) under DIR (default a new directory under /tmp/scratch) and stops it after.

1. write: for R = 1, 2, 3 (the order rotated each round), a collection of SHARDS logical
   shards and R replicas, dim 128 Gaussian; WRITERS threads upsert batches of BATCH points
   with fresh ids for S seconds (default 8); points/s per round and the median over rounds,
   batch latency, failures; the ratios of the medians R=2/R=1 and R=3/R=1.
2. faults: replicas 2, 10,000 points; 2 writers (batches of 20, fresh ids) and 2 readers
   (exact search of 4 queries k=10, get of 8 acknowledged ids) for S seconds (default 10);
   at 2 s one shard node is killed (SIGKILL, started again after the run) or paused (SIGSTOP,
   SIGCONT after); calls, failures, partial searches, max latency, seconds until every copy
   is in sync again, acknowledged ids lost. With --netns (root) also a partition (ops/cluster
   cut, heal after).
3. restore: a collection of 1 logical shard and 2 replicas holding POINTS points (loaded in
   batches of 10,000 from 2 threads). (a) The primary's node is killed while one thread writes
   100 points every 0.1 s, started again 10 s later; seconds until its copy is in sync. That
   cluster runs with a grace longer than the absence (RETURN_GRACE_MS), or the copy would be
   made on the third node instead. (b) In a second cluster (--replica-grace-ms GRACE_MS,
   loaded again) the primary's node is killed and stays down until the end: seconds from the
   kill until the shard has 2 copies in sync again (on the third node), and that minus the
   grace as the copy time.

Every node log is checked for sanitizer reports at the end. Prints one JSON document.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

import numpy as np

import omendb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "ops", "cluster")
DIM = 128
RETURN_GRACE_MS = 600_000  # restore (a): longer than the absence and the copy
SYNC_TIMEOUT_S = 900


def cluster(*args):
    return subprocess.run([CLUSTER, *map(str, args)], check=True, capture_output=True,
                          text=True).stdout


def nodes(d):
    """name -> {"url", "http", "pid", "up"} of every node (ops/cluster status)."""
    out = {}
    for line in cluster("status", "--dir", d).splitlines():
        f = line.split()
        name = next(x for x in f if x.startswith("name=")).split("=")[1]
        out[name] = {"url": f[1], "http": f[2] if f[2].startswith("http") else "",
                     "pid": int(next(x for x in f if x.startswith("pid=")).split("=")[1]),
                     "up": " up" in line}
    return out


class Cluster:
    """One `ops/cluster up 3 --coordinators 1` under d; stopped by down()."""

    def __init__(self, d, shards, grace_ms=None, netns=False):
        self.d = d
        args = ["up", 3, "--coordinators", 1, "--shards", shards, "--dir", d]
        if grace_ms is not None:
            args += ["--replica-grace-ms", grace_ms]
        if netns:
            args.append("--netns")
        try:
            self.url = cluster(*args).strip()
            self.http = nodes(d)["coord0"]["http"]
        except subprocess.CalledProcessError as e:
            subprocess.run([CLUSTER, "down", "--dir", d], capture_output=True)
            raise RuntimeError(f"ops/cluster up failed: {e.stderr}") from e

    def down(self):
        cluster("down", "--dir", self.d)

    def admin(self):
        with urllib.request.urlopen(self.http + "/admin/nodes", timeout=10) as r:
            return json.load(r)

    def copies_of(self, name, adm=None):
        """[[(node id, state), ...] for each logical shard] of collection name."""
        adm = adm or self.admin()
        return [[(c["node"], c["state"]) for c in row["copies"]]
                for row in sorted(adm["copies"], key=lambda r: r["shard"])
                if row["collection"] == name]

    def node_name(self, node_id, adm=None):
        """The ops/cluster name of the shard node with this id (matched by address)."""
        adm = adm or self.admin()
        addr = next(n["addr"] for n in adm["nodes"] if n["id"] == node_id)
        return next(name for name, n in nodes(self.d).items() if n["url"] == addr)

    def wait(self, name, done, seconds=SYNC_TIMEOUT_S):
        """Polls the copies of name every 0.1 s until done(copies) holds; returns the seconds
        waited, or None after seconds."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            try:
                if done(self.copies_of(name)):
                    return time.monotonic() - t0
            except OSError:
                pass  # the coordinator busy or restarting: ask again
            time.sleep(0.1)
        return None

    def wait_in_sync(self, name, replicas, seconds=SYNC_TIMEOUT_S):
        return self.wait(name, lambda cp: cp and all(
            len(row) == replicas and all(st == "in_sync" for _, st in row) for row in cp),
            seconds)


def gaussian(n, seed):
    return np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)


def ms(v, p):
    return round(float(np.percentile(v, p)) * 1000, 2) if len(v) else None


def calls_summary(calls):
    """calls: [(seconds, ok)]."""
    lat = [dt for dt, ok in calls if ok]
    return {"calls": len(calls), "failed": sum(1 for _, ok in calls if not ok),
            "p50_ms": ms(lat, 50), "p99_ms": ms(lat, 99),
            "max_ms": round(max(dt for dt, _ in calls) * 1000, 1) if calls else None}


def verify(coll, ids):
    """How many of ids get does not find (in gets of 10,000)."""
    lost = 0
    ids = np.array(sorted(ids), dtype=np.uint64)
    for i in range(0, len(ids), 10_000):
        _, _, found = coll.get(ids[i:i + 10_000])
        lost += int((~np.asarray(found)).sum())
    return lost


# ---- 1. write throughput by replicas

def write_round(cl, args, name, replicas, seed):
    db = omendb.connect(cl.url)
    db.create_collection(name, DIM, metric="l2", shards=args.shards, replicas=replicas)
    pool = gaussian(args.batch * 64, seed)
    lat, errors = [[] for _ in range(args.writers)], []
    start = threading.Barrier(args.writers + 1, timeout=60)

    def writer(w):
        c = omendb.connect(cl.url)
        coll = c.collection(name)
        nid, i = (w + 1) << 40, 0
        start.wait()
        end = time.monotonic() + args.write_seconds
        while time.monotonic() < end:
            v = pool[(i % 64) * args.batch:(i % 64 + 1) * args.batch]
            ids = np.arange(nid, nid + args.batch, dtype=np.uint64)
            s = time.monotonic()
            try:
                coll.add(v, ids=ids)
                lat[w].append((time.monotonic() - s, True))
            except omendb.Error as e:
                lat[w].append((time.monotonic() - s, False))
                errors.append(f"R={replicas} add: {e}")
            nid += args.batch
            i += 1
        c.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(args.writers)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.monotonic()
    for th in threads:
        th.join()
    wall = time.monotonic() - t0
    calls = [x for per in lat for x in per]
    ok = sum(1 for _, good in calls if good)
    stale = sum(st != "in_sync" for row in cl.copies_of(name) for _, st in row)
    db.drop_collection(name)
    db.close()
    return {"replicas": replicas, "points_per_s": round(ok * args.batch / wall, 1),
            "seconds": round(wall, 2), **calls_summary(calls), "stale_copies_after": stale,
            "latencies": [dt for dt, good in calls if good], "errors": errors[:5]}


def bench_write(args, d):
    cl = Cluster(os.path.join(d, "write"), args.shards)
    try:
        rounds = []
        for r in range(args.rounds):
            order = [1, 2, 3][r % 3:] + [1, 2, 3][:r % 3]
            for replicas in order:
                rounds.append(write_round(cl, args, f"w{r}r{replicas}", replicas, 100 * r +
                                          replicas))
    finally:
        cl.down()
    out = {}
    for replicas in (1, 2, 3):
        mine = [x for x in rounds if x["replicas"] == replicas]
        lat = [dt for x in mine for dt in x["latencies"]]
        out[f"R{replicas}"] = {
            "median_points_per_s": round(statistics.median(x["points_per_s"] for x in mine), 1),
            "p50_ms": ms(lat, 50), "p99_ms": ms(lat, 99),
            "failed": sum(x["failed"] for x in mine),
            "rounds": [{k: v for k, v in x.items() if k != "latencies"} for x in mine]}
    for replicas in (2, 3):
        out[f"ratio_R{replicas}_R1"] = round(out[f"R{replicas}"]["median_points_per_s"] /
                                             out["R1"]["median_points_per_s"], 3)
    return out


# ---- 2. a shard node killed, paused or cut off under writers and readers

class Workload:
    """2 writers upsert batches of 20 new points; 2 readers search 4 queries exactly (k=10)
    and get 8 acknowledged ids; every call's latency and outcome is recorded."""

    def __init__(self, url, name, first_id):
        self.url, self.name, self.next_id = url, name, first_id
        self.acked = list(range(first_id))
        self.writes, self.searches, self.gets, self.errors = [], [], [], []
        self.partial = self.get_missing = 0
        self.stop = threading.Event()
        self.mu = threading.Lock()

    def write(self, seed):
        c = omendb.connect(self.url)
        coll, pool = c.collection(self.name), gaussian(20 * 64, seed)
        i = 0
        while not self.stop.is_set():
            with self.mu:
                ids = np.arange(self.next_id, self.next_id + 20, dtype=np.uint64)
                self.next_id += 20
            s = time.monotonic()
            try:
                coll.add(pool[(i % 64) * 20:(i % 64 + 1) * 20], ids=ids)
                self.writes.append((time.monotonic() - s, True))
                with self.mu:
                    self.acked.extend(ids.tolist())
            except omendb.Error as e:
                self.writes.append((time.monotonic() - s, False))
                self.errors.append(f"add: {e}")
            i += 1
        c.close()

    def read(self, seed):
        c = omendb.connect(self.url)
        coll, rng = c.collection(self.name), np.random.default_rng(seed)
        while not self.stop.is_set():
            q = rng.standard_normal((4, DIM), dtype=np.float32)
            s = time.monotonic()
            try:
                _, _, info = coll.search(q, k=10, exact=True, return_info=True)
                self.searches.append((time.monotonic() - s, True))
                if info["shards_answered"] < info["shards_total"]:
                    self.partial += 1
            except omendb.Error as e:
                self.searches.append((time.monotonic() - s, False))
                self.errors.append(f"search: {e}")
            with self.mu:
                pick = [self.acked[j] for j in rng.integers(0, len(self.acked), 8)]
            s = time.monotonic()
            try:
                _, _, found = coll.get(np.array(pick, dtype=np.uint64))
                self.gets.append((time.monotonic() - s, True))
                if not np.asarray(found).all():
                    self.get_missing += 1
                    self.errors.append(f"get: acknowledged ids {pick} not all found")
            except omendb.Error as e:
                self.gets.append((time.monotonic() - s, False))
                self.errors.append(f"get: {e}")
        c.close()

    def run(self, seconds, fault_at, fault):
        threads = [threading.Thread(target=self.write, args=(i,)) for i in range(2)]
        threads += [threading.Thread(target=self.read, args=(10 + i,)) for i in range(2)]
        for th in threads:
            th.start()
        time.sleep(fault_at)
        fault()
        time.sleep(seconds - fault_at)
        self.stop.set()
        for th in threads:
            th.join()


def one_fault(cl, kind, victim, seconds):
    name = f"f{kind}"
    db = omendb.connect(cl.url)
    coll = db.create_collection(name, DIM, metric="l2", replicas=2)
    coll.add(gaussian(10_000, 1), ids=np.arange(10_000, dtype=np.uint64))
    w = Workload(cl.url, name, 10_000)
    pid = nodes(cl.d)[victim]["pid"]
    inject, heal = {
        "kill": (lambda: os.kill(pid, signal.SIGKILL),
                 lambda: cluster("start", victim, "--dir", cl.d)),
        "pause": (lambda: os.kill(pid, signal.SIGSTOP), lambda: os.kill(pid, signal.SIGCONT)),
        "partition": (lambda: cluster("cut", victim, "--dir", cl.d),
                      lambda: cluster("heal", victim, "--dir", cl.d)),
    }[kind]
    try:
        w.run(seconds, 2.0, inject)
        stale = sum(st != "in_sync" for row in cl.copies_of(name) for _, st in row)
    finally:
        t = time.monotonic()
        heal()
    back_s = time.monotonic() - t
    in_sync = cl.wait_in_sync(name, 2)
    out = {"victim": victim, "seconds": seconds, "fault_at_s": 2.0,
           "writes": calls_summary(w.writes), "searches": calls_summary(w.searches),
           "gets": calls_summary(w.gets), "partial_searches": w.partial,
           "gets_missing_acked": w.get_missing,
           "max_call_ms": max(x["max_ms"] or 0 for x in (calls_summary(w.writes),
                                                          calls_summary(w.searches),
                                                          calls_summary(w.gets))),
           "stale_copies_at_end": stale, "heal_call_s": round(back_s, 2),
           "in_sync_after_s": round(back_s + in_sync, 2) if in_sync is not None else None,
           "acked": len(w.acked), "lost": verify(coll, w.acked), "errors": w.errors[:5]}
    db.drop_collection(name)
    db.close()
    return out


def bench_faults(args, d):
    out = {}
    cl = Cluster(os.path.join(d, "faults"), args.shards)
    try:
        for i, kind in enumerate(("kill", "pause")):
            out[kind] = one_fault(cl, kind, f"shard{i % 3}", args.fault_seconds)
    finally:
        cl.down()
    if not args.netns:
        out["partition"] = "not run (needs --netns)"
        return out
    cl = Cluster(os.path.join(d, "faults-netns"), args.shards, netns=True)
    try:
        out["partition"] = one_fault(cl, "partition", "shard2", args.fault_seconds)
    finally:
        cl.down()
    return out


# ---- 3. restore: a returning node, and a copy made on another node

def load(cl, name, points):
    """Creates name (1 logical shard, 2 replicas) and loads points in batches of 10,000 from
    2 threads; returns the seconds it took."""
    db = omendb.connect(cl.url)
    db.create_collection(name, DIM, metric="l2", shards=1, replicas=2)
    db.close()
    errors = []

    def loader(t):
        c = omendb.connect(cl.url)
        coll = c.collection(name)
        for i in range(t * 10_000, points, 20_000):
            n = min(10_000, points - i)
            try:
                coll.add(gaussian(n, i), ids=np.arange(i, i + n, dtype=np.uint64))
            except omendb.Error as e:
                errors.append(f"load at {i}: {e}")
        c.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=loader, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise RuntimeError(f"loading failed: {errors[:3]}")
    return time.monotonic() - t0


class Trickle:
    """One thread upserting a batch of 100 new points every 0.1 s."""

    def __init__(self, url, name, first_id):
        self.url, self.name, self.next_id = url, name, first_id
        self.calls, self.acked, self.errors = [], [], []
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.write)
        self.th.start()

    def write(self):
        c = omendb.connect(self.url)
        coll, pool = c.collection(self.name), gaussian(100 * 16, 5)
        i = 0
        while not self.stop.wait(0.1):
            ids = np.arange(self.next_id, self.next_id + 100, dtype=np.uint64)
            self.next_id += 100
            s = time.monotonic()
            try:
                coll.add(pool[(i % 16) * 100:(i % 16 + 1) * 100], ids=ids)
                self.calls.append((time.monotonic() - s, True))
                self.acked.extend(ids.tolist())
            except omendb.Error as e:
                self.calls.append((time.monotonic() - s, False))
                self.errors.append(f"add: {e}")
            i += 1
        c.close()

    def end(self):
        self.stop.set()
        self.th.join()


def primary(cl, name):
    """(ops/cluster name, node id) of the primary of the collection's shard 0."""
    adm = cl.admin()
    node = next(n for n, st in cl.copies_of(name, adm)[0] if st == "in_sync")
    return cl.node_name(node, adm), node


def check_points(cl, name, points, trickle):
    db = omendb.connect(cl.url)
    coll = db.collection(name)
    out = {"count": coll.count(), "expected": points + len(trickle.acked),
           "lost": verify(coll, trickle.acked)}
    db.close()
    return out


def restore_return(args, d):
    """(a) The primary's node killed, written around for 10 s, started again."""
    cl = Cluster(os.path.join(d, "restore-return"), 1, grace_ms=RETURN_GRACE_MS)
    try:
        load_s = load(cl, "big", args.points)
        if cl.wait_in_sync("big", 2, 60) is None:
            raise RuntimeError(f"copies not in sync after loading: {cl.copies_of('big')}")
        victim, _ = primary(cl, "big")
        tr = Trickle(cl.url, "big", args.points)
        cluster("kill", victim, "--dir", cl.d)
        time.sleep(10)
        stale = sum(st != "in_sync" for _, st in cl.copies_of("big")[0])
        t = time.monotonic()
        cluster("start", victim, "--dir", cl.d)
        start_s = time.monotonic() - t
        in_sync = cl.wait_in_sync("big", 2)
        tr.end()
        return {"load_s": round(load_s, 2), "victim": victim, "was_primary": True,
                "away_s": 10, "grace_ms": RETURN_GRACE_MS, "stale_copies_at_start": stale,
                "node_start_s": round(start_s, 2),
                "in_sync_after_start_s": round(start_s + in_sync, 2)
                if in_sync is not None else None,
                "writes": calls_summary(tr.calls), "errors": tr.errors[:5],
                **check_points(cl, "big", args.points, tr)}
    finally:
        cl.down()


def restore_move(args, d):
    """(b) The primary's node killed and left down: a copy is made on the third node."""
    cl = Cluster(os.path.join(d, "restore-move"), 1, grace_ms=args.grace_ms)
    try:
        load_s = load(cl, "big", args.points)
        if cl.wait_in_sync("big", 2, 60) is None:
            raise RuntimeError(f"copies not in sync after loading: {cl.copies_of('big')}")
        victim, vid = primary(cl, "big")
        before = {n for n, _ in cl.copies_of("big")[0]}
        tr = Trickle(cl.url, "big", args.points)
        t = time.monotonic()
        cluster("kill", victim, "--dir", cl.d)
        appeared = cl.wait("big", lambda cp: any(n not in before for n, _ in cp[0]))
        done = cl.wait("big", lambda cp: len(cp[0]) == 2 and all(
            st == "in_sync" and n != vid for n, st in cp[0]))
        total = time.monotonic() - t if done is not None else None
        tr.end()
        holders = [cl.node_name(n) for n, _ in cl.copies_of("big")[0]]
        out = {"load_s": round(load_s, 2), "victim": victim, "was_primary": True,
               "grace_ms": args.grace_ms, "holders_after": holders,
               "new_copy_listed_after_kill_s": round(appeared, 2)
               if appeared is not None else None,
               "in_sync_after_kill_s": round(total, 2) if total is not None else None,
               "copy_s": round(total - args.grace_ms / 1000, 2) if total is not None else None,
               "in_sync_after_listed_s": round(total - appeared, 2)
               if None not in (total, appeared) else None,
               "writes": calls_summary(tr.calls), "errors": tr.errors[:5],
               **check_points(cl, "big", args.points, tr)}
        cluster("start", victim, "--dir", cl.d)
        return out
    finally:
        cl.down()


def bench_restore(args, d):
    return {"return": restore_return(args, d), "move": restore_move(args, d)}


def log_errors(d):
    bad = []
    for root, _, files in os.walk(d):
        for f in files:
            if f.endswith(".log"):
                with open(os.path.join(root, f), errors="replace") as fh:
                    text = fh.read()
                bad += [f"{os.path.relpath(os.path.join(root, f), d)}: {w}"
                        for w in ("AddressSanitizer", "LeakSanitizer", "runtime error:")
                        if w in text]
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float,
                    help="write: seconds per round (default 8); faults: seconds of each run "
                         "(default 10)")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--points", type=int, default=1_000_000, help="restore: points loaded")
    ap.add_argument("--grace-ms", type=int, default=3000,
                    help="restore (b): the cluster's --replica-grace-ms")
    ap.add_argument("--dir")
    ap.add_argument("--json")
    ap.add_argument("--only", choices=["write", "faults", "restore"])
    ap.add_argument("--netns", action="store_true",
                    help="faults: also cut a node off (root, ip netns)")
    args = ap.parse_args()
    args.write_seconds = args.seconds or 8
    args.fault_seconds = args.seconds or 10
    if args.only in (None, "faults") and args.fault_seconds <= 2:
        ap.error("faults: --seconds must exceed 2 (the fault comes at 2 s)")
    if args.dir:
        d = os.path.abspath(args.dir)
        os.makedirs(d, exist_ok=True)
    else:
        os.makedirs("/tmp/scratch", exist_ok=True)
        d = tempfile.mkdtemp(prefix="omen-replicas-bench-", dir="/tmp/scratch")
    out = {"data": f"Gaussian float32, dim {DIM}",
           "setup": "ops/cluster up 3 --coordinators 1 (3 shard nodes, 1 coordinator), all on "
                    "this host, durability sync; clients through the coordinator",
           "dir": d, "cpus": os.cpu_count()}
    parts = {"write": bench_write, "faults": bench_faults, "restore": bench_restore}
    try:
        for part, fn in parts.items():
            if args.only in (None, part):
                out[part] = fn(args, d)
    finally:
        out["log_errors"] = log_errors(d)
        text = json.dumps(out, indent=2)
        print(text)
        if args.json:
            with open(args.json, "w") as f:
                f.write(text + "\n")


if __name__ == "__main__":
    main()
