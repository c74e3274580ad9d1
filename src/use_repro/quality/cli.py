"""VQScore: train the estimator, score speech, filter by threshold, draw Figures 2 and 7.

actions (each takes explicit paths; --config gives the profile's `vqscore` section):
  train      train an estimator on the clean speech of an scp list (or import the released
             checkpoint named by vqscore.released_checkpoint when the file is there)
  score      score every file of an scp list -> vqscore.tsv (uid, source, score, duration);
             with --shard k/K only the list's shard k (`use-repro gather vqscore` joins them)
  filter     one filtered speech list per threshold + datasize.csv
  histogram  Figures 2 (all sources, one panel) and 7 (a panel per source), PNG + PDF
  auc        ROC AUC of the scores against the corpus's crowd_dirty.tsv ground truth
  sweep      mean score of clean files as white noise is added at given SNRs
  import-released  convert the original code's released checkpoint (checkpoint-*.pkl) into an
             estimator.pt (strict: every key and shape of its VQVAE_QE checked)

examples:
  use-repro vqscore train --config mini --scp results/mini/corpus/speech_train.scp \\
      --out results/mini/vqscore/estimator.pt
  use-repro vqscore score --config mini --estimator results/mini/vqscore/estimator.pt \\
      --scp results/mini/corpus/speech_train.scp --out results/mini/vqscore/vqscore.tsv
  use-repro vqscore auc --scores results/mini/vqscore/vqscore.tsv \\
      --truth results/mini/corpus/crowd_dirty.tsv
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from use_repro.errors import UsageError
from use_repro.stage_settings import (VQScoreHistogramSettings, VQScoreListSettings, VQScoreModelSettings,
                                      VQScoreSweepSettings, load)
from use_repro.shards import parse_shard  # light (no torch): the --shard argument type

log = logging.getLogger("use_repro.vqscore")



def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="action")

    def common(p, config=True):
        if config:
            p.add_argument("--config", required=True, help="profile name or YAML path")
        p.add_argument("--threads", type=int, default=1, help="CPU threads (torch and file decoding)")
        p.add_argument("--device", default=None, help="cpu, cuda or auto (default: the profile's)")

    p = sub.add_parser("train", help="train the estimator (or import the released checkpoint)")
    common(p)
    p.add_argument("--scp", required=True, help="speech list (uid fs path) to train on")
    p.add_argument("--out", required=True, help="estimator checkpoint to write (estimator.pt)")
    p.add_argument("--log-csv", default=None, help="training curve CSV (default: beside --out)")
    p.add_argument("--released", default=None,
                   help="released checkpoint to import (overrides vqscore.released_checkpoint)")
    p.add_argument("--info", default=None, help="the corpus's speech_info.tsv (uid -> source)")

    p = sub.add_parser("import-released", help="convert the original code's released checkpoint")
    p.add_argument("released", help="checkpoint-dnsmos_ovr_CC=0.835.pkl of JasonSWFu/VQscore "
                                    "(`use-repro weights fetch vqscore --accept-unpinned` puts it in weights_dir)")
    p.add_argument("--out", required=True, help="estimator checkpoint to write (estimator.pt)")

    p = sub.add_parser("score", help="score every file of an scp list")
    common(p)
    p.add_argument("--estimator", required=True)
    p.add_argument("--scp", required=True)
    p.add_argument("--out", required=True, help="vqscore.tsv to write")
    p.add_argument("--info", default=None, help="the corpus's speech_info.tsv (uid -> source)")
    p.add_argument("--source-of", default=None,
                   help="regex giving an utterance's source from its uid (or --source-field path); "
                        "overrides vqscore.source_pattern and source_field")
    p.add_argument("--source-field", choices=("info", "uid", "path"), default=None)
    p.add_argument("--shard", type=parse_shard, default=None, metavar="k/K",
                   help="score only entries [k*n/K, (k+1)*n/K) of the list (a cluster runs the K shards as "
                        "separate jobs; `use-repro gather vqscore` joins their files into the whole list's)")

    p = sub.add_parser("filter", help="write the filtered speech lists and datasize.csv")
    p.add_argument("--config", required=True)
    p.add_argument("--scores", required=True, help="vqscore.tsv")
    p.add_argument("--scp", required=True, help="the speech list that was scored")
    p.add_argument("--out-dir", required=True, help="folder for filtered/ and datasize.csv")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--only-list", default=None, metavar="NAME",
                      help="write only this threshold's filtered list (no datasize.csv)")
    only.add_argument("--only-datasize", action="store_true",
                      help="write only datasize.csv (no filtered list)")
    p.add_argument("--estimator", default=None,
                   help="the estimator that scored (its origin decides threshold_mode auto)")
    p.add_argument("--mode", choices=("auto", "score", "keep"), default=None,
                   help="overrides vqscore.threshold_mode")

    p = sub.add_parser("histogram", help="Figures 2 and 7")
    p.add_argument("--config", default=None)
    p.add_argument("--estimator", default=None, help="the estimator that scored (names a variant on the axes)")
    p.add_argument("--scores", required=True)
    p.add_argument("--fig2", required=True, help="PNG path of Figure 2 (the PDF goes beside it)")
    p.add_argument("--fig7", required=True, help="PNG path of Figure 7 (the PDF goes beside it)")
    p.add_argument("--datasize", default=None,
                   help="the filter stage's datasize.csv: its thresholds' score cuts are drawn as lines "
                        "(default: none; the profile's `score` values where its threshold mode is score)")

    p = sub.add_parser("auc", help="ROC AUC against the corpus's dirty-utterance ground truth")
    p.add_argument("--scores", required=True)
    p.add_argument("--truth", required=True, help="crowd_dirty.tsv (uid, dirty 0/1, kind)")
    p.add_argument("--out", default=None, help="also write the report as JSON here")
    p.add_argument("--estimator", default=None, help="the estimator that scored (recorded in the report)")
    p.add_argument("--source", action="append", default=None,
                   help="source(s) whose utterances are compared (default: those holding a dirty one)")
    p.add_argument("--min-auc", type=float, default=None, help="exit 1 when the AUC is below this")

    p = sub.add_parser("sweep", help="scores of clean files with white noise at given SNRs")
    common(p, config=False)
    p.add_argument("--estimator", required=True)
    p.add_argument("--scp", required=True)
    p.add_argument("--snrs", type=float, nargs="+", default=[30, 20, 10, 0])
    p.add_argument("--count", type=int, default=20, help="files drawn from the list")
    p.add_argument("--uid-pattern", default=None, help="only uids matching this regex (a clean source)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads) if hasattr(args, "threads") else 1)
    action = {"train": _train, "score": _score, "filter": _filter, "histogram": _histogram,
              "auc": _auc, "sweep": _sweep, "import-released": _import_released}[args.action]
    try:
        return action(args)
    except (FileNotFoundError, ValueError) as e:  # bad paths, manifests, config values: one line
        log.error("vqscore %s: %s", args.action, e)
        return 1


# ---------------------------------------------------------------------------------------------

def _device(args, profile_device: str = "auto") -> str:
    import torch

    want = args.device or profile_device
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return want


def _resolver(vq: Mapping, info: str | None, pattern: str | None = None, field: str | None = None):
    """Who made each entry (its speech source): `pattern`/`field` given, else the profile's
    (`vq`: the vqscore section a VQScoreModelSettings holds)."""
    from use_repro.quality.filtering import read_info_sources, source_resolver

    if pattern and not field:
        field = "uid"
    field = field or vq["source_field"]
    return source_resolver(pattern or vq["source_pattern"], field,
                           read_info_sources(info) if field == "info" and info else None)


def released_path(settings: VQScoreModelSettings, override: str | None = None) -> Path | None:
    """The released checkpoint the profile names (under weights_dir when relative), or None."""
    name = override if override is not None else settings.vqscore.get("released_checkpoint", "")
    if not name:
        return None
    p = Path(name)
    return p if p.is_absolute() or p.exists() else Path(settings.weights_dir or "weights") / p


def _import_released(args) -> int:
    from use_repro.quality import vqscore as V

    V.import_released(args.released, args.out)
    log.info("imported the released VQScore checkpoint %s -> %s", args.released, args.out)
    return 0


def _train(args) -> int:
    from use_repro.audio.io import AudioError
    from use_repro.data.manifest import read_scp, resolve_entries
    from use_repro.quality import vqscore as V
    from use_repro.quality.filtering import load_16k, prefetch
    from use_repro.seeding import derive_seed

    profile = load(VQScoreModelSettings, args.config)
    vq = profile.vqscore
    released = released_path(profile, args.released)
    if released is not None:
        if released.exists():
            V.import_released(released, args.out)
            log.info("imported the released VQScore checkpoint %s -> %s", released, args.out)
            return 0
        log.warning("vqscore.released_checkpoint %s is not there; training an estimator on the "
                    "corpus's clean speech instead (`use-repro weights fetch vqscore --accept-unpinned`, or copy "
                    "the file there, to use the released one)", released)

    entries = read_scp(args.scp)
    source_of = _resolver(vq, args.info)
    excluded = set(vq["train_exclude_sources"])
    eligible = [e for e in entries if source_of(e) not in excluded]
    if not eligible:
        raise ValueError(f"{args.scp}: no training speech left after excluding sources {sorted(excluded)} "
                         "(config key vqscore.train_exclude_sources)")
    eligible = resolve_entries(eligible, args.scp)  # the list's paths, from any working directory
    rng = np.random.default_rng(derive_seed(profile.seed, "vqscore", "train"))
    order = rng.permutation(len(eligible))
    budget = vq["train_max_hours"] * 3600 if vq["train_max_hours"] > 0 else float("inf")
    clips, seconds = [], 0.0
    for _, loaded in prefetch(load_16k, [eligible[i] for i in order], args.threads):
        if isinstance(loaded, (AudioError, ValueError)):
            log.warning("skipping a training file: %s", loaded)
            continue
        if isinstance(loaded, Exception):
            raise loaded
        clips.append(loaded[0])
        seconds += loaded[1]
        if seconds >= budget:
            break
    log.info("training the VQScore estimator on %d files, %.2f h (%d sources excluded: %s)",
             len(clips), seconds / 3600, len(excluded), ", ".join(sorted(excluded)) or "none")

    # config keys are the dataclasses' field names
    settings = V.TrainSettings(**vq["train"], seed=derive_seed(profile.seed, "vqscore", "model") % 2**31)
    model_args = V.VQScoreArgs(**{**vq["model"], "channels": tuple(vq["model"]["channels"])})

    def on_log(row):
        log.info("step %d: loss %.4f vq %.5f cos %.4f codes used %d (%.1f s)", row["step"], row["loss"],
                 row["vq"], row["cos"], row["codes_used"], row["seconds"])

    t0 = time.time()
    model, state = V.train(clips, settings, model_args, device=_device(args, profile.device), on_log=on_log)
    V.save_estimator(args.out, model.cpu(), origin="trained",
                     extra={"optimizer": state["optimizer"], "step": state["step"], "history": state["history"],
                            "config": profile.held(), "train_files": len(clips), "train_hours": seconds / 3600})
    _write_history(args.log_csv or str(Path(args.out).with_suffix(".train.csv")), state["history"])
    log.info("wrote %s after %d steps in %.1f s", args.out, settings.steps, time.time() - t0)
    return 0


def _write_history(path: str, history: list[dict]) -> None:
    import csv

    from use_repro.fs import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]) if history else ["step"], lineterminator="\n")
        w.writeheader()
        w.writerows(history)


def _score(args) -> int:
    from use_repro.batch import Failures
    from use_repro.data.manifest import read_scp, resolve_entries
    from use_repro.quality.filtering import score_entries, write_scores
    from use_repro.quality.vqscore import load_estimator

    profile = load(VQScoreModelSettings, args.config)
    device = _device(args, profile.device)
    model, ckpt = load_estimator(args.estimator, device)
    from use_repro.shards import select

    listed = select(read_scp(args.scp), args.shard)
    # a source is told by the entry as listed; the audio is opened where the list's path leads
    source = dict(zip((e.uid for e in listed), map(_resolver(profile.vqscore, args.info, args.source_of, args.source_field), listed)))
    entries = resolve_entries(listed, args.scp)

    def source_of(entry):
        return source[entry.uid]

    failures = Failures("vqscore score")
    t0 = time.time()
    rows = score_entries(model, entries, source_of, workers=args.threads, device=device, failures=failures)
    dt = time.time() - t0
    write_scores(args.out, rows)
    audio = sum(r.duration for r in rows)
    log.info("scored %d files (%.2f h of speech) in %.1f s: %.0f x real time, estimator origin %s",
             len(rows), audio / 3600, dt, audio / max(dt, 1e-9), ckpt.get("origin"))
    if failures:
        failures.write(Path(args.out).with_suffix(".rejects.tsv"))
    return failures.exit_status(len(entries))


def _thresholds(entries) -> list:
    """The profile's `vqscore.thresholds` entries as filtering.Threshold."""
    from use_repro.quality.filtering import Threshold

    return [Threshold(t["name"], t.get("score"), t.get("keep")) for t in entries]


def _filter(args) -> int:
    from use_repro.data.manifest import read_scp
    from use_repro.quality.filtering import filter_sweep, read_scores, resolve_mode

    if args.only_list:  # one threshold's list reads that threshold alone
        one = load(VQScoreListSettings, args.config, threshold=args.only_list)
        entries, threshold_mode, keep_unit = one.thresholds, one.threshold_mode, one.keep_unit
    else:
        vq = load(VQScoreSweepSettings, args.config).vqscore
        entries, threshold_mode, keep_unit = vq["thresholds"], vq["threshold_mode"], vq["keep_unit"]
    origin = "trained"
    if args.estimator:
        import torch

        origin = torch.load(args.estimator, map_location="cpu", weights_only=True).get("origin", "trained")
    mode = resolve_mode(args.mode or threshold_mode, origin)
    lists = [args.only_list] if args.only_list else ([] if args.only_datasize else None)
    table = filter_sweep(read_scores(args.scores), read_scp(args.scp), _thresholds(entries), mode, args.out_dir,
                         keep_unit=keep_unit, lists=lists, datasize=args.only_list is None)
    for row in table:
        print(f"{row['threshold']}: {mode} cut {row['value']:.4f} -> {row['utterances']} utterances, "
              f"{row['hours']:.3f} h ({100 * row['hours_fraction']:.1f} % of the hours)")
    return 0


def _histogram(args) -> int:
    from collections import defaultdict

    from use_repro.quality.filtering import read_scores
    from use_repro.quality.histogram import figure2, figure7

    bins, order, profile, settings = 40, (), "", None
    if args.config:
        # without the filter's table the lines are the profile's score thresholds
        settings = load(VQScoreHistogramSettings, args.config, with_thresholds=not args.datasize)
        bins, order, profile = settings.vqscore["histogram_bins"], settings.vqscore["source_order"], settings.profile
    by_source = defaultdict(list)
    for r in read_scores(args.scores):
        by_source[r.source].append(r.score)
    if not by_source:
        raise UsageError(f"{args.scores}: no scores to draw")
    label = _label(args.estimator)
    thresholds = _histogram_thresholds(args, settings)
    suffix = f" (profile {profile})" if profile else ""
    lines = "; dotted and dash-dotted: the filter's thresholds" if thresholds else ""
    figure2(by_source, args.fig2, bins, order, label=label, thresholds=thresholds,
            title=f"Figure 2: {label} per speech source{suffix}\ndashed: medians{lines}")
    figure7(by_source, args.fig7, bins, order, label=label, thresholds=thresholds,
            title=f"Figure 7: {label} histogram of each speech source{suffix}; red dashed: medians")
    log.info("wrote %s and %s (+ PDF)", args.fig2, args.fig7)
    return 0


def _histogram_thresholds(args, settings: VQScoreHistogramSettings | None) -> list[tuple[str, float, str]]:
    """The threshold lines of Figures 2 and 7: the filter's cuts (datasize.csv), else the
    profile's `score` values where its thresholds apply as scores, else none."""
    from use_repro.quality.histogram import thresholds_from_datasize

    if args.datasize:
        return thresholds_from_datasize(args.datasize)
    if settings is None:
        return []
    from use_repro.quality.filtering import resolve_mode

    origin = "trained"
    if args.estimator:
        import torch

        origin = torch.load(args.estimator, map_location="cpu", weights_only=True).get("origin", "trained")
    if resolve_mode(settings.threshold_mode, origin) != "score":
        log.info("histogram: no --datasize and the thresholds apply as kept fractions: no threshold lines")
        return []
    return [(t.name, float(t.score), "") for t in _thresholds(settings.vqscore["thresholds"]) if t.score is not None]


def _label(estimator: str | None) -> str:
    if not estimator:
        return "VQScore"
    import torch

    from use_repro.quality.vqscore import estimator_label

    return estimator_label(torch.load(estimator, map_location="cpu", weights_only=True))


def _auc(args) -> int:
    from use_repro.quality.filtering import auc_report, read_scores, read_truth

    rep = auc_report(read_scores(args.scores), read_truth(args.truth), args.source)
    rep["estimator"] = _label(args.estimator)
    print(f"ROC AUC of {rep['estimator']}, clean vs dirty utterances of source(s) {', '.join(rep['sources'])} "
          f"({rep['clean']} clean, {rep['dirty']} dirty; truth {args.truth}): {rep['auc']:.4f}")
    print(f"  median score clean {rep['clean_median']:.4f}, dirty {rep['dirty_median']:.4f}")
    for kind, k in rep["by_kind"].items():
        print(f"  {kind:<12} AUC {k['auc']:.4f}  (n={k['n']}, median {k['median']:.4f})")
    if args.out:
        from use_repro.fs import write_text_atomic

        write_text_atomic(args.out, json.dumps(rep, indent=2) + "\n")
    if args.min_auc is not None and rep["auc"] < args.min_auc:
        print(f"AUC {rep['auc']:.4f} is below --min-auc {args.min_auc}", file=sys.stderr)
        return 1
    return 0


def _sweep(args) -> int:
    import re

    from use_repro.data.manifest import read_scp, resolve_entries
    from use_repro.quality.filtering import load_16k
    from use_repro.quality.vqscore import load_estimator, score_waveform

    model, _ = load_estimator(args.estimator, _device(args))
    entries = resolve_entries(read_scp(args.scp), args.scp)
    if args.uid_pattern:
        entries = [e for e in entries if re.search(args.uid_pattern, e.uid)]
    rng = np.random.default_rng(args.seed)
    pick = [entries[i] for i in sorted(rng.choice(len(entries), min(args.count, len(entries)), replace=False))]
    table = {"clean": []} | {f"{s:g} dB": [] for s in args.snrs}
    for e in pick:
        x, _ = load_16k(e)
        table["clean"].append(score_waveform(model, x, device=_device(args)))
        power = float(np.mean(x ** 2))
        for s in args.snrs:
            noise = rng.standard_normal(x.size).astype(np.float32) * np.sqrt(power / 10 ** (s / 10))
            table[f"{s:g} dB"].append(score_waveform(model, x + noise, device=_device(args)))
    print(f"mean VQScore of {len(pick)} files with white noise added ({args.scp}):")
    for k, v in table.items():
        print(f"  {k:>8}: {np.mean(v):.4f} (sd {np.std(v):.4f})")
    means = [np.mean(v) for v in table.values()]
    print("monotonic:", all(a > b for a, b in zip(means, means[1:])))
    return 0
