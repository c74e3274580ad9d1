"""Dereverberation targets: the challenge's early target and the paper's alternatives.

For dry speech ``s`` [T] and RIR ``h`` with direct-path peak ``n0 = argmax |h|``:

- ``early``      the challenge's target, ``(s * h_early)[:T]`` with ``h_early`` from
                 ``reverb.early_rir`` (start = first sample above 0.1 max, cut 50 ms later),
                 not shifted: it stays aligned with the reverberant mixture.
- ``shifted``    the paper's target ``s[n - n0]``: the direct path alone, aligned with the mixture.
- ``anechoic``   ``s[n]``, unshifted, so ``n0`` samples earlier than the mixture's direct path.
- ``early{W}ms`` Figure 3(b)'s sweep: ``h`` kept on ``[n0, n0 + max(1, int(W fs / 1000)))``, i.e.
                 the direct path plus the reflections of the first W ms after it (0 ms keeps
                 the peak sample alone, so ``early0ms`` equals ``shifted`` exactly).

Gain. The shifted and anechoic targets (and the windows, which are pieces of ``h``) carry the
direct path's gain ``a = h[n0]`` by default (``gain="direct_path"``), so every target has the
level, and polarity, that the direct path has in the mixture; with ``gain="unit"`` they are
``s[n - n0]`` and ``s[n]`` at the dry speech's level, and the windows are divided by ``a``.
Rows without reverberation have all targets equal to the dry speech.
"""
from __future__ import annotations

import numpy as np

from use_repro.data.distortions.reverb import convolve_many, direct_path_index, early_rir

TARGET_GAINS = ("direct_path", "unit")


def window_name(ms: float) -> str:
    """``early{W}ms`` with W written without a trailing ``.0`` (50 -> early50ms, 2.5 -> early2.5ms)."""
    return f"early{float(ms):g}ms"


def target_names(windows_ms) -> list[str]:
    """Every target a row has, in column order."""
    return ["early", "shifted", "anechoic"] + [window_name(w) for w in windows_ms]


def target_column(name: str) -> str:
    """meta.tsv column holding a target's path: early -> clean_path, shifted -> clean_shifted_path, ..."""
    return "clean_path" if name == "early" else f"clean_{name}_path"


def shift(s: np.ndarray, n0: int) -> np.ndarray:
    """``s[n - n0]`` over the first len(s) samples ([T])."""
    out = np.zeros_like(s)
    if n0 < s.shape[-1]:
        out[n0:] = s[:s.shape[-1] - n0]
    return out


def window_rir(h: np.ndarray, fs: int, ms: float, n0: int | None = None) -> np.ndarray:
    """`h` kept on ``[n0, n0 + max(1, int(ms fs / 1000)))``, zero elsewhere."""
    n0 = direct_path_index(h) if n0 is None else n0
    out = np.zeros_like(h, dtype=np.float64)
    stop = n0 + max(1, int(ms * fs / 1000))
    out[n0:stop] = h[n0:stop]
    return out


def make_targets(s: np.ndarray, h: np.ndarray | None, fs: int, windows_ms=(),
                 gain: str = "direct_path", early_seconds: float = 0.05) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """(reverberant speech or None, {target name: [T]}) for dry speech `s` and RIR `h` (or None)."""
    if gain not in TARGET_GAINS:
        raise ValueError(f"target gain {gain!r}: expected one of {', '.join(TARGET_GAINS)}")
    names = target_names(windows_ms)
    if h is None:
        return None, {name: s for name in names}
    n0 = direct_path_index(h)
    a = float(h[n0])
    norm = 1.0 if gain == "direct_path" else 1.0 / a
    rirs = [h, early_rir(h, fs, early_seconds)]
    conv_windows = [w for w in windows_ms if int(w * fs / 1000) > 1]
    rirs += [window_rir(h, fs, w, n0) for w in conv_windows]
    convolved = convolve_many(s, rirs)
    reverberant, early = convolved[0], convolved[1]
    shifted = shift(s, n0) * (a * norm)
    targets = {"early": early, "shifted": shifted, "anechoic": s * (a * norm)}
    by_window = dict(zip(conv_windows, convolved[2:]))
    for w in windows_ms:
        # One-sample windows are the scaled shift itself, computed as such so early0ms == shifted.
        targets[window_name(w)] = by_window[w] * norm if w in by_window else shifted
    return reverberant, targets
