"""Figures 2 and 7 of the paper: VQScore histograms per speech source, medians dashed.

Figure 2 overlays every source in one panel (densities, so a small source is as visible as a
large one); Figure 7 gives each source its own panel (counts). Both are written as PNG and as
PDF next to each other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from use_repro.fs import atomic_path

# Sources with fewer scores than this are drawn but do not set Figure 2's vertical scale.
MIN_FOR_SCALE = 10


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
            order: Sequence[str] = (), title: str = "", label: str = "VQScore") -> list[Path]:
    """One panel, every source's density histogram and its median (dashed). Returns the PNG
    and PDF paths. scores: source -> scores."""
    plt = _pyplot()
    names = order_sources(scores, order)
    edges = _bins(scores, bins)
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    peaks = []
    for i, name in enumerate(names):
        v = np.asarray(scores[name], dtype=float)
        c = colors(i % 10)
        dens, _, _ = ax.hist(v, bins=edges, density=True, histtype="stepfilled", alpha=0.25, color=c)
        if v.size >= MIN_FOR_SCALE:
            peaks.append(float(np.max(dens)))
        ax.hist(v, bins=edges, density=True, histtype="step", color=c, linewidth=1.2,
                label=f"{name} (n={v.size}, median {np.median(v):.3f})")
        ax.axvline(float(np.median(v)), color=c, linestyle="--", linewidth=1.2)
    if peaks:  # a source of a handful of files would otherwise set the scale with one spike
        ax.set_ylim(0, 1.1 * max(peaks))
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.set_title(title or f"{label} per speech source (dashed: medians)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def figure7(scores: Mapping[str, Sequence[float]], path: str | Path, bins: int = 40,
            order: Sequence[str] = (), title: str = "", label: str = "VQScore") -> list[Path]:
    """One panel per source (counts, shared x axis), median dashed. Returns PNG and PDF paths."""
    plt = _pyplot()
    names = order_sources(scores, order)
    edges = _bins(scores, bins)
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), sharex=True, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.axis("off")
            continue
        v = np.asarray(scores[names[i]], dtype=float)
        med = float(np.median(v))
        ax.hist(v, bins=edges, color="tab:blue", alpha=0.8)
        ax.axvline(med, color="k", linestyle="--", linewidth=1.2)
        ax.set_title(f"({chr(ord('a') + i)}) {names[i]}  n={v.size}, median {med:.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("utterances", fontsize=8)
        if i >= len(names) - cols:
            ax.set_xlabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)
