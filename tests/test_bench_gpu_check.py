"""bench/gpu_check.py without a GPU: a dry run that says, section by section, what it skips,
writes its JSON and exits 0 (with CUDA present the test forces the dry run with --dry-run)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_skips_every_section_and_exits_zero(tmp_path, capsys):
    gpu_check = _load()
    out = tmp_path / "gpu_check.json"
    argv = ["--out", str(out), "--mamba-sdist", str(tmp_path / "mamba_ssm-2.2.4.tar.gz")]
    assert gpu_check.main(argv + (["--dry-run"] if torch.cuda.is_available() else [])) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["dry_run"] is True and data["environment"]["status"] == "ok"
    for section in gpu_check.SECTIONS[1:]:
        assert data[section]["status"] == "skipped", section
        assert f"[{section}] skipped: " in printed
    assert "mamba-ssm's CUDA build not attempted" in data["mamba_build"]["reason"]


def test_step_sections_run_on_cpu_with_the_tiny_profile(monkeypatch, capsys):
    """The code of the step sections, exercised on the CPU with the tiny profile's model and a
    0.25 s crop (on the GPU it is the gpu profile's 30-block model on 10 s at 48 kHz)."""
    gpu_check = _load()
    monkeypatch.setattr(gpu_check, "DEVICE", "cpu")
    monkeypatch.setattr(gpu_check, "PROFILE", "tiny")
    monkeypatch.setattr(gpu_check, "FS", 16000)
    monkeypatch.setattr(gpu_check, "SECONDS", 0.25)
    chk = gpu_check.Check(budget_s=300)
    gpu_check.section_steps(chk, cuda=True)
    gpu_check.section_run50(chk, cuda=True, steps=3)
    steps, run = chk.results["steps"], chk.results["run50"]
    assert steps["status"] == "ok", steps
    assert steps["regression"]["step_s"] > 0 and steps["gan"]["step_s"] > 0
    assert steps["regression"]["scan"] and steps["gan"]["scan"]
    assert run["status"] == "ok" and run["steps_done"] == 3
    assert "regression step, 0.25 s at 16 kHz" in capsys.readouterr().out
