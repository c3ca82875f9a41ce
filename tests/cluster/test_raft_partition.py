"""A network partition among three Raft coordinators, each in a network namespace of its own
(ops/cluster up 2 --coordinators 3 --netns): the coordinator cut off from the others cannot
change metadata, the majority can, and once the partition heals every coordinator agrees.
Needs root and `ip netns`; skipped (with the reason) where the machine allows neither.
"""
import json
import time

import pytest

from cluster_util import CLI, CLUSTER, netns_usable, run


def coordinators(d):
    """name -> (url, role) of the coordinators, role '' when it did not say."""
    out = {}
    for line in run(CLUSTER, "status", "--dir", d).stdout.splitlines():
        f = line.split()
        if f[0] == "coordinator":
            out[f[-1].split("=")[1]] = (f[1], f[-2] if f[-2] in ("leader", "follower") else "")
    return out


def collections(url):
    out = json.loads(run(CLI, "info", url, "--json").stdout)
    return sorted(c["name"] for c in out["collections"])


def wait_for(check, seconds=20):
    t0 = time.time()
    while not check():
        assert time.time() - t0 < seconds, "timed out"
        time.sleep(0.1)


@pytest.fixture()
def cluster(tmp_path):
    why = netns_usable()
    if why:
        pytest.skip(f"network namespaces unavailable: {why}")
    d = tmp_path / "nodes"
    run(CLUSTER, "up", "2", "--coordinators", "3", "--netns", "--dir", d, "--election-ms", 500)
    yield d
    run(CLUSTER, "down", "--dir", d, check=False)


def test_minority_cannot_change_metadata_majority_can_then_all_agree(cluster):
    d = cluster
    old = next(n for n, (u, r) in coordinators(d).items() if r == "leader")
    old_url = coordinators(d)[old][0]
    run(CLUSTER, "cut", old, "--dir", d)
    wait_for(lambda: any(r == "leader" for n, (u, r) in coordinators(d).items() if n != old))
    new_url = next(u for n, (u, r) in coordinators(d).items() if n != old and r == "leader")
    p = run(CLI, "create", old_url, "minority", "--dim", 4, check=False, timeout=60)
    assert p.returncode == 1, p.stdout
    run(CLI, "create", new_url, "majority", "--dim", 4)
    run(CLUSTER, "heal", old, "--dir", d)
    for name, (url, role) in coordinators(d).items():
        wait_for(lambda: collections(url) == ["majority"])
    roles = sorted(r for u, r in coordinators(d).values())
    assert roles.count("leader") == 1
