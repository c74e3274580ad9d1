"""Experiments as config: the profile's `experiments` entries, completed and cross-checked.

Each entry is one training run (a table row or a learning curve) and becomes a chain of DAG
jobs: train -> (enhance -> evaluate) -> tables and figures. An entry of stage `pretrained` is a
model file trained elsewhere (the authors' released USEMamba): it has no train job and no
curves, only enhance -> evaluate -> table rows, and is left out of the run (one printed line,
a note under the tables) while its file is missing (`missing_checkpoints`). The JSON schema
checks each entry on its own; this module checks what a schema cannot: that `init` names a
regression experiment, that there is no cycle, that a filter or size names something the
profile defines, and that the report section names experiments that exist (and, for a learning
curve, one that is trained here).

    exps = experiments(cfg)            # name -> Experiment, in dependency order
    exps["shifted_gan"].init           # "shifted"
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from use_repro.config import ConfigError, plain
from use_repro.stage_settings import ENTRY_DEFAULTS

PRETRAINED = "pretrained"  # the stage of a model file trained elsewhere: scored, never trained

# Pseudo-systems the report prints beside the experiments.
NOISY = "noisy"          # the unprocessed test input
ORIGINAL = "original"    # the unprocessed held-out-language recordings (Table 4)


@dataclass(frozen=True)
class Experiment:
    name: str
    stage: str
    target: str
    filter: str
    init: str
    size: str
    steps: int
    test: bool
    unseen: bool
    gpus: int
    label: str
    checkpoint: str = ""
    seed: int | None = None   # this run's seed; None: the profile's top-level `seed`
    validate_every: int = 0   # this run's validation cadence; 0: train.validate_every
    depends: tuple[str, ...] = field(default=())

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def trained(self) -> bool:
        """Trained by this DAG (a train job, final.pt, curves.csv); False for `pretrained`."""
        return self.stage != PRETRAINED


def experiments(cfg: dict) -> dict[str, Experiment]:
    """Complete and check `cfg["experiments"]`; return name -> Experiment in dependency order
    (an experiment comes after the one it is initialised from). Raises ConfigError naming the key."""
    raw = cfg.get("experiments") or {}
    exps: dict[str, Experiment] = {}
    for name, entry in raw.items():
        e = {**ENTRY_DEFAULTS, **(entry or {})}
        unknown = sorted(set(e) - set(ENTRY_DEFAULTS))
        if unknown:
            raise ConfigError(f"config key experiments.{name}.{unknown[0]}: unknown key; "
                              f"allowed here: {', '.join(sorted(ENTRY_DEFAULTS))}")
        exps[name] = Experiment(name=name, **e, depends=(e["init"],) if e["init"] else ())
    # the consistency checks decide whether a job may run, not what it writes: they read an
    # untraced copy, so the keys they look at (every threshold, window, report list) do not count
    # as what a job reads (config.TRACE_ENV, the tiny DAG's test of the digests)
    _check(exps, plain(cfg))
    return {n: exps[n] for n in _toposort(exps)}


def _check(exps: dict[str, Experiment], cfg: dict) -> None:
    for e in exps.values():
        key = f"config key experiments.{e.name}"
        if e.stage == PRETRAINED:
            _check_pretrained(e, key)
        elif e.checkpoint:
            raise ConfigError(f"{key}.checkpoint: only a `stage: {PRETRAINED}` entry names its model file; "
                              f"a {e.stage} run writes its own final.pt")
        if e.stage in ("gan", "finetune"):
            if not e.init:
                raise ConfigError(f"{key}.init: stage {e.stage} needs the regression experiment it starts from")
        if e.init:
            if e.init not in exps:
                raise ConfigError(f"{key}.init: no experiment named {e.init!r}; "
                                  f"defined: {', '.join(sorted(exps))}")
            if exps[e.init].stage != "regression":
                raise ConfigError(f"{key}.init: {e.init!r} is a {exps[e.init].stage} run; "
                                  f"{e.stage} starts from a regression run")
        thresholds = _names(cfg.get("vqscore", {}).get("thresholds"))
        if e.filter != "none" and thresholds is not None and e.filter not in thresholds:
            raise ConfigError(f"{key}.filter: no VQScore threshold named {e.filter!r}; "
                              f"vqscore.thresholds defines: {', '.join(sorted(thresholds)) or 'none'}")
        windows = (cfg.get("simulation") or {}).get("early_windows_ms")
        m = re.fullmatch(r"early([0-9.]+)ms", e.target)
        if m and windows is not None and float(m.group(1)) not in [float(w) for w in windows]:
            raise ConfigError(f"{key}.target: {e.target} needs a {m.group(1)} ms window in "
                              f"simulation.early_windows_ms (now {list(windows)})")
        sizes = _names(cfg.get("model", {}).get("sizes"))
        if e.size and sizes is not None and e.size not in sizes:
            raise ConfigError(f"{key}.size: no model size named {e.size!r}; "
                              f"model.sizes defines: {', '.join(sorted(sizes))}")
    rep = cfg.get("report", {}) or {}
    named = [("report.table1", n) for n in rep.get("table1", [])]
    named += [("report.fig3a", n) for n in rep.get("fig3a", [])]
    named += [("report.fig3b", n) for n in rep.get("fig3b", [])]
    for k, v in (rep.get("fig9") or {}).items():
        named.append((f"report.fig9.{k}", v))
    for k, v in (rep.get("spectrograms") or {}).items():
        if isinstance(v, str):
            named.append((f"report.spectrograms.{k}", v))
    named.append(("report.proposed", rep.get("proposed", "")))
    if exps:  # a profile without experiments (corpus-only runs) has nothing to point at
        for key, n in named:
            if n and n not in exps:
                raise ConfigError(f"config key {key}: no experiment named {n!r}; "
                                  f"defined: {', '.join(exps)}")
            # the learning-curve figures read curves.csv, which only a training run writes
            if n in exps and not exps[n].trained and key.startswith(("report.fig3", "report.fig9")):
                raise ConfigError(f"config key {key}: {n!r} is a {PRETRAINED} model, which has no "
                                  f"learning curve; name a run this profile trains")
    for n in rep.get("table1", []):
        if n in exps and not exps[n].test:
            raise ConfigError(f"config key report.table1: experiment {n!r} is not scored on the "
                              f"test set; set experiments.{n}.test: true")


def _check_pretrained(e: Experiment, key: str) -> None:
    """A `pretrained` entry is scored, not trained: its file, and nothing a training run reads."""
    if not e.checkpoint:
        raise ConfigError(f"{key}.checkpoint: stage {PRETRAINED} needs the model file to score (absolute, "
                          f"or relative to weights_dir), e.g. reuse/model.safetensors")
    if e.init:
        raise ConfigError(f"{key}.init: a {PRETRAINED} model is not trained here, so it starts from nothing")
    if not (e.test or e.unseen):
        raise ConfigError(f"{key}: a {PRETRAINED} model is only scored; set test and/or unseen to true")


def checkpoint_path(e: Experiment, cfg: dict) -> Path:
    """The model file of a `pretrained` entry: its `checkpoint`, absolute or under weights_dir
    (where `use-repro weights add` installs files)."""
    p = Path(e.checkpoint).expanduser()
    return p if p.is_absolute() else Path(cfg.get("weights_dir") or "weights") / p


def missing_checkpoints(cfg: dict, exps: dict[str, Experiment] | None = None) -> dict[str, Path]:
    """name -> the expected file, for each `pretrained` entry whose model file does not exist.
    The DAG leaves these out of the run (a fresh machine still makes every table) and the
    tables say so; relative paths resolve against the working directory, as the jobs' do."""
    exps = experiments(cfg) if exps is None else exps
    out = {}
    for n, e in exps.items():
        if not e.trained:
            p = checkpoint_path(e, cfg)
            if not p.is_file():
                out[n] = p
    return out


def missing_message(e: Experiment, path: Path, profile: str = "PROFILE") -> str:
    """One line naming the entry and the file it waits for (DAG warning and table notes)."""
    return (f"experiments.{e.name} ({e.display}): model file {path} not found, so it is left out of "
            f"this run's tables; put the file there to score it (the authors' release: `use-repro "
            f"weights --config {profile} fetch reuse` installs it as <weights_dir>/reuse/model.safetensors)")


def experiments_of(entries: dict) -> dict[str, Experiment]:
    """Experiment objects of entries as a report settings type holds them (completed by their
    defaults: stage_settings.completed_entries), without the cross-checks `experiments` makes."""
    out = {}
    for name, entry in entries.items():
        e = {**ENTRY_DEFAULTS, **entry}
        out[name] = Experiment(name=name, **e, depends=(e["init"],) if e["init"] else ())
    return out


def table_runs(exps: dict[str, Experiment], table1: list[str], table: str) -> list[str]:
    """The experiments `table` shows (the declared entries, also a `pretrained` one whose file
    is missing, which the table names in a note), in print order: report.table1 or the test
    runs for the test-set tables, the held-out-language runs for table4, none for datasize
    (`exps` in the profile's order, which the tables print)."""
    if table == "datasize":
        return []
    if table == "table4":
        return [n for n, e in exps.items() if e.unseen]
    return list(table1) or [n for n, e in exps.items() if e.test]


def table_job(exps: dict[str, Experiment], table1: list[str], table: str) -> dict:
    """The job values of `table`'s TableSettings, as the DAG and `report tables` both compute
    them: the runs it shows (table_runs; `exps` in the profile's order) and whether one is a
    `pretrained` model file (whose location it then reads)."""
    shown = table_runs(exps, table1, table)
    return {"table": table, "shown": tuple(shown), "pretrained": any(not exps[n].trained for n in shown)}


def figure_job(exps: dict[str, Experiment], report: dict, figure: str) -> dict:
    """The job values of `figure`'s FigureSettings, as the DAG and `report figure` both compute
    them: the runs it draws (figure_runs; `exps` without a missing model file) and, for Figure
    3(a), which names its curves by them, the thresholds those runs were filtered with."""
    shown = figure_runs(exps, report, figure)
    used = sorted({exps[n].filter for n in shown}) if figure == "fig3a" else []
    return {"figure": figure, "shown": tuple(shown), "thresholds_shown": tuple(used)}


def figure_runs(exps: dict[str, Experiment], report: dict, figure: str) -> list[str]:
    """The experiments `figure` draws (report: the profile's report section), those of `exps`."""
    if figure in ("fig3a", "fig3b"):
        names = [m for members in curve_groups(exps, report[figure]).values() for m in members]
    elif figure == "fig9":
        names = [report["fig9"]["two_stage"], report["fig9"]["finetune"]]
    elif figure in ("fig5", "fig6"):
        names = [report["spectrograms"]["regression"], report["spectrograms"]["gan"]]
    elif figure == "fig8":
        names = [report["spectrograms"]["early"], report["spectrograms"]["shifted"]]
    else:  # residual_correlation
        names = [report["spectrograms"]["gan"]]
    return [n for n in names if n in exps]


def _names(node) -> set[str] | None:
    """Names a config node defines (keys of a mapping, `name` fields of a list); None if absent."""
    if node is None:
        return None
    if isinstance(node, dict):
        return set(node)
    if isinstance(node, list):
        return {str(x.get("name")) if isinstance(x, dict) else str(x) for x in node}
    return None


def _toposort(exps: dict[str, Experiment]) -> list[str]:
    order, state = [], {}

    def visit(n: str, path: tuple[str, ...]) -> None:
        if state.get(n) == "done":
            return
        if state.get(n) == "visiting":
            raise ConfigError("config key experiments: init cycle " + " -> ".join(path + (n,)))
        state[n] = "visiting"
        for d in exps[n].depends:
            visit(d, path + (n,))
        state[n] = "done"
        order.append(n)

    for n in exps:
        visit(n, ())
    return order


def seed_twins(exps: dict[str, Experiment], name: str) -> list[str]:
    """Other seeds of run `name`: trained experiments equal to it in everything but the seed
    (and the label), in config order."""
    e = exps.get(name)
    if e is None or not e.trained:
        return []

    def key(x: Experiment):
        return (x.stage, x.target, x.filter, x.steps, x.init, x.size)
    return [n for n, x in exps.items() if n != name and x.trained and key(x) == key(e) and x.seed != e.seed]


def curve_groups(exps: dict[str, Experiment], names) -> dict[str, list[str]]:
    """The curves a learning-curve figure draws: listed run -> [it, its other seeds...]. A
    listed run that is another's seed joins the first listed one's group (one curve, a band)."""
    groups: dict[str, list[str]] = {}
    placed: set[str] = set()
    for n in names:
        if n in placed:
            continue
        members = [n] + [t for t in seed_twins(exps, n) if t not in placed]
        groups[n] = members
        placed.update(members)
    return groups
