"""The package's metadata: torch with a floor (an installed torch is kept), the CPU pin in the
Makefile's constraints file, the licence as an SPDX string."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_torch_has_a_floor_not_a_pin_and_the_pin_is_a_constraint_of_make_env():
    meta = _project()
    deps = [d for d in meta["project"]["dependencies"] if re.match(r"torch\b", d)]
    assert deps == ["torch>=2.4"]
    extras = [d for ds in meta["project"]["optional-dependencies"].values() for d in ds]
    assert not [d for d in extras if re.match(r"torch(audio|vision)?\s*==", d)]
    pins = [ln.strip() for ln in (ROOT / "constraints-cpu.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    assert pins and all("==" in p for p in pins) and any(p.startswith("torch==") for p in pins)
    make = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS ?= constraints-cpu.txt" in make
    recipe = make.split("$(STAMP): pyproject.toml $(CONSTRAINTS)\n", 1)[1].split("\n\n", 1)[0]
    installs = [ln for ln in recipe.splitlines() if "pip install" in ln or "$(PIP)" in ln]
    assert len(installs) >= 4 and all("$(PIP)" in ln or "--upgrade pip" in ln for ln in installs)


def test_licence_is_an_spdx_string():
    meta = _project()
    assert meta["project"]["license"] == "Apache-2.0"
    assert any(re.fullmatch(r"setuptools>=(7[7-9]|[89]\d)(\.\d+)*", r) for r in meta["build-system"]["requires"])
