#!/bin/sh
# `pip install .` of the repository into a fresh virtual environment of Debian's python3
# (system site packages for numpy: Debian's python3-numpy; no network: --no-index), then
# an import and a round trip through the installed package. usage: test_pip_install.sh SRC TMP
set -eu
src=$1
tmp=$2
rm -rf "$tmp"
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --no-index "$src"
cd "$tmp"
"$tmp/venv/bin/python" - "$tmp/db" <<'PY'
import sys
import numpy as np
import omendb
assert omendb.__file__.startswith(sys.prefix), omendb.__file__
with omendb.open(sys.argv[1]) as db:
    col = db.create_collection("smoke", dim=3)
    ids = col.add(np.eye(3))
    got, dist = col.search(np.eye(3)[1], k=1)
    assert list(ids) == [0, 1, 2] and got[0] == 1 and dist[0] == 0, (ids, got, dist)
print("installed", omendb.__version__, "at", omendb.__file__)
PY
