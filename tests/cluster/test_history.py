"""A fault test with a history checker (after Jepsen): clients upsert, delete, get and search
known values through every coordinator of a Raft group of three, while a scheduler kills
(SIGKILL), pauses (SIGSTOP/SIGCONT) and partitions (network namespaces, where allowed) shard
nodes and coordinators, one at a time, at random moments. Every operation is recorded with its
start, end and outcome; the checker then verifies the guarantee of docs/CLUSTER.md ("Copies")
over the whole history:

- a read (get, or an exact search for a known vector) returns a value that some write could
  have left there: the last acknowledged write before the read began, a write overlapping the
  read, or a write whose call failed (its outcome is unknown); so every acknowledged write is
  seen by every later read, through any coordinator, and no acknowledged delete comes back;
- once the faults end and the copies are back in sync, the copies of every logical shard hold
  the same points and vectors (read from their databases on disk), and a final read of every
  id agrees with the history.

The seed is printed (OMEN_HISTORY_SEED picks it); OMEN_HISTORY_SECONDS sets the length (default
20; `bench/run.sh history` runs a longer one). Environment as tests/cluster/test_replicas.py.
"""
import os
import random
import signal
import threading
import time

import numpy as np
import omendb
import pytest

from cluster_util import CLI, CLUSTER, admin, assert_clean_logs, netns_usable, nodes, run

DIM = 8
KEYS = 64


def vec(id_, value):
    """The vector of value `value` written to id `id_`: unique to both."""
    v = np.zeros(DIM, dtype=np.float32)
    v[0], v[1], v[2] = float(value), float(id_), 1.0
    return v


class History:
    def __init__(self):
        self.ops = []  # (kind, id, value, start, end, ok)
        self.mu = threading.Lock()
        self.next_value = 1

    def value(self):
        with self.mu:
            self.next_value += 1
            return self.next_value

    def add(self, *op):
        with self.mu:
            self.ops.append(op)


def client(h, urls, seed, stop):
    rng = random.Random(seed)
    dbs = [omendb.connect(u, timeout_ms=3000) for u in urls]
    while not stop.is_set():
        db = rng.choice(dbs)
        try:
            coll = db.collection("h")
        except omendb.Error:
            time.sleep(0.05)
            continue
        id_ = rng.randrange(KEYS)
        r = rng.random()
        t0 = time.monotonic()
        if r < 0.4:
            v = h.value()
            try:
                coll.add(vec(id_, v)[None, :], ids=np.array([id_], dtype=np.uint64))
                h.add("write", id_, v, t0, time.monotonic(), True)
            except omendb.Error:
                h.add("write", id_, v, t0, time.monotonic(), False)
        elif r < 0.5:
            try:
                coll.delete([id_])
                h.add("write", id_, None, t0, time.monotonic(), True)
            except omendb.Error:
                h.add("write", id_, None, t0, time.monotonic(), False)
        elif r < 0.85:
            try:
                got, _, found = coll.get([id_])
                v = int(got[0][0]) if found[0] else None
                if found[0]:
                    assert int(got[0][1]) == id_
                h.add("read", id_, v, t0, time.monotonic(), True)
            except omendb.Error:
                pass
        else:
            # An exact search for the vector of a value this id may hold: found at distance 0
            # means the id holds that value; else it holds another (or none).
            with h.mu:
                cands = [op[2] for op in h.ops if op[0] == "write" and op[1] == id_ and op[2]]
            if not cands:
                continue
            v = rng.choice(cands)
            try:
                ids, dists = coll.search(vec(id_, v), k=1, exact=True)
                hit = int(ids[0]) == id_ and float(dists[0]) == 0.0
                h.add("search", id_, v, t0, time.monotonic(), hit)
            except omendb.Error:
                pass
    for db in dbs:
        db.close()


def allowed(writes, rs, re_):
    """The values a read over [rs, re_] may return, from the writes of its id."""
    before = [w for w in writes if w[5] and w[4] < rs]  # acknowledged before the read
    out = set()
    latest = [w for w in before if not any(w2[3] > w[4] for w2 in before)]
    out |= {w[2] for w in latest}
    if not before:
        out.add(None)  # nothing acknowledged yet: the initial absence
    out |= {w[2] for w in writes if w[3] < re_ and w[4] > rs}  # overlapping
    out |= {w[2] for w in writes if not w[5] and w[3] < re_}  # unknown outcome
    return out


def check(ops):
    writes = {}
    for op in ops:
        if op[0] == "write":
            writes.setdefault(op[1], []).append(op)
    bad = []
    for op in ops:
        kind, id_, v, rs, re_, ok = op
        if kind == "read":
            a = allowed(writes.get(id_, []), rs, re_)
            if v not in a:
                bad.append(f"get of {id_} returned {v}, allowed {sorted(a, key=str)}")
        elif kind == "search":
            a = allowed(writes.get(id_, []), rs, re_)
            if ok and v not in a:
                bad.append(f"search found {id_} holding {v}, allowed {sorted(a, key=str)}")
            if not ok and a == {v}:
                bad.append(f"search missed {id_} holding {v}, the only value it could hold")
    return bad


def test_checker_finds_violations():
    """The checker itself: a stale read, a deleted value back, a missed search, and what a
    failed write or an overlapping one allows."""
    w1 = ("write", 1, 10, 0.0, 1.0, True)
    w2 = ("write", 1, 11, 2.0, 3.0, True)
    dele = ("write", 1, None, 4.0, 5.0, True)
    assert check([w1, w2, ("read", 1, 11, 3.5, 3.6, True)]) == []
    assert len(check([w1, w2, ("read", 1, 10, 3.5, 3.6, True)])) == 1  # stale
    assert len(check([w1, dele, ("read", 1, 10, 6.0, 6.1, True)])) == 1  # delete undone
    assert check([w1, dele, ("read", 1, 10, 4.5, 4.6, True)]) == []  # overlaps the delete
    assert len(check([w1, ("search", 1, 10, 2.0, 2.1, False)])) == 1  # missed
    lost = ("write", 1, 12, 2.0, 3.0, False)
    assert check([w1, lost, ("read", 1, 12, 9.0, 9.1, True)]) == []  # unknown outcome
    assert len(check([("read", 1, 10, 0.0, 0.1, True)])) == 1  # never written


def in_sync(d):
    a = admin(d)
    rows = [r for r in a["copies"] if r["collection"] == "h"]
    return rows and all(all(c["state"] == "in_sync" for c in r["copies"]) for r in rows)


def faults(d, rng, stop, netns, log):
    """One fault at a time on a random node, each for 0.5 to 2.5 s, then healed."""
    names = sorted(nodes(d))
    while not stop.wait(rng.uniform(0.5, 2.0)):
        name = rng.choice(names)
        kinds = ["kill", "pause"] + (["cut"] if netns else [])
        kind = rng.choice(kinds)
        pid = nodes(d)[name]["pid"]
        log.append((round(time.monotonic(), 2), kind, name))
        if kind == "kill":
            os.kill(pid, signal.SIGKILL)
        elif kind == "pause":
            os.kill(pid, signal.SIGSTOP)
        else:
            run(CLUSTER, "cut", name, "--dir", d)
        stop.wait(rng.uniform(0.5, 2.5))
        if kind == "kill":
            run(CLUSTER, "start", name, "--dir", d)
        elif kind == "pause":
            os.kill(pid, signal.SIGCONT)
        else:
            run(CLUSTER, "heal", name, "--dir", d)


def shard_points(unit):
    """ids -> vector of one copy's database on disk."""
    db = omendb.open(str(unit), read_only=True)
    coll = db.collection("h")
    ids = []
    start = 0
    while True:
        page = coll.ids(start=start, limit=10000)
        if len(page) == 0:
            break
        ids.extend(int(i) for i in page)
        start = int(page[-1]) + 1
    vecs, _, found = coll.get(ids) if ids else (np.zeros((0, DIM)), [], np.zeros(0, bool))
    out = {i: tuple(vecs[k]) for k, i in enumerate(ids) if found[k]}
    db.close()
    return out


@pytest.fixture()
def cluster(tmp_path):
    netns = netns_usable() is None
    d = tmp_path / "nodes"
    args = ["up", "3", "--coordinators", "3", "--dir", d, "--shards", 4, "--election-ms", 500]
    url = run(CLUSTER, *args, *(["--netns"] if netns else [])).stdout.strip()
    yield d, url, netns
    run(CLUSTER, "down", "--dir", d, check=False)
    assert_clean_logs(d)


def test_history_under_faults(cluster):
    d, url, netns = cluster
    seed = int(os.environ.get("OMEN_HISTORY_SEED", random.randrange(1 << 30)))
    seconds = float(os.environ.get("OMEN_HISTORY_SECONDS", 20))
    print(f"history: seed {seed}, {seconds} s, partitions {'on' if netns else 'off'}")
    rng = random.Random(seed)
    run(CLI, "create", url, "h", "--dim", DIM, "--replicas", 2)
    coords = [n["url"] for name, n in nodes(d).items() if name.startswith("coord")]
    h, stop, log = History(), threading.Event(), []
    threads = [threading.Thread(target=client, args=(h, coords, seed + i, stop))
               for i in range(4)]
    sched = threading.Thread(target=faults, args=(d, rng, stop, netns, log))
    for t in threads + [sched]:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads + [sched]:
        t.join(120)
    acked = sum(1 for op in h.ops if op[0] == "write" and op[5])
    failed = sum(1 for op in h.ops if op[0] == "write" and not op[5])
    reads = sum(1 for op in h.ops if op[0] != "write")
    print(f"history: {len(h.ops)} operations: {acked} writes acknowledged, {failed} failed "
          f"(outcome unknown), {reads} reads; faults (monotonic s, kind, node): {log}")
    assert acked > 20, "too few acknowledged writes to check anything"
    bad = check(h.ops)
    assert not bad, f"seed {seed}: {len(bad)} violations:\n" + "\n".join(bad[:10])
    # Every node back: the copies come back in sync, then a final read of every id.
    t0 = time.time()
    while time.time() - t0 < 120 and not in_sync(d):
        time.sleep(0.2)
    assert in_sync(d), admin(d)["copies"]
    db = omendb.connect(coords[0])
    got, _, found = db.collection("h").get(list(range(KEYS)))
    end = time.monotonic()
    final = [("read", i, int(got[i][0]) if found[i] else None, end, end + 1e-3, True)
             for i in range(KEYS)]
    bad = check(h.ops + final)
    assert not bad, f"seed {seed}: final state:\n" + "\n".join(bad[:10])
    db.close()
    # Copies converge: stop the cluster, read each copy's database from disk.
    run(CLUSTER, "down", "--dir", d)
    units = {}
    for u in d.rglob("h@*"):
        units.setdefault(u.name, []).append(u)
    assert len(units) == 4, units
    for name, paths in units.items():
        assert len(paths) >= 2, (name, paths)
        first = shard_points(paths[0])
        for p in paths[1:]:
            assert shard_points(p) == first, f"seed {seed}: copies of {name} differ"
