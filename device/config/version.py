"""painmon's version, from one source: the git tag, through setuptools-scm at build time.

The built package carries it in its metadata (and in ``device/_version.py``, written by
setuptools-scm); a checkout run without installing has neither and says ``0+unknown``, as a
build from a tree without git metadata says setuptools-scm's fallback version.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata

UNKNOWN = "0+unknown"


@cache  # the installed metadata does not change under a running process
def painmon_version() -> str:
    try:
        return metadata.version("painmon")
    except metadata.PackageNotFoundError:
        pass
    try:
        from device._version import version  # written by setuptools-scm when it builds
    except ImportError:
        return UNKNOWN
    return str(version)
