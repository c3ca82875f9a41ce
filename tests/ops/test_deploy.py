"""ops/deploy: inventory validation, render (configurations that omendb-node --check accepts,
systemd units), the ssh commands of a systemd install (ssh and scp replaced by recorders), and
a real deployment over ssh: a private sshd on loopback, three coordinators in a Raft group and
two shard nodes on 127.0.0.1 with service "plain", installed, started, loaded through the
omendb CLI, upgraded by rolling-restart while searches go on, a rolling restart that fails at
one node, and stop. The ssh part is skipped unless running as root with sshd, ssh, scp and
ssh-keygen installed.

Environment: OMEN_NODE (omendb-node), OMENDB_CLI (the omendb program).
"""
import getpass
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "ops", "deploy")
NODE = os.environ.get("OMEN_NODE", os.path.join(ROOT, "build", "omendb-node"))
CLI = os.environ.get("OMENDB_CLI", os.path.join(ROOT, "build", "cli", "omendb"))
SSHD = "/usr/sbin/sshd"
TOKEN = "deploy-test-token"
POINTS = 1000


def run(*args, check=True, timeout=600, env=None):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def free_ports(n):
    """N distinct free loopback ports (each held open until all are chosen)."""
    held = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


def write_inventory(path, inv):
    path.write_text(json.dumps(inv, indent=2))
    return path


def sample_inventory(tmp):
    """Three coordinators and three shard nodes on four hosts, two shard nodes sharing one."""
    return {
        "user": "omendb", "ssh_port": 2222, "ssh_options": ["-i", "/nonexistent/key"],
        "prefix": f"{tmp}/opt", "data": "/var/lib/omendb", "token": "t0ken",
        "service": "systemd", "service_user": "omendb", "default_shards": 6,
        "election_ms": 700,
        "coordinators": [{"host": f"10.0.0.{i}", "id": i, "listen_port": 7700,
                          "http_port": 8080, "raft_port": 7800} for i in (1, 2, 3)],
        "shards": [{"host": "10.0.0.4", "port": 7701}, {"host": "10.0.0.4", "port": 7702},
                   {"host": "10.0.0.5", "port": 7701}],
    }


# ---- no ssh ----

def test_render_configs_pass_check_and_units(tmp_path):
    inv = write_inventory(tmp_path / "inv.json", sample_inventory(tmp_path))
    out = tmp_path / "out"
    run(DEPLOY, inv, "render", out)
    names = ["coord-1", "coord-2", "coord-3", "shard-10.0.0.4-7701", "shard-10.0.0.4-7702",
             "shard-10.0.0.5-7701"]
    assert sorted(p.name for p in out.glob("*.json")) == sorted(n + ".json" for n in names)
    for name in names:
        conf_path = out / f"{name}.json"
        run(NODE, "--check", conf_path)
        assert conf_path.stat().st_mode & 0o077 == 0, "a configuration holds the token"
        conf = json.loads(conf_path.read_text())
        assert conf["name"] == name and conf["data"] == f"/var/lib/omendb/{name}"
        assert conf["token"] == "t0ken"
        unit = (out / f"omendb-{name}.service").read_text()
        for line in ("Type=simple", f"ExecStart={tmp_path}/opt/bin/omendb-node "
                     f"{tmp_path}/opt/etc/{name}.json", "Restart=on-failure",
                     "KillSignal=SIGTERM", "TimeoutStopSec=30", "LimitNOFILE=65536",
                     "User=omendb", f"Environment=LD_LIBRARY_PATH={tmp_path}/opt/lib"):
            assert line + "\n" in unit, f"{name}: no {line!r} in\n{unit}"
    co = json.loads((out / "coord-2.json").read_text())["coordinator"]
    assert co["shards"] == ["tcp://10.0.0.4:7701", "tcp://10.0.0.4:7702", "tcp://10.0.0.5:7701"]
    assert co["listen"] == "tcp://10.0.0.2:7700" and co["http"] == "http://10.0.0.2:8080"
    assert co["id"] == 2 and co["raft"] == "10.0.0.2:7800" and co["election_ms"] == 700
    assert co["default_shards"] == 6
    assert [p["id"] for p in co["peers"]] == [1, 2, 3]
    assert co["peers"][2] == {"id": 3, "raft": "10.0.0.3:7800", "listen": "tcp://10.0.0.3:7700"}
    shard = json.loads((out / "shard-10.0.0.4-7702.json").read_text())
    assert shard["shard"] == {"listen": "tcp://10.0.0.4:7702", "durability": "sync"}
    verify_unit(tmp_path, out / "omendb-coord-1.service")


def verify_unit(tmp_path, unit):
    """systemd-analyze verify, where it exists and can run without a running systemd. The unit
    names its ExecStart, which verify requires to exist."""
    if not shutil.which("systemd-analyze"):
        return
    os.makedirs(tmp_path / "opt" / "bin", exist_ok=True)
    shutil.copy(NODE, tmp_path / "opt" / "bin" / "omendb-node")
    p = run("systemd-analyze", "verify", unit, check=False, timeout=60)
    lines = [l for l in (p.stdout + p.stderr).splitlines()
             if unit.name in l or "omendb" in l]
    if p.returncode != 0 and not lines:
        return  # verify failed for lack of a running systemd, not because of the unit
    assert not lines, "\n".join(lines)


@pytest.mark.parametrize("change, message", [
    (lambda i: i.update(shard=[]), "unknown key 'shard'"),
    (lambda i: i["coordinators"][0].update(raftport=1), "coordinators[0]: unknown key 'raftport'"),
    (lambda i: i.pop("prefix"), "'prefix' is required"),
    (lambda i: i["shards"][0].pop("port"), "shards[0]: 'port' is required"),
    (lambda i: i["shards"][1].update(port=7701), "10.0.0.4:7701 is used twice"),
    (lambda i: i["coordinators"][0].update(host="10.0.0.4", listen_port=7701),
     "10.0.0.4:7701 is used twice"),
    (lambda i: i["coordinators"][1].update(id=1), "coordinator id 1 is used twice"),
    (lambda i: i["coordinators"][1].update(id=1000), "not an integer from 1 to 999"),
    (lambda i: i["coordinators"][0].pop("raft_port"), "'raft_port' must be given"),
    (lambda i: i.update(service="docker"), "not one of \"systemd\", \"plain\""),
    (lambda i: i.update(prefix="opt/omendb"), "prefix: \"opt/omendb\" is not an absolute"),
    (lambda i: i.update(ssh_port="22"), "ssh_port: \"22\" is not an integer"),
    (lambda i: i.update(service="plain"), "'service_user' needs service \"systemd\""),
    (lambda i: i.update(shards=[]), "at least one coordinator and one shard node"),
])
def test_inventory_errors(tmp_path, change, message):
    inv = sample_inventory(tmp_path)
    change(inv)
    p = run(DEPLOY, write_inventory(tmp_path / "inv.json", inv), "render", tmp_path / "out",
            check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert message in p.stderr and p.stderr.startswith("ops/deploy: "), p.stderr
    assert not (tmp_path / "out").exists()


def test_systemd_install_over_ssh_commands(tmp_path):
    """install with service "systemd", ssh and scp replaced by programs that record their
    arguments and input: the inventory's user, port and options, BatchMode, the units moved
    into place, daemon-reload and enable."""
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "ssh.log"
    for prog in ("ssh", "scp"):
        (fake / prog).write_text(f"#!/bin/sh\n{{ echo '>>> {prog}' \"$@\"; "
                                 f"[ {prog} = ssh ] && cat; }} >> {log}\nexit 0\n")
        (fake / prog).chmod(0o755)
    inv = write_inventory(tmp_path / "inv.json", sample_inventory(tmp_path))
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    p = run(DEPLOY, inv, "install", "--binary", NODE, "--cli", CLI, env=env)
    text = log.read_text()
    calls = [l for l in text.splitlines() if l.startswith(">>> ")]
    assert all("BatchMode=yes" in c and "-i /nonexistent/key" in c for c in calls), calls
    assert all(" -p 2222 " in c for c in calls if c.startswith(">>> ssh"))
    assert all(" -P 2222 " in c for c in calls if c.startswith(">>> scp"))
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"):
        assert any(f"omendb@{host}:{tmp_path}/opt/.staging/" in c for c in calls), host
        assert f"install: {host}: installed" in p.stdout
    assert "omendb-node --check coord-1.json" in text
    assert ("mv -f omendb-shard-10.0.0.4-7702.service "
            "/etc/systemd/system/omendb-shard-10.0.0.4-7702.service") in text
    assert "systemctl daemon-reload" in text
    assert ("systemctl enable omendb-shard-10.0.0.4-7701.service "
            "omendb-shard-10.0.0.4-7702.service") in text
    assert "chown -R omendb: /var/lib/omendb/coord-3" in text


# ---- a real deployment over ssh ----

def sshd_missing():
    if os.geteuid() != 0:
        return "not root"
    for prog in (SSHD, "ssh", "scp", "ssh-keygen"):
        if not shutil.which(prog):
            return f"{prog} is not installed"
    return ""


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A private sshd on a free loopback port, with its own host key, and a client key that it
    accepts for root."""
    why = sshd_missing()
    if why:
        pytest.skip(f"no real ssh: {why}")
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / key)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = free_ports(1)[0]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\n")
    host_key = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", d / "sshd_config"], stdout=log,
                            stderr=log)
    options = ["-F", "/dev/null", "-i", str(d / "client_key"), "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={d}/known_hosts", "-o", "StrictHostKeyChecking=yes"]
    try:
        deadline = time.time() + 15
        while run("ssh", "-p", port, *options, "-o", "BatchMode=yes", "127.0.0.1", "true",
                  check=False, timeout=20).returncode != 0:
            assert proc.poll() is None and time.time() < deadline, (d / "sshd.log").read_text()
            time.sleep(0.2)
        yield {"port": port, "options": options}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def node_pids(data):
    return {p.stem: int(p.read_text()) for p in data.glob("*.pid")}


def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster(sshd, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    ports = free_ports(11)
    inv = {
        "user": getpass.getuser(), "ssh_port": sshd["port"], "ssh_options": sshd["options"],
        "prefix": f"{tmp}/prefix", "data": f"{tmp}/data", "token": TOKEN, "service": "plain",
        "coordinators": [{"host": "127.0.0.1", "id": i + 1, "listen_port": ports[3 * i],
                          "http_port": ports[3 * i + 1], "raft_port": ports[3 * i + 2]}
                         for i in range(3)],
        "shards": [{"host": "127.0.0.1", "port": ports[9]},
                   {"host": "127.0.0.1", "port": ports[10]}],
        "default_shards": 4, "election_ms": 500, "stop_timeout": 10,
    }
    path = write_inventory(tmp / "inventory.json", inv)
    rng = np.random.default_rng(3)
    np.save(tmp / "v.npy", rng.normal(0, 1, (POINTS, 8)).astype(np.float32))
    np.save(tmp / "q.npy", np.load(tmp / "v.npy")[:5])
    yield {"inv": path, "tmp": tmp, "data": tmp / "data", "prefix": tmp / "prefix",
           "conf": inv}
    run(DEPLOY, path, "stop", check=False)
    for pid in node_pids(tmp / "data").values():  # only if stop failed: our own nodes
        if running(pid):
            os.kill(pid, 9)


def shard_names(c):
    """The shard nodes in inventory order, the order in which rolling-restart takes them."""
    return [f"shard-127.0.0.1-{s['port']}" for s in c["conf"]["shards"]]


def status(c):
    """name -> {url, http, pid, state, role} from ops/deploy status."""
    out = {}
    for line in run(DEPLOY, c["inv"], "status", check=False).stdout.splitlines():
        f = line.split()
        out[f[-1].split("=")[1]] = {
            "url": f[1], "http": f[2] if f[0] == "coordinator" else "",
            "pid": int(next(x for x in f if x.startswith("pid="))[4:]),
            "state": next(x for x in f if x in ("up", "down", "unreachable")),
            "role": next((x for x in f if x in ("leader", "follower")), "")}
    return out


def cli(*args, **kw):
    return run(CLI, *args, env=dict(os.environ, OMENDB_TOKEN=TOKEN), **kw)


def coordinator_urls(c):
    return [s["url"] for n, s in sorted(status(c).items()) if n.startswith("coord")]


def leader_id(http_urls):
    """The id of the coordinator that says it leads, None when none answers so."""
    for url in http_urls:
        req = urllib.request.Request(url + "/health",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=1) as r:
                raft = json.load(r).get("raft") or {}
        except (OSError, ValueError):
            continue
        if raft.get("leader"):
            return raft["leader_id"]
    return None


def all_points_there(c, url):
    info = json.loads(cli("info", url, "docs", "--json").stdout)
    assert info["points"] == POINTS
    out = c["tmp"] / "ids.ivecs"
    cli("search", url, "docs", c["tmp"] / "v.npy", "--k", 1, "--exact", "--out", out)
    ids = np.fromfile(out, dtype=np.int32).reshape(POINTS, 2)
    assert (ids[:, 0] == 1).all() and (ids[:, 1] == np.arange(POINTS)).all()


def test_install_and_start(cluster):
    c = cluster
    p = run(DEPLOY, c["inv"], "install", "--binary", NODE, "--cli", CLI)
    assert "install: 127.0.0.1: installed" in p.stdout, p.stdout
    for f in ("bin/omendb-node", "bin/omendb", "etc/coord-1.json"):
        assert (c["prefix"] / f).exists(), f
    assert (c["prefix"] / "etc" / "coord-1.json").stat().st_mode & 0o777 == 0o600
    assert not (c["prefix"] / ".staging").exists()
    p = run(DEPLOY, c["inv"], "status", check=False)
    assert p.returncode == 1 and p.stdout.count(" down ") == 5, p.stdout
    p = run(DEPLOY, c["inv"], "start", "--timeout", 60)
    assert "the cluster is healthy" in p.stdout, p.stdout
    st = status(c)
    assert len(st) == 5 and all(s["state"] == "up" for s in st.values()), st
    roles = sorted(s["role"] for n, s in st.items() if n.startswith("coord"))
    assert roles == ["follower", "follower", "leader"], st
    assert run(DEPLOY, c["inv"], "status").stdout.count("shards_up=2/2") == 3


def test_load_and_search_through_a_coordinator(cluster):
    c = cluster
    url = coordinator_urls(c)[1]
    cli("create", url, "docs", "--dim", 8)
    cli("load", url, "docs", c["tmp"] / "v.npy")
    all_points_there(c, url)


def test_rolling_restart_keeps_serving(cluster):
    c = cluster
    before = status(c)
    old_leader = next(n for n, s in before.items() if s["role"] == "leader")
    urls = coordinator_urls(c)
    https = [s["http"] for n, s in sorted(before.items()) if n.startswith("coord")]
    stop = threading.Event()
    rounds, failed, partial, leaders = [0], [], [0], []

    def searcher():
        """Searches through each coordinator in turn, trying the next one when one does not
        answer (it is restarting); a round fails only when none answers."""
        i = 0
        while not stop.is_set():
            errors = []
            for url in urls[i % 3:] + urls[:i % 3]:
                try:
                    p = cli("search", url, "docs", c["tmp"] / "q.npy", "--k", 3, "--exact",
                            "--partial", "--json", check=False, timeout=5)
                except subprocess.TimeoutExpired:
                    errors.append(f"{url}: timeout")
                    continue
                if p.returncode == 0:
                    cov = json.loads(p.stdout)["coverage"]
                    partial[0] += cov["answered"] < cov["total"]
                    break
                errors.append(f"{url}: {p.stderr.strip()}")
            else:
                failed.append(errors)
            rounds[0] += 1
            i += 1

    def tracker():
        while not stop.is_set():
            lid = leader_id(https)
            if lid is not None and (not leaders or leaders[-1] != lid):
                leaders.append(lid)
            time.sleep(0.1)

    threads = [threading.Thread(target=searcher), threading.Thread(target=tracker)]
    for t in threads:
        t.start()
    try:
        t0 = time.time()
        p = run(DEPLOY, c["inv"], "rolling-restart", "--binary", NODE, "--cli", CLI,
                "--timeout", 60, check=False)
        took = time.time() - t0
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert p.returncode == 0, p.stdout + p.stderr
    order = [l.split()[-1] for l in p.stdout.splitlines() if "] " in l]
    followers = sorted(n for n in before if n.startswith("coord") and n != old_leader)
    assert order[:2] == shard_names(c), p.stdout
    assert sorted(order[2:4]) == followers and order[4] == old_leader, p.stdout
    assert f"leadership moved from {old_leader} to coord-" in p.stdout
    after = status(c)
    for name, s in after.items():
        assert s["state"] == "up" and s["pid"] != before[name]["pid"], (name, s)
    assert after[old_leader]["role"] == "follower"
    # The leadership changed hands once: the transfer before the old leader's restart.
    assert len(leaders) == 2 and leaders[0] == int(old_leader[-1]), leaders
    assert not failed and rounds[0] > 10, (rounds, failed[:3])
    all_points_there(c, urls[0])
    cli("create", urls[2], "after_restart", "--dim", 4)  # metadata still changes
    print(p.stdout)
    print(f"rolling restart of 5 nodes: {took:.1f} s, {rounds[0]} search rounds, "
          f"{partial[0]} with partial coverage")


def test_rolling_restart_stops_at_a_failing_node(cluster):
    """A bad binary stops it before any restart; a node that cannot start stops it at that
    node, naming it, and leaves the coordinators untouched."""
    c = cluster
    bad = c["tmp"] / "bad-node"
    bad.write_text("#!/bin/sh\necho 'cannot run here' >&2\nexit 1\n")
    bad.chmod(0o755)
    before = status(c)
    p = run(DEPLOY, c["inv"], "rolling-restart", "--binary", bad, "--cli", CLI, check=False)
    assert p.returncode == 1 and "omendb-node --check" in p.stderr, p.stderr
    assert {n: s["pid"] for n, s in status(c).items()} == {n: s["pid"] for n, s in
                                                           before.items()}
    # The second shard node's configuration on the host now names a taken port.
    first, shard = shard_names(c)
    conf_path = c["prefix"] / "etc" / f"{shard}.json"
    good = conf_path.read_text()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    conf = json.loads(good)
    conf["shard"]["listen"] = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
    conf_path.write_text(json.dumps(conf))
    try:
        p = run(DEPLOY, c["inv"], "rolling-restart", "--binary", NODE, "--cli", CLI,
                "--timeout", 30, check=False)
    finally:
        conf_path.write_text(good)
        taken.close()
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"rolling-restart stopped at {shard}: " in p.stderr, p.stderr
    assert "not restarted: coord-1, coord-2, coord-3" in p.stderr, p.stderr
    after = status(c)
    assert after[shard]["state"] == "down"
    assert after[first]["state"] == "up" and after[first]["pid"] != before[first]["pid"]
    for name in (n for n in before if n.startswith("coord")):
        assert after[name]["pid"] == before[name]["pid"], name
    run(DEPLOY, c["inv"], "start", shard)
    run(DEPLOY, c["inv"], "start", "--timeout", 60)  # every node up: waits until healthy
    all_points_there(c, coordinator_urls(c)[0])


def test_stop_leaves_no_process(cluster):
    c = cluster
    pids = node_pids(c["data"])
    assert len(pids) == 5
    p = run(DEPLOY, c["inv"], "stop")
    assert p.stdout.count(" stopped") == 5, p.stdout
    assert not any(running(pid) for pid in pids.values())
    assert not node_pids(c["data"])
    p = run(DEPLOY, c["inv"], "status", check=False)
    assert p.returncode == 1 and p.stdout.count(" down ") == 5, p.stdout
    assert "stopped" in (c["data"] / "coord-1.log").read_text()  # SIGTERM: a clean stop
