"""Copies of logical shards (docs/CLUSTER.md, "Copies"): a collection created with replicas 2 on
three shard nodes (a Raft group of one coordinator) keeps serving while a shard node is killed
(SIGKILL) or paused (SIGSTOP): no failed call, every search with full coverage, every
acknowledged write seen by the searches and gets after it, exact search equal to numpy's; the
copies a dead node held leave the copies in sync, and `omendb check` compares the copies.

Environment: OMENDB_CLI (the omendb program), OMEN_NODE (omendb-node); PYTHONPATH with the
package (build/python).
"""
import json
import os
import signal
import threading
import time

import numpy as np
import omendb
import pytest

from cluster_util import CLUSTER, admin, assert_clean_logs, cli, netns_usable, nodes, run

DIM = 16


def copies_of(d, name):
    """[(node, state), ...] of each logical shard of collection name."""
    return [[(c["node"], c["state"]) for c in row["copies"]]
            for row in admin(d)["copies"] if row["collection"] == name]


def wait_in_sync(d, name, seconds=60):
    t0 = time.time()
    while time.time() - t0 < seconds:
        cp = copies_of(d, name)
        if cp and all(len(row) == 2 and all(st == "in_sync" for _, st in row) for row in cp):
            return cp
        time.sleep(0.2)
    raise AssertionError(f"copies of {name} not back in sync: {copies_of(d, name)}")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replicas")
    d = tmp / "nodes"
    url = run(CLUSTER, "up", "3", "--coordinators", "1", "--dir", d, "--shards", 4).stdout.strip()
    yield {"dir": d, "url": url, "tmp": tmp}
    run(CLUSTER, "down", "--dir", d, check=False)
    assert_clean_logs(d)


def exact_top(points, ids, queries, k):
    d = ((queries[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    return ids[np.argsort(d, axis=1, kind="stable")[:, :k]]


class Workload:
    """Writers upsert batches of new points with explicit ids; readers search exactly and get
    what was acknowledged; every call's outcome is recorded."""

    def __init__(self, coll, first_id, seed):
        self.coll, self.next_id, self.rng = coll, first_id, np.random.default_rng(seed)
        self.acked = {}  # id -> vector
        self.failures, self.calls, self.partial = [], 0, 0
        self.stop = threading.Event()
        self.mu = threading.Lock()

    def write(self):
        while not self.stop.is_set():
            with self.mu:
                ids = np.arange(self.next_id, self.next_id + 20, dtype=np.uint64)
                self.next_id += 20
                vecs = self.rng.normal(0, 1, (20, DIM)).astype(np.float32)
            try:
                self.coll.add(vecs, ids=ids)
                with self.mu:
                    self.acked.update(zip(ids.tolist(), vecs))
                    self.calls += 1
            except Exception as e:  # noqa: BLE001 - any failure is what the test counts
                self.failures.append(f"add: {e}")

    def read(self):
        rng = np.random.default_rng(7)
        while not self.stop.is_set():
            with self.mu:
                known = list(self.acked.keys())
            try:
                q = rng.normal(0, 1, (4, DIM)).astype(np.float32)
                ids, _, info = self.coll.search(q, k=10, exact=True, return_info=True)
                if info["shards_answered"] != info["shards_total"]:
                    self.partial += 1
                if known:
                    pick = [known[i] for i in rng.integers(0, len(known), 8)]
                    _, _, found = self.coll.get(pick)
                    if not all(found):
                        self.failures.append(f"get: acknowledged ids {pick} not all found")
                with self.mu:
                    self.calls += 1
            except Exception as e:  # noqa: BLE001
                self.failures.append(f"search/get: {e}")

    def run_while(self, fault, seconds):
        threads = [threading.Thread(target=self.write) for _ in range(2)]
        threads += [threading.Thread(target=self.read) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        fault()
        time.sleep(seconds)
        self.stop.set()
        for t in threads:
            t.join(60)


def check_all_acked(coll, acked, label):
    ids = np.array(sorted(acked), dtype=np.uint64)
    _, _, found = coll.get(ids)
    assert found.all(), f"{label}: {int((~found).sum())} acknowledged points lost"
    vecs = np.stack([acked[i] for i in ids.tolist()])
    q = np.random.default_rng(11).normal(0, 1, (20, DIM)).astype(np.float32)
    got, _ = coll.search(q, k=10, exact=True)
    want = exact_top(vecs, ids, q, 10)
    assert (np.asarray(got) == want).all(), f"{label}: exact search differs from numpy"


def test_replicas_need_enough_nodes(env):
    p = cli("create", env["url"], "toomany", "--dim", DIM, "--replicas", 4, check=False)
    assert p.returncode != 0 and "4 replicas need 4 shard nodes" in p.stderr, p.stderr
    assert "toomany" not in cli("info", env["url"], "--json").stdout


def loaded(url, name, seed):
    """A collection of replicas 2 with 1,000 points, and a workload on it."""
    cli("create", url, name, "--dim", DIM, "--replicas", 2)
    db = omendb.connect(url)
    coll = db.collection(name)
    w = Workload(coll, 1000, seed)
    base = w.rng.normal(0, 1, (1000, DIM)).astype(np.float32)
    coll.add(base, ids=np.arange(1000, dtype=np.uint64))
    w.acked.update(zip(range(1000), base))
    return db, coll, w


def test_node_killed_costs_no_failed_call(env):
    d, url = env["dir"], env["url"]
    db, coll, w = loaded(url, "r2", 1)
    victim = "shard1"
    w.run_while(lambda: os.kill(nodes(d)[victim]["pid"], signal.SIGKILL), 4)
    assert not w.failures, f"{len(w.failures)} failed calls of {w.calls + len(w.failures)}: " + \
        "\n".join(w.failures[:5])
    assert w.partial == 0
    assert w.calls > 20
    check_all_acked(coll, w.acked, "after SIGKILL")
    # The dead node's copies left the copies in sync: check covers the others and passes.
    stale = [row for row in copies_of(d, "r2") if any(st == "stale" for _, st in row)]
    assert stale, copies_of(d, "r2")
    info = json.loads(cli("info", url, "r2", "--json").stdout)
    assert info["replicas"] == 2 and info["copies_stale"] == len(stale), (info, stale)
    p = cli("check", url, "r2", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    # The node comes back: its copies are made again from the primaries and join the copies
    # in sync; then every copy holds the same points (check compares them).
    run(CLUSTER, "start", victim, "--dir", d)
    wait_in_sync(d, "r2")
    assert coll.stats()["copies_stale"] == 0 and coll.stats()["replicas"] == 2
    p = cli("check", url, "r2", check=False)
    assert p.returncode == 0 and p.stdout.count("(tcp://") == 8, p.stdout + p.stderr
    check_all_acked(coll, w.acked, "after the node came back")
    db.close()


def test_node_paused_costs_no_failed_call(env):
    d, url = env["dir"], env["url"]
    db, coll, w = loaded(url, "p2", 2)
    victim = "shard2"
    pid = nodes(d)[victim]["pid"]
    try:
        w.run_while(lambda: os.kill(pid, signal.SIGSTOP), 6)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert not w.failures, f"{len(w.failures)} failed calls of {w.calls + len(w.failures)}: " + \
        "\n".join(w.failures[:5])
    assert w.partial == 0
    check_all_acked(coll, w.acked, "after SIGSTOP")
    wait_in_sync(d, "p2")  # the paused node's copies are made again once it answers
    assert cli("check", url, "p2", check=False).returncode == 0
    db.close()


def test_check_reports_copies_that_differ(env):
    """A copy changed behind the primary's back (a point deleted from it with the node stopped,
    through its embedded database) makes check fail and name the shard."""
    d, url = env["dir"], env["url"]
    cli("create", url, "c2", "--dim", DIM, "--replicas", 2)
    db = omendb.connect(url)
    coll = db.collection("c2")
    coll.add(np.ones((40, DIM), dtype=np.float32), ids=np.arange(40, dtype=np.uint64))
    wait_in_sync(d, "c2")
    p = cli("check", url, "c2", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("shard 0 (") == 2, p.stdout  # both copies of shard 0 reported
    units = sorted(d.rglob("c2@0"))
    assert len(units) == 2, units
    name = units[1].relative_to(d).parts[0]
    assert name in nodes(d), (name, units)
    run(CLUSTER, "stop", name, "--dir", d)
    cli("delete", units[1], "c2", *range(40))  # those of shard 0 go
    run(CLUSTER, "start", name, "--dir", d)
    p = cli("check", url, "c2", check=False)
    assert p.returncode != 0 and "copies differ" in p.stdout + p.stderr, p.stdout + p.stderr
    db.close()


def test_added_node_receives_copies(env):
    """A shard node added (ops/cluster add-shard) gets copies moved to it until every node holds
    about as many; nothing is lost and every copy is in sync after."""
    d, url = env["dir"], env["url"]
    db, coll, w = loaded(url, "s2", 4)
    run(CLUSTER, "add-shard", "--dir", d)
    t0 = time.time()
    while time.time() - t0 < 120:
        a = admin(d)
        shard_nodes = [n["id"] for n in a["nodes"] if n["role"] == "shard" and n["state"] == "up"]
        held = [sum(c["node"] == n for r in a["copies"] if r["collection"] == "s2"
                    for c in r["copies"]) for n in shard_nodes]
        if len(held) == 4 and a["balanced"] and min(held) > 0 and max(held) - min(held) <= 1:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"copies not spread: {admin(d)}")
    wait_in_sync(d, "s2")
    check_all_acked(coll, w.acked, "after copies moved to the new node")
    p = cli("check", url, "s2", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    db.close()


def test_drained_node_leaves_nothing(env):
    """ops/cluster drain: the node's copies move to the others, then it stops; nothing is
    lost, every copy is in sync, and no call fails meanwhile."""
    d, url = env["dir"], env["url"]
    db, coll, w = loaded(url, "d2", 5)
    victim = "shard0"
    done = []
    w.run_while(lambda: done.append(run(CLUSTER, "drain", victim, "--dir", d, timeout=300)), 1)
    assert done and done[0].stdout.strip() == victim, done
    assert not w.failures, f"{len(w.failures)} failed calls: " + "\n".join(w.failures[:5])
    a = admin(d)
    gone = next(n for n in a["nodes"] if n["addr"] == nodes(d)[victim]["url"])
    assert gone["draining"] and gone["copies"] == 0 and gone["shards"] == 0, gone
    assert not nodes(d)[victim]["up"]  # stopped
    for name in ("r2", "s2", "d2"):
        wait_in_sync(d, name)
        assert cli("check", url, name, check=False).returncode == 0, name
    check_all_acked(coll, w.acked, "after the drain")
    db.close()


def test_node_partitioned_costs_no_failed_call(tmp_path):
    """Every node in a network namespace of its own (ops/cluster --netns): a shard node cut
    off from every other node (blackholed both ways) costs no failed call either."""
    why = netns_usable()
    if why:
        pytest.skip(f"network namespaces unavailable: {why}")
    d = tmp_path / "nodes"
    url = run(CLUSTER, "up", "3", "--coordinators", "1", "--netns", "--dir", d, "--shards", 4
              ).stdout.strip()
    try:
        db, coll, w = loaded(url, "n2", 3)
        victim = "shard0"
        try:
            w.run_while(lambda: run(CLUSTER, "cut", victim, "--dir", d), 6)
        finally:
            run(CLUSTER, "heal", victim, "--dir", d)
        assert not w.failures, f"{len(w.failures)} failed calls: " + "\n".join(w.failures[:5])
        assert w.partial == 0
        check_all_acked(coll, w.acked, "after the partition")
        wait_in_sync(d, "n2")
        db.close()
    finally:
        run(CLUSTER, "down", "--dir", d, check=False)
