"""The build backend behind `pip install .`: meson-python as Debian packages it.

pip builds a package in an isolated environment and would fetch meson-python from PyPI into it;
machines that reach only Debian's registry cannot, so this backend takes meson-python (Debian's
python3-mesonpy, with its dependencies) from Debian's site directory instead and hands every
hook to it unchanged.
"""
import os
import sys

DEBIAN_SITE = "/usr/lib/python3/dist-packages"
if DEBIAN_SITE not in sys.path:
    sys.path.append(DEBIAN_SITE)
# pip's isolation reaches the programs the backend runs through PYTHONPATH (its overlay, whose
# sitecustomize hides the system's site directories); Debian's /usr/bin/meson needs them.
os.environ.pop("PYTHONPATH", None)

from mesonpy import (  # noqa: E402
    build_sdist,
    build_wheel,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
)

__all__ = ["build_sdist", "build_wheel", "get_requires_for_build_sdist",
           "get_requires_for_build_wheel"]
