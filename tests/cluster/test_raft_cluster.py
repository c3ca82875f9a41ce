"""Cluster metadata on Raft: three coordinators (ops/cluster up 2 --coordinators 3) and two
shard nodes, driven through the CLI. A leader killed with SIGKILL is replaced within a few
election timeouts; metadata changes go through any coordinator; nothing acknowledged is lost;
searches through a follower go on while the leader is replaced; all coordinators restarted
keep the same metadata.

Environment: OMENDB_CLI (the omendb program), OMEN_NODE (omendb-node).
"""
import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from cluster_util import CLUSTER, cli, run

ELECTION_MS = 500


def status(d):
    """name -> (url, state, raft role) of every node."""
    out = {}
    for line in run(CLUSTER, "status", "--dir", d).stdout.splitlines():
        f = line.split()
        name = f[-1].split("=")[1]
        role = f[-2] if f[-2] in ("leader", "follower") else ""
        state = "up" if " up" in line else "down"
        out[name] = (f[1], state, role)
    return out


def leader(d):
    for name, (url, state, role) in status(d).items():
        if role == "leader":
            return name, url
    return None, None


def wait_leader(d, seconds=30, not_name=None):
    t0 = time.time()
    while time.time() - t0 < seconds:
        name, url = leader(d)
        if name and name != not_name:
            return name, url, time.time() - t0
        time.sleep(0.05)
    raise AssertionError("no leader elected")


def collections(url):
    return sorted(c["name"] for c in json.loads(cli("info", url, "--json").stdout)["collections"])


def _same(got, want, what):
    assert got == want, f"{what}: {got} != {want}"


def eventually(check, seconds=10):
    """A follower applies a committed change with the leader's next message: poll for it."""
    t0 = time.time()
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.time() - t0 > seconds:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("raft")
    d = tmp / "nodes"
    run(CLUSTER, "up", "2", "--coordinators", "3", "--dir", d, "--election-ms", ELECTION_MS,
        "--shards", 4)
    rng = np.random.default_rng(5)
    np.save(tmp / "v.npy", rng.normal(0, 1, (2000, 16)).astype(np.float32))
    yield {"dir": d, "tmp": tmp}
    run(CLUSTER, "down", "--dir", d, check=False)
    for log in d.glob("*.log"):
        text = log.read_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert bad not in text, f"{log.name}:\n{text[-4000:]}"


def coord_urls(d):
    return {n: s[0] for n, s in status(d).items() if n.startswith("coord") and s[1] == "up"}


def test_one_leader_two_followers(cluster):
    roles = sorted(s[2] for n, s in status(cluster["dir"]).items() if n.startswith("coord"))
    assert roles == ["follower", "follower", "leader"]


def test_metadata_through_any_coordinator(cluster):
    d = cluster["dir"]
    lname, _ = leader(d)
    follower = next(u for n, u in coord_urls(d).items() if n != lname)
    cli("create", follower, "docs", "--dim", 16)            # forwarded to the leader
    cli("load", follower, "docs", cluster["tmp"] / "v.npy")  # ids assigned by the leader
    for name, url in coord_urls(d).items():
        eventually(lambda: _same("docs" in collections(url), True, name))
        info = json.loads(cli("info", url, "docs", "--json").stdout)
        assert info["points"] == 2000 and info["next_id"] == 2000
    p = cli("create", follower, "docs", "--dim", 16, check=False)
    assert p.returncode == 1 and "exists" in p.stderr


def test_leader_killed_new_leader_nothing_lost(cluster):
    d = cluster["dir"]
    before = collections(coord_urls(d)[leader(d)[0]])
    old, _ = leader(d)
    run(CLUSTER, "kill", old, "--dir", d)
    name, url, took = wait_leader(d, not_name=old)
    assert took < 10 * ELECTION_MS / 1000, f"new leader after {took:.2f} s"
    cli("create", url, "after_failover", "--dim", 8)
    for n, u in coord_urls(d).items():
        eventually(lambda: _same(collections(u), sorted(before + ["after_failover"]), n))
    run(CLUSTER, "start", old, "--dir", d)
    t0 = time.time()
    while collections(coord_urls(d)[old]) != sorted(before + ["after_failover"]):
        assert time.time() - t0 < 10, "the restarted coordinator did not catch up"
        time.sleep(0.1)


def test_searches_go_on_while_the_leader_is_replaced(cluster):
    d = cluster["dir"]
    old, _ = leader(d)
    follower = next(u for n, u in coord_urls(d).items() if n != old)
    np.save(cluster["tmp"] / "q.npy", np.load(cluster["tmp"] / "v.npy")[:5])
    failures, done = [], [0]
    stop = threading.Event()

    def searcher():
        while not stop.is_set():
            p = cli("search", follower, "docs", cluster["tmp"] / "q.npy", "--k", 3, "--exact",
                    check=False)
            if p.returncode != 0:
                failures.append(p.stderr)
            done[0] += 1

    t = threading.Thread(target=searcher)
    t.start()
    try:
        time.sleep(0.5)
        run(CLUSTER, "kill", old, "--dir", d)
        wait_leader(d, not_name=old)
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
        run(CLUSTER, "start", old, "--dir", d)
    assert done[0] > 5 and not failures, failures[:3]


def transfer(http, to):
    req = urllib.request.Request(http + "/admin/leader", data=json.dumps({"to": to}).encode(),
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_leadership_transfer_for_maintenance(cluster):
    d = cluster["dir"]
    lines = run(CLUSTER, "status", "--dir", d).stdout.splitlines()
    http = {l.split()[-1].split("=")[1]: l.split()[2] for l in lines if l.startswith("coord")}
    old, _ = leader(d)
    target = next(n for n in sorted(http) if n != old)
    code, body = transfer(http[target], int(target[-1]) + 1)  # a follower refuses
    assert code == 409 and "is the leader" in body["error"]["message"]
    code, body = transfer(http[old], int(target[-1]) + 1)
    assert code == 200 and body["leader"] == int(target[-1]) + 1
    name, url, _ = wait_leader(d)
    assert name == target
    cli("create", url, "after_transfer", "--dim", 4)
    for n, u in coord_urls(d).items():
        eventually(lambda: _same("after_transfer" in collections(u), True, n))


def test_all_coordinators_restarted_same_metadata(cluster):
    d = cluster["dir"]
    url = next(iter(coord_urls(d).values()))
    want = collections(url)
    count = json.loads(cli("info", url, "docs", "--json").stdout)["points"]
    names = sorted(coord_urls(d))
    for n in names:
        run(CLUSTER, "stop", n, "--dir", d)
    for n in names:
        run(CLUSTER, "start", n, "--dir", d)
    wait_leader(d)
    for n, u in coord_urls(d).items():
        eventually(lambda: _same(collections(u), want, n))
        assert json.loads(cli("info", u, "docs", "--json").stdout)["points"] == count
    cli("create", url, "after_restart", "--dim", 4)  # metadata still changes
    assert "after_restart" in collections(url)


def test_coordinator_added_and_removed(cluster):
    """An operator adds a fourth coordinator (it catches up and serves), then removes the
    leader (the leadership is handed over first): the three left keep changing metadata, and
    keep doing so with one of them killed (a majority of the new group of three)."""
    d = cluster["dir"]
    before = collections(coord_urls(d)[leader(d)[0]])
    added = run(CLUSTER, "add-coordinator", "--dir", d).stdout.strip()
    url = coord_urls(d)[added]
    eventually(lambda: _same(collections(url), before, added))
    cli("search", url, "docs", cluster["tmp"] / "v.npy", "--k", 3)  # the new one serves
    old, _ = leader(d)
    run(CLUSTER, "remove-coordinator", old, "--dir", d)
    assert old not in status(d)
    name, lurl, _ = wait_leader(d, not_name=old)
    cli("create", lurl, "after_membership", "--dim", 4)
    for n, u in coord_urls(d).items():
        eventually(lambda: _same("after_membership" in collections(u), True, n))
    victim = next(n for n in coord_urls(d) if n != name)
    run(CLUSTER, "kill", victim, "--dir", d)
    cli("create", lurl, "after_kill", "--dim", 4)  # 2 of the 3 voters left
    run(CLUSTER, "start", victim, "--dir", d)
    eventually(lambda: _same("after_kill" in collections(coord_urls(d)[victim]), True, victim))
