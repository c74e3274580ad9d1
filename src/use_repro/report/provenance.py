"""Provenance of a run: commit, date, machine, wall time per stage, metric backends, the
selective scan every training run used (its `scan_backend.json`).

Wall times come from the records Snakemake keeps of every finished job (`.snakemake/metadata/`:
rule, start and end time per output file), so every rule of every stage is covered without a
`benchmark:` directive. Stages are the first word of the rule name (`train_regression` -> train).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

from use_repro.report.scores import METRICS, Backend, read_backends


def git_commit(repo: str | Path) -> dict[str, str]:
    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = run("rev-parse", "HEAD")
    # The run's own outputs (results/, figures/; a few are tracked, e.g. the committed mini
    # summaries) are not changes to the code that produced them.
    dirty = bool(run("status", "--porcelain", "--untracked-files=no", "--", ".",
                     ":(exclude)results", ":(exclude)figures"))
    return {"commit": commit or "unknown", "dirty": "yes" if dirty else "no",
            "describe": run("log", "-1", "--format=%s") or ""}


def machine() -> dict[str, str]:
    info = {"host_os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "cpu_cores_visible": str(os.cpu_count())}
    try:
        info["cpu_cores_usable"] = str(len(os.sched_getaffinity(0)))
    except AttributeError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = f"{int(line.split()[1]) / 1024 ** 2:.1f}"
                break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception:  # noqa: BLE001 - provenance never fails on a missing optional fact
        info["gpu"] = "unknown"
    try:
        import snakemake

        info["snakemake"] = snakemake.__version__
    except Exception:  # noqa: BLE001
        pass
    return info


def read_jobs(metadata_dir: str | Path, prefixes: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per finished Snakemake job: rule, job (its first output), start, end, seconds.

    Snakemake keeps a record per output file in `.snakemake/metadata/` (file name: the output
    path, base64 encoded; content: JSON with `rule`, `starttime`, `endtime`, `job_hash`). Only
    outputs under one of `prefixes` (e.g. `results/mini/`, `figures/mini/`) are kept."""
    import base64

    records = []
    mdir = Path(metadata_dir)
    for p in sorted(mdir.iterdir()) if mdir.exists() else []:
        try:
            name = base64.urlsafe_b64decode(p.name + "=" * (-len(p.name) % 4)).decode()
            rec = json.loads(p.read_text())
        except (ValueError, OSError, UnicodeDecodeError):
            continue
        if prefixes and not any(name.startswith(x) for x in prefixes):
            continue
        start, end = rec.get("starttime"), rec.get("endtime")
        if start is None or end is None or rec.get("incomplete"):
            continue
        records.append((rec.get("rule", "?"), rec.get("job_hash"), float(start), float(end), name))
    # One record per output file: the outputs of one job share rule and job hash and start
    # within moments of each other (a rerun of the same job starts much later).
    rows: list[dict] = []
    for rule, job_hash, start, end, name in sorted(records, key=lambda r: (r[0], str(r[1]), r[2])):
        last = rows[-1] if rows else None
        if last and last["rule"] == rule and last["hash"] == job_hash and start - last["start"] < 5.0:
            last["end"] = max(last["end"], end)
            last["job"] = min(last["job"], name)
            continue
        rows.append({"rule": rule, "hash": job_hash, "job": name, "start": start, "end": end})
    rows = [{k: v for k, v in r.items() if k != "hash"} for r in rows]
    df = pd.DataFrame(rows, columns=["rule", "job", "start", "end"])
    df["seconds"] = df["end"] - df["start"]
    return df.sort_values("start").reset_index(drop=True)


def stage_of(rule: str) -> str:
    return rule.split("_", 1)[0]


def stage_times(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per stage: jobs, summed job seconds, and wall span (first start to last end)."""
    if jobs.empty:
        return pd.DataFrame(columns=["stage", "jobs", "job_seconds", "wall_seconds"])
    b = jobs.assign(stage=jobs["rule"].map(stage_of))
    g = b.groupby("stage", sort=False)
    out = pd.DataFrame({"jobs": g.size(), "job_seconds": g["seconds"].sum(),
                        "wall_seconds": g["end"].max() - g["start"].min()}).reset_index()
    order = ["corpus", "simulate", "vqscore", "train", "enhance", "evaluate", "report"]
    out["o"] = out["stage"].map(lambda s: order.index(s) if s in order else len(order))
    return out.sort_values(["o", "stage"]).drop(columns="o")


def collect_backends(json_paths) -> dict[str, Backend]:
    out: dict[str, Backend] = {}
    for p in json_paths:
        try:
            for m, b in read_backends(p).items():
                out.setdefault(m, b)
        except (OSError, ValueError, json.JSONDecodeError):
            continue
    return out


def simulation_rejects(results_dirs) -> dict[str, dict]:
    """Per simulated split, what `simulate` skipped (a run can finish with rejects, up to
    simulation.max_reject_fraction, so the record says so): the rows rendered (its meta.tsv), the
    rows render rejected (rejects.tsv) and the speech entries or manifest lines params skipped
    (params_rejects.tsv), with the first of each."""
    import csv

    def read(tsv):
        with open(tsv, encoding="utf-8", newline="") as f:
            return [f"{r.get('id')}: {r.get('reason')}" for r in csv.DictReader(f, delimiter="\t")]

    out: dict[str, dict] = {}
    for root in results_dirs:
        for split in sorted(p for p in Path(root).glob("simulation/*") if p.is_dir()):
            files = {k: split / f for k, f in (("rejected", "rejects.tsv"), ("params_skipped", "params_rejects.tsv"))}
            if not any(f.exists() for f in files.values()):
                continue
            try:
                meta = split / "meta.tsv"
                rec = {"rendered": max(0, len(meta.read_text(encoding="utf-8").splitlines()) - 1) if meta.exists() else 0}
                for key, f in files.items():
                    items = read(f) if f.exists() else []
                    rec[key], rec[f"{key}_first"] = len(items), items[:5]
                    rec[f"{key}_file"] = str(f) if f.exists() else ""
            except (OSError, UnicodeDecodeError, csv.Error):
                continue
            out[split.name] = rec
    return out


def scan_backends(results_dirs) -> dict[str, dict]:
    """Per training run (a folder of a results dir holding `scan_backend.json`, written by
    `use-repro train`): its stage, device and the selective-scan backends its Mamba layers ran."""
    out: dict[str, dict] = {}
    for root in results_dirs:
        for rec in sorted(Path(root).glob("*/scan_backend.json")):
            try:
                data = json.loads(rec.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            out[rec.parent.name] = {k: data.get(k) for k in ("stage", "device", "backends", "labels")}
    return out


def write_provenance(out_md: str | Path, profile: str, repo: str | Path, metadata_dir: str | Path,
                     prefixes: tuple[str, ...], eval_jsons=(), extra: dict[str, str] | None = None) -> dict:
    """Write `provenance.md` and `provenance.json` (same stem); return the JSON data."""
    from use_repro.fs import write_text_atomic

    out_md = Path(out_md)
    rejects = simulation_rejects(prefixes)
    jobs = read_jobs(metadata_dir, prefixes)
    stages = stage_times(jobs)
    backends = collect_backends(eval_jsons)
    scans = scan_backends(prefixes)
    total_wall = float(jobs["end"].max() - jobs["start"].min()) if not jobs.empty else float("nan")
    busy = _busy_seconds(jobs)
    data = {
        "profile": profile,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **git_commit(repo),
        "machine": machine(),
        "wall_seconds_span": round(total_wall, 1),
        "wall_seconds_busy": round(busy, 1),
        "stages": stages.round(1).to_dict("records"),
        "jobs": jobs.assign(start=jobs["start"].map(_iso), end=jobs["end"].map(_iso)).round(1).to_dict("records"),
        "backends": {m: {"name": b.name, "paper": b.paper, "reason": b.reason} for m, b in backends.items()},
        "simulation_rejects": rejects,
        "scan_backends": scans,
        **(extra or {}),
    }
    md = [f"# Provenance — profile `{profile}`", "",
          f"- commit: `{data['commit']}`" + (" (with uncommitted changes)" if data["dirty"] == "yes" else ""),
          f"- date (UTC): {data['date']}",
          "- machine: " + ", ".join(f"{k} {v}" for k, v in data["machine"].items()),
          f"- wall time with at least one job running: {busy / 60:.1f} min "
          f"(first start to last end: {total_wall / 60:.1f} min; jobs of earlier invocations included)",
          *[f"- {k}: {v}" for k, v in (extra or {}).items()], "",
          "## Wall time per stage (from Snakemake's job records)", "",
          "| Stage | Jobs | Sum of job times (s) | Wall span (s) |", "|---|---:|---:|---:|"]
    for _, r in stages.iterrows():
        md.append(f"| {r['stage']} | {r['jobs']} | {r['job_seconds']:.1f} | {r['wall_seconds']:.1f} |")
    md += ["", "## Jobs", "", "| Rule | First output | Start (UTC) | Seconds |", "|---|---|---|---:|"]
    for _, r in jobs.iterrows():
        md.append(f"| {r['rule']} | `{r['job']}` | {_iso(r['start'])} | {r['seconds']:.1f} |")
    md += ["", "## Metric backends", "", "| Metric | Backend | Paper's? | Note |", "|---|---|---|---|"]
    for m in METRICS:
        b = backends.get(m)
        md.append(f"| {m} | {b.name if b and b.name else 'n/a'} | {('yes' if b.paper else 'no') if b else '—'} | "
                  f"{b.reason if b else 'no evaluation found'} |")
    md += ["", "## Selective scan of each training run (`scan_backend.json`)", ""]
    md += [f"- {run}: {', '.join(r.get('labels') or r.get('backends') or []) or 'no Mamba layers'} "
           f"on {r.get('device')} ({r.get('stage')})" for run, r in scans.items()] or ["- no training run recorded one"]
    md += ["", "## Simulation rejects (`simulate render`, rejects.tsv)", ""]
    md += [f"- {split}: {r['rendered']} rows rendered, {r['rejected']} rejected"
           + (f" (`{r['rejected_file']}`; first: {'; '.join(r['rejected_first'])})" if r["rejected"] else "")
           + f"; {r['params_skipped']} speech entries or manifest lines skipped by params"
           + (f" (`{r['params_skipped_file']}`; first: {'; '.join(r['params_skipped_first'])})"
              if r["params_skipped"] else "")
           for split, r in rejects.items()] or ["- no rejects.tsv found"]
    write_text_atomic(out_md, "\n".join(md) + "\n")
    write_text_atomic(out_md.with_suffix(".json"), json.dumps(data, indent=1, default=str) + "\n")
    return data


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(float(t), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _busy_seconds(jobs: pd.DataFrame) -> float:
    """Length of the union of the jobs' [start, end] intervals (idle gaps between invocations
    are not counted)."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(zip(jobs["start"], jobs["end"])):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total
