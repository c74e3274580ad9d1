"""Imports of metric packages whose module-level imports name things we do not install.

- `distillmos` imports torchaudio at module level but uses it only in its command-line file
  reader; torchaudio is deliberately not installed (it would pull another torch build).
- `webrtcvad` 2.0.10 (needed by `resemblyzer`) and `pysptk` 1.0.1 import `pkg_resources` (for
  a version string / an example file), which recent setuptools no longer provides.

For each, a placeholder module stands in for the missing import while the package is
imported, and is removed right after, so nothing else ever sees it.
"""
from __future__ import annotations

import contextlib
import importlib
import sys
import types
from typing import Iterator


@contextlib.contextmanager
def placeholder_modules(*names: str) -> Iterator[None]:
    """Install empty modules for those `names` that cannot be imported; remove them after."""
    added = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            mod = types.ModuleType(name)
            if name == "pkg_resources":
                mod.get_distribution = lambda dist: types.SimpleNamespace(version="unknown")
            sys.modules[name] = mod
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def import_distillmos():
    with placeholder_modules("torchaudio"):
        return importlib.import_module("distillmos")


def import_resemblyzer():
    with placeholder_modules("pkg_resources"):
        return importlib.import_module("resemblyzer")


def import_pysptk():
    with placeholder_modules("pkg_resources"):
        return importlib.import_module("pysptk")
