"""Figures 2 and 7 of the paper: VQScore histograms per speech source, medians dashed.

Figure 2 overlays every source in one panel (densities, so a small source is as visible as a
large one); Figure 7 gives each source its own panel (counts). A source with fewer than
MIN_FOR_DENSITY scores is drawn as points (one per utterance) instead: a histogram of three
values is not a distribution. The profile's VQScore thresholds are drawn as labelled vertical
lines at the score each one cut (`thresholds_from_datasize`). Both are written as PNG and as
PDF next to each other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from use_repro.fs import atomic_path

# Sources with fewer scores than this are drawn as points (a strip), not as a histogram.
MIN_FOR_DENSITY = 10
THRESHOLD_STYLES = (":", "-.", (0, (5, 2, 1, 2, 1, 2)), (0, (1, 1)), "--")


def thresholds_from_datasize(path: str | Path) -> list[tuple[str, float, str]]:
    """(name, score cut, note) per threshold of the filter stage's `datasize.csv`: the score
    each threshold cut at (its own score, or the lowest score its kept fraction let in); the
    note is `keeps 99.5 %` in keep mode, empty in score mode."""
    import csv

    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                v = float(row.get("value", ""))
            except ValueError:
                continue
            if not np.isfinite(v):
                continue
            note = ""
            if row.get("mode") == "keep" and row.get("keep", "") != "":
                note = f"keeps {100 * float(row['keep']):g} %"
            out.append((row.get("threshold", ""), v, note))
    return out


def _merged(thresholds) -> list[tuple[str, str, float]]:
    """(short name, legend label, score) per line: thresholds that cut at the same score share
    one (a kept fraction of 99.5 % of a few files may let them all in):
    `vq050 (keeps 100 %), vq065 (keeps 99.5 %): 0.711`."""
    groups: list[tuple[list, float]] = []
    for name, v, note in thresholds:
        for names, w in groups:
            if abs(w - v) < 1e-9:
                names.append((name, note))
                break
        else:
            groups.append(([(name, note)], v))
    return [(", ".join(n for n, _ in names),
             ", ".join(f"{n} ({note})" if note else n for n, note in names) + f": {v:.3f}", v)
            for names, v in groups]


def _threshold_lines(ax, thresholds, text: bool) -> list:
    """Vertical lines at each threshold's score (black, one style each); `text` writes the
    name at the top of the line. Returns the lines (legend handles)."""
    import matplotlib.transforms as mtransforms

    lines = []
    trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    for k, (short, label, v) in enumerate(_merged(thresholds)):
        lines.append(ax.axvline(v, color="k", ls=THRESHOLD_STYLES[k % len(THRESHOLD_STYLES)], lw=1.0,
                                label=f"threshold {label}"))
        if text:
            ax.text(v, 0.98, f" {short}", transform=trans, rotation=90, va="top", ha="right", fontsize=7)
    return lines


def _xlim(ax, edges, thresholds) -> None:
    lo, hi = float(edges[0]), float(edges[-1])
    vals = [v for _, v, _ in thresholds]
    if vals:
        pad = 0.02 * (max(hi, *vals) - min(lo, *vals))
        lo, hi = min(lo, min(vals) - pad), max(hi, max(vals) + pad)
    ax.set_xlim(lo, hi)


def _strip(ax, v: np.ndarray, color, y: float, label: str | None = None, transform=None) -> None:
    """One point per utterance at height `y` (axes fraction with `transform`)."""
    kw = {"transform": transform} if transform is not None else {}
    ax.plot(v, np.full(v.size, y), ls="none", marker="o", ms=5, mfc=color, mec="k", mew=0.5, alpha=0.9,
            label=label, clip_on=False, **kw)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def order_sources(scores: Mapping[str, Sequence[float]], order: Sequence[str] = ()) -> list[str]:
    """`order` first (those present), then the rest from lowest to highest median, which reads
    as the paper's quality hierarchy."""
    first = [s for s in order if s in scores]
    rest = sorted((s for s in scores if s not in first), key=lambda s: (float(np.median(scores[s])), s))
    return first + rest


def _bins(scores: Mapping[str, Sequence[float]], n: int) -> np.ndarray:
    allv = np.concatenate([np.asarray(v, dtype=float) for v in scores.values()])
    lo, hi = float(allv.min()), float(allv.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.01, hi + 0.01
    pad = 0.02 * (hi - lo)
    return np.linspace(lo - pad, hi + pad, n + 1)


class Written(list):
    """The PNG and PDF paths, with what the figure drew: `lines` (threshold line labels),
    `points` (sources drawn as points), `histograms` (sources drawn as histograms)."""
    lines: list
    points: list
    histograms: list


def _written(paths, lines, points, histograms) -> Written:
    w = Written(paths)
    w.lines, w.points, w.histograms = [h.get_label() for h in lines], points, histograms
    return w


def _save(fig, png: Path) -> list[Path]:
    out = []
    for path in (png.with_suffix(".png"), png.with_suffix(".pdf")):
        with atomic_path(path) as tmp:
            # no creation date in the PDF: the same scores give the same file, byte for byte
            ext = path.suffix[1:]
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight",
                        metadata={"CreationDate": None} if ext == "pdf" else {"Software": None})
        out.append(path)
    return out


def figure2(scores: Mapping[str, Sequence[float]], path: str | Path, bins: int = 40,
            order: Sequence[str] = (), title: str = "", label: str = "VQScore",
            thresholds: Sequence[tuple[str, float, str]] = ()) -> list[Path]:
    """One panel, every source's density histogram and its median (dashed); a source of fewer
    than MIN_FOR_DENSITY scores as a strip of points near the bottom; `thresholds` ((name,
    score, note) as `thresholds_from_datasize` gives them) as labelled vertical lines. Returns the PNG and PDF paths. scores: source ->
    scores."""
    import matplotlib.transforms as mtransforms

    plt = _pyplot()
    names = order_sources(scores, order)
    edges = _bins(scores, bins)
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8.5, 4.0))
    strip = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    peaks, n_small, points, hists = [], 0, [], []
    for i, name in enumerate(names):
        v = np.asarray(scores[name], dtype=float)
        c = colors(i % 10)
        text = f"{name} (n={v.size}, median {np.median(v):.3f})"
        if v.size < MIN_FOR_DENSITY:
            _strip(ax, v, c, 0.04 + 0.05 * n_small, f"{text}: each utterance a point", strip)
            n_small += 1
            points.append(name)
        else:
            dens, _, _ = ax.hist(v, bins=edges, density=True, histtype="stepfilled", alpha=0.25, color=c)
            peaks.append(float(np.max(dens)))
            ax.hist(v, bins=edges, density=True, histtype="step", color=c, linewidth=1.2, label=text)
            hists.append(name)
        ax.axvline(float(np.median(v)), color=c, linestyle="--", linewidth=1.2)
    if peaks:
        ax.set_ylim(0, 1.1 * max(peaks))
        ax.set_ylabel("density")
    else:  # only points: no density to scale
        ax.set_ylim(0, 1)
        ax.set_yticks([])
    lines = _threshold_lines(ax, thresholds, text=True)
    _xlim(ax, edges, thresholds)
    ax.set_xlabel(label)
    ax.set_title(title or f"{label} per speech source (dashed: medians)")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    try:
        return _written(_save(fig, Path(path)), lines, points, hists)
    finally:
        plt.close(fig)


def figure7(scores: Mapping[str, Sequence[float]], path: str | Path, bins: int = 40,
            order: Sequence[str] = (), title: str = "", label: str = "VQScore",
            thresholds: Sequence[tuple[str, float, str]] = ()) -> list[Path]:
    """One panel per source (counts, shared x axis), median dashed; a source of fewer than
    MIN_FOR_DENSITY scores as points; `thresholds` as vertical lines in every panel, named in
    the figure's legend. Returns PNG and PDF paths."""
    plt = _pyplot()
    names = order_sources(scores, order)
    edges = _bins(scores, bins)
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows + (0.4 if thresholds else 0)),
                             sharex=True, squeeze=False)
    handles, points, hists = [], [], []
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.axis("off")
            continue
        v = np.asarray(scores[names[i]], dtype=float)
        med = float(np.median(v))
        if v.size < MIN_FOR_DENSITY:
            _strip(ax, v, "tab:blue", 0.5)
            ax.set_ylim(0, 1)
            ax.set_yticks([])
            ax.text(0.02, 0.9, "each utterance a point", transform=ax.transAxes, fontsize=7)
            points.append(names[i])
        else:
            ax.hist(v, bins=edges, color="tab:blue", alpha=0.8)
            hists.append(names[i])
        ax.axvline(med, color="tab:red", linestyle="--", linewidth=1.2)
        handles = _threshold_lines(ax, thresholds, text=False) or handles
        ax.set_title(f"({chr(ord('a') + i)}) {names[i]}  n={v.size}, median {med:.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("utterances", fontsize=8)
        if i >= len(names) - cols:
            ax.set_xlabel(label, fontsize=8)
    _xlim(axes.flat[0], edges, thresholds)
    if title:
        fig.suptitle(title, fontsize=9)
    if handles:
        fig.legend(handles, [h.get_label() for h in handles], fontsize=7, frameon=False, loc="lower center",
                   ncol=len(handles), bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    else:
        fig.tight_layout()
    try:
        return _written(_save(fig, Path(path)), handles, points, hists)
    finally:
        plt.close(fig)
