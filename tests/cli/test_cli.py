"""Contract tests of the omendb command-line tool (docs/CLI.md).

The binary comes from the environment variable OMENDB_CLI (meson sets it for the `cli` test).
Each test builds its databases under pytest's tmp_path. Results are checked against numpy:
stored vectors through `get --json`, searches against brute force, and every kind of bad input
against an unchanged database (`info --json` and a search result compared before and after).
"""
import json
import os
import re
import subprocess

import numpy as np
import pytest

CLI = os.environ.get("OMENDB_CLI")
DIM = 8
RNG_SEED = 20240601


@pytest.fixture(scope="session", autouse=True)
def _cli_binary():
    if not CLI or not os.access(CLI, os.X_OK):
        pytest.fail("set OMENDB_CLI to the omendb executable (meson test does)")


# ---- running the tool ----


SANITIZER_REPORT = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:")


def run(*args, **kw):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=120,
                       **kw)
    assert not SANITIZER_REPORT.search(r.stderr), r.stderr
    return r


def ok(*args):
    r = run(*args)
    assert r.returncode == 0, f"{args}: rc {r.returncode}\n{r.stderr}"
    return r.stdout


def fail(*args, status=None, match=None):
    """Runs a command that must fail; returns its stderr."""
    r = run(*args)
    if status is None:
        assert r.returncode != 0, f"{args} succeeded:\n{r.stdout}"
    else:
        assert r.returncode == status, f"{args}: rc {r.returncode}, want {status}\n{r.stderr}"
    assert r.stderr.startswith("omendb: "), r.stderr
    if match:
        assert re.search(match, r.stderr, re.I), r.stderr
    return r.stderr


def info_json(db, coll=None):
    return json.loads(ok("info", db, *([coll] if coll else []), "--json"))


def get_json(db, coll, ids):
    out = json.loads(ok("get", db, coll, *ids, "--json"))
    return out["points"]


def get_vectors(db, coll, ids):
    pts = get_json(db, coll, ids)
    assert all(p["found"] for p in pts)
    return np.array([p["vector"] for p in pts], dtype=np.float32)


# ---- files ----


def write_fvecs(path, a):
    a = np.asarray(a, dtype=np.float32)
    rec = np.empty((a.shape[0], a.shape[1] + 1), dtype=np.float32)
    rec[:, 0] = np.array([a.shape[1]], dtype=np.int32).view(np.float32)[0]
    rec[:, 1:] = a
    rec.astype("<f4").tofile(path)
    return path


def write_bvecs(path, a):
    a = np.asarray(a, dtype=np.uint8)
    with open(path, "wb") as f:
        for row in a:
            f.write(np.int32(a.shape[1]).astype("<i4").tobytes())
            f.write(row.tobytes())
    return path


def write_npy(path, a, version=None):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.asarray(a), version=version)
    return path


def write_csv(path, a, trailer="\n"):
    lines = [",".join("%.9g" % v for v in row) for row in np.asarray(a, dtype=np.float32)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + trailer)
    return path


def read_ivecs(path):
    raw = np.fromfile(path, dtype="<i4")
    k = raw[0]
    return raw.reshape(-1, k + 1)[:, 1:]


def rand(n, dim=DIM, seed=0):
    return np.random.default_rng(RNG_SEED + seed).random((n, dim), dtype=np.float32)


def brute_force(data, queries, k, metric, ids=None):
    """Top-k ids and distances by numpy, as the library defines the metrics."""
    x = data.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "l2":
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    elif metric == "ip":
        d = -(q @ x.T)
    else:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1 - qn @ xn.T
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    ids = np.arange(len(data)) if ids is None else np.asarray(ids)
    return ids[order], np.take_along_axis(d, order, axis=1)


# ---- fixtures ----


@pytest.fixture
def db(tmp_path):
    """A database with collection 'c' (dim 8, l2) holding ids 0..199."""
    path = tmp_path / "db"
    ok("create", path, "c", "--dim", DIM)
    ok("load", path, "c", write_fvecs(tmp_path / "base.fvecs", rand(200)))
    return path


def snapshot(db, tmp_path):
    """What must not change when a command fails: info and a search result."""
    q = tmp_path / "snapq.fvecs"
    if not q.exists():
        write_fvecs(q, rand(3, seed=99))
    return info_json(db), ok("search", db, "c", q, "--k", 5)


# ---- help, version, usage ----


COMMANDS = ["create", "load", "search", "get", "delete", "index", "check", "info", "drop"]


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0
    for c in COMMANDS:
        assert c in r.stdout
    for c in COMMANDS:
        r = run(c, "--help")
        assert r.returncode == 0 and r.stdout.startswith("usage: omendb " + c), r.stdout
    for opt in ["--ef", "--nprobe", "--exact"]:
        assert opt in ok("search", "--help")
    for opt in ["--shards S", "--replicas R"]:
        assert opt in ok("create", "--help") and opt in ok("--help")
    for opt in ["--type", "--m", "--ef-construction", "--threads", "--nlist", "--bits",
                "--ram-budget", "ivf"]:
        assert opt in ok("index", "--help")
    r = run("--version")
    assert r.returncode == 0 and re.fullmatch(r"omendb \d+\.\d+\.\d+\n", r.stdout)


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["create", "{db}", "c"],
    ["create", "{db}", "c", "--dim", "0"],
    ["create", "{db}", "c", "--dim", "-5"],
    ["create", "{db}", "c", "--dim", "abc"],
    ["create", "{db}", "c", "--dim", "12x"],
    ["create", "{db}", "c", "--dim", " 12"],
    ["create", "{db}", "c", "--dim", "16385"],
    ["create", "{db}", "c", "--dim", "8", "--metric", "hamming"],
    ["create", "{db}", "c", "--dim", "8", "--bogus"],
    ["create", "{db}", "c", "--dim", "8", "--shards", "0"],
    ["create", "{db}", "c", "--dim", "8", "--shards", "-2"],
    ["create", "{db}", "c", "--dim", "8", "--shards", "4097"],
    ["create", "{db}", "c", "--dim", "8", "--shards", "two"],
    ["create", "{db}", "c", "--dim", "8", "--shards"],
    ["create", "{db}", "c", "--dim", "8", "--replicas", "0"],
    ["create", "{db}", "c", "--dim", "8", "--replicas", "6"],
    ["create", "{db}", "c", "--dim", "8", "--replicas", "-1"],
    ["create", "{db}", "c", "--dim", "8", "--replicas", "three"],
    ["create", "{db}", "c", "--dim", "8", "--replicas", "2.0"],
    ["create", "{db}"],
    ["load", "{db}", "c"],
    ["load", "{db}", "c", "f.fvecs", "--batch", "0"],
    ["load", "{db}", "c", "f.fvecs", "--start-id", "x"],
    ["load", "{db}", "c", "f.fvecs", "--start-id", "-1"],
    ["search", "{db}", "c", "q.fvecs"],
    ["search", "{db}", "c", "q.fvecs", "--k", "abc"],
    ["search", "{db}", "c", "q.fvecs", "--k", "-1"],
    ["search", "{db}", "c", "q.fvecs", "--k", "5", "--threads", "two"],
    ["search", "{db}", "c", "q.fvecs", "--k", "5", "--ef", "abc"],
    ["search", "{db}", "c", "q.fvecs", "--k", "5", "--ef", "-1"],
    ["search", "{db}", "c", "q.fvecs", "--k", "5", "--exact=1"],
    ["search", "{db}", "c", "q.fvecs", "--k", "5", "--nprobe", "abc"],
    ["search", "{db}", "c", "q.fvecs", "--k", "5", "--nprobe", "-1"],
    ["search", "{db}", "c", "q.fvecs", "--k", "5", "--nprobe", "0"],
    ["get", "{db}", "c"],
    ["get", "{db}", "c", "1x"],
    ["get", "{db}", "c", "18446744073709551615"],
    ["delete", "{db}", "c", "abc"],
    ["index", "{db}"],
    ["index", "{db}", "c", "d"],
    ["index", "{db}", "c", "--type", "bogus"],
    ["index", "{db}", "c", "--m", "abc"],
    ["index", "{db}", "c", "--m", "-1"],
    ["index", "{db}", "c", "--m", "4294967296"],
    ["index", "{db}", "c", "--ef-construction", "1.5"],
    ["index", "{db}", "c", "--threads", "x"],
    ["index", "{db}", "c", "--ef", "64"],
    ["index", "{db}", "c", "--type", "ivf", "--nlist", "x"],
    ["index", "{db}", "c", "--type", "ivf", "--nlist", "-1"],
    ["index", "{db}", "c", "--type", "ivf", "--nlist", "0"],
    ["index", "{db}", "c", "--type", "ivf", "--nlist", "4294967296"],
    ["index", "{db}", "c", "--type", "ivf", "--bits", "1.0"],
    ["index", "{db}", "c", "--ram-budget", "1G"],
    ["index", "{db}", "c", "--ram-budget", "-1"],
    ["index", "{db}", "c", "--nprobe", "4"],
    ["check", "{db}"],
    ["check", "{db}", "c", "--m", "4"],
    ["info"],
    ["info", "{db}", "c", "d"],
    ["drop", "{db}"],
])
def test_usage_errors(tmp_path, args):
    dbp = tmp_path / "db"
    r = run(*[a.format(db=dbp) for a in args])
    assert r.returncode == 2, r
    assert r.stderr.startswith("omendb: ") and "usage:" in r.stderr
    assert r.stdout == ""
    assert not dbp.exists()


# ---- create, info, drop ----


def test_create_info_drop(tmp_path):
    dbp = tmp_path / "db"
    for name, metric in [("a", "l2"), ("b", "ip"), ("c", "cosine")]:
        out = ok("create", dbp, name, "--dim", 4, "--metric", metric)
        assert name in out
    ok("create", dbp, "d", "--dim", 16384)
    info = info_json(dbp)
    assert info["file_bytes"] > 0
    colls = {c["name"]: c for c in info["collections"]}
    assert sorted(colls) == ["a", "b", "c", "d"]
    assert [colls[n]["metric"] for n in "abc"] == ["l2", "ip", "cosine"]
    assert colls["d"]["dim"] == 16384 and colls["a"]["points"] == 0
    one = info_json(dbp, "b")
    assert one["name"] == "b" and one["dim"] == 4 and one["points"] == 0
    text = ok("info", dbp).splitlines()
    assert len(text) == 4 and text[0].startswith("a: dim 4, metric l2, points 0")
    assert "index" in text[0] and "segments" in text[0] and "vector bytes" in text[0]
    assert ok("info", dbp, "c").startswith("c: dim 4, metric cosine")
    fail("create", dbp, "a", "--dim", 4, status=1)  # exists
    fail("create", dbp, "bad/name", "--dim", 4, status=1)
    assert "dropped" in ok("drop", dbp, "b")
    assert [c["name"] for c in info_json(dbp)["collections"]] == ["a", "c", "d"]
    fail("drop", dbp, "b", status=1)
    fail("info", dbp, "b", status=1)


def test_create_layout_on_a_directory(tmp_path):
    """--shards and --replicas lay out a cluster's collection: out of range they are usage
    errors naming the range; on a database directory 1 is accepted and more is the library's
    refusal, which creates no collection."""
    dbp = tmp_path / "db"
    fail("create", dbp, "c", "--dim", 4, "--replicas", 6, status=2,
         match=r"--replicas: '6' is not an integer in 1\.\.5")
    fail("create", dbp, "c", "--dim", 4, "--shards", 0, status=2,
         match=r"--shards: '0' is not an integer in 1\.\.4096")
    ok("create", dbp, "one", "--dim", 4, "--shards", 1, "--replicas", 1)
    fail("create", dbp, "c", "--dim", 4, "--shards", 4, status=1,
         match=r"create collection 'c': .*shards and replicas apply to a cluster.*shards, got 4")
    fail("create", dbp, "c", "--dim", 4, "--replicas=2", status=1,
         match=r"shards and replicas apply to a cluster.*replicas, got 2")
    assert [c["name"] for c in info_json(dbp)["collections"]] == ["one"]


def test_commands_on_missing_db(tmp_path):
    missing = tmp_path / "nope"
    q = write_fvecs(tmp_path / "q.fvecs", rand(2))
    for args in [("info", missing), ("info", missing, "c"), ("get", missing, "c", 1),
                 ("delete", missing, "c", 1), ("drop", missing, "c"),
                 ("index", missing, "c"), ("check", missing, "c"),
                 ("load", missing, "c", q), ("search", missing, "c", q, "--k", 1)]:
        fail(*args, status=1)
    assert not missing.exists()


# ---- load ----


LOADED = re.compile(r"loaded (\d+) vectors into (\S+) \(ids (\d+)\.\.(\d+)\) in [\d.]+ s, "
                    r"\d+ vectors/s\n")


def load(*args):
    out = ok("load", *args)
    m = LOADED.fullmatch(out)
    assert m, out
    return int(m[1]), int(m[3]), int(m[4])


def test_load_ids_in_file_order(tmp_path):
    dbp = tmp_path / "db"
    ok("create", dbp, "c", "--dim", DIM)
    a, b, c = rand(30, seed=1), rand(20, seed=2), rand(5, seed=3)
    assert load(dbp, "c", write_fvecs(tmp_path / "a.fvecs", a), "--batch", 7) == (30, 0, 29)
    assert load(dbp, "c", write_fvecs(tmp_path / "b.fvecs", b)) == (20, 30, 49)
    assert load(dbp, "c", write_fvecs(tmp_path / "c.fvecs", c), "--start-id=1000") == \
        (5, 1000, 1004)
    assert load(dbp, "c", tmp_path / "a.fvecs", "--relaxed", "--batch", 30) == (30, 1005, 1034)
    assert info_json(dbp, "c")["points"] == 85
    assert np.array_equal(get_vectors(dbp, "c", range(30)), a)
    assert np.array_equal(get_vectors(dbp, "c", range(30, 50)), b)
    assert np.array_equal(get_vectors(dbp, "c", range(1000, 1005)), c)
    assert np.array_equal(get_vectors(dbp, "c", range(1005, 1035)), a)
    # --start-id over existing ids replaces them
    assert load(dbp, "c", tmp_path / "c.fvecs", "--start-id", 0) == (5, 0, 4)
    assert np.array_equal(get_vectors(dbp, "c", range(5)), c)
    assert info_json(dbp, "c")["points"] == 85


def test_formats_store_the_same_vectors(tmp_path):
    dbp = tmp_path / "db"
    floats = rand(40, seed=4)
    ints = np.random.default_rng(5).integers(0, 256, (40, DIM)).astype(np.uint8)
    files = {
        "f_fvecs": (write_fvecs(tmp_path / "f.fvecs", floats), floats),
        "f_npy1": (write_npy(tmp_path / "f1.npy", floats, (1, 0)), floats),
        "f_npy2": (write_npy(tmp_path / "f2.npy", floats, (2, 0)), floats),
        "f_npy3": (write_npy(tmp_path / "f3.npy", floats, (3, 0)), floats),
        "f_csv": (write_csv(tmp_path / "f.csv", floats), floats),
        "i_bvecs": (write_bvecs(tmp_path / "i.bvecs", ints), ints),
        "i_fvecs": (write_fvecs(tmp_path / "i.fvecs", ints), ints),
        "i_npy": (write_npy(tmp_path / "i.npy", ints.astype(np.float32)), ints),
        "i_csv": (write_csv(tmp_path / "i.csv", ints, trailer=""), ints),
    }
    for name, (path, data) in files.items():
        ok("create", dbp, name, "--dim", DIM)
        assert load(dbp, name, path) == (40, 0, 39)
        got = get_vectors(dbp, name, range(40))
        assert np.array_equal(got, data.astype(np.float32)), name


def test_csv_blank_lines_and_npy_single_vector(tmp_path):
    dbp = tmp_path / "db"
    ok("create", dbp, "c", "--dim", 3)
    csv = tmp_path / "v.csv"
    csv.write_text("\n1,2,3\r\n\n  4.5 , -6e-1,7\n   \n8,9,10\n\n")
    assert load(dbp, "c", csv) == (3, 0, 2)
    want = np.array([[1, 2, 3], [4.5, -0.6, 7], [8, 9, 10]], dtype=np.float32)
    assert np.array_equal(get_vectors(dbp, "c", range(3)), want)
    one = write_npy(tmp_path / "one.npy", np.array([1, 2, 3], dtype="<f4"))
    assert load(dbp, "c", one) == (1, 3, 3)
    assert np.array_equal(get_vectors(dbp, "c", [3]), want[:1])


def run_on_terminal(*args):
    """Runs the tool with stderr on a pseudo-terminal; returns (status, stdout, stderr bytes)."""
    master, slave = os.openpty()
    try:
        p = subprocess.run([CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=slave,
                           timeout=60)
        os.close(slave)
        slave = None
        err = b""
        try:
            while chunk := os.read(master, 4096):
                err += chunk
        except OSError:
            pass
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return p.returncode, p.stdout.decode(), err


def test_progress_bar_only_on_a_terminal(tmp_path, db):
    f = write_fvecs(tmp_path / "p.fvecs", rand(50, seed=6))
    r = run("load", db, "c", f, "--batch", 10)
    assert r.returncode == 0 and r.stderr == ""
    status, out, err = run_on_terminal("load", db, "c", f, "--batch", 10)
    assert status == 0
    assert b"100.0%" in err and b"vectors/s" in err and b"ETA" in err, err
    assert LOADED.fullmatch(out)


# ---- search ----


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_search_matches_brute_force(tmp_path, metric):
    dbp = tmp_path / "db"
    data, queries = rand(300, 12, seed=7), rand(20, 12, seed=8) - 0.5
    k = 10
    ok("create", dbp, "c", "--dim", 12, "--metric", metric)
    load(dbp, "c", write_npy(tmp_path / "d.npy", data), "--batch", 64)
    qf = write_fvecs(tmp_path / "q.fvecs", queries)
    want_ids, want_d = brute_force(data, queries, k, metric)

    out = ok("search", dbp, "c", qf, "--k", k, "--out", tmp_path / "r.ivecs", "--threads", 2)
    assert "queries/s" in out
    got = read_ivecs(tmp_path / "r.ivecs")
    assert got.shape == (20, k)
    assert np.array_equal(got, want_ids)

    lines = ok("search", dbp, "c", qf, "--k", k).splitlines()
    assert len(lines) == 20
    for qi, line in enumerate(lines):
        head, *pairs = line.split(" ")
        assert head == f"{qi}:"
        ids = [int(p.split(":")[0]) for p in pairs]
        dists = [float(p.split(":")[1]) for p in pairs]
        assert ids == list(want_ids[qi])
        assert np.allclose(dists, want_d[qi], rtol=1e-3, atol=1e-4)

    res = json.loads(ok("search", dbp, "c", qf, "--k", k, "--json"))["results"]
    assert [[e["id"] for e in row] for row in res] == want_ids.tolist()
    assert np.allclose([[e["distance"] for e in row] for row in res], want_d,
                       rtol=1e-4, atol=1e-5)


def test_search_json_fields(tmp_path, db):
    qf = write_csv(tmp_path / "q.csv", rand(7, seed=9))
    out = run("search", db, "c", qf, "--k", 3, "--json")
    assert out.returncode == 0
    obj = json.loads(out.stdout)  # exactly one JSON document
    assert obj["queries"] == 7 and obj["k"] == 3
    assert obj["seconds"] > 0
    assert obj["qps"] == pytest.approx(obj["queries"] / obj["seconds"], rel=1e-6)
    assert len(obj["results"]) == 7 and all(len(r) == 3 for r in obj["results"])
    big = write_fvecs(tmp_path / "big.fvecs", rand(101, seed=10))
    obj = json.loads(ok("search", db, "c", big, "--k", 2, "--json", "--out", tmp_path / "o.ivecs"))
    assert obj["queries"] == 101 and "results" not in obj
    assert read_ivecs(tmp_path / "o.ivecs").shape == (101, 2)


def test_search_ids_beyond_ivecs(tmp_path, db):
    load(db, "c", write_fvecs(tmp_path / "x.fvecs", np.zeros((1, DIM)) + 0.5),
         "--start-id", 3_000_000_000)
    q = write_fvecs(tmp_path / "q.fvecs", np.zeros((1, DIM)) + 0.5)
    out = tmp_path / "r.ivecs"
    fail("search", db, "c", q, "--k", 1, "--out", out, status=1, match="ivecs")
    assert not out.exists()
    res = json.loads(ok("search", db, "c", q, "--k", 1, "--json"))["results"]
    assert res[0][0]["id"] == 3_000_000_000


def test_filter_with_metadata(tmp_path):
    dbp = tmp_path / "db"
    data = rand(120, seed=11)
    colors = ["red", "blue", "green"]
    lines, red = [], []
    for i in range(120):
        if i % 10 == 9:
            lines.append("" if i % 20 == 9 else "null")
        else:
            lines.append(json.dumps({"color": colors[i % 3], "n": i, "even": i % 2 == 0}))
            red += [i] if i % 3 == 0 else []
    meta = tmp_path / "m.jsonl"
    meta.write_text("\n".join(lines) + "\n")
    ok("create", dbp, "c", "--dim", DIM)
    load(dbp, "c", write_fvecs(tmp_path / "d.fvecs", data), "--metadata", meta, "--batch", 50)
    pts = get_json(dbp, "c", [0, 1, 9, 19])
    assert pts[0]["metadata"] == {"color": "red", "n": 0, "even": True}
    assert pts[1]["metadata"]["color"] == "blue"
    assert pts[2]["metadata"] is None and pts[3]["metadata"] is None
    assert '"color": "red"' in ok("get", dbp, "c", 0) or '"color":"red"' in ok("get", dbp, "c", 0)

    queries = rand(5, seed=12)
    qf = write_fvecs(tmp_path / "q.fvecs", queries)
    want, _ = brute_force(data[red], queries, 5, "l2", ids=red)
    res = json.loads(ok("search", dbp, "c", qf, "--k", 5, "--json",
                        "--filter", '{"color": "red"}'))["results"]
    assert [[e["id"] for e in row] for row in res] == want.tolist()
    # a filter matching fewer than k points: short rows in JSON, -1 padding in ivecs
    flt = '{"n": {"$lt": 2}}'
    res = json.loads(ok("search", dbp, "c", qf, "--k", 5, "--json", "--filter", flt))
    assert all(sorted(e["id"] for e in row) == [0, 1] for row in res["results"])
    ok("search", dbp, "c", qf, "--k", 5, "--filter", flt, "--out", tmp_path / "f.ivecs")
    got = read_ivecs(tmp_path / "f.ivecs")
    assert (got[:, 2:] == -1).all() and (np.sort(got[:, :2], axis=1) == [0, 1]).all()


# ---- get and delete ----


def test_get_text_and_not_found(tmp_path):
    dbp = tmp_path / "db"
    ok("create", dbp, "long", "--dim", 10)
    ok("create", dbp, "short", "--dim", 3)
    load(dbp, "long", write_csv(tmp_path / "l.csv", np.arange(20).reshape(2, 10)))
    load(dbp, "short", write_csv(tmp_path / "s.csv", [[1, 2, 3]]))
    out = ok("get", dbp, "long", 1)
    assert out == "1: [10, 11, 12, 13, 14, 15, 16, 17, ...] null\n"
    assert ok("get", dbp, "short", 0) == "0: [1, 2, 3] null\n"
    r = run("get", dbp, "long", 0, 7, 1)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[1] == "7: not found" and lines[0].startswith("0: [0, 1,")
    r = run("get", dbp, "long", 7, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["points"] == [{"id": 7, "found": False}]
    full = get_json(dbp, "long", [1])[0]["vector"]
    assert full == list(range(10, 20))


def test_delete(tmp_path, db):
    qf = write_fvecs(tmp_path / "q.fvecs", rand(1, seed=0)[:1] + 1e-3)  # nearest is id 0
    first = json.loads(ok("search", db, "c", qf, "--k", 3, "--json"))["results"][0]
    assert first[0]["id"] == 0
    victims = [e["id"] for e in first[:2]]
    assert ok("delete", db, "c", *victims, 100000) == "deleted 2 of 3\n"
    after = json.loads(ok("search", db, "c", qf, "--k", 3, "--json"))["results"][0]
    assert not set(victims) & {e["id"] for e in after}
    assert after[0]["id"] == first[2]["id"]
    assert info_json(db, "c")["points"] == 198
    assert run("get", db, "c", victims[0]).returncode == 1
    assert ok("delete", db, "c", victims[0]) == "deleted 0 of 1\n"


# ---- indexes: index, search --ef / --exact, check, info ----


INDEXED = re.compile(r"indexed (\S+): (?:hnsw m=(\d+) ef_construction=(\d+)|(flat)|"
                     r"ivf nlist=(\d+) nprobe=(\d+) bits=(\d+)) over (\d+) points in [\d.]+ s\n")
BIG_N, BIG_DIM = 12_000, 16


def index(*args):
    """Runs `index`; returns (kind, m, ef_construction, points) from its summary line, for IVF
    (kind, nlist, nprobe, bits, points)."""
    out = ok("index", *args)
    m = INDEXED.fullmatch(out)
    assert m, out
    if m[4]:
        return "flat", None, None, int(m[8])
    if m[5]:
        return "ivf", int(m[5]), int(m[6]), int(m[7]), int(m[8])
    return "hnsw", int(m[2]), int(m[3]), int(m[8])


def l2_knn(data, queries, k):
    """Exact squared-L2 top k by numpy, in float64 (the Gram form: no n x nq x dim array)."""
    x, q = data.astype(np.float64), queries.astype(np.float64)
    d = (q * q).sum(1)[:, None] - 2 * q @ x.T + (x * x).sum(1)[None, :]
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def assert_same_knn(got_ids, got_d, want_ids, want_d):
    """Exact results: the same distances, and the same ids wherever the distance is not a
    near-tie that float32 may order either way."""
    got_d = np.asarray(got_d, dtype=np.float64)
    assert np.allclose(got_d, want_d, rtol=1e-4, atol=1e-5)
    padded = np.pad(want_d, ((0, 0), (1, 1)), constant_values=np.inf)
    gap = np.minimum(np.diff(padded[:, :-1], axis=1), np.diff(padded[:, 1:], axis=1))
    clear = np.abs(gap) > 1e-4 * np.abs(want_d) + 1e-6
    assert (np.asarray(got_ids)[clear] == want_ids[clear]).all()
    assert clear.mean() > 0.9  # the check above is not vacuous


def search_json(*args):
    res = json.loads(ok("search", *args, "--json"))["results"]
    ids = np.array([[e["id"] for e in row] for row in res])
    dists = np.array([[e["distance"] for e in row] for row in res])
    return ids, dists


def recall(got, want):
    return np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)])


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """12,000 random 16-d points in collection 'c', indexed with `index` and its defaults
    (auto, which picks HNSW here). Shared by the tests that only read it."""
    t = tmp_path_factory.mktemp("big")
    data = rand(BIG_N, BIG_DIM, seed=20)
    queries = rand(100, BIG_DIM, seed=21)
    dbp = t / "db"
    ok("create", dbp, "c", "--dim", BIG_DIM)
    ok("load", dbp, "c", write_npy(t / "d.npy", data), "--relaxed")
    built = index(dbp, "c")
    return {"db": dbp, "data": data, "queries": queries, "built": built,
            "qf": write_fvecs(t / "q.fvecs", queries), "tmp": t}


@pytest.fixture
def small_hnsw(tmp_path, db):
    """The 200-point `db` with an HNSW index (m 8, ef_construction 40)."""
    assert index(db, "c", "--type", "hnsw", "--m", 8, "--ef-construction", 40) == \
        ("hnsw", 8, 40, 200)
    return db


def test_index_auto_picks_hnsw_at_the_threshold(tmp_path):
    dbp = tmp_path / "db"
    data = rand(10_000, 4, seed=22)
    ok("create", dbp, "c", "--dim", 4)
    ok("load", dbp, "c", write_npy(tmp_path / "a.npy", data[:9_999]), "--relaxed")
    # small m and ef_construction: this test is about the choice, not the graph
    cheap = ["--m", 4, "--ef-construction", 8]
    assert index(dbp, "c", *cheap) == ("flat", None, None, 9_999)
    assert info_json(dbp, "c")["index"] == "flat"
    ok("load", dbp, "c", write_npy(tmp_path / "b.npy", data[9_999:]))
    assert index(dbp, "c", *cheap) == ("hnsw", 4, 8, 10_000)
    info = info_json(dbp, "c")
    assert info["index"] == "hnsw" and info["indexed"] == 10_000
    assert (info["hnsw_m"], info["hnsw_ef_construction"]) == (4, 8)
    # a RAM budget below the float vectors' 10,000 x 4 x 4 bytes picks IVF; at it, HNSW
    assert index(dbp, "c", *cheap, "--ram-budget", 160_000) == ("hnsw", 4, 8, 10_000)
    kind, *_, points = index(dbp, "c", *cheap, "--ram-budget", 159_999)
    assert (kind, points) == ("ivf", 10_000)
    assert info_json(dbp, "c")["index"] == "ivf"


def test_index_default_is_auto_hnsw_with_default_parameters(big):
    assert big["built"] == ("hnsw", 16, 200, BIG_N)
    info = info_json(big["db"], "c")
    assert info["index"] == "hnsw" and info["indexed"] == BIG_N and info["points"] == BIG_N
    assert info["hnsw_m"] == 16 and info["hnsw_ef_construction"] == 200
    assert info["index_bytes"] > 0


def test_index_hnsw_parameters_shown_by_info(small_hnsw):
    info = info_json(small_hnsw, "c")
    assert info["index"] == "hnsw" and info["indexed"] == 200 and info["index_bytes"] > 0
    assert (info["hnsw_m"], info["hnsw_ef_construction"]) == (8, 40)
    assert info_json(small_hnsw)["collections"][0] == info
    text = ok("info", small_hnsw, "c")
    assert re.fullmatch(r"c: dim 8, metric l2, points 200, deleted 0, segments \d+, "
                        r"vector bytes \d+, index hnsw, indexed 200, index bytes [1-9]\d*, "
                        r"m 8, ef_construction 40\n", text), text
    # flat drops the index
    assert index(small_hnsw, "c", "--type", "flat") == ("flat", None, None, 200)
    info = info_json(small_hnsw, "c")
    assert info["index"] == "flat" and info["hnsw_m"] == 0
    assert info["hnsw_ef_construction"] == 0 and info["index_bytes"] == 0
    assert ok("info", small_hnsw, "c").rstrip().endswith("index flat, indexed 0, index bytes 0")


def test_index_int8_shown_by_info_and_searchable(small_hnsw, tmp_path):
    assert info_json(small_hnsw, "c")["hnsw_int8"] is False
    ok("index", small_hnsw, "c", "--type", "hnsw", "--m", 8, "--ef-construction", 40, "--int8")
    info = info_json(small_hnsw, "c")
    assert info["index"] == "hnsw" and info["hnsw_int8"] is True
    assert ok("info", small_hnsw, "c").rstrip().endswith("m 8, ef_construction 40, int8")
    assert ok("check", small_hnsw, "c")


def test_info_of_an_unindexed_collection(db):
    info = info_json(db, "c")
    assert (info["index"], info["indexed"], info["index_bytes"]) == ("flat", 0, 0)
    assert (info["hnsw_m"], info["hnsw_ef_construction"]) == (0, 0)
    assert (info["ivf_nlist"], info["ivf_nprobe"], info["ivf_bits"]) == (0, 0, 0)


def test_search_ef_recall(big):
    want, _ = l2_knn(big["data"], big["queries"], 10)
    out = big["tmp"] / "r.ivecs"
    for ef in [[], ["--ef", 64]]:  # 64 is also the default
        ok("search", big["db"], "c", big["qf"], "--k", 10, "--out", out, *ef)
        got = read_ivecs(out)
        assert got.shape == (100, 10)
        assert recall(got, want) >= 0.9, (ef, recall(got, want))
    # --ef reaches the library: a short candidate list finds fewer true neighbours
    low, dists = search_json(big["db"], "c", big["qf"], "--k", 10, "--ef", 10)
    assert low.shape == (100, 10) and (np.diff(dists, axis=1) >= 0).all()
    assert 0.5 <= recall(low, want) < recall(got, want) - 0.02
    # ef below k is raised to k
    one, _ = search_json(big["db"], "c", big["qf"], "--k", 10, "--ef", 1)
    assert np.array_equal(one, low)


def test_search_exact_matches_brute_force(big):
    want_ids, want_d = l2_knn(big["data"], big["queries"], 10)
    # with an ef that alone gives a recall well below 1 (see test_search_ef_recall)
    got, dists = search_json(big["db"], "c", big["qf"], "--k", 10, "--exact", "--ef", 10)
    assert_same_knn(got, dists, want_ids, want_d)


def test_search_ef_ignored_without_index(tmp_path, db):
    data = get_vectors(db, "c", range(200))
    queries = rand(10, seed=23)
    qf = write_fvecs(tmp_path / "q.fvecs", queries)
    want_ids, want_d = l2_knn(data, queries, 10)
    for extra in [["--ef", 10], ["--ef", 16384], ["--exact"]]:
        got, dists = search_json(db, "c", qf, "--k", 10, *extra)
        assert_same_knn(got, dists, want_ids, want_d)


def test_points_written_after_the_index(tmp_path, small_hnsw):
    far = np.full((1, DIM), 5.0, dtype=np.float32)
    load(small_hnsw, "c", write_fvecs(tmp_path / "far.fvecs", far))
    ok("delete", small_hnsw, "c", 0)
    qf = write_fvecs(tmp_path / "q.fvecs", np.vstack([far + 0.01, rand(1)]))
    got, _ = search_json(small_hnsw, "c", qf, "--k", 3)
    assert got[0][0] == 200  # written after the index: searched exactly
    assert 0 not in got[1]  # deleted after the index: never returned
    # indexing again with the same parameters extends the index to the new point; the summary
    # counts live points, info's "indexed" rows (which may include the deleted one)
    assert index(small_hnsw, "c", "--type", "hnsw", "--m", 8, "--ef-construction", 40) == \
        ("hnsw", 8, 40, 200)
    info = info_json(small_hnsw, "c")
    assert info["points"] == 200 and info["indexed"] in (200, 201)
    got, _ = search_json(small_hnsw, "c", qf, "--k", 3)
    assert got[0][0] == 200 and 0 not in got[1]
    assert run("check", small_hnsw, "c").returncode == 0


def test_check(big, db):
    r = run("check", big["db"], "c")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.strip(), "empty report"
    r = run("check", db, "c")  # no index: healthy
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_index_progress_bar_only_on_a_terminal(small_hnsw):
    # new parameters each time: a full build (the same ones would find nothing to extend)
    args = ("index", small_hnsw, "c", "--type", "hnsw", "--ef-construction", 20, "--m")
    r = run(*args, 10)
    assert r.returncode == 0 and r.stderr == "" and INDEXED.fullmatch(r.stdout)
    status, out, err = run_on_terminal(*args, 12)
    assert status == 0 and INDEXED.fullmatch(out), out
    assert b"%" in err and b"vectors/s" in err and b"ETA" in err, err
    assert info_json(small_hnsw, "c")["hnsw_m"] == 12


INDEX_BAD = {
    # out of range: the library's errors, whatever the type (auto would pick flat here)
    "m_zero": (["index", "--m", 0], 1),
    "m_too_large": (["index", "--m", 1000], 1),
    "efc_one": (["index", "--ef-construction", 1], 1),
    "m_zero_hnsw": (["index", "--type", "hnsw", "--m", 0], 1),
    "m_below_min_hnsw": (["index", "--type", "hnsw", "--m", 3], 1),
    "m_above_max_hnsw": (["index", "--type", "hnsw", "--m", 65], 1),
    "efc_one_hnsw": (["index", "--type", "hnsw", "--ef-construction", 1], 1),
    "efc_above_max_hnsw": (["index", "--type", "hnsw", "--ef-construction", 4097], 1),
    "type_bogus": (["index", "--type", "bogus"], 2),
    "type_empty": (["index", "--type", ""], 2),
    "m_not_a_number": (["index", "--m", "16x"], 2),
    "ef_abc": (["search", "Q", "--k", 3, "--ef", "abc"], 2),
    "ef_negative": (["search", "Q", "--k", 3, "--ef", "-5"], 2),
    "ef_above_max": (["search", "Q", "--k", 3, "--ef", 16385], 1),
}


@pytest.mark.parametrize("case", INDEX_BAD, ids=list(INDEX_BAD))
def test_bad_index_input_leaves_db_unchanged(tmp_path, small_hnsw, case):
    (cmd, *extra), status = INDEX_BAD[case]
    q = write_fvecs(tmp_path / "q.fvecs", rand(3))
    extra = [q if a == "Q" else a for a in extra]
    before = snapshot(small_hnsw, tmp_path)
    err = fail(cmd, small_hnsw, "c", *extra, status=status)
    assert len(err.splitlines()) == 1 or "usage:" in err
    assert snapshot(small_hnsw, tmp_path) == before


# ---- IVF: index --type ivf, search --nprobe, info ----


IVF_N, IVF_DIM, IVF_NQ = 4_000, 16, 100


def clustered(n, dim, seed, clusters=32):
    """A Gaussian mixture: centres spread 4 apart per dimension, points at unit variance
    around them."""
    rng = np.random.default_rng(RNG_SEED + seed)
    centres = rng.normal(0, 4, (clusters, dim))
    pick = rng.integers(0, clusters, n)
    return (centres[pick] + rng.normal(0, 1, (n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def ivf(tmp_path_factory):
    """4,000 clustered 16-d points in collection 'c' with an IVF index of the defaults, and
    100 queries from the same mixture. Shared by the tests that only read it."""
    t = tmp_path_factory.mktemp("ivf")
    x = clustered(IVF_N + IVF_NQ, IVF_DIM, 30)
    data, queries = x[:IVF_N], x[IVF_N:]
    dbp = t / "db"
    ok("create", dbp, "c", "--dim", IVF_DIM)
    ok("load", dbp, "c", write_npy(t / "d.npy", data))
    built = index(dbp, "c", "--type", "ivf")
    return {"db": dbp, "data": data, "queries": queries, "built": built, "tmp": t,
            "npy": t / "d.npy", "qf": write_fvecs(t / "q.fvecs", queries)}


def ivf_search(ivf, *extra):
    """search --json of the module's queries, k 10: (the JSON object, the ids)."""
    out = json.loads(ok("search", ivf["db"], "c", ivf["qf"], "--k", 10, "--json", *extra))
    return out, np.array([[e["id"] for e in row] for row in out["results"]])


def test_index_ivf_shown_by_info(ivf):
    kind, nlist, nprobe, bits, points = ivf["built"]
    assert (kind, bits, points) == ("ivf", 1, IVF_N)
    assert 1 <= nprobe <= nlist
    info = info_json(ivf["db"], "c")
    assert info["index"] == "ivf" and info["indexed"] == IVF_N and info["index_bytes"] > 0
    assert (info["ivf_nlist"], info["ivf_nprobe"], info["ivf_bits"]) == (nlist, nprobe, 1)
    assert (info["hnsw_m"], info["hnsw_ef_construction"], info["hnsw_int8"]) == (0, 0, False)
    assert info_json(ivf["db"])["collections"][0] == info
    text = ok("info", ivf["db"], "c")
    assert text.endswith(f"index ivf, indexed {IVF_N}, index bytes {info['index_bytes']}, "
                         f"nlist {nlist}, nprobe {nprobe}, bits 1\n"), text
    r = run("check", ivf["db"], "c")
    assert r.returncode == 0 and r.stdout.strip(), r.stderr


def test_search_ivf_recall_and_nprobe(ivf):
    want, _ = l2_knn(ivf["data"], ivf["queries"], 10)
    _, nlist, nprobe, _, _ = ivf["built"]
    base, ids = ivf_search(ivf)
    assert base["path"] == "cpu-ivf"
    assert recall(ids, want) >= 0.95, recall(ids, want)
    # the candidates re-ranked: some for every query, far fewer than an exact scan reads
    assert IVF_NQ * 10 <= base["vectors_read"] < IVF_NQ * IVF_N // 2
    out, same = ivf_search(ivf, "--nprobe", nprobe)  # the calibrated default, given
    assert np.array_equal(same, ids) and out["vectors_read"] == base["vectors_read"]
    # --nprobe reaches the library: all lists re-rank more candidates and find no fewer true
    # neighbours than one list
    one_out, one = ivf_search(ivf, "--nprobe", 1)
    all_out, every = ivf_search(ivf, "--nprobe", nlist)
    assert one_out["vectors_read"] < all_out["vectors_read"]
    assert recall(every, want) >= 0.99
    assert recall(one, want) < recall(every, want)
    exact, got = ivf_search(ivf, "--exact")
    assert exact["path"] == "cpu-exact" and exact["vectors_read"] == IVF_NQ * IVF_N
    assert recall(got, want) == 1.0


def test_index_ivf_nlist_left_out_is_the_default_and_nlist_given(ivf, tmp_path):
    dbp = tmp_path / "db"
    ok("create", dbp, "c", "--dim", IVF_DIM)
    ok("load", dbp, "c", ivf["npy"])
    assert index(dbp, "c", "--type", "ivf")[1] == ivf["built"][1]
    kind, nlist, nprobe, bits, points = index(dbp, "c", "--type", "ivf", "--nlist", 20,
                                              "--bits", 1)
    assert (kind, nlist, bits, points) == ("ivf", 20, 1, IVF_N) and 1 <= nprobe <= 20
    info = info_json(dbp, "c")
    assert (info["index"], info["ivf_nlist"], info["ivf_nprobe"]) == ("ivf", 20, nprobe)
    # the progress bar: k-means passes, then the assignment of every point
    status, out, err = run_on_terminal("index", dbp, "c", "--type", "ivf", "--nlist", 16)
    assert status == 0 and INDEXED.fullmatch(out), out
    assert b"100.0%" in err and b"ETA" in err, err
    assert info_json(dbp, "c")["ivf_nlist"] == 16
    r = run("index", dbp, "c", "--type", "ivf", "--nlist", 16)
    assert r.returncode == 0 and r.stderr == ""  # not a terminal: no bar


def ivf_snapshot(ivf):
    """What must not change when a command fails: info, and a search through the index."""
    return info_json(ivf["db"], "c"), ivf_search(ivf)[1].tolist()


IVF_BAD = {
    "nlist_above_points": (["index", "--type", "ivf", "--nlist", IVF_N + 1], 1,
                           f"nlist {IVF_N + 1} exceeds the live points \\({IVF_N}\\)"),
    "nlist_above_max": (["index", "--type", "ivf", "--nlist", 65537], 1, "nlist"),
    "bits_5": (["index", "--type", "ivf", "--bits", 5], 1, "bits must be 1 to 4, got 5"),
    "bits_0": (["index", "--type", "ivf", "--bits", 0], 1, "bits must be 1 to 4, got 0"),
    "nprobe_above_nlist": (["search", "Q", "--k", 10, "--nprobe", "NLIST+1"], 1,
                           "nprobe \\d+ exceeds the index's \\d+ lists"),
    "nlist_not_a_number": (["index", "--type", "ivf", "--nlist", "8x"], 2, "--nlist"),
}


@pytest.mark.parametrize("case", IVF_BAD, ids=list(IVF_BAD))
def test_bad_ivf_input_leaves_the_index(ivf, case):
    (cmd, *extra), status, match = IVF_BAD[case]
    extra = [ivf["qf"] if a == "Q" else ivf["built"][1] + 1 if a == "NLIST+1" else a
             for a in extra]
    before = ivf_snapshot(ivf)
    fail(cmd, ivf["db"], "c", *extra, status=status, match=match)
    assert ivf_snapshot(ivf) == before


def test_ivf_on_too_few_points_leaves_the_index(tmp_path):
    dbp = tmp_path / "db"
    ok("create", dbp, "c", "--dim", IVF_DIM)
    ok("load", dbp, "c", write_npy(tmp_path / "d.npy", clustered(500, IVF_DIM, 31)))
    assert index(dbp, "c", "--type", "hnsw", "--m", 8, "--ef-construction", 40) == \
        ("hnsw", 8, 40, 500)
    before = info_json(dbp, "c")
    fail("index", dbp, "c", "--type", "ivf", status=1,
         match="an IVF index needs at least 1000 live points, it has 500")
    assert info_json(dbp, "c") == before


# ---- bad input leaves the database unchanged ----


def bad_fvecs_wrong_dim(t):
    return ["load", "{db}", "c", write_fvecs(t / "w.fvecs", rand(30, DIM + 1))], "dimension"


def bad_fvecs_mixed_dims(t):
    p = write_fvecs(t / "m.fvecs", rand(40))
    with open(p, "ab") as f:
        f.write(np.int32(DIM - 1).tobytes() + rand(1, DIM - 1).tobytes())
    return ["load", "{db}", "c", p, "--batch", 10], "offset %d" % (40 * (4 + 4 * DIM))


def bad_fvecs_value(value):
    def make(t):
        a = rand(60)
        a[47, 3] = value
        return ["load", "{db}", "c", write_fvecs(t / "n.fvecs", a), "--batch", 10], \
            "vector 47 component 3"
    return make


def bad_csv_value(text):
    def make(t):
        a = rand(60)
        p = t / "n.csv"
        lines = [",".join("%.9g" % v for v in row) for row in a]
        fields = lines[52].split(",")
        fields[5] = text
        lines[52] = ",".join(fields)
        p.write_text("\n".join(lines) + "\n")
        return ["load", "{db}", "c", p, "--batch", 10], "vector 52 component 5"
    return make


def bad_fvecs_truncated(t):
    p = write_fvecs(t / "t.fvecs", rand(50))
    size = p.stat().st_size
    with open(p, "r+b") as f:
        f.truncate(size - 5)
    return ["load", "{db}", "c", p, "--batch", 10], "offset %d" % (49 * (4 + 4 * DIM))


def bad_npy_header(t):
    p = write_npy(t / "h.npy", rand(50))
    raw = bytearray(p.read_bytes())
    raw[10:20] = b"{'garbage'"
    p.write_bytes(bytes(raw))
    return ["load", "{db}", "c", p], "npy"


def bad_npy_float64(t):
    return ["load", "{db}", "c", write_npy(t / "d.npy", rand(50).astype(np.float64))], "float32"


def bad_npy_short(t):
    p = write_npy(t / "s.npy", rand(50))
    p.write_bytes(p.read_bytes()[:-4])
    return ["load", "{db}", "c", p], "npy"


def bad_csv_text(t):
    p = t / "x.csv"
    p.write_text("1,2,3,4,5,6,7,8\n" * 30 + "1,2,three,4,5,6,7,8\n")
    return ["load", "{db}", "c", p, "--batch", 5], "line 31"


def bad_csv_ragged(t):
    p = t / "r.csv"
    p.write_text("1,2,3,4,5,6,7,8\n" * 30 + "1,2,3,4,5,6,7\n")
    return ["load", "{db}", "c", p, "--batch", 5], "line 31"


def bad_meta_count(t):
    m = t / "m.jsonl"
    m.write_text('{"a": 1}\n' * 29)
    return ["load", "{db}", "c", write_fvecs(t / "v.fvecs", rand(30)), "--metadata", m], "29"


def bad_meta_json(t):
    m = t / "m.jsonl"
    m.write_text('{"a": 1}\n' * 25 + '{"a": \n' + '{"a": 1}\n' * 4)
    return ["load", "{db}", "c", write_fvecs(t / "v.fvecs", rand(30)), "--metadata", m,
            "--batch", 5], "line 26"


def bad_meta_nested(t):
    m = t / "m.jsonl"
    m.write_text('{"a": 1}\n' * 25 + '{"a": [1, 2]}\n' + '{"a": 1}\n' * 4)
    return ["load", "{db}", "c", write_fvecs(t / "v.fvecs", rand(30)), "--metadata", m,
            "--batch", 5], "line 26"


def bad_missing_file(t):
    return ["load", "{db}", "c", t / "nope.fvecs"], "nope.fvecs"


def bad_unknown_ext(t):
    p = t / "v.txt"
    p.write_text("1,2\n")
    return ["load", "{db}", "c", p], "format"


def bad_unknown_coll_load(t):
    return ["load", "{db}", "zz", write_fvecs(t / "v.fvecs", rand(3))], "zz"


def bad_unknown_coll_search(t):
    return ["search", "{db}", "zz", write_fvecs(t / "v.fvecs", rand(3)), "--k", 1], "zz"


def bad_search(*extra, match=None):
    def make(t):
        return ["search", "{db}", "c", write_fvecs(t / "q.fvecs", rand(3)), *extra], match
    return make


def bad_search_nan_query(t):
    q = rand(3)
    q[2, 1] = np.nan
    return ["search", "{db}", "c", write_npy(t / "q.npy", q), "--k", 1], "vector 2 component 1"


def bad_search_dim(t):
    return ["search", "{db}", "c", write_fvecs(t / "q.fvecs", rand(3, DIM + 2)), "--k", 1], \
        "dimension"


BAD_INPUTS = {
    "fvecs_wrong_dim": bad_fvecs_wrong_dim,
    "fvecs_mixed_dims": bad_fvecs_mixed_dims,
    "fvecs_nan": bad_fvecs_value(np.nan),
    "fvecs_inf": bad_fvecs_value(np.inf),
    "fvecs_neg_inf": bad_fvecs_value(-np.inf),
    "csv_nan": bad_csv_value("nan"),
    "csv_inf": bad_csv_value("inf"),
    "csv_overflow": bad_csv_value("1e999"),
    "fvecs_truncated": bad_fvecs_truncated,
    "npy_corrupt_header": bad_npy_header,
    "npy_float64": bad_npy_float64,
    "npy_short_data": bad_npy_short,
    "csv_not_a_number": bad_csv_text,
    "csv_ragged": bad_csv_ragged,
    "metadata_line_count": bad_meta_count,
    "metadata_bad_json": bad_meta_json,
    "metadata_nested": bad_meta_nested,
    "missing_file": bad_missing_file,
    "unknown_extension": bad_unknown_ext,
    "unknown_collection_load": bad_unknown_coll_load,
    "unknown_collection_search": bad_unknown_coll_search,
    "search_wrong_dim": bad_search_dim,
    "search_nan_query": bad_search_nan_query,
    "k_zero": bad_search("--k", 0, match="k"),
    "k_above_size": bad_search("--k", 201),
    "k_above_max": bad_search("--k", 100000),
    "k_negative": bad_search("--k", -1, match="usage"),
    "filter_malformed": bad_search("--k", 3, "--filter", '{"color": ', match="filter"),
    "filter_not_object": bad_search("--k", 3, "--filter", "[1]"),
    "delete_unknown_coll": lambda t: (["delete", "{db}", "zz", 1], "zz"),
    "index_unknown_coll": lambda t: (["index", "{db}", "zz"], "zz"),
    "check_unknown_coll": lambda t: (["check", "{db}", "zz"], "zz"),
    "drop_unknown_coll": lambda t: (["drop", "{db}", "zz"], "zz"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_leaves_db_unchanged(tmp_path, db, case):
    args, match = BAD_INPUTS[case](tmp_path)
    before = snapshot(db, tmp_path)
    fail(*[str(a).replace("{db}", str(db)) for a in args], match=match)
    assert snapshot(db, tmp_path) == before


def test_cosine_zero_vector_refused_before_writing(tmp_path):
    dbp = tmp_path / "db"
    ok("create", dbp, "c", "--dim", DIM, "--metric", "cosine")
    a = rand(40)
    a[33] = 0
    fail("load", dbp, "c", write_fvecs(tmp_path / "z.fvecs", a), "--batch", 10,
         status=1, match="vector 33")
    assert info_json(dbp, "c")["points"] == 0


def tree(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["garbage_mdb", "unrelated_files"])
def test_foreign_directories_untouched(tmp_path, kind):
    d = tmp_path / "foreign"
    d.mkdir()
    rng = np.random.default_rng(13)
    if kind == "garbage_mdb":
        (d / "data.mdb").write_bytes(rng.integers(0, 256, 65536, dtype=np.uint8).tobytes())
    else:
        (d / "notes.txt").write_text("not a database\n")
        (d / "sub").mkdir()
        (d / "sub" / "x.bin").write_bytes(b"\x00\x01\x02")
    before = tree(d)
    v = write_fvecs(tmp_path / "v.fvecs", rand(5))
    for args in [("info", d), ("info", d, "--json"), ("create", d, "c", "--dim", DIM),
                 ("load", d, "c", v), ("search", d, "c", v, "--k", 1), ("get", d, "c", 0),
                 ("delete", d, "c", 0), ("index", d, "c"), ("check", d, "c"),
                 ("drop", d, "c")]:
        fail(*args, status=1)
        assert tree(d) == before, args
