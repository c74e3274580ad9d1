"""Clipping at sample quantiles, as the challenge does: values below the `qmin` quantile and
above the `qmax` quantile of the signal are set to those quantiles (``np.quantile``, linear)."""
from __future__ import annotations

import numpy as np


def clip_quantiles(x: np.ndarray, qmin: float, qmax: float) -> np.ndarray:
    """`x` [T] clipped to its own [`qmin`, `qmax`] quantiles."""
    lo, hi = np.quantile(x, [qmin, qmax])
    return np.clip(x, lo, hi)
