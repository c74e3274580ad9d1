"""The paper's figures from our runs: learning curves (3a, 3b, 9), spectrograms (5, 6, 8) and the
residual-correlation analysis of Section 3.6. Each function writes one figure as PNG and PDF.

Inputs are the training stage's `curves.csv` (`step,metric,value` rows), the test set's
`meta.tsv`, enhanced audio folders, and the trainer's residual-correlation table.
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# The paper's residual correlation (Section 3.6).
PAPER_RESIDUAL_CORRELATION = 0.78
MOS_NAMES = ("utmos", "distillmos", "nisqa", "dnsmos", "mos")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "font.size": 9,
                         "axes.grid": True, "grid.alpha": 0.3})
    return plt


def save(fig, out: str | Path) -> list[Path]:
    """Write `<out>.png` and `<out>.pdf` (`out` may carry either suffix) atomically."""
    from use_repro.fs import atomic_path

    base = Path(out)
    base = base.with_suffix("") if base.suffix in (".png", ".pdf") else base
    paths = []
    for ext in ("png", "pdf"):
        p = base.with_suffix(f".{ext}")
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight",
                        metadata={"CreationDate": None} if ext == "pdf" else {"Software": None})
        paths.append(p)
    _plt().close(fig)
    return paths


# --- curves ----------------------------------------------------------------------------------

def read_curves(path: str | Path) -> pd.DataFrame:
    """`curves.csv` -> long frame (step, metric, value), sorted by step."""
    df = pd.read_csv(path)
    missing = {"step", "metric", "value"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: expected columns step, metric, value; missing {', '.join(sorted(missing))}")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.sort_values("step", kind="stable")


def read_valid_scores(path: str | Path) -> pd.DataFrame:
    """`valid_scores.csv` -> long frame (step, utt, metric, value), sorted by step."""
    df = pd.read_csv(path, dtype={"utt": str})
    missing = {"step", "utt", "metric", "value"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: expected columns step, utt, metric, value; missing {', '.join(sorted(missing))}")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.sort_values("step", kind="stable")


def pick_metric(df: pd.DataFrame, wanted: str, fallbacks=MOS_NAMES) -> str | None:
    """The curve metric to draw: `wanted` (exact, then case-insensitive, then as a name part),
    else the first metric matching a fallback name. None if nothing fits."""
    names = list(dict.fromkeys(df["metric"]))
    for cand in [wanted, *fallbacks]:
        for n in names:
            if n == cand:
                return n
        for n in names:
            if n.lower() == cand.lower():
                return n
        for n in names:
            if re.search(rf"(^|[_/.\-]){re.escape(cand.lower())}($|[_/.\-\[(])", n.lower()):
                return n
    return None


def series(df: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    d = df[df["metric"] == metric].dropna(subset=["value"])
    d = d.groupby("step", as_index=False)["value"].last()
    return d["step"].to_numpy(), d["value"].to_numpy()


# Figure 3's curve names: (a) by VQScore threshold, (b) by learning target.
_TARGET_LABELS = {"anechoic": "Anechoic s[n] (unshifted)", "shifted": "Shifted anechoic (0 ms)",
                  "early": "Early reflected (50 ms)"}


def threshold_label(filter_name: str, thresholds=None) -> str:
    """Figure 3(a)'s name of a run's VQScore filter: `vq065` -> "VQScore 0.65". The score comes
    from the profile's `vqscore.thresholds` entry of that name (else from the name's digits);
    a threshold that keeps everything (keep 1.0) is "(no filtering)", as the paper's 0.50."""
    if not filter_name or filter_name == "none":
        return "No VQScore filtering"
    entry = {}
    if isinstance(thresholds, dict):
        entry = thresholds.get(filter_name) or {}
    elif isinstance(thresholds, list):
        entry = next((t for t in thresholds if isinstance(t, dict) and t.get("name") == filter_name), {})
    score = entry.get("score") if isinstance(entry, dict) else None
    if score is None:
        m = re.fullmatch(r"vq(\d)(\d+)", filter_name)
        score = float(f"{m.group(1)}.{m.group(2)}") if m else None
    if score is None:
        return filter_name
    text = f"VQScore {float(score):.2f}"
    keep = entry.get("keep") if isinstance(entry, dict) else None
    if keep is not None and float(keep) >= 1.0:
        text += " (no filtering)"
    return text


def target_label(target: str) -> str:
    """Figure 3(b)'s name of a learning target (early25ms -> "Early reflected (25 ms)")."""
    if target in _TARGET_LABELS:
        return _TARGET_LABELS[target]
    m = re.fullmatch(r"early([0-9.]+)ms", target)
    return f"Early reflected ({m.group(1)} ms)" if m else target


class Drawn(dict):
    """What a learning-curve figure drew: curve label -> metric (a dict), plus `seeds` (label ->
    the runs its seed band spans), `intervals` (label -> validation utterances behind its 95 %
    band) and `legend` (the legend's texts)."""

    def __init__(self):
        super().__init__()
        self.seeds: dict[str, list[str]] = {}
        self.intervals: dict[str, int] = {}
        self.legend: list[str] = []


Z95 = 1.96
INTERVAL_TEXT = "95 % interval of the mean over the\nvalidation utterances (mean ± 1.96·SE)"
SEED_TEXT = "dark band between dotted lines:\nthe seeds' range (line: their mean)"


def interval_band(valid, metric: str):
    """(steps, low, high, n): mean ± 1.96·SE over utterances of `metric` at each validation step
    of the per-utterance scores `valid` (one frame, or one per seed: an utterance's value is then
    its mean over the seeds). None when no step has two utterances with a value."""
    frames = [valid] if isinstance(valid, pd.DataFrame) else list(valid)
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return None
    name = pick_metric(frames[0], metric, fallbacks=())
    if name is None:
        return None
    d = pd.concat([f[f["metric"] == name] for f in frames]).dropna(subset=["value"])
    d = d.groupby(["step", "utt"], as_index=False)["value"].mean()
    st = d.groupby("step")["value"].agg(["mean", "std", "count"])
    st = st[st["count"] >= 2]
    if st.empty:
        return None
    half = Z95 * st["std"] / np.sqrt(st["count"])
    return st.index.to_numpy(), (st["mean"] - half).to_numpy(), (st["mean"] + half).to_numpy(), int(st["count"].max())


def _marker_size(n_points: int) -> float:
    return 5.0 if n_points <= 12 else 3.0


def _runs_of(v) -> dict[str, pd.DataFrame]:
    return {"": v} if isinstance(v, pd.DataFrame) else dict(v)


def _legend_proxies(ax, drawn: Drawn, n_utts: list[int]):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    if drawn.seeds:
        handles.append((Patch(facecolor="0.35", alpha=0.35, lw=0), Line2D([], [], color="0.35", ls=":", lw=0.9)))
        labels.append(SEED_TEXT)
    if drawn.intervals:
        n = sorted(set(n_utts))
        handles.append(Patch(facecolor="0.35", alpha=0.14, lw=0))
        labels.append(f"light band: {INTERVAL_TEXT},\nn = {'/'.join(str(k) for k in n)} utterances, per curve (unpaired)")
    return handles, labels


def learning_curves(runs: dict, metric: str, title: str, out: str | Path,
                    ylabel: str | None = None, valid: dict | None = None) -> Drawn:
    """One curve per entry of `runs` of `metric` over steps (Figure 3).

    runs: label -> curves frame, or label -> {run name: curves frame} for runs that differ only
    in their seed: drawn as one curve (their mean) with a band between them, each seed dotted.
    valid: label -> per-utterance validation scores (a frame, or one per seed), drawn as a light
    95 % band (mean ± 1.96·SE over utterances). Returns a `Drawn` (label -> metric drawn)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    drawn, n_utts = Drawn(), []
    valid = valid or {}
    for i, (label, group) in enumerate(runs.items()):
        group = _runs_of(group)
        color = f"C{i % 10}"
        m = next((pick_metric(df, metric) for df in group.values() if pick_metric(df, metric)), None)
        if m is None:
            metrics = sorted({x for df in group.values() for x in df["metric"]})
            log.warning("%s: run %s has no %s curve; metrics: %s", title, label, metric, ", ".join(metrics))
            continue
        per = {r: series(df, m) for r, df in group.items() if m in set(df["metric"])}
        per = {r: xy for r, xy in per.items() if len(xy[0])}
        if not per:
            continue
        band = interval_band(valid.get(label, []), m)
        if band is not None:
            bx, lo, hi, n = band
            ax.fill_between(bx, lo, hi, color=color, alpha=0.14, lw=0)
            drawn.intervals[label] = n
            n_utts.append(n)
        if len(per) >= 2:
            table = pd.DataFrame({r: pd.Series(y, index=x) for r, (x, y) in per.items()}).sort_index()
            both = (table.notna().sum(axis=1) >= 2).to_numpy()
            idx = table.index.to_numpy()
            ax.fill_between(idx[both], table.min(axis=1)[both], table.max(axis=1)[both], color=color,
                            alpha=0.35, lw=0)
            for x, y in per.values():
                ax.plot(x, y, color=color, ls=":", lw=0.9)
            mean = table.mean(axis=1)
            ax.plot(idx, mean.to_numpy(), color=color, marker="o", ms=_marker_size(len(idx)),
                    label=f"{label}, mean of {len(per)} seeds")
            drawn.seeds[label] = list(per)
        else:
            x, y = next(iter(per.values()))
            ax.plot(x, y, color=color, marker="o", ms=_marker_size(len(x)), label=label)
        drawn[label] = m
    names = sorted(set(drawn.values()))
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel or (" / ".join(names) if names else metric) + " (validation)")
    ax.set_title(title)
    if drawn:
        handles, labels = _legend_proxies(ax, drawn, n_utts)
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        drawn.legend = labels
    else:
        ax.text(0.5, 0.5, f"no {metric} curve in any run", ha="center", va="center", transform=ax.transAxes)
    save(fig, out)
    return drawn


# Figure 9 panels: (title, name patterns in curves.csv, lower is better)
FIG9_PANELS = (("(a) Magnitude loss", ("magnitude", "mag")), ("(b) Phase loss", ("phase", "pha")),
               ("(c) Time loss", ("time",)), ("(d) PESQ", ("pesq",)))


def _panel_metric(df: pd.DataFrame, patterns) -> str | None:
    names = list(dict.fromkeys(df["metric"]))
    # validation columns first (a curves.csv may also hold training losses)
    ranked = sorted(names, key=lambda n: (not n.lower().startswith(("val", "valid")), len(n)))
    for p in patterns:
        for n in ranked:
            if re.search(rf"(^|[_/.\-]){p}($|[_/.\-])", n.lower()) or n.lower() == p:
                return n
    return None


def fig9(two_stage: pd.DataFrame, finetune: pd.DataFrame, out: str | Path,
         labels=("Two-stage GAN correction", "Regression + adversarial fine-tune"),
         valid=(None, None)) -> dict[str, tuple]:
    """Figure 9: validation magnitude, phase and time losses and PESQ over steps for the two
    GAN training paradigms, every validation point of each run marked; `valid` (per-utterance
    validation scores of each run, or None) adds a light 95 % band (mean ± 1.96·SE over
    utterances). Returns panel -> (metric drawn for two-stage, for fine-tune); its attribute
    `points` maps the run labels to their validation points and `intervals` the panels with bands."""
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.0))
    drawn, points, intervals = Fig9Drawn(), {}, {}
    for ax, (title, patterns) in zip(axes, FIG9_PANELS):
        pair = []
        for k, (df, label, v) in enumerate(((two_stage, labels[0], valid[0]), (finetune, labels[1], valid[1]))):
            m = _panel_metric(df, patterns)
            pair.append(m)
            if m is None:
                continue
            x, y = series(df, m)
            color = f"C{k}"
            band = interval_band(v, m) if v is not None else None
            if band is not None:
                ax.fill_between(band[0], band[1], band[2], color=color, alpha=0.15, lw=0)
                intervals.setdefault(title, []).append(label)
            points[label] = max(points.get(label, 0), len(x))
            ax.plot(x, y, color=color, marker="o", ms=_marker_size(len(x)), label=label)
        drawn[title] = tuple(pair)
        ax.set_title(title)
        ax.set_xlabel("training step")
        if not any(pair):
            ax.text(0.5, 0.5, "not in curves.csv", ha="center", va="center", transform=ax.transAxes)
    from matplotlib.patches import Patch

    handles, texts = axes[0].get_legend_handles_labels()
    texts = [f"{t} ({points.get(t, 0)} validation points)" for t in texts]
    if intervals:
        handles.append(Patch(facecolor="0.35", alpha=0.15, lw=0))
        texts.append("light band: " + INTERVAL_TEXT.replace("\n", " "))
    if handles:
        fig.legend(handles, texts, fontsize=8, loc="lower center", ncol=len(handles), frameon=False,
                   bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    drawn.points, drawn.intervals, drawn.legend = points, intervals, texts
    save(fig, out)
    return drawn


class Fig9Drawn(dict):
    """fig9's panel -> metrics, with `points`, `intervals` and `legend` (see fig9)."""
    points: dict
    intervals: dict
    legend: list


# --- spectrograms ----------------------------------------------------------------------------

# Spectrogram colour scale: dB re a full-scale sine (its peak bin reads 0 dB), fixed for every
# panel of every figure so that levels compare across panels; GAN − regression in ±DIFF_RANGE dB.
DB_RANGE = (-100.0, -10.0)
DIFF_RANGE = 20.0
DB_LABEL = "dB re full-scale sine"


def log_spectrogram(x: np.ndarray, fs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(freqs [F] Hz, times [T] s, dB [F, T]) with a 32 ms Hann window and 8 ms hop, in dB re a
    full-scale sine (scipy's `spectrum` scaling reads a sine of amplitude A as A/2: doubled)."""
    from scipy.signal import stft

    nper = int(round(0.032 * fs))
    f, t, z = stft(x, fs=fs, nperseg=nper, noverlap=nper - int(round(0.008 * fs)), boundary=None)
    return f, t, 20 * np.log10(2 * np.abs(z) + 1e-6)


def find_audio(folder: str | Path, uid: str) -> Path | None:
    """The file for `uid` in an enhanced folder (any audio extension)."""
    folder = Path(folder)
    for ext in (".flac", ".wav", ".ogg", ".mp3"):
        p = folder / f"{uid}{ext}"
        if p.exists():
            return p
    # `enhance` keeps an input folder's sub-folders (simulation buckets: noisy/0/<id>.flac)
    hits = sorted(p for p in folder.rglob(f"{uid}.*") if p.suffix.lower() in (".flac", ".wav", ".ogg", ".mp3")) \
        if folder.exists() else []
    return hits[0] if hits else None


def _read(path, seconds: float | None):
    from use_repro.audio.io import read_audio

    x, fs = read_audio(path)
    if seconds:
        x = x[: int(seconds * fs)]
    return x, fs


def bandwidth_cutoff_hz(row: dict) -> float | None:
    """The highest frequency a bandwidth-limited input keeps: half the rate it was resampled to
    (`bandwidth_limitation-<method>->8000` in meta.tsv's augmentation: 4 kHz); None if none."""
    m = re.search(r"bandwidth_limitation[^/]*->\s*(\d+)", row.get("augmentation", "") or "")
    return int(m.group(1)) / 2 if m else None


def largest_region(score: np.ndarray, t: np.ndarray, f: np.ndarray, seconds: float = 0.5,
                   band_fraction: float = 1 / 3) -> tuple[float, float, float, float] | None:
    """The box (t0, t1, f0, f1) of `seconds` x `band_fraction` of the frequency axis whose mean
    `score` [F, T] is the largest (ties: earliest, lowest). None for an empty map."""
    if score.size == 0 or len(t) < 1 or len(f) < 1:
        return None
    dt = float(t[1] - t[0]) if len(t) > 1 else 1.0
    wt = int(min(len(t), max(1, round(seconds / dt))))
    wf = int(min(len(f), max(1, round(band_fraction * len(f)))))
    c = np.zeros((score.shape[0] + 1, score.shape[1] + 1))
    c[1:, 1:] = np.cumsum(np.cumsum(np.nan_to_num(score), axis=0), axis=1)
    sums = c[wf:, wt:] - c[:-wf, wt:] - c[wf:, :-wt] + c[:-wf, :-wt]
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    df = float(f[1] - f[0]) if len(f) > 1 else 1.0
    return (float(t[j]) - dt / 2, float(t[j + wt - 1]) + dt / 2, float(f[i]) - df / 2, float(f[i + wf - 1]) + df / 2)


# A rule-drawn box whose mean score is below this marks nothing (e.g. a GAN that changed nothing).
MIN_REGION_DB = 3.0


def _box_mean(score: np.ndarray, t: np.ndarray, f: np.ndarray, box) -> float:
    t0, t1, f0, f1 = box
    sel = score[np.ix_((f >= f0) & (f <= f1), (t >= t0) & (t <= t1))]
    return float(sel.mean()) if sel.size else 0.0


def _clip_db(db: np.ndarray) -> np.ndarray:
    return np.clip(db, *DB_RANGE)


def _pair(a, b):
    """Two spectrograms of one utterance cropped to their common frames; None if their
    frequency axes differ (another rate)."""
    if a is None or b is None or a[2].shape[0] != b[2].shape[0]:
        return None
    n = min(a[2].shape[1], b[2].shape[1])
    return a[0], a[1][:n], a[2][:, :n], b[2][:, :n]


def region_score(kind: str, a, b):
    """(f, t, score [F, T]) for a rule-drawn region, from the clipped spectra of panels a and b:
    `abs` |a − b| (where one changed the other), `excess` a − b (what a has that b lacks, e.g.
    noise over the clean speech; signed, so two unrelated spectra of one level average 0)."""
    pair = _pair(a, b)
    if pair is None:
        return None
    f, t, da, db = pair
    d = _clip_db(da) - _clip_db(db)
    return f, t, (np.abs(d) if kind == "abs" else d)


def spectrogram_grid(rows: list[list[tuple[str, str | Path | None]]], title: str, out: str | Path,
                       seconds: float | None = 4.0, diff: list[tuple[int, int, int]] = (),
                     regions: list[dict] = (), caption: str = "") -> dict:
    """A grid of log spectrograms: rows[i][j] = (panel title, audio path or None), on one fixed
    colour scale (DB_RANGE, dB re a full-scale sine) with its colour bar.

    `diff` entries (row, col_a, col_b) add a panel with the magnitude difference
    |col_a| − |col_b| in dB (where a correction acts; both floored at DB_RANGE's low end,
    coloured over ±DIFF_RANGE dB) with its own colour bar.

    `regions` mark boxes: {"row", "on" (panel columns; "diff" is the difference panel),
    "color", "style" ("-" or "--"), "label", "note" (a caption line, printed where the box is
    drawn), and either "band": (f_lo, f_hi or None) in Hz over
    the whole time axis, or "largest": (kind, col_a, col_b) with kind `abs` or `excess` (see
    `region_score`), the box of `largest_region` (0.5 s x a third of the band)}.

    A rule-drawn box whose mean score is under MIN_REGION_DB dB is left out, and the caption
    says so. Returns what was drawn: {"colorbars": [their labels], "boxes": [(row, col, label,
    (t0, t1, f0, f1))], "skipped": [labels of boxes not drawn], "db_range": DB_RANGE}."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    ncols = max(len(r) for r in rows) + (1 if diff else 0)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.0 * ncols + 1.2, 2.5 * len(rows) + 0.6), squeeze=False,
                             layout="constrained")
    spec_mesh = diff_mesh = None
    spec_axes, diff_axes = [], []
    info = {"colorbars": [], "boxes": [], "skipped": [], "db_range": DB_RANGE}
    notes = [caption] if caption else []
    for i, row in enumerate(rows):
        specs = []
        for j, (name, path) in enumerate(row):
            ax = axes[i][j]
            if path is None or not Path(path).exists():
                ax.text(0.5, 0.5, f"{name}\n(missing)", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                specs.append(None)
                continue
            x, fs = _read(path, seconds)
            f, t, db = log_spectrogram(x, fs)
            specs.append((f, t, db))
            spec_mesh = ax.pcolormesh(t, f / 1000, db, shading="auto", vmin=DB_RANGE[0], vmax=DB_RANGE[1],
                                      cmap="magma", rasterized=True)
            spec_axes.append(ax)
            ax.set_title(name, fontsize=8)
            ax.set_xlabel("time (s)")
            ax.grid(False)
            if j == 0:
                ax.set_ylabel("kHz")
        diff_col = ncols - 1 if diff else None
        for (ri, a, b) in diff:
            if ri != i:
                continue
            ax = axes[i][diff_col]
            pair = _pair(specs[a], specs[b])
            if pair is None:
                ax.set_axis_off()
                continue
            f, t, da, db_ = pair
            d = _clip_db(da) - _clip_db(db_)
            diff_mesh = ax.pcolormesh(t, f / 1000, d, shading="auto", cmap="coolwarm", vmin=-DIFF_RANGE,
                                      vmax=DIFF_RANGE, rasterized=True)
            diff_axes.append(ax)
            ax.grid(False)
            ax.set_title(f"{row[a][0].split(' (')[0]} − {row[b][0].split(' (')[0]}", fontsize=8)
            ax.set_xlabel("time (s)")
        for j in range(len(row), ncols - (1 if diff else 0)):
            axes[i][j].set_axis_off()
        for reg in regions:
            if reg["row"] != i:
                continue
            box = None
            if "band" in reg:
                lo, hi = reg["band"]
                shown = [s for s in specs if s is not None]
                if shown:
                    t_all = np.concatenate([s[1] for s in shown])
                    top = max(float(s[0][-1]) for s in shown)
                    box = (float(t_all.min()), float(t_all.max()), float(lo), float(hi if hi is not None else top))
            else:
                kind, a, b = reg["largest"]
                got = region_score(kind, specs[a] if a < len(specs) else None, specs[b] if b < len(specs) else None)
                if got is not None:
                    box = largest_region(got[2], got[1], got[0])
                    strength = _box_mean(got[2], got[1], got[0], box) if box is not None else 0.0
                    if strength < MIN_REGION_DB:
                        notes.append(f"No box for the {reg.get('label', 'region')}: the best box's mean is "
                                     f"{strength:.2f} dB, under {MIN_REGION_DB:g} dB.")
                        info["skipped"].append(reg.get("label", ""))
                        continue
            if box is None:
                log.warning("%s: region %r not drawn (a panel it needs is missing)", title, reg.get("label"))
                info["skipped"].append(reg.get("label", ""))
                continue
            for col in reg["on"]:
                c = diff_col if col == "diff" else col
                if c is None or c >= ncols or not axes[i][c].axison:
                    continue
                t0, t1, f0, f1 = box
                axes[i][c].add_patch(Rectangle((t0, f0 / 1000), t1 - t0, (f1 - f0) / 1000, fill=False,
                                               edgecolor=reg.get("color", "lime"), lw=1.6,
                                               ls=reg.get("style", "-")))
                info["boxes"].append((i, c, reg.get("label", ""), box))
            if reg.get("note") and reg["note"] not in notes:
                notes.append(reg["note"])
    if spec_mesh is not None:
        label = f"{DB_LABEL} (fixed {DB_RANGE[0]:g} to {DB_RANGE[1]:g})"
        fig.colorbar(spec_mesh, ax=spec_axes, shrink=0.9, pad=0.01, label=label)
        info["colorbars"].append(label)
    if diff_mesh is not None:
        label = f"difference (dB, ±{DIFF_RANGE:g}; both floored at {DB_RANGE[0]:g})"
        fig.colorbar(diff_mesh, ax=diff_axes, shrink=0.9, pad=0.01, label=label)
        info["colorbars"].append(label)
    fig.suptitle("\n".join([title] + notes), fontsize=8)
    save(fig, out)
    return info


def _is_none(v) -> bool:
    return v is None or str(v).strip().lower() in ("", "none", "nan")


def choose_examples(meta: list[dict], kind: str, n: int = 1) -> list[dict]:
    """Test utterances to draw, chosen from meta.tsv by what the paper's figure shows:

    - `bandwidth` (Figure 5): bandwidth-limited inputs, the strongest limitation first;
    - `noise` (Figure 6): the lowest SNR without bandwidth limitation or reverberation if any;
    - `reverb` (Figure 8): reverberant inputs, the highest SNR first (so reverberation dominates).
    Deterministic: ties break by id."""
    def snr(r):
        try:
            return float(r.get("snr_dB", "nan"))
        except ValueError:
            return math.nan

    if kind == "bandwidth":
        def new_rate(r):
            m = re.search(r"bandwidth_limitation[^/]*->\s*(\d+)", r.get("augmentation", ""))
            return int(m.group(1)) if m else None
        cand = [r for r in meta if new_rate(r) is not None]
        cand.sort(key=lambda r: (new_rate(r) / max(1, int(float(r.get("fs", 1)))), r["id"]))
    elif kind == "noise":
        clean_aug = [r for r in meta if "bandwidth" not in r.get("augmentation", "") and _is_none(r.get("rir_uid"))]
        cand = sorted(clean_aug or meta, key=lambda r: (snr(r) if not math.isnan(snr(r)) else 1e9, r["id"]))
    elif kind == "reverb":
        cand = [r for r in meta if not _is_none(r.get("rir_uid"))]
        cand.sort(key=lambda r: (-(snr(r) if not math.isnan(snr(r)) else -1e9), r["id"]))
    else:
        raise ValueError(f"unknown example kind {kind!r}; expected bandwidth, noise or reverb")
    if not cand:
        cand = sorted(meta, key=lambda r: r["id"])
    return cand[:n]


# --- residual correlation (Section 3.6) --------------------------------------------------------

def read_residual_correlation(path: str | Path) -> np.ndarray:
    """Per-utterance correlations from `use-repro train residual-correlation` (JSON with a
    `per_utterance` mapping id -> correlation), or a CSV with a column whose name has `corr`."""
    import json

    path = Path(path)
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        per = data.get("per_utterance") or {}
        vals = np.array([float(v) for v in per.values() if v is not None], dtype=float)
        return vals[np.isfinite(vals)]
    df = pd.read_csv(path)
    col = next((c for c in df.columns if "corr" in c.lower()), None)
    if col is None:
        raise ValueError(f"{path}: no correlation column")
    return pd.to_numeric(df[col], errors="coerce").dropna().to_numpy()


def residual_correlation_figure(values: np.ndarray, out: str | Path, label: str = "") -> float:
    """Histogram of per-utterance correlations between (clean − regression) and
    (final − regression) magnitude residuals; returns the mean."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    mean = float(np.mean(values)) if len(values) else math.nan
    if len(values):
        ax.hist(values, bins=min(30, max(5, len(values) // 2)), range=(-1, 1), color="tab:blue", alpha=0.8)
        ax.axvline(mean, color="tab:blue", ls="--", label=f"ours: mean {mean:.2f} (n={len(values)})")
    ax.axvline(PAPER_RESIDUAL_CORRELATION, color="tab:red", ls=":", label=f"paper: {PAPER_RESIDUAL_CORRELATION:.2f}")
    ax.set_xlabel("correlation of magnitude residuals")
    ax.set_ylabel("utterances")
    ax.set_title("GAN correction vs regression error" + (f" ({label})" if label else ""))
    ax.legend(fontsize=7)
    save(fig, out)
    return mean
