"""Intervals for the report's claims: a paired bootstrap over utterances, and the verdict rule.

Every claim of `compare.md` is an effect measured on the same utterances for the systems it
compares (the test set for the tables, the validation set for the learning curves). Its 95 %
interval is a percentile bootstrap over those utterances: `N_BOOT` resamples of the utterance
set, drawn once from a fixed seed, weight the per-utterance values of *every* system alike, so a
difference is resampled as a difference (paired) and a statistic over several systems (a rank
correlation, the challenge's ranking) sees one resampled test set at a time. The seed is fixed,
so the report is bit-identical run to run.

An effect is signed so that positive is the paper's direction. The verdict rule:

- ``holds``         the interval excludes zero on the positive side;
- ``opposite``      the interval excludes zero on the negative side;
- ``within noise``  the interval contains zero.

Means are ratios of weighted sums (``sum w·num / sum w·den``), so a per-utterance metric
(``num`` = value, ``den`` = 1, 0 where the utterance has no value) and the challenge's pooled
CAcc (``num`` = character errors, ``den`` = reference characters) are resampled the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

N_BOOT = 2000
SEED = 24
LEVEL = 0.95

HOLDS, OPPOSITE, NOISE = "holds", "opposite", "within noise"


def resample_weights(n: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """[n_boot, n] counts: how often each of `n` utterances is drawn in each resample (each row
    sums to n). The same seed and n give the same matrix on every machine (numpy's PCG64)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


@dataclass(frozen=True)
class Ratio:
    """One system's metric over the utterances of a claim: mean = scale(sum num / sum den).

    `num`, `den`: [n] per-utterance values aligned with the claim's utterance list; `pooled`
    maps the ratio r to 100 (1 - r) (CAcc from character errors / characters)."""
    num: np.ndarray
    den: np.ndarray
    pooled: bool = False

    def mean(self, weights: np.ndarray) -> np.ndarray:
        """[B] means under `weights` [B, n] (NaN where no weighted utterance has a value)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (weights @ self.num) / (weights @ self.den)
        return 100.0 * (1.0 - r) if self.pooled else r

    @classmethod
    def of_values(cls, values) -> "Ratio":
        v = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(v)
        return cls(np.where(ok, v, 0.0), ok.astype(np.float64))


@dataclass(frozen=True)
class Interval:
    """An effect (positive = the paper's direction), its 95 % interval and the resamples' n."""
    effect: float
    low: float
    high: float
    n: int

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def text(self, d: int = 3) -> str:
        if not math.isfinite(self.effect):
            return "n/a"
        return f"{self.effect:+.{d}f} [{self.low:+.{d}f}, {self.high:+.{d}f}]"


def verdict(low: float, high: float) -> str:
    """The rule of the module doc on an interval of an effect signed towards the paper."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return NOISE
    if low > 0:
        return HOLDS
    if high < 0:
        return OPPOSITE
    return NOISE


def bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n: int, n_boot: int = N_BOOT,
              seed: int = SEED, level: float = LEVEL) -> Interval:
    """`statistic(weights [B, n]) -> [B]` at the observed data (all weights 1) and its percentile
    interval over the resamples (NaN resamples, e.g. a subset with no value, are left out)."""
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    point = float(statistic(np.ones((1, n)))[0])
    draws = statistic(resample_weights(n, n_boot, seed))
    draws = draws[np.isfinite(draws)]
    if not math.isfinite(point) or not len(draws):
        return Interval(point, math.nan, math.nan, n)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a])
    return Interval(point, float(lo), float(hi), n)


def paired_difference(a: Ratio, b: Ratio, sign: float = 1.0, offset: float = 0.0, **kw) -> Interval:
    """sign * (mean a - mean b) + offset over the same utterances (a paired bootstrap)."""
    return bootstrap(lambda w: sign * (a.mean(w) - b.mean(w)) + offset, len(a.num), **kw)


def mean_interval(a: Ratio, offset: float = 0.0, **kw) -> Interval:
    """mean a + offset, with its interval."""
    return bootstrap(lambda w: a.mean(w) + offset, len(a.num), **kw)


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation between the fixed [k] `x` and every row of [B, k] `y`
    (average ranks for ties); [B]."""
    from scipy.stats import rankdata

    rx = rankdata(np.asarray(x, dtype=np.float64))
    ry = rankdata(np.atleast_2d(y), axis=1)
    rx = rx - rx.mean()
    ry = ry - ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ry @ rx) / (np.sqrt((ry ** 2).sum(axis=1)) * np.sqrt((rx ** 2).sum()))


def detectable_effect(a: Ratio, b: Ratio, **kw) -> float:
    """The smallest difference in means this set of utterances can tell from zero: the half-width
    of the paired interval of a - b."""
    return paired_difference(a, b, **kw).half_width


def utterances_needed(half_width: float, n: int, effect: float) -> float:
    """How many utterances a paired interval of half-width `half_width` at `n` utterances would
    need to exclude zero for an effect of size `effect` (half-width shrinks as 1/sqrt(n))."""
    if not (math.isfinite(half_width) and math.isfinite(effect)) or effect == 0:
        return math.nan
    return n * (half_width / abs(effect)) ** 2
