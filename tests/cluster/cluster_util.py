"""What the tests of copies (test_replicas.py, test_history.py) share: running ops/cluster and
the CLI, the nodes of a local cluster, the coordinator's node table, network namespaces, and
the nodes' logs free of sanitizer reports."""
import json
import os
import shutil
import subprocess
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "ops", "cluster")
CLI = os.environ.get("OMENDB_CLI", os.path.join(ROOT, "build", "cli", "omendb"))


def run(*args, check=True, timeout=120):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def cli(*args, **kw):
    return run(CLI, *args, **kw)


def nodes(d):
    """name -> {"url", "http", "pid", "up"} of every node of the cluster under d."""
    out = {}
    for line in run(CLUSTER, "status", "--dir", d).stdout.splitlines():
        f = line.split()
        name = next(x for x in f if x.startswith("name=")).split("=")[1]
        out[name] = {"url": f[1], "http": next((x for x in f if x.startswith("http://")), None),
                     "pid": int(next(x for x in f if x.startswith("pid=")).split("=")[1]),
                     "up": " up" in line}
    return out


def admin(d, coordinator="coord0"):
    """GET /admin/nodes on a coordinator."""
    with urllib.request.urlopen(nodes(d)[coordinator]["http"] + "/admin/nodes",
                                timeout=10) as r:
        return json.loads(r.read())


def netns_usable():
    """None when network namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("ip"):
        return "no ip command (iproute2)"
    p = run("ip", "netns", "add", "omen-probe", check=False)
    run("ip", "netns", "del", "omen-probe", check=False)
    return None if p.returncode == 0 else f"ip netns add failed: {p.stderr.strip()}"


def assert_clean_logs(d):
    for log in d.glob("*.log"):
        text = log.read_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert bad not in text, f"{log.name}:\n{text[-4000:]}"
