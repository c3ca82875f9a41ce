#!/usr/bin/env python3
"""Checks that libomendb exports exactly the functions the public header declares: every
omen_* function of include/omendb/omendb.h is defined in the library, and the library defines
no other symbol (api/exports.map hides the layers' internals).

usage: check_exports.py HEADER LIBOMENDB.so   (exit 1 and one line per difference)
"""
import re
import subprocess
import sys

header, lib = sys.argv[1], sys.argv[2]
declared = set(re.findall(r"\b(omen_[a-z0-9_]+)\(", open(header).read()))
out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True,
                     check=True).stdout
exported = {line.split()[-1] for line in out.splitlines() if line.strip()}
bad = [f"declared in the header, not exported: {s}" for s in sorted(declared - exported)]
bad += [f"exported, not declared in the header: {s}" for s in sorted(exported - declared)]
for line in bad:
    print(line)
print(f"{len(declared)} functions declared, {len(exported)} symbols exported, {len(bad)} differences")
sys.exit(1 if bad else 0)
