#!/usr/bin/env python3
"""Checks every #include "dir/file.h" line of the tree against the layer table that meson.build
builds the libraries from (meson passes it as arguments, LAYER=USES,USES...): a file in a
layer's folder may include the headers of its own folder, of the layers it may use and of
theirs, and the public header. Linking catches calls into a wrong layer; this catches the
headers (types, inline functions, macros) that linking cannot see.

usage: check_includes.py SOURCE_ROOT LAYER=USES... (exit 1 and one line per wrong include)
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
uses = {}
for rule in sys.argv[2:]:
    name, _, deps = rule.partition("=")
    uses[name] = [d for d in deps.split(",") if d]


def closure(layer, seen=None):
    seen = set() if seen is None else seen
    for dep in uses.get(layer, []):
        if dep not in seen:
            seen.add(dep)
            closure(dep, seen)
    return seen


include = re.compile(r'^\s*#\s*include\s+"([^"/]+)/[^"]+"')
bad = []
checked = 0
for layer in uses:
    allowed = closure(layer) | {layer, "omendb"}
    folder = root / layer
    files = [p for p in folder.rglob("*") if p.suffix in (".c", ".h", ".cu", ".cuh", ".cpp")]
    if not files:
        bad.append(f"{layer}/: no source files (is the layer table out of date?)")
    for path in files:
        checked += 1
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = include.match(line)
            if m and m.group(1) not in allowed:
                bad.append(f"{path.relative_to(root)}:{n}: includes {m.group(1)}/, but "
                           f"{layer} may use only {', '.join(sorted(allowed - {layer})) or 'libc'}")
for line in bad:
    print(line)
print(f"{checked} files in {len(uses)} folders checked, {len(bad)} wrong includes")
sys.exit(1 if bad else 0)
