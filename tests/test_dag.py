"""The Snakemake DAG: lint, dry runs at cluster scale, and the whole `tiny` profile end to end.

- `snakemake --lint` reports nothing for any rule of any stage;
- `snakemake -n` plans the `urgent2025` profile (paper-scale experiments) locally and through the
  SLURM executor profile, against a fake official data layout made here;
- the `tiny` profile's whole DAG runs on 2 cores and writes every table and figure, each holding
  numbers; deleting one figure and asking for it reruns exactly the one job that draws it.

Every run uses its own working directory (`snakemake -d`), so the repository's results/ and
figures/ are never touched; the corpus download cache is shared through a symlink.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from use_repro.audio.io import write_audio
from use_repro.config import REPO_ROOT, load_config
from use_repro.report import layout
from use_repro.report.experiments import experiments

BIN = Path(sys.executable).parent
SNAKEFILE = REPO_ROOT / "Snakefile"
SLURM_PROFILE = REPO_ROOT / "experiments" / "profiles" / "slurm"
TINY_BUDGET_S = 300


def snakemake(workdir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    exe = BIN / "snakemake"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd + ["-s", str(SNAKEFILE), "-d", str(workdir), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def job_counts(output: str) -> dict[str, int]:
    """The `job count` table Snakemake prints before running (or dry-running)."""
    counts, in_table = {}, False
    for line in output.splitlines():
        if re.match(r"^job\s+count\s*$", line.strip()):
            in_table = True
            continue
        if in_table:
            m = re.match(r"^([A-Za-z_][\w]*)\s+(\d+)\s*$", line.strip())
            if m:
                counts[m.group(1)] = int(m.group(2))
            elif counts and not line.strip().startswith("-"):
                break
    return counts


def test_lint_is_clean(tmp_path):
    r = snakemake(tmp_path, "--lint")
    assert r.returncode == 0 and "Lints for" not in r.stdout + r.stderr, r.stdout + r.stderr


# --- urgent2025: a fake official layout ------------------------------------------------------

def fake_official(root: Path) -> None:
    """The files the challenge's prepare_espnet_data.sh leaves behind, in miniature."""
    import numpy as np

    x = (0.1 * np.sin(np.arange(16000) / 5)).astype("float32")
    lists = {"speech_train.scp": "speech", "validation/spk1.scp": "speech", "test/spk1.scp": "speech",
             "noise_train.scp": "noise", "noise_validation.scp": "noise", "noise_test.scp": "noise",
             "rir_train.scp": "rir", "rir_validation.scp": "rir", "rir_test.scp": "rir",
             "wind_noise_train.scp": "wind", "wind_noise_validation.scp": "wind", "wind_noise_test.scp": "wind"}
    for name, kind in lists.items():
        lines = []
        for i in range(2):
            uid = f"{Path(name).parent.name or Path(name).stem}_{kind}_{i}"
            audio = root / "audio" / f"{uid}.flac"
            write_audio(audio, x, 16000)
            lines.append(f"{uid} 16000 {audio}\n")
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join(lines))
        if kind == "speech":
            d = (root / name).parent
            uids = [l.split()[0] for l in lines]
            (d / "utt2fs").write_text("".join(f"{u} 16000\n" for u in uids))
            (d / "utt2spk").write_text("".join(f"{u} spk{i}\n" for i, u in enumerate(uids)))
            (d / "utt2lang").write_text("".join(f"{u} en\n" for u in uids))
            (d / "text").write_text("".join(f"{u} hello world\n" for u in uids))


def urgent_profile(tmp_path: Path) -> Path:
    data = tmp_path / "official"
    fake_official(data)
    raw = yaml.safe_load((REPO_ROOT / "experiments" / "config" / "urgent2025.yaml").read_text())
    raw["corpus"]["official_dir"] = str(data)
    path = tmp_path / "urgent2025.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def makefile_snakemake_args(target: str, profile: str) -> list[str]:
    """The arguments `make <target> PROFILE=<profile>` passes to snakemake (from `make -n`)."""
    r = subprocess.run(["make", "-n", "-s", "-C", str(REPO_ROOT), target, f"PROFILE={profile}", "CORES=2"],
                       capture_output=True, text=True, timeout=60)
    lines = [ln for ln in r.stdout.splitlines() if re.search(r"/snakemake\s", ln)]
    assert r.returncode == 0 and len(lines) == 1, r.stdout + r.stderr
    return shlex.split(lines[0])[1:]


def test_dry_run_plans_urgent2025(tmp_path):
    # the very command `make tables` runs, planned against the fake official layout
    cfg_path = urgent_profile(tmp_path)
    args = makefile_snakemake_args("tables", str(cfg_path))
    assert args[0] == "tables" and f"profile={cfg_path}" in args, args
    r = snakemake(tmp_path, *args, "-n")
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout + r.stderr)
    exps = experiments(load_config(cfg_path))
    assert counts.get("train") == len(exps) == 10
    # every tested system against both references; Noisy only against the challenge's (early)
    # reference, as the paper's Table 6 (anechoic reference) has no Noisy row
    assert counts.get("evaluate_test") == 1 + 2 * sum(e.test for e in exps.values())
    assert counts.get("report_table") == len(layout.TABLES)
    assert counts.get("report_figure") == len(layout.FIGURES)
    assert counts.get("report_provenance") == 1 and counts.get("corpus") == 1


def test_dry_run_through_the_slurm_profile(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm",
                        reason="the SLURM executor plugin is a test dependency (pip install -e '.[test]')")
    cfg_path = urgent_profile(tmp_path)
    r = snakemake(tmp_path, "tables", "-n", "--profile", str(SLURM_PROFILE), "--config", f"profile={cfg_path}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert job_counts(out).get("train") == 10
    # training jobs ask for their GPUs and start one process per GPU through torchrun
    assert re.search(r"resources:.*\bgpu=8\b", out), out[-3000:]
    assert "torchrun --standalone --nproc_per_node=8 -m use_repro train regression" in out
    assert "torchrun --standalone --nproc_per_node=8 -m use_repro train gan" in out


# --- tiny: the whole DAG ---------------------------------------------------------------------

def has_numbers(path: Path) -> bool:
    if path.suffix in (".png", ".pdf"):
        return path.stat().st_size > 1000
    return re.search(r"\d+\.\d+", path.read_text(errors="replace")) is not None


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny_dag")
    for shared in (".cache", "weights"):  # the corpus download cache and any metric weights
        src = REPO_ROOT / shared
        src.mkdir(exist_ok=True) if shared == ".cache" else None
        if src.exists():
            (work / shared).symlink_to(src, target_is_directory=True)
    t0, load0 = time.time(), os.getloadavg()[0]
    r = snakemake(work, "tables", "--cores", "2", "--config", "profile=tiny", timeout=2400)
    elapsed, load = time.time() - t0, (load0 + os.getloadavg()[1]) / 2
    prov = work / "results" / "tiny" / "provenance.md"
    print(f"tiny DAG: {elapsed:.0f} s on 2 cores (load average {load:.1f})")
    if prov.exists():
        print(prov.read_text())
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    return work, elapsed, load


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_dag_writes_every_table_and_figure(tiny_run):
    work, elapsed, load = tiny_run
    results, figures = work / "results" / "tiny", work / "figures" / "tiny"
    for t in layout.TABLES:
        for ext in ("md", "csv", "tex"):
            p = layout.table_files(results, t)[ext]
            assert p.exists() and has_numbers(p), p
    for name in ("compare.md", "compare.csv"):
        assert has_numbers(layout.tables_dir(results) / name)
    for f in layout.FIGURES + ("fig2", "fig7"):
        for ext in ("png", "pdf"):
            p = figures / f"{f}.{ext}"
            assert p.exists() and has_numbers(p), p
    prov = (results / "provenance.md").read_text()
    assert "## Wall time per stage" in prov and "| train |" in prov
    # The budget is 5 min on 2 otherwise idle cores; on a shared machine the limit grows with
    # the load average (a load of 8 on 2 cores leaves each job about a quarter of a core).
    limit = TINY_BUDGET_S * max(1.0, load / 2)
    assert elapsed < limit, f"the tiny DAG took {elapsed:.0f} s (budget {TINY_BUDGET_S} s on 2 idle cores; load {load:.1f})"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_deleting_a_figure_reruns_only_its_rule(tiny_run):
    work = tiny_run[0]
    target = work / "figures" / "tiny" / "fig3b.png"
    files = [p for d in ("results", "figures") for p in (work / d).rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files if p != target}
    target.unlink()
    plan = snakemake(work, "figures/tiny/fig3b.png", "-n", "--cores", "2", "--config", "profile=tiny")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert job_counts(plan.stdout + plan.stderr) == {"report_figure": 1, "total": 1}
    r = snakemake(work, "figures/tiny/fig3b.png", "--cores", "2", "--config", "profile=tiny")
    assert r.returncode == 0, r.stdout + r.stderr
    assert target.exists()
    changed = {p for p, t in before.items() if p.exists() and p.stat().st_mtime_ns != t}
    own_log = work / "results" / "tiny" / "logs" / "report" / "fig3b.log"
    assert changed - {own_log} == {work / "figures" / "tiny" / "fig3b.pdf"}
