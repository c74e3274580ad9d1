"""`make tables`'s NISQA step, run by make itself: a fake venv whose `snakemake` only echoes and
whose `use-repro` is this package, a profile whose weights_dir is a temporary folder, and NISQA
served from 127.0.0.1 (NISQA_URL, the Makefile's mirror variable)."""
from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_weights import _Server
from use_repro import weights as W
from use_repro.metrics.nisqa import OFFICIAL_SHA256

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def venv(tmp_path):
    """A venv stand-in: bin/use-repro runs this package, bin/snakemake records its arguments."""
    bin_ = tmp_path / "venv" / "bin"
    bin_.mkdir(parents=True)
    _exe(bin_ / "use-repro", f'#!/bin/sh\nexec "{sys.executable}" -m use_repro "$@"\n')
    _exe(bin_ / "snakemake", '#!/bin/sh\necho "SNAKEMAKE $*"\nexit "${FAKE_SNAKEMAKE_RC:-0}"\n')
    (tmp_path / "venv" / ".installed").touch()
    return tmp_path / "venv"


@pytest.fixture
def profile(tmp_path):
    """tiny.yaml with weights_dir under tmp_path (never the clone's ./weights)."""
    raw = yaml.safe_load((REPO_ROOT / "experiments" / "config" / "tiny.yaml").read_text())
    raw["weights_dir"] = str(tmp_path / "w")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def make(venv: Path, profile: Path, url: str, rc: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "FAKE_SNAKEMAKE_RC": str(rc), "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run(["make", "-s", "-C", str(REPO_ROOT), "-o", str(venv / ".installed"), "tables",
                           f"VENV={venv}", f"PROFILE={profile}", f"NISQA_URL={url}", "--no-print-directory"],
                          capture_output=True, text=True, env=env, timeout=300)


def _lines(r: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]


def test_unreachable_weights_one_line_before_and_after_and_the_run_goes_on(tmp_path, venv, profile):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/nisqa.tar"
    r = make(venv, profile, url)
    lines = _lines(r)
    assert r.returncode == 0, lines
    notes = [ln for ln in lines if "NISQA: the official weights are NOT installed" in ln]
    assert len(notes) == 2 and lines[0] == notes[0] and lines[-1] == notes[1], lines  # first and last
    assert "cannot reach" in notes[0] and "nisqa.tar is missing" in notes[1]  # the end fetches nothing
    assert all(n.endswith(f"n/a in this run's tables. Add them: make weights PROFILE={profile}") for n in notes)
    assert any(ln.startswith("SNAKEMAKE tables ") and f"profile={profile}" in ln for ln in lines), lines
    assert not (tmp_path / "w" / "nisqa" / "nisqa.tar").exists()


def test_a_wrong_file_is_not_installed_and_the_runs_status_is_kept(tmp_path, venv, profile):
    server = _Server(bytes(W.REGISTRY["nisqa"].size))  # the official size, other bytes
    try:
        r = make(venv, profile, server.url, rc=3)
    finally:
        server.close()
    lines = _lines(r)
    assert r.returncode != 0  # snakemake's failure is the build's, the NISQA step's is not
    notes = [ln for ln in lines if "NOT installed" in ln]
    assert len(notes) == 2 and "sha256" in notes[0], lines
    assert not (tmp_path / "w" / "nisqa" / "nisqa.tar").exists()


def _real_nisqa() -> Path | None:
    from tests.shared import shared_file

    return shared_file("weights/nisqa/nisqa.tar")


def test_reachable_weights_are_installed_before_the_run_and_nothing_said_after(tmp_path, venv, profile):
    real = _real_nisqa()
    if real is None:
        pytest.skip("the real nisqa.tar is not available (set USE_REPRO_SHARED to a folder holding "
                    "weights/nisqa/nisqa.tar, or put shared/ beside the clone)")
    server = _Server(real.read_bytes())
    try:
        r = make(venv, profile, server.url)
    finally:
        server.close()
    lines = _lines(r)
    assert r.returncode == 0, lines
    assert lines[0].startswith("use-repro weights: NISQA: installed the official weights")
    assert OFFICIAL_SHA256 in lines[0] and lines[-1].startswith("SNAKEMAKE tables"), lines
    assert (tmp_path / "w" / "nisqa" / "nisqa.tar").is_file()
    # the next run finds them in place and fetches nothing
    r = make(venv, profile, "http://127.0.0.1:9/unused")
    assert _lines(r)[0] == f"use-repro weights: NISQA: the official weights are in place ({tmp_path / 'w' / 'nisqa' / 'nisqa.tar'})"
