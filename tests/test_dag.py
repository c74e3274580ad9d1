"""The Snakemake DAG: lint, dry runs at cluster scale, and the whole `tiny` profile end to end.

- `snakemake --lint` reports nothing for any rule of any stage;
- `snakemake -n` plans the `urgent2025` profile (paper-scale experiments) locally and through the
  SLURM executor profile, against a fake official data layout made here;
- the `tiny` profile's whole DAG runs on 2 cores and writes every table and figure, each holding
  numbers; deleting one figure and asking for it reruns exactly the one job that draws it;
- a job's identity is its settings: on a `tiny` DAG whose outputs are all present and recorded
  (empty files made up to date by `snakemake --touch`), editing one setting plans exactly the
  jobs that read it and their descendants, an execution-only key plans nothing, a moved
  checkout plans nothing, and `--config` overrides are applied or refused by name.

No test here limits wall time: how long the tiny DAG takes is a budget for bench/ and the README.

Every run uses its own working directory (`snakemake -d`), so the repository's results/ and
figures/ are never touched; the corpus download cache is shared through a symlink.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from use_repro.audio.io import write_audio
from use_repro.config import REPO_ROOT, TRACE_ENV, load_config
from use_repro.report import layout
from use_repro.report.experiments import experiments

BIN = Path(sys.executable).parent
SNAKEFILE = REPO_ROOT / "Snakefile"
SLURM_PROFILE = REPO_ROOT / "experiments" / "profiles" / "slurm"


def snakemake(workdir: Path, *args: str, snakefile: Path = SNAKEFILE, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = BIN / "snakemake"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    return subprocess.run(cmd + ["-s", str(snakefile), "-d", str(workdir), *args], capture_output=True,
                          text=True, env=env)


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
            uids = [line.split()[0] for line in lines]
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
    """The arguments `make <target> PROFILE=<profile>` passes to snakemake (from `make -n`; the
    line goes on, after a `;`, with the NISQA note)."""
    r = subprocess.run(["make", "-n", "-s", "-C", str(REPO_ROOT), target, f"PROFILE={profile}", "CORES=2"],
                       capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if re.search(r"/snakemake\s", ln)]
    assert r.returncode == 0 and len(lines) == 1, r.stdout + r.stderr
    return shlex.split(lines[0].split(";", 1)[0])[1:]


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


def test_paper_core_plans_table1_systems_only(tmp_path):
    # `make paper-core`: the four Table 1 systems (early, shifted and their GAN corrections) are
    # trained and scored; no other run, no figure, no other table
    cfg_path = urgent_profile(tmp_path)
    args = makefile_snakemake_args("paper-core", str(cfg_path))
    assert args[0] == "paper_core", args
    r = snakemake(tmp_path, *args, "-n")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    counts = job_counts(out)
    assert counts.get("train") == 4 and counts.get("enhance") == 4, counts
    assert counts.get("evaluate_test") == 1 + 4  # Noisy and the four, against the early reference
    assert counts.get("report_table") == 1 and "report_figure" not in counts and "report_provenance" not in counts
    trained = set(re.findall(r"results/urgent2025/(\w+)/final\.pt", out))
    assert trained == {"early", "shifted", "early_gan", "shifted_gan"}, trained


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
    # every job records the settings keys it reads (config.TRACE_ENV): see the test below
    r = snakemake(work, "tables", "--cores", "2", "--config", "profile=tiny", env={TRACE_ENV: str(work / "trace")})
    prov = work / "results" / "tiny" / "provenance.md"
    if prov.exists():
        print(prov.read_text())  # wall time per stage, for the record (bench/ holds the budgets)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    return work


@pytest.mark.slow
def test_tiny_dag_writes_every_table_and_figure(tiny_run):
    work = tiny_run
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
    # outputs follow the user's umask (the atomic writes start from a 0600 temp file)
    umask = os.umask(0)
    os.umask(umask)
    for p in (layout.table_files(results, "table1")["csv"], results / "shifted" / "final.pt", figures / "fig3b.png"):
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p


@pytest.mark.slow
def test_every_job_reads_only_settings_its_digest_covers(tiny_run):
    """Each job of the tiny run read (through its settings file) only keys that the file's digest
    covers, keys marked execution-only, and keys omitted at their default: a key read outside
    the digest would leave its results stale when edited. `profile` names the results folder."""
    import json

    from use_repro.config import digest_marks, settings_file_keys

    marks = digest_marks()
    checked, stray = set(), {}
    for trace in sorted((tiny_run / "trace").glob("*.json")):
        record = json.loads(trace.read_text())
        path = Path(record["config"])
        path = path if path.is_absolute() else tiny_run / path
        if path.parent.name != "settings":
            continue  # the DAG's own reading of the profile
        covered = set(settings_file_keys(path))
        bad = [k for k in record["read"] if k not in covered and k != "profile" and not marks.is_execution(k)
               and k not in marks.omitted_at_default]
        checked.add(path.name)
        if bad:
            stray[path.name] = sorted(set(stray.get(path.name, [])) | set(bad))
    # corpus, 3 x simulate, 4 x vqscore, 6 x train, evaluations, tables, figures, compare, ...
    assert len(checked) >= 20, sorted(checked)
    assert not stray, stray


@pytest.mark.slow
def test_deleting_a_figure_reruns_only_its_rule(tiny_run):
    work = tiny_run
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


@pytest.mark.slow
def test_a_copied_tree_retrains_one_run_and_table1_keeps_every_metric(tiny_run, tmp_path):
    """A finished run copied elsewhere (paths in its lists are relative to their own folders and
    sources are named by root-relative path): retraining one Table 1 run there re-enhances that
    run under the same file names, its evaluation finds every reference, and Table 1 has a
    number wherever the original had one."""
    import csv

    copy = tmp_path / "copied"
    shutil.copytree(tiny_run, copy, symlinks=True)
    retrain = snakemake(copy, "tables", "--cores", "2", "--config", "profile=tiny",
                        "experiments={shifted_gan: {steps: 3}}")
    assert retrain.returncode == 0, (retrain.stdout + retrain.stderr)[-6000:]
    counts = job_counts(retrain.stdout + retrain.stderr)
    assert counts.get("train") == 1 and counts.get("enhance") == 2, counts  # test + held-out languages

    def cells(work):
        with open(layout.table_files(work / "results" / "tiny", "table1")["csv"]) as f:
            rows = [r for r in csv.DictReader(f) if r.get("source") != "paper"]
        return {(r["system"], k): v for r in rows for k, v in r.items()}

    before, after = cells(tiny_run), cells(copy)
    assert set(before) == set(after)
    lost = sorted(k for k, v in before.items() if v not in ("", "n/a", "nan") and after[k] in ("", "n/a", "nan"))
    assert not lost, lost
    enhanced = sorted(p.name for p in (copy / "results" / "tiny" / "shifted_gan" / "enhanced" / "test").rglob("*.flac"))
    original = sorted(p.name for p in (tiny_run / "results" / "tiny" / "shifted_gan" / "enhanced" / "test").rglob("*.flac"))
    assert enhanced == original


# --- a job's identity: settings edits plan exactly what they affect -----------------------------

def copy_checkout(dst: Path) -> Path:
    """The parts of a checkout the DAG reads (Snakefile, rules, profiles, reported numbers)."""
    dst.mkdir(parents=True)
    shutil.copy(SNAKEFILE, dst / "Snakefile")
    shutil.copy(REPO_ROOT / "environment.yml", dst / "environment.yml")
    shutil.copytree(REPO_ROOT / "experiments", dst / "experiments")
    return dst / "Snakefile"


def make_up_to_date(work: Path, snakefile: Path, profile: str) -> None:
    """Every output of `tables` present (empty) and recorded by Snakemake as made by this config:
    the outputs a dry run lists are created, then `--touch --forceall` records them."""
    plan = snakemake(work, "tables", "-n", "--config", f"profile={profile}", snakefile=snakefile)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    for line in (plan.stdout + plan.stderr).splitlines():
        m = re.match(r"\s+output: (.*)$", line)
        if m:
            for name in m.group(1).split(", "):
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).touch()
    touch = snakemake(work, "tables", "--touch", "-F", "--cores", "1", "--config", f"profile={profile}",
                      snakefile=snakefile)
    assert touch.returncode == 0, touch.stdout + touch.stderr
    assert planned(work, profile, snakefile) == {}, "the baseline is not up to date"


def planned(work: Path, profile: str, snakefile: Path = SNAKEFILE, *extra: str) -> dict[str, int]:
    """Jobs per rule that `snakemake -n tables` plans ({} when there is nothing to do)."""
    r = snakemake(work, "tables", "-n", "--config", f"profile={profile}", *extra, snakefile=snakefile)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    if "Nothing to be done" in out:
        return {}
    return job_counts(out)


def dag(work: Path, profile: str, snakefile: Path = SNAKEFILE) -> tuple[dict[str, str], dict[str, set[str]], set[str]]:
    """Snakemake's own DAG of `tables` (`--dag`): node -> label ("rule" + "\\nwildcard: value"
    lines), node -> the nodes that read its outputs, and the nodes it would run (not dashed)."""
    r = snakemake(work, "--dag", "dot", "--config", f"profile={profile}", "--", "tables", snakefile=snakefile)
    assert r.returncode == 0, r.stdout + r.stderr
    labels, children, run = {}, {}, set()
    for line in r.stdout.splitlines():
        m = re.match(r'\s*(\d+)\[label = "([^"]*)".*style="([^"]*)"', line)
        if m:
            labels[m.group(1)] = m.group(2).replace("\\n", "\n")  # dot writes the newline as \n
            if "dashed" not in m.group(3):
                run.add(m.group(1))
        m = re.match(r"\s*(\d+) -> (\d+)", line)
        if m:
            children.setdefault(m.group(1), set()).add(m.group(2))
    return labels, children, run


def closure(nodes: set[str], children: dict[str, set[str]]) -> set[str]:
    todo, seen = list(nodes), set(nodes)
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return seen


@pytest.fixture(scope="module")
def recorded_tiny(tmp_path_factory):
    """A working directory where the whole tiny DAG is up to date under the shipped profile."""
    work = tmp_path_factory.mktemp("recorded_tiny")
    make_up_to_date(work, SNAKEFILE, "tiny")
    return work


def edited_tiny(tmp_path: Path, edit) -> str:
    """A copy of tiny.yaml (same file name, so the same results/tiny) with `edit` applied."""
    raw = yaml.safe_load((REPO_ROOT / "experiments" / "config" / "tiny.yaml").read_text())
    edit(raw)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def _set(*keys):
    def edit(raw):
        *parents, last, value = keys
        node = raw
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = value
    return edit


def _both(*edits):
    def edit(raw):
        for e in edits:
            e(raw)
    return edit


# edit -> the jobs whose own settings it changes (labels of Snakemake's --dag); everything
# downstream of them must be planned too, and nothing else.
EDITS = {
    "steps": (_set("experiments", "shifted", "steps", 6), {"train\nexp: shifted"}),
    "init": (_set("experiments", "shifted_finetune", "init", "anechoic"), {"train\nexp: shifted_finetune"}),
    "size": (_both(_set("model", "sizes", "small", {"num_blocks": 1, "channels": 8}),
                   _set("experiments", "early", "size", "small")), {"train\nexp: early"}),
    # every training run and the comparison (which prints the learning rate)
    "lr": (_set("train", "lr", 2.0e-3), {f"train\nexp: {n}" for n in
                                          ("shifted_vq050", "shifted", "anechoic", "early", "shifted_gan",
                                           "shifted_finetune")} | {"report_compare"}),
    # `shifted` is still rendered for the other runs, so only this run is affected
    "target": (_set("experiments", "shifted_vq050", "target", "early"), {"train\nexp: shifted_vq050"}),
    # a target no run had: its own render jobs (train, valid) and this run; no other run retrains
    "new target": (_set("experiments", "shifted_vq050", "target", "early25ms"),
                   # (Snakemake's labels leave out the split: the label names train's and valid's jobs)
                   {"train\nexp: shifted_vq050", "simulate_render_target\ntarget: early25ms"}),
    "filter": (_set("experiments", "shifted", "filter", "vq050"), {"train\nexp: shifted"}),
    "report only": (_set("report", "pesq_tolerance", 0.5), {"report_compare"}),
    # settings that arrived later with a no-op default: set, they rerun exactly what reads them
    "crop cap": (_set("train", "segment_max_rate", 16000), {f"train\nexp: {n}" for n in
                                                           ("shifted_vq050", "shifted", "anechoic", "early",
                                                            "shifted_gan", "shifted_finetune")}),
    "train voices": (_set("corpus", "ktuberling_train_languages", ["de"]), {"corpus"}),
    # reruns as narrow as the data (issue #21): a threshold no run uses rewrites the data-size
    # table and what draws every threshold (Figures 2/7, the comparison), but no list a run reads
    "unused threshold": (_set("vqscore", "thresholds", [{"name": "vq050", "score": 0.50, "keep": 1.0},
                                                       {"name": "vq065", "score": 0.65, "keep": 0.995},
                                                       {"name": "vq072", "score": 0.72, "keep": 0.30}]),
                         {"vqscore_filter", "vqscore_histogram", "report_table\ntable: datasize", "report_compare"}),
    # a used threshold rewrites its own list and retrains exactly the runs filtered by it
    "used threshold": (_set("vqscore", "thresholds", [{"name": "vq050", "score": 0.50, "keep": 0.9},
                                                     {"name": "vq065", "score": 0.65, "keep": 0.995},
                                                     {"name": "vq072", "score": 0.72, "keep": 0.25}]),
                       {"vqscore_filter", "vqscore_histogram", "report_table\ntable: datasize", "report_compare",
                        "vqscore_filter_list\nthreshold: vq050", "report_figure\nfigure: fig3a"}),
    # the metric list is read only by the evaluations against the challenge's reference (the
    # anechoic reference and the held-out languages get fixed lists)
    "drop MCD": (_set("evaluate", "metrics", ["DNSMOS", "NISQA", "UTMOS", "DistillMOS", "PESQ", "ESTOI", "SDR",
                                              "LSD", "SBERT", "LPS", "SpkSim", "CAcc"]),
                 {f"evaluate_test\nref: early\nsystem: {s}" for s in ("noisy", "shifted", "early", "shifted_gan")}),
    # a new run that no table or figure shows: its training and the comparison that lists every run
    "new run": (_set("experiments", "early_vq050", {"stage": "regression", "target": "early", "filter": "vq050",
                                                    "steps": 4, "label": "Early, no filtering"}),
                {"train\nexp: early_vq050", "report_compare"}),
    # a second seed of a Figure 3(b) run: drawn as that curve's band, in no table
    "new seed": (_set("experiments", "anechoic_seed1", {"stage": "regression", "target": "anechoic",
                                                        "filter": "vq065", "steps": 4, "seed": 1,
                                                        "label": "Anechoic (unshifted)"}),
                 {"train\nexp: anechoic_seed1", "report_compare", "report_figure\nfigure: fig3b"}),
    # relabelling a run redraws what prints that run only
    "relabel": (_set("experiments", "anechoic", "label", "Anechoic"), {"report_figure\nfigure: fig3b", "report_compare"}),
}


PRINTED_PLAN_CHECKED = ("steps", "lr", "new target", "drop MCD", "unused threshold")


@pytest.mark.parametrize("kind", list(EDITS))
def test_a_settings_edit_plans_its_jobs_and_their_descendants_only(recorded_tiny, tmp_path, kind):
    edit, direct = EDITS[kind]
    profile = edited_tiny(tmp_path, edit)
    labels, children, run = dag(recorded_tiny, profile)
    starts = {n for n, lab in labels.items() if lab in direct}
    assert {labels[n] for n in starts} == direct, (kind, sorted(labels.values()))
    expected = closure(starts, children)
    assert run == expected, (kind, "planned beyond:", sorted(labels[n] for n in run - expected),
                             "not planned:", sorted(labels[n] for n in expected - run))
    # the same plan as `snakemake -n` prints (checked on a few kinds: each check is a DAG build)
    if kind not in PRINTED_PLAN_CHECKED:
        return
    counts = planned(recorded_tiny, profile)
    per_rule = {}
    for n in run:
        rule = labels[n].split("\n")[0]
        per_rule[rule] = per_rule.get(rule, 0) + 1
    assert {k: v for k, v in counts.items() if k != "total"} == per_rule, kind


def test_a_field_added_to_a_stage_changes_that_stage_s_digest_and_plans_only_its_jobs(tmp_path, monkeypatch):
    """A new field of EvaluateSettings (a new `evaluate` key of the schema, with a default, that
    the evaluation now reads) is part of the evaluations' digest: the plan is exactly the
    evaluations and what reads them. Marked `x-digest: execution` or `omitted-at-default`, it plans
    nothing. (That a key no stage's type reads is in no digest is tested on the digests themselves,
    tests/test_stage_settings.py.)"""
    work = tmp_path / "checkout"
    snakefile = copy_checkout(work)
    # the DAG imports this copy's package, whose settings types the test edits
    shutil.copytree(REPO_ROOT / "src" / "use_repro", work / "src" / "use_repro",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "build"))
    monkeypatch.setenv("PYTHONPATH", str(work / "src"))
    profile = str(work / "experiments" / "config" / "tiny.yaml")
    make_up_to_date(work, snakefile, profile)
    schema_file = work / "experiments" / "config" / "schema.yaml"
    types_file = work / "src" / "use_repro" / "stage_settings.py"
    schema_text, types_text = schema_file.read_text(), types_file.read_text()

    def add_key(**marks):
        schema = yaml.safe_load(schema_text)
        schema["properties"]["evaluate"]["properties"]["frame_hop_ms"] = {
            "description": "a new evaluation setting", "type": "number", "default": 10.0, **marks}
        schema_file.write_text(yaml.safe_dump(schema, sort_keys=False))

    def add_field():
        anchor = '    metrics: list[str] | None = reads("evaluate.metrics"'
        assert anchor in types_text
        types_file.write_text(types_text.replace(
            anchor, '    frame_hop_ms: float = reads("evaluate.frame_hop_ms")\n' + anchor))

    add_key()  # in the schema, read by no stage: in no digest (tests/test_stage_settings.py)
    add_field()
    labels, children, run = dag(work, profile, snakefile)
    starts = {n for n, lab in labels.items() if lab.split("\n")[0] in ("evaluate_test", "evaluate_unseen")}
    # the challenge reference: noisy + 3 test runs; anechoic: the 3 runs; held-out languages: 2
    assert len(starts) == 9, sorted(labels[n] for n in starts)
    expected = closure(starts, children)
    assert run == expected, ("planned beyond:", sorted(labels[n] for n in run - expected),
                             "not planned:", sorted(labels[n] for n in expected - run))
    assert not any(labels[n].startswith(("train", "enhance", "simulate", "corpus", "vqscore")) for n in run)
    for marks in ({"x-digest": "execution"}, {"x-digest": "omitted-at-default"}):
        add_key(**marks)
        assert planned(work, profile, snakefile) == {}, marks


def test_execution_only_keys_and_written_out_defaults_plan_nothing(recorded_tiny, tmp_path):
    edit = _both(_set("threads", 2), _set("cache_dir", "elsewhere"), _set("train", "checkpoint_every", 7),
                 _set("experiments", "early", "gpus", 0), _set("experiments", "early", "size", ""),
                 # keys that arrived after results existed, written out at their no-op defaults
                 _set("corpus", "ktuberling_train_languages", []), _set("train", "segment_max_rate", 0))
    assert planned(recorded_tiny, edited_tiny(tmp_path, edit)) == {}


def test_config_overrides_apply_or_are_refused_by_name(recorded_tiny):
    # an override is a settings edit like any other: the same plan as editing the file
    lr = planned(recorded_tiny, "tiny", SNAKEFILE, "train={lr: 2.0e-3}")
    assert lr.get("train") == 6 and lr.get("corpus") is None, lr
    seed = planned(recorded_tiny, "tiny", SNAKEFILE, "seed=3")
    assert seed.get("corpus") == 1 and seed.get("train") == 6, seed
    for bad, key in (("sead=3", "sead"), ("train={lrr: 1}", "train.lrr"), ("seed=-1", "seed")):
        r = snakemake(recorded_tiny, "tables", "-n", "--config", "profile=tiny", bad)
        assert r.returncode != 0 and key in r.stdout + r.stderr, (bad, (r.stdout + r.stderr)[-2000:])


def test_a_moved_checkout_plans_nothing(tmp_path):
    old = tmp_path / "old"
    snakefile = copy_checkout(old)
    make_up_to_date(old, snakefile, str(old / "experiments" / "config" / "tiny.yaml"))
    new = tmp_path / "new"
    old.rename(new)
    assert planned(new, str(new / "experiments" / "config" / "tiny.yaml"), new / "Snakefile") == {}


def test_unlock_needs_no_cores(tmp_path):
    # what Snakemake itself advises after a kill
    r = snakemake(tmp_path, "--unlock", "--config", "profile=tiny")
    assert r.returncode == 0 and "Unlocked" in r.stdout + r.stderr, r.stdout + r.stderr


def test_editing_the_profile_in_place_reruns_the_edited_run(tmp_path):
    # the case: `steps` reached the rule only through a params function of `input`,
    # so an in-place edit left `snakemake -n` at "Nothing to be done"
    work = tmp_path / "checkout"
    snakefile = copy_checkout(work)
    profile = work / "experiments" / "config" / "tiny.yaml"
    make_up_to_date(work, snakefile, str(profile))
    text = profile.read_text()
    edited = re.sub(r"(\n  shifted: \{[^}]*steps: )4,", r"\g<1>6,", text)
    assert edited != text
    profile.write_text(edited)
    plan = planned(work, str(profile), snakefile)
    # the run, the two initialised from it, and what they feed; nothing upstream
    assert plan.get("train") == 3 and plan.get("enhance") == 3, plan
    assert not {"corpus", "simulate_params", "simulate_render", "vqscore_train"} & set(plan), plan


def test_a_new_weights_file_reruns_exactly_the_evaluations_that_use_it(recorded_tiny):
    # `use-repro weights add nisqa FILE` changes the NISQA column's backend: the evaluations
    # against the challenge's reference (whose metrics include NISQA) rerun, with what reads
    # them; Table 6's and the held-out languages' evaluations (no NISQA) and training do not.
    nisqa = recorded_tiny / "weights" / "nisqa" / "nisqa.tar"
    nisqa.parent.mkdir(parents=True)
    nisqa.write_bytes(b"a checkpoint that is not the official one")
    try:
        labels, children, run = dag(recorded_tiny, "tiny")
        starts = {n for n, lab in labels.items() if lab.startswith("evaluate_test") and "ref: early" in lab}
        assert starts, sorted(labels.values())
        assert run == closure(starts, children), sorted(labels[n] for n in run)
        assert not any(labels[n].startswith(("train", "evaluate_unseen")) for n in run)
        assert not any("ref: anechoic" in labels[n] for n in run)
    finally:
        shutil.rmtree(nisqa.parent.parent)
    assert planned(recorded_tiny, "tiny") == {}


def test_utmos_weights_rerun_training_whose_validation_curves_use_them(recorded_tiny):
    # the trainer's validation MOS is UTMOS once its weights are there (registry.validation_mos)
    utmos = recorded_tiny / "weights" / "utmos" / "utmos22_strong_step7459_v1.pt"
    utmos.parent.mkdir(parents=True)
    utmos.write_bytes(b"stand-in")
    try:
        plan = planned(recorded_tiny, "tiny")
        n_runs = len(yaml.safe_load((REPO_ROOT / "experiments" / "config" / "tiny.yaml").read_text())["experiments"])
        assert plan.get("train") == n_runs and "corpus" not in plan and "simulate_render" not in plan, plan
    finally:
        shutil.rmtree(utmos.parent.parent)
    assert planned(recorded_tiny, "tiny") == {}


def test_make_small_plans_every_run_with_its_own_seed(tmp_path):
    # the command `make small` runs, planned from scratch: the paper's runs plus the second seed
    args = makefile_snakemake_args("small", "mini")
    assert args[0] == "tables" and "profile=small" in args, args
    r = snakemake(tmp_path, *args, "-n", "-p")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    exps = experiments(load_config("small"))
    assert job_counts(out).get("train") == len(exps) == 11
    train_cmds = [ln for ln in out.splitlines() if " train regression " in ln]
    seeded = [ln for ln in train_cmds if "--seed " in ln]
    assert len(train_cmds) == 8 and len(seeded) == 1 and "--seed 1" in seeded[0], train_cmds
    assert "/shifted_seed1" in seeded[0]
