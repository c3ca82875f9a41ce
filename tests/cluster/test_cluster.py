"""Cluster integration tests: a coordinator and three shard nodes started by ops/cluster on
loopback, driven through the omendb CLI (the remote implementation of the public API) and
compared with one embedded database holding the same points.

Environment: OMENDB_CLI (the omendb program), OMEN_NODE (omendb-node), WIRE_PROBE (the
wire_probe program). Data: 100,000 clustered 32-d points (Gaussian mixture, fixed seed).
"""
import json
import os
import subprocess
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "ops", "cluster")
CLI = os.environ.get("OMENDB_CLI", os.path.join(ROOT, "build", "cli", "omendb"))
PROBE = os.environ.get("WIRE_PROBE", os.path.join(ROOT, "build", "tests", "wire_probe"))
N, DIM, NQ, K = 100_000, 32, 100, 10
MAX_MESSAGE = 8 << 20
DEADLINE_S = 5.0  # the coordinator's default deadline


def run(*args, check=True, timeout=300):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def cli(*args, **kw):
    return run(CLI, *args, **kw)


def clustered(n, dim, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (64, dim)).astype(np.float32)
    pick = rng.integers(0, 64, n)
    return (centres[pick] + rng.normal(0, 1, (n, dim))).astype(np.float32)


def search(db, queries, *extra):
    p = cli("search", db, "pts", queries, "--k", K, "--exact", "--json", *extra)
    out = json.loads(p.stdout)
    return [[(r["id"], r["distance"]) for r in row] for row in out["results"]], out, p


def same_results(a, b):
    assert len(a) == len(b)
    for qa, qb in zip(a, b):
        assert [i for i, _ in qa] == [i for i, _ in qb]
        for (_, da), (_, db) in zip(qa, qb):
            assert da == pytest.approx(db, rel=1e-6, abs=1e-6)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    data = clustered(N, DIM, 7)
    queries = data[np.random.default_rng(8).choice(N, NQ, replace=False)] + 0.05
    np.save(tmp / "data.npy", data)
    np.save(tmp / "queries.npy", queries.astype(np.float32))
    d = tmp / "nodes"
    url = run(CLUSTER, "up", "3", "--dir", d, "--max-message", MAX_MESSAGE).stdout.strip()
    assert url.startswith("tcp://127.0.0.1:")
    emb = tmp / "embedded.db"
    for db in (url, emb):
        cli("create", db, "pts", "--dim", DIM)
        cli("load", db, "pts", tmp / "data.npy")
    yield {"tmp": tmp, "dir": d, "url": url, "emb": emb, "data": data,
           "queries": tmp / "queries.npy"}
    run(CLUSTER, "down", "--dir", d, check=False)
    assert_clean_logs(d)


def assert_clean_logs(d):
    """Nodes built with sanitizers report there: any report fails the tests."""
    for log in d.glob("*.log"):
        text = log.read_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert bad not in text, f"{log.name}:\n{text[-4000:]}"


def status(env):
    lines = run(CLUSTER, "status", "--dir", env["dir"]).stdout.splitlines()
    return {l.split("name=")[1]: l for l in lines}


def test_status_lists_every_node(env):
    st = status(env)
    assert sorted(st) == ["coord0", "shard0", "shard1", "shard2"]
    for name, line in st.items():
        role = "coordinator" if name == "coord0" else "shard"
        assert line.startswith(role + " tcp://127.0.0.1:")
        assert " up " in line and "pid=" in line


def test_count_and_info(env):
    info = json.loads(cli("info", env["url"], "pts", "--json").stdout)
    assert info["points"] == N and info["dim"] == DIM and info["next_id"] == N


def test_exact_search_equals_embedded(env):
    remote, out, _ = search(env["url"], env["queries"])
    local, _, _ = search(env["emb"], env["queries"])
    same_results(remote, local)
    assert out["coverage"] == {"answered": 8, "total": 8}


def test_create_with_shards(env):
    """create --shards reaches the coordinator: a search covers that many logical shards, not
    the default 8."""
    url, queries = env["url"], env["queries"]
    cli("create", url, "three", "--dim", DIM, "--shards", 3)
    cli("load", url, "three", queries)
    p = cli("search", url, "three", queries, "--k", 1, "--exact", "--json")
    assert json.loads(p.stdout)["coverage"] == {"answered": 3, "total": 3}
    cli("drop", url, "three")


def test_get_through_coordinator(env):
    ids = [0, 1, 4242, N - 1]
    got = json.loads(cli("get", env["url"], "pts", *ids, "--json").stdout)["points"]
    for i, p in zip(ids, got):
        assert p["found"] and p["id"] == i
        assert np.allclose(p["vector"], env["data"][i])
    p = cli("get", env["url"], "pts", N + 5, check=False)
    assert p.returncode == 1


def test_upsert_and_delete_seen_by_next_search(env):
    q = np.load(env["queries"])[:1]
    np.save(env["tmp"] / "one.npy", q)
    new_id = 10_000_000
    cli("load", env["url"], "pts", env["tmp"] / "one.npy", "--start-id", new_id)
    res, _, _ = search(env["url"], env["tmp"] / "one.npy")
    assert res[0][0] == (new_id, 0.0)
    second = res[0][1][0]
    cli("delete", env["url"], "pts", new_id, second)
    res, _, _ = search(env["url"], env["tmp"] / "one.npy")
    ids = [i for i, _ in res[0]]
    assert new_id not in ids and second not in ids
    # The embedded copy gets the same changes, so the other tests can keep comparing.
    cli("delete", env["emb"], "pts", second)
    local, _, _ = search(env["emb"], env["tmp"] / "one.npy")
    same_results(res, local)


def test_killed_shard_gives_clear_error_then_recovers(env):
    before, _, _ = search(env["url"], env["queries"])
    run(CLUSTER, "kill", "shard1", "--dir", env["dir"])
    assert " down " in status(env)["shard1"]
    t0 = time.time()
    p = cli("search", env["url"], "pts", env["queries"], "--k", K, "--exact", check=False,
            timeout=60)
    took = time.time() - t0
    assert p.returncode == 1
    assert "shard" in p.stderr and ("did not answer" in p.stderr or "unavailable" in p.stderr)
    assert took < DEADLINE_S + 5, f"took {took:.1f} s"
    # Partial results: the logical shards on the two live nodes (5 of 8) answer.
    part, out, pp = search(env["url"], env["queries"], "--partial")
    assert out["coverage"]["total"] == 8 and out["coverage"]["answered"] == 5
    assert "partial results: 5 of 8" in pp.stderr
    for row_p, row_f in zip(part, before):
        dists = [d for _, d in row_p]
        assert dists == sorted(dists)
        full = {i for i, _ in row_f}
        kept = [i for i, _ in row_p if i in full]
        assert kept == [i for i, _ in row_f if i in set(kept)]  # same order as the full search
    run(CLUSTER, "start", "shard1", "--dir", env["dir"])
    after, out, _ = search(env["url"], env["queries"])
    same_results(after, before)
    assert out["coverage"] == {"answered": 8, "total": 8}
    local, _, _ = search(env["emb"], env["queries"])
    same_results(after, local)


def test_shard_killed_during_load_loses_no_acknowledged_batch(env):
    """Batches of 2,000 points go in one CLI call each while shard2 is killed with SIGKILL:
    every acknowledged batch is whole after the restart; a failed batch, retried, lands."""
    url, tmp = env["url"], env["tmp"]
    cli("create", url, "crash", "--dim", 8)
    rng = np.random.default_rng(3)
    batches = []
    for b in range(12):
        np.save(tmp / f"b{b}.npy", rng.normal(0, 1, (2000, 8)).astype(np.float32))
        batches.append(b * 2000)
    acked, failed = [], []
    procs = []
    for b, start in enumerate(batches):
        if b == 4:
            run(CLUSTER, "kill", "shard2", "--dir", env["dir"])
        p = cli("load", url, "crash", tmp / f"b{b}.npy", "--start-id", start, check=False,
                timeout=60)
        (acked if p.returncode == 0 else failed).append(b)
        procs.append(p)
    assert acked and failed, "the kill should fail some batches and not others"
    assert all("shard" in procs[b].stderr for b in failed)
    run(CLUSTER, "start", "shard2", "--dir", env["dir"])
    for b in acked:
        ids = list(range(batches[b], batches[b] + 2000, 97))
        got = json.loads(cli("get", url, "crash", *ids, "--json").stdout)["points"]
        assert all(p["found"] for p in got), f"batch {b} lost points"
    for b in failed:
        cli("load", url, "crash", tmp / f"b{b}.npy", "--start-id", batches[b])
    info = json.loads(cli("info", url, "crash", "--json").stdout)
    assert info["points"] == 12 * 2000


def test_hnsw_through_coordinator(env):
    """An index built through the coordinator on every shard: stats, check, and recall of
    the merged approximate results against exact search."""
    url = env["url"]
    cli("index", url, "pts", "--type", "hnsw")
    info = json.loads(cli("info", url, "pts", "--json").stdout)
    assert info["index"] == "hnsw" and info["indexed"] >= info["points"]
    assert info["hnsw_m"] == 16 and info["hnsw_ef_construction"] == 200
    report = cli("check", url, "pts").stdout
    assert report.count("shard ") == 8 and "0 live nodes unreachable" in report
    exact, _, _ = search(url, env["queries"])
    p = cli("search", url, "pts", env["queries"], "--k", K, "--ef", 64, "--json")
    approx = [[r["id"] for r in row] for row in json.loads(p.stdout)["results"]]
    hits = sum(len({i for i, _ in e} & set(a)) for e, a in zip(exact, approx))
    assert hits / (NQ * K) >= 0.95


def ivf_search(url, queries, *extra, check=True):
    """search --json, k 10, through the collection's index: (the ids, the JSON, the process)."""
    p = cli("search", url, "ivf", queries, "--k", K, "--json", *extra, check=check,
            timeout=60)
    if p.returncode != 0:
        return None, None, p
    out = json.loads(p.stdout)
    return np.array([[r["id"] for r in row] for row in out["results"]]), out, p


def test_ivf_through_coordinator(env):
    """Each of the 8 logical shards builds its own IVF index over its own points (32,000
    clustered points, about 4,000 a shard): info and check show IVF on every shard; recall
    at the default and at an explicit nprobe against numpy brute force; bad parameters change
    nothing; a killed node fails the search as for exact search, --partial answers from the
    others, and the node started again serves its shards' indexes."""
    url, tmp = env["url"], env["tmp"]
    n = 32_000
    data = clustered(n, DIM, 21)
    queries = data[np.random.default_rng(22).choice(n, NQ, replace=False)] + 0.05
    np.save(tmp / "ivf.npy", data)
    np.save(tmp / "ivf_q.npy", queries.astype(np.float32))
    cli("create", url, "ivf", "--dim", DIM)
    cli("load", url, "ivf", tmp / "ivf.npy")
    out = cli("index", url, "ivf", "--type", "ivf").stdout
    assert out.startswith("indexed ivf: ivf nlist=") and f"over {n} points" in out, out
    info = json.loads(cli("info", url, "ivf", "--json").stdout)
    assert info["index"] == "ivf" and info["indexed"] == n and info["ivf_bits"] == 1
    nlist, nprobe = info["ivf_nlist"], info["ivf_nprobe"]
    assert 1 <= nprobe <= nlist
    report = cli("check", url, "ivf").stdout
    assert report.count("shard ") == 8 and report.count("ivf: ") == 8, report
    q64, x64 = queries.astype(np.float64), data.astype(np.float64)
    d = (q64 ** 2).sum(1)[:, None] - 2 * q64 @ x64.T + (x64 ** 2).sum(1)[None, :]
    truth = np.argsort(d, axis=1, kind="stable")[:, :K]

    def recall(ids):
        return sum(len(set(t) & set(i)) for t, i in zip(truth.tolist(), ids.tolist())) / truth.size

    qf = tmp / "ivf_q.npy"
    base, _, _ = ivf_search(url, qf)
    assert recall(base) >= 0.9, recall(base)
    for given in (nprobe, nlist):  # every shard accepts the smallest shard's nlist
        ids, _, _ = ivf_search(url, qf, "--nprobe", given)
        assert recall(ids) >= 0.9, (given, recall(ids))
    one, _, _ = ivf_search(url, qf, "--nprobe", 1)
    assert recall(one) < recall(ids)
    _, _, p = ivf_search(url, qf, "--nprobe", 65536, check=False)
    assert p.returncode == 1 and "shard" in p.stderr and "exceeds" in p.stderr, p.stderr
    p = cli("index", url, "ivf", "--type", "ivf", "--nlist", 6000, check=False)
    assert p.returncode == 1 and "no shard was changed" in p.stderr, p.stderr
    assert "nlist 6000 exceeds the live points" in p.stderr
    assert json.loads(cli("info", url, "ivf", "--json").stdout) == info
    # A killed node: as for exact search (test_killed_shard_gives_clear_error_then_recovers)
    run(CLUSTER, "kill", "shard1", "--dir", env["dir"])
    try:
        _, _, p = ivf_search(url, qf, check=False)
        assert p.returncode == 1 and "shard" in p.stderr
        assert "did not answer" in p.stderr or "unavailable" in p.stderr, p.stderr
        part, out, pp = ivf_search(url, qf, "--partial")
        assert out["coverage"] == {"answered": 5, "total": 8}
        assert "partial results: 5 of 8" in pp.stderr
        for row_p, row_f in zip(part.tolist(), base.tolist()):
            kept = [i for i in row_p if i in row_f]
            assert kept == [i for i in row_f if i in kept]  # same order as the full search
        assert recall(part) < recall(base)
    finally:
        run(CLUSTER, "start", "shard1", "--dir", env["dir"])
    after, out, _ = ivf_search(url, qf)
    assert out["coverage"] == {"answered": 8, "total": 8}
    assert np.array_equal(after, base)


def test_sigterm_lets_the_request_in_flight_finish(env):
    """An index build through the coordinator is running when the coordinator gets SIGTERM:
    the build still completes and is acknowledged, then the coordinator exits cleanly."""
    url, d = env["url"], env["dir"]
    cli("create", url, "drain", "--dim", 16)
    np.save(env["tmp"] / "drain.npy", clustered(40_000, 16, 11))
    cli("load", url, "drain", env["tmp"] / "drain.npy")
    build = subprocess.Popen([CLI, "index", url, "drain", "--type", "hnsw", "--m", "32",
                              "--ef-construction", "400"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    try:
        assert build.poll() is None, "the build should still be running"
        run(CLUSTER, "stop", "coord0", "--dir", d)
        out, err = build.communicate(timeout=300)
        # The build's reply arrives; the CLI's next call (statistics, for its report) reaches
        # a coordinator that takes no new request and may find the connection closed.
        assert build.returncode == 0 or "statistics" in err, err
        log = (d / "coord0.log").read_text()
        assert "stopping" in log and log.rstrip().endswith("stopped")
    finally:
        build.kill()
        run(CLUSTER, "start", "coord0", "--dir", d)
    info = json.loads(cli("info", url, "drain", "--json").stdout)
    assert info["index"] == "hnsw" and info["indexed"] == 40_000


def test_protocol_hostile_messages(env):
    for name, line in status(env).items():
        addr = line.split()[1]
        p = run(PROBE, addr, MAX_MESSAGE, check=False, timeout=120)
        assert p.returncode == 0, f"{name}:\n{p.stdout}\n{p.stderr}"
        assert "0 failures" in p.stdout


def test_errors_through_coordinator(env):
    url = env["url"]
    p = cli("create", url, "pts", "--dim", DIM, check=False)
    assert p.returncode == 1 and "exists" in p.stderr
    p = cli("search", url, "nope", env["queries"], "--k", 3, check=False)
    assert p.returncode == 1 and "nope" in p.stderr
    np.save(env["tmp"] / "d7.npy", np.ones((2, 7), np.float32))
    p = cli("load", url, "pts", env["tmp"] / "d7.npy", check=False)
    assert p.returncode == 1 and "dimension" in p.stderr
    p = cli("search", url, "pts", env["queries"], "--k", 10, "--filter", "{\"$bad\": 1}",
            check=False)
    assert p.returncode == 1
    cli("create", url, "gone", "--dim", 3)
    cli("drop", url, "gone")
    names = [c["name"] for c in json.loads(cli("info", url, "--json").stdout)["collections"]]
    assert "gone" not in names and "pts" in names
    p = cli("get", url, "gone", 1, check=False)
    assert p.returncode == 1 and "gone" in p.stderr
    info = json.loads(cli("info", url, "pts", "--json").stdout)
    local = json.loads(cli("info", env["emb"], "pts", "--json").stdout)
    assert info["points"] == local["points"]  # nothing written by the refused calls


def test_token_required_on_the_nng_endpoint(tmp_path):
    """With a token configured, calls without it or with another are refused (OMEN_EAUTH) by the
    coordinator and by the shard nodes; the CLI passes $OMENDB_TOKEN."""
    d = tmp_path / "secure"
    url = run(CLUSTER, "up", "1", "--dir", d, "--token", "s3cret",
              "--max-message", MAX_MESSAGE).stdout.strip()
    try:
        for token, ok in ((None, False), ("wrong", False), ("s3cret", True)):
            env = dict(os.environ)
            env.pop("OMENDB_TOKEN", None)
            if token:
                env["OMENDB_TOKEN"] = token
            p = subprocess.run([CLI, "create", url, f"c_{token}", "--dim", "2"], env=env,
                               capture_output=True, text=True, timeout=60)
            assert (p.returncode == 0) == ok, p.stderr
            if not ok:
                assert "token" in p.stderr
        for line in run(CLUSTER, "status", "--dir", d).stdout.splitlines():
            p = run(PROBE, line.split()[1], MAX_MESSAGE, "s3cret", check=False, timeout=120)
            assert p.returncode == 0 and "no token" in p.stdout, p.stdout + p.stderr
    finally:
        run(CLUSTER, "down", "--dir", d, check=False)


def test_clean_shutdown(env, tmp_path):
    d = tmp_path / "c2"
    url = run(CLUSTER, "up", "1", "--dir", d).stdout.strip()
    cli("create", url, "x", "--dim", 2)
    run(CLUSTER, "down", "--dir", d)
    for name in ("coord0", "shard0"):
        log = (d / f"{name}.log").read_text()
        assert "stopped" in log, log
    assert_clean_logs(d)
    assert all(" down " in l for l in run(CLUSTER, "status", "--dir", d).stdout.splitlines())
