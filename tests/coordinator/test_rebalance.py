"""Shard nodes that register themselves, and rebalancing by shard transfer, on a Raft cluster of
three coordinators (ops/cluster up 2 --coordinators 3), driven through the Python package.

- A shard node added while a load, deletes and searches run: the leader moves logical shards
  to it; afterwards every acknowledged point is found exactly once (listed ids, count, get),
  no deleted point comes back, and no search failed meanwhile.
- Heartbeats: a stopped shard node is marked down, and up again when it returns.
- A move interrupted by the leader's death (its steps played by hand with wire_call): the next
  leader releases the frozen source, drops a stale frozen copy and an incoming copy, and the
  writes that waited go through.

Environment: OMEN_NODE (omendb-node), WIRE_CALL (tests/tools/wire_call), PYTHONPATH (the package).
"""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import numpy as np
import pytest

import omendb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "ops", "cluster")
WIRE_CALL = os.environ.get("WIRE_CALL", os.path.join(ROOT, "build", "tests", "wire_call"))
DIM = 16
RELEASE, TRACK, FREEZE, INCOMING, ACCEPT, QUERY = 0, 1, 2, 3, 4, 5  # fence modes (wire.h)


def run(*args, check=True, timeout=120):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def nodes(d):
    """name -> node entry of ops/cluster's cluster.json."""
    with open(os.path.join(d, "cluster.json")) as f:
        return {n["name"]: n for n in json.load(f)}


def status(d):
    out = {}
    for line in run(CLUSTER, "status", "--dir", d).stdout.splitlines():
        f = line.split()
        out[f[-1].split("=")[1]] = {"url": f[1], "up": " up" in line, "leader": " leader" in line}
    return out


def leader(d, seconds=30, not_name=None):
    t0 = time.time()
    while time.time() - t0 < seconds:
        for name, s in status(d).items():
            if s["leader"] and name != not_name:
                return name
        time.sleep(0.05)
    raise AssertionError("no leader")


def table(d, name):
    n = nodes(d)[name]
    with urllib.request.urlopen(f"http://127.0.0.1:{n['http']}/admin/nodes", timeout=5) as r:
        return json.load(r)


def wait(check, seconds, what):
    t0 = time.time()
    while time.time() - t0 < seconds:
        if check():
            return time.time() - t0
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def units(d, shard_name):
    """The logical shards a shard node holds on disk: {"COLL@S", ...}."""
    path = os.path.join(d, shard_name, "shard", "shards")
    return set(os.listdir(path)) if os.path.isdir(path) else set()


def wire_call(url, op, **kw):
    return run(WIRE_CALL, url, op, *[f"{k}={v}" for k, v in kw.items()], check=False)


@pytest.fixture(scope="module")
def cluster():
    d = tempfile.mkdtemp(prefix="omen-rebalance-")
    run(CLUSTER, "up", 2, "--coordinators", 3, "--election-ms", 500, "--dir", d, timeout=120)
    yield d
    run(CLUSTER, "down", "--dir", d, check=False)
    for name in nodes(d):
        log = open(os.path.join(d, name + ".log")).read()
        assert "AddressSanitizer" not in log and "runtime error" not in log, log[-3000:]


def coord_urls(d):
    return [s["url"] for n, s in sorted(status(d).items()) if n.startswith("coord")]


def test_registered_nodes(cluster):
    t = table(cluster, leader(cluster))
    shards = [n for n in t["nodes"] if n["role"] == "shard"]
    assert len(shards) == 2 and all(n["state"] == "up" for n in shards)
    assert all(n["id"] >= 2**32 for n in shards)  # ids the nodes chose and keep


def test_shard_node_joins_during_load(cluster):
    urls = coord_urls(cluster)
    db = omendb.connect(urls[0])
    coll = db.create_collection("v", DIM)
    acked, deleted, errors, searches = {}, set(), [], [0]
    stop = threading.Event()
    rng = np.random.default_rng(7)

    def load():
        c = omendb.connect(urls[1]).collection("v")  # a follower: forwards what needs ids
        nid = 0
        while not stop.is_set():
            v = rng.random((400, DIM), dtype=np.float32)
            try:
                if nid % 2000 == 0:  # now and then, ids chosen by the cluster (above all)
                    got = c.add(v)
                else:  # given ids go down, so that the two never meet
                    got = np.arange(10**7 - nid - 400, 10**7 - nid, dtype=np.uint64)
                    c.upsert(v, ids=got)
                for i, x in zip(got.tolist(), v):
                    acked[i] = x
                nid += 400
                gone = list(acked)[-400:-300]  # delete a few recent ones
                c.delete(np.array(gone, dtype=np.uint64))
                for i in gone:
                    deleted.add(i)
                    acked.pop(i)
            except omendb.Error as e:
                errors.append(f"write: {e}")

    def search():
        c = omendb.connect(urls[2]).collection("v")
        while not stop.is_set() and len(acked) < 1000:
            time.sleep(0.01)
        while not stop.is_set():
            try:
                c.search(rng.random((4, DIM), dtype=np.float32), k=5)
                searches[0] += 1
            except omendb.Error as e:
                errors.append(f"search: {e}")

    threads = [threading.Thread(target=load), threading.Thread(target=search)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        added = run(CLUSTER, "add-shard", "--dir", cluster).stdout.strip()
        assert added == "shard2"
        lead = leader(cluster)
        took = wait(lambda: table(cluster, lead)["balanced"] and
                    table(cluster, lead)["moves_done"] >= 2, 60, "rebalancing")
        time.sleep(1)  # the load and searches go on after the moves too
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    assert searches[0] > 0
    t = table(cluster, lead)
    held = {n["addr"]: n["shards"] for n in t["nodes"] if n["role"] == "shard"}
    assert sorted(held.values()) == [2, 3, 3], held
    assert any(u.startswith("v@") for u in units(cluster, "shard2"))
    ids = coll.ids()
    assert len(ids) == len(set(ids.tolist())), "an id listed twice"
    assert set(ids.tolist()) == set(acked), (len(ids), len(acked))
    assert coll.count() == len(acked)
    back = sorted(deleted & set(ids.tolist()))
    assert not back, f"deleted points came back: {back[:20]} of {len(back)}"
    want = np.array(sorted(acked), dtype=np.uint64)
    vec, _, found = coll.get(want)
    assert found.all()
    np.testing.assert_array_equal(vec, np.stack([acked[i] for i in want.tolist()]))
    # a point searched for by its own vector is found, once
    for i in want[:: max(1, len(want) // 50)].tolist():
        got, _ = coll.search(acked[i][None, :], k=10)
        assert list(got[0]).count(i) == 1
    print(f"rebalanced in {took:.1f} s under load: {len(acked)} points")


def test_heartbeats(cluster):
    lead = leader(cluster)
    state = lambda: {n["addr"]: n["state"] for n in table(cluster, lead)["nodes"]}
    url = status(cluster)["shard1"]["url"]
    run(CLUSTER, "stop", "shard1", "--dir", cluster)
    wait(lambda: state()[url] == "down", 15, "shard1 marked down")
    run(CLUSTER, "start", "shard1", "--dir", cluster)
    wait(lambda: state()[url] == "up", 15, "shard1 up again")


def settled(d):
    """Waits until every shard node is up and the leader has run no cleanup for 2.5 s: a
    change of the nodes that are up makes it resolve marked copies (within a second), which
    would undo the marks the next test plays by hand."""
    lead = leader(d)
    last, since = None, time.time()
    t0 = time.time()
    while time.time() - t0 < 30:
        t = table(d, lead)
        up = all(n["state"] == "up" for n in t["nodes"] if n["role"] == "shard")
        if t["cleanups"] != last or not up:
            last, since = t["cleanups"], time.time()
        elif time.time() - since >= 2.5:
            return
        time.sleep(0.1)
    raise AssertionError("the leader did not settle")


def test_interrupted_move_is_resolved(cluster):
    settled(cluster)
    urls = coord_urls(cluster)
    coll = omendb.connect(urls[0]).collection("v")
    node_urls = {n: status(cluster)[n]["url"] for n in ("shard0", "shard1", "shard2")}
    # shard S owned by shard0; shard T owned by shard1: played as if a leader died mid-move
    s = sorted(units(cluster, "shard0"))[0].split("@")[1]
    t = sorted(units(cluster, "shard1"))[0].split("@")[1]
    a, b = node_urls["shard0"], node_urls["shard1"]
    assert wire_call(a, "fence", name="v", shard=s, mode=TRACK).returncode == 0
    assert wire_call(a, "fence", name="v", shard=s, mode=FREEZE).returncode == 0
    # an incoming copy of S on shard1, and a frozen copy of T on shard0 that the map does not
    # give shard0 (a move whose switch was committed)
    assert wire_call(b, "fence", name="v", shard=s, mode=INCOMING, dim=DIM).returncode == 0
    assert wire_call(a, "fence", name="v", shard=t, mode=INCOMING, dim=DIM).returncode == 0
    assert wire_call(a, "fence", name="v", shard=t, mode=ACCEPT).returncode == 0
    assert wire_call(a, "fence", name="v", shard=t, mode=TRACK).returncode == 0
    assert wire_call(a, "fence", name="v", shard=t, mode=FREEZE).returncode == 0
    marked = wire_call(a, "fence", mode=QUERY).stdout
    assert f"v {s} 1" in marked and f"v {t} 1" in marked
    # writes to S are held back now: a batch over every shard fails after its deadline
    ids = np.arange(5 * 10**7, 5 * 10**7 + 64, dtype=np.uint64)
    vecs = np.random.default_rng(3).random((64, DIM), dtype=np.float32)
    with pytest.raises(omendb.Error, match="moved"):
        coll.upsert(vecs, ids=ids)
    # the leader dies; the next one resolves what the marks say
    old = leader(cluster)
    run(CLUSTER, "kill", old, "--dir", cluster)
    new = leader(cluster, not_name=old)
    wait(lambda: "status=0" in wire_call(a, "fence", mode=QUERY).stdout and
         len(wire_call(a, "fence", mode=QUERY).stdout.splitlines()) == 1 and
         len(wire_call(b, "fence", mode=QUERY).stdout.splitlines()) == 1, 30, "the cleanup")
    assert f"v@{s}" in units(cluster, "shard0")      # released, still the owner's
    assert f"v@{t}" not in units(cluster, "shard0")  # a copy the map gives another node
    assert f"v@{s}" not in units(cluster, "shard1")  # an incoming copy never switched to
    live = omendb.connect(status(cluster)[new]["url"]).collection("v")
    live.upsert(vecs, ids=ids)
    _, _, found = live.get(ids)
    assert found.all()
    run(CLUSTER, "start", old, "--dir", cluster)
