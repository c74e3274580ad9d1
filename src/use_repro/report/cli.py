"""Write the paper's tables, figures and the reproduced-vs-reported comparison.

  use-repro report tables --config CFG --table table1 --out-dir results/mini/tables
  use-repro report figure fig3b --config CFG --out figures/mini/fig3b.png
  use-repro report compare --config CFG --out-dir results/mini/tables
  use-repro report provenance --config CFG --out results/mini/provenance.md

Every input is found where the DAG puts it (see use_repro.report.layout) under --results
(default: results/<profile> of the config); the test set's meta.tsv, the held-out languages'
utt2lang and the VQScore data-size table are passed explicitly.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from use_repro.config import load_config, plain, results_dir
from use_repro.errors import UsageError
from use_repro.report import layout
from use_repro.report.experiments import (NOISY, ORIGINAL, checkpoint_path, experiments, experiments_of,
                                          figure_job, missing_checkpoints, missing_message, table_job)
from use_repro.stage_settings import (CompareSettings, FigureSettings, ProvenanceSettings, TableSettings,
                                      UnseenListSettings, from_profile)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True, metavar="{tables,figure,compare,provenance}")

    def common(sp):
        sp.add_argument("--config", required=True, help="profile name or YAML path")
        sp.add_argument("--results", help="results/<profile> folder (default: from the config)")

    t = sub.add_parser("tables", help="write one table as .md, .csv and .tex")
    common(t)
    t.add_argument("--table", required=True, choices=layout.TABLES)
    t.add_argument("--test-meta", help="the test set's meta.tsv (sampling rates for the Table 2 analogue)")
    t.add_argument("--unseen-lang", help="utt2lang of the held-out-language recordings (Table 4 analogue)")
    t.add_argument("--datasize", help="the VQScore stage's datasize.csv")
    t.add_argument("--out-dir", required=True)

    f = sub.add_parser("figure", help="draw one figure as .png and .pdf")
    common(f)
    f.add_argument("name", choices=layout.FIGURES)
    f.add_argument("--test-meta", help="the test set's meta.tsv (spectrogram figures)")
    f.add_argument("--noisy-dir", help="folder of the noisy test inputs (default: paths in meta.tsv)")
    f.add_argument("--out", required=True, help="output path; .png and .pdf are written")

    c = sub.add_parser("compare", help="reproduced vs reported: side by side, Δ, and the paper's claims")
    common(c)
    c.add_argument("--tables-dir", help="where the table CSVs are (default: <results>/tables)")
    c.add_argument("--test-meta", help="the test set's meta.tsv (the rates of the Table 2 subsets)")
    c.add_argument("--unseen-lang", help="utt2lang of the held-out-language recordings (Table 4)")
    c.add_argument("--out-dir", required=True)

    u = sub.add_parser("unseen-list", help="the held-out-language test recordings the Table 4 analogue enhances")
    u.add_argument("--config", required=True, help="profile name or YAML path")
    u.add_argument("--speech-scp", required=True, help="the corpus's test speech list (uid fs path)")
    u.add_argument("--utt2lang", required=True, help="the corpus's utt2lang")
    u.add_argument("--out-scp", required=True)
    u.add_argument("--out-lang", required=True, help="utt2lang of the listed utterances")

    v = sub.add_parser("provenance", help="commit, date, machine, wall time per stage, metric backends")
    common(v)
    v.add_argument("--out", required=True, help="provenance .md (a .json is written beside it)")
    v.add_argument("--metadata", default=".snakemake/metadata",
                   help="Snakemake's job records (default: %(default)s under the working directory)")
    v.add_argument("--figures", help="figures/<profile> folder (default: from the config)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    results = Path(args.results) if getattr(args, "results", None) else results_dir(cfg)
    if args.what == "tables":
        return _tables(cfg, results, args)
    if args.what == "figure":
        return _figure(cfg, results, args)
    if args.what == "compare":
        return _compare(cfg, results, args)
    if args.what == "unseen-list":
        return _unseen_list(cfg, args)
    return _provenance(cfg, results, args)


# --- loading -----------------------------------------------------------------------------------

def _system(results: Path, exps: dict, name: str, split: str = "test", ref: str | None = "early"):
    from use_repro.report.scores import read_scores
    from use_repro.report.tables import System

    label = {NOISY: "Noisy", ORIGINAL: "Original"}.get(name) or exps[name].display
    return System(name, label, read_scores(layout.eval_csv(results, name, split, ref), name))


def _fs_by_id(meta_path: str | None) -> dict[str, int]:
    from use_repro.data.manifest import read_meta

    if not meta_path:
        return {}
    return {r["id"]: int(float(r["fs"])) for r in read_meta(meta_path)}


def _tables(cfg: dict, results: Path, args) -> int:
    import pandas as pd

    from use_repro.report import tables as T
    from use_repro.report.render import write_table

    name = args.table
    # which runs it shows is itself digested (`shown`): decided from an untraced copy
    profile_copy = plain(cfg)
    everything = experiments(profile_copy)
    job = table_job({n: everything[n] for n in profile_copy["experiments"]}, profile_copy["report"]["table1"], name)
    settings = from_profile(TableSettings, cfg, args.config, **job)
    exps = experiments_of(settings.experiments)
    absent = missing_checkpoints({"weights_dir": settings.weights_dir}, exps)
    printed = [n for n in settings.shown if n not in absent]
    profile, dec = settings.profile, int(settings.decimals)
    if name == "datasize":
        if not args.datasize:
            raise UsageError("report tables --table datasize needs --datasize")
        order = [t["name"] for t in settings.thresholds]
        table = T.datasize(pd.read_csv(args.datasize), profile, order, dec)
    elif name == "table4":
        from use_repro.data.manifest import read_kv

        lang = read_kv(args.unseen_lang) if args.unseen_lang else {}
        original = _system(results, exps, ORIGINAL, "unseen", None)
        systems = [_system(results, exps, n, "unseen", None) for n in printed]
        proposed = settings.proposed
        for s in systems:
            if s.id == proposed:
                s.paper_id = "proposed"
        table = T.table4(original, systems, lang, T.read_reported("table4"), profile, dec)
    else:
        ref = "anechoic" if name == "table6" else "early"
        noisy = _system(results, exps, NOISY, "test", ref) if name != "table6" else None
        systems = [_system(results, exps, n, "test", ref) for n in printed]
        if name == "table1":
            table = T.table1(noisy, systems, T.read_reported("table1"), profile, dec)
        elif name == "table6":
            table = T.table6(systems, T.read_reported("table6"), profile, dec)
        elif name == "table2":
            proposed = settings.proposed
            for s in systems:
                if s.id == proposed:
                    s.paper_id = "proposed"
            table = T.table2(noisy, systems, _fs_by_id(args.test_meta), T.read_reported("table2"), profile, dec)
        elif name == "table7":
            table = T.table7(T.read_reported("table7"), [noisy] + systems, profile)
        else:
            raise UsageError(f"unknown table {name}")
    # why a `pretrained` system it would print has no row: its model file is missing (the DAG
    # left it out; experiments.missing_checkpoints)
    table.notes = list(table.notes) + [f"No row for {missing_message(exps[n], p, profile)}." for n, p in absent.items()]
    paths = write_table(table, args.out_dir)
    log.info("%s -> %s", name, ", ".join(str(p) for p in paths.values()))
    return 0


def _figure(cfg: dict, results: Path, args) -> int:
    from use_repro.report import figures as F

    name = args.name
    # which runs it draws is itself digested (`shown`): decided from an untraced copy, as the
    # DAG does, without a run whose model file is missing
    profile_copy = plain(cfg)
    everything = experiments(profile_copy)
    absent = missing_checkpoints(profile_copy, everything)
    present = {n: e for n, e in everything.items() if n not in absent}
    settings = from_profile(FigureSettings, cfg, args.config, **figure_job(present, profile_copy["report"], name))
    exps = experiments_of(settings.experiments)
    if name in ("fig3a", "fig3b"):
        thresholds = list(settings.thresholds) if name == "fig3a" else None
        runs, valid = _curve_groups(thresholds, results, exps, getattr(settings, name), name)
        title = {"fig3a": "(a) Different VQScore thresholds", "fig3b": "(b) Different learning targets"}[name]
        F.learning_curves(runs, settings.mos_metric, title, args.out, valid=valid)
    elif name == "fig9":
        two, ft = settings.fig9["two_stage"], settings.fig9["finetune"]
        F.fig9(F.read_curves(layout.curves(results, two)), F.read_curves(layout.curves(results, ft)), args.out,
               valid=tuple(_valid_scores(results, e) for e in (two, ft)))
    elif name == "residual_correlation":
        gan = settings.spectrograms["gan"]
        values = F.read_residual_correlation(layout.residual_correlation(results, gan))
        F.residual_correlation_figure(values, args.out, exps[gan].display)
    else:
        _spectrograms(settings.spectrograms, results, args, exps)
    return 0


def _valid_scores(results: Path, exp: str):
    """A run's per-utterance validation scores, or None where it has none (an older run)."""
    from use_repro.report import figures as F

    p = layout.valid_scores(results, exp)
    return F.read_valid_scores(p) if p.exists() else None


def _curve_groups(thresholds: list | None, results: Path, exps, names, figure: str):
    """Figure 3's curves: label -> {run: curves} (a run and its other seeds, which are drawn as
    one curve with a band) and label -> [per-utterance validation scores]. 3(a) names a curve by
    its VQScore threshold, 3(b) by its learning target; two curves that would share a name
    keep their experiments' labels beside it. `thresholds`: the profile's entries of the
    thresholds 3(a) names its curves by."""
    from use_repro.report import figures as F
    from use_repro.report.experiments import curve_groups

    runs, valid, seen = {}, {}, {}
    for head, members in curve_groups(exps, names).items():
        have = [m for m in members if layout.curves(results, m).exists()]
        for m in members:
            if m not in have:
                log.warning("%s: %s has no %s yet; drawn without it", figure, m, layout.curves(results, m))
        if head not in have:
            have = [head]  # read_curves names the missing file
        e = exps[head]
        label = F.threshold_label(e.filter, thresholds) if figure == "fig3a" else F.target_label(e.target)
        seen.setdefault(label, []).append(head)
        runs[(label, head)] = {m: F.read_curves(layout.curves(results, m)) for m in have}
        valid[(label, head)] = [v for v in (_valid_scores(results, m) for m in have) if v is not None]
    def name(key):
        label, head = key
        return label if len(seen[label]) == 1 else f"{label}, {exps[head].display}"
    return {name(k): v for k, v in runs.items()}, {name(k): v for k, v in valid.items()}


def _target_path(row: dict, target: str) -> str | None:
    """The path of `target` (early, shifted, anechoic, early<W>ms) in a meta.tsv row."""
    from use_repro.data.targets import target_column

    for key in (target_column(target), f"{target}_path"):
        v = row.get(key)
        if v and v.lower() != "none":
            return v
    return None


def _spectrograms(sp: dict, results, args, exps) -> dict:
    """Figures 5, 6 and 8 (`sp`: the profile's report.spectrograms)."""
    from use_repro.data.manifest import read_meta
    from use_repro.report import figures as F

    from use_repro.data.manifest import resolve_listed

    secs = float(sp.get("max_seconds", 4.0))
    meta = read_meta(args.test_meta)

    def enh(exp, uid):
        return F.find_audio(layout.enhanced(results, exp, "test"), uid)

    def listed(path):  # a meta.tsv path, found from any working directory (data.manifest)
        return resolve_listed(path, args.test_meta) if path and path.lower() != "none" else None

    def noisy(row):
        if args.noisy_dir:
            return F.find_audio(args.noisy_dir, row["id"])
        return listed(row.get("noisy_path"))

    if args.name in ("fig5", "fig6"):
        kind = "bandwidth" if args.name == "fig5" else "noise"
        reg, gan = sp["regression"], sp["gan"]
        target = exps[reg].target
        row = F.choose_examples(meta, kind, 1)[0]
        panels = [("Noisy", noisy(row)), (f"Regression ({exps[reg].display})", enh(reg, row["id"])),
                  (f"+GAN ({exps[gan].display})", enh(gan, row["id"])),
                  (f"Clean ({target})", listed(_target_path(row, target)))]
        regions = []
        cutoff = F.bandwidth_cutoff_hz(row) if kind == "bandwidth" else None
        if cutoff is not None:
            regions.append({"row": 0, "on": [0, 1, 2, 3], "color": "lime", "label": "band the input lacks",
                            "band": (cutoff, None),
                            "note": f"Green box (the paper's): the band the noisy input lacks, above {cutoff / 1000:g} "
                                    f"kHz (bandwidth-limited to {2 * cutoff / 1000:g} kHz sampling, from meta.tsv)."})
        elif kind == "noise":
            regions.append({"row": 0, "on": [0, 1, 2, 3], "color": "lime", "label": "strongest noise",
                            "largest": ("excess", 0, 3),
                            "note": "Green box (the paper's, placed by our rule): the 0.5 s x one-third-of-the-band "
                                    "box where the noisy input exceeds the clean target most (mean dB excess)."})
        regions.append({"row": 0, "on": [1, 2, "diff"], "color": "cyan", "style": "--", "label": "largest GAN change",
                        "largest": ("abs", 2, 1),
                        "note": "Dashed cyan box (our rule): the 0.5 s x one-third-of-the-band box where the GAN "
                                "changed the regression output most (mean |+GAN − regression| in dB)."})
        what = "bandwidth-limited input" if kind == "bandwidth" else "strong noise"
        return F.spectrogram_grid([panels], f"{'Figure 5' if kind == 'bandwidth' else 'Figure 6'} analogue: {what} "
                           f"({row['id']}); the last panel is where the GAN changed the regression output",
                           args.out, secs, diff=[(0, 2, 1)], regions=regions)
    else:  # fig8
        early, shifted = sp["early"], sp["shifted"]
        rows = []
        for row in F.choose_examples(meta, "reverb", 2):
            rows.append([(f"Noisy ({row['id']})", noisy(row)),
                         (f"Early-reflected target ({exps[early].display})", enh(early, row["id"])),
                         (f"Shifted anechoic target ({exps[shifted].display})", enh(shifted, row["id"]))])
        return F.spectrogram_grid(rows, "Figure 8 analogue: enhanced reverberant inputs, early-reflected vs "
                           "shifted anechoic learning target", args.out, secs,
                                  caption="No box: the paper's Figure 8 marks no region.")


def _model_scale(settings: CompareSettings) -> str:
    """The regression and generator sizes of a profile, with where they depart from the paper."""
    from use_repro.models.build import net_config
    from use_repro.models.usemamba import USEMambaConfig

    paper, parts = USEMambaConfig(), []
    for role in ("regression", "generator"):
        c = net_config({"model": settings.model}, role)
        text = f"{role} {c.num_blocks} blocks x {c.channels} channels (d_state {c.d_state}, expand {c.expand})"
        if role == "regression" and c.pha_mode != paper.pha_mode:
            text += f", phase {c.pha_mode} (the paper's is {paper.pha_mode})"
        if role == "regression" and c.mag_mode != paper.mag_mode:
            text += f", magnitude {c.mag_mode} (the paper's is {paper.mag_mode})"
        parts.append(text)
    decay = float(settings.lr_decay)
    lr = f"; learning rate {settings.lr:g} (the paper's 2e-4)"
    if decay != 1.0:
        lr += f", multiplied by {decay:g} after every step (the paper's is constant)"
    return "; ".join(parts) + lr


def _describe(name: str, e, weights_dir: str | None) -> str:
    """One experiment as the comparison's scale line lists it."""
    if not e.trained:  # scored from a given file: no steps, no data of this run
        path = checkpoint_path(e, {"weights_dir": weights_dir})
        absent = "" if path.is_file() else " (file missing: not scored)"
        return f"{name}: {e.stage} model {path}{absent}, trained for target {e.target}"
    return (f"{name}: {e.stage}, target {e.target}, filter {e.filter}, "
            f"{e.steps} steps{', size ' + e.size if e.size else ''}"
            f"{f', seed {e.seed}' if e.seed is not None else ''}")


def _compare(cfg: dict, results: Path, args) -> int:
    import pandas as pd

    from use_repro.report import figures as F
    from use_repro.report.compare import Inputs, write_compare
    from use_repro.report.provenance import collect_backends

    tdir = Path(args.tables_dir) if args.tables_dir else layout.tables_dir(results)
    tables = {}
    for name in layout.TABLES:
        p = tdir / f"{name}.csv"
        if p.exists():
            tables[name] = pd.read_csv(p, dtype={"subset": str, "language": str, "system": str})
    everything = experiments(plain(cfg))
    settings = from_profile(CompareSettings, cfg, args.config, pretrained=any(not e.trained for e in everything.values()))
    held = experiments_of(settings.experiments)
    exps = {n: held[n] for n in everything}  # each run after the one it starts from
    curves = {}
    for e in exps:
        p = layout.curves(results, e)
        if p.exists():
            curves[e] = F.read_curves(p)
    residual = {}
    for e, x in exps.items():
        p = layout.residual_correlation(results, e)
        if x.stage == "gan" and p.exists():
            residual[e] = F.read_residual_correlation(p)
    jsons = sorted(results.glob("*/eval/*.json"))
    t1 = tables.get("table1")
    n_test = None
    if t1 is not None and "n" in t1:
        ours = t1[t1["source"] == "reproduced"]
        n_test = int(ours["n"].max()) if len(ours) else None
    ds = tables.get("datasize")
    scale = {"profile": settings.profile,
             "test utterances": str(n_test) if n_test is not None else "unknown",
             "training speech (before filtering)": f"{float(ds['hours'].iloc[0]):.2f} h" if ds is not None and len(ds) else "unknown",
             "experiments": "; ".join(_describe(n, e, settings.weights_dir) for n, e in exps.items()),
             "models": _model_scale(settings)}
    from use_repro.data.manifest import read_kv
    from use_repro.report.compare import level_note
    from use_repro.report.scores import read_scores

    scores = {}
    for csv_path in sorted(results.glob("*/eval/*.csv")):
        system = csv_path.parent.parent.name
        if system in exps or system in (NOISY, ORIGINAL):
            scores[f"{system}/{csv_path.stem}"] = read_scores(csv_path, system)
    valid = {e: F.read_valid_scores(layout.valid_scores(results, e)) for e in exps
             if layout.valid_scores(results, e).exists()}
    inp = Inputs(profile=settings.profile, tables=tables, curves=curves, residual=residual,
                 backends=collect_backends(jsons), report=settings.report, experiments=exps, scale=scale,
                 scores=scores, valid=valid, test_fs=_fs_by_id(args.test_meta),
                 unseen_lang=read_kv(args.unseen_lang) if args.unseen_lang else {},
                 threshold_mode=str(settings.threshold_mode), level_note=level_note(settings.target_gain))
    write_compare(inp, args.out_dir, int(settings.report["decimals"]))
    return 0


def _unseen_list(cfg: dict, args) -> int:
    """Keep the test speech of the held-out languages (corpus.heldout_languages), at most
    report.unseen_per_language utterances each, spread evenly over the list (deterministic)."""
    from use_repro.data.manifest import read_kv, read_scp, write_kv, write_scp

    settings = from_profile(UnseenListSettings, cfg, args.config)
    langs, cap = list(settings.heldout_languages), int(settings.unseen_per_language)
    lang = read_kv(args.utt2lang)
    entries = read_scp(args.speech_scp)
    chosen = []
    for code in langs:
        mine = [e for e in entries if lang.get(e.uid) == code]
        if cap and len(mine) > cap:
            step = len(mine) / cap
            mine = [mine[int(i * step)] for i in range(cap)]
        chosen += mine
        log.info("unseen-list: %s: %d utterance(s)", code, len(mine))
    # Paths are written relative to the new list's folder, which every reader resolves
    # (the corpus writes them relative to the working directory, and a reader that resolves
    # against the list's folder would miss them).
    import os

    out_dir = Path(args.out_scp).resolve().parent
    src_dir = Path(args.speech_scp).resolve().parent
    def rebased(p: str) -> str:
        full = Path(p) if Path(p).is_absolute() or Path(p).exists() else src_dir / p
        return os.path.relpath(full.resolve(), out_dir)
    chosen = [type(e)(e.uid, e.fs, rebased(e.path)) for e in chosen]
    if not chosen:
        log.error("unseen-list: no test utterance in the held-out languages %s (%s, %s)",
                  ", ".join(langs) or "(none configured)", args.speech_scp, args.utt2lang)
        return 1
    write_scp(args.out_scp, chosen)
    write_kv(args.out_lang, [(e.uid, lang[e.uid]) for e in chosen])
    return 0


def _provenance(cfg: dict, results: Path, args) -> int:
    from use_repro.config import REPO_ROOT
    from use_repro.report.provenance import write_provenance

    from use_repro.config import figures_dir

    jsons = sorted(results.glob("*/eval/*.json"))
    figs = Path(args.figures) if args.figures else figures_dir(cfg)
    write_provenance(args.out, from_profile(ProvenanceSettings, cfg, args.config).profile, REPO_ROOT, args.metadata, (f"{results}/", f"{figs}/"), jsons)
    return 0
