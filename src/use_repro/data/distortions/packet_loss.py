"""Packet loss: whole packets (20 ms by default) set to zero.

Sampling follows the challenge's ``generate_data_param.packet_loss``: the loss rate is drawn
from a range, turned into a number of lost packets, split into bursts of 1 to
``max_burst - 1`` packets (the last burst takes the remainder), and the bursts start at
distinct random packets. Packet ``i`` covers samples ``[i d fs // 1000, (i + 1) d fs // 1000)``.
"""
from __future__ import annotations

import numpy as np


def packet_bounds(index: int, fs: int, duration_ms: int) -> tuple[int, int]:
    return index * duration_ms * fs // 1000, (index + 1) * duration_ms * fs // 1000


def apply_packet_loss(x: np.ndarray, fs: int, indices, duration_ms: int = 20) -> np.ndarray:
    """A copy of `x` [T] with the listed packets zeroed (packets past the end are ignored)."""
    y = np.array(x, copy=True)
    for i in indices:
        a, b = packet_bounds(int(i), fs, duration_ms)
        y[a:b] = 0.0
    return y


def sample_packet_loss(rng: np.random.Generator, length: int, fs: int, duration_ms: int = 20,
                       rate_range=(0.05, 0.25), max_burst: int = 10) -> list[int]:
    """Sorted packet indices to drop for a `length`-sample signal."""
    duration = length / fs * 1000
    n_packets = int(duration // duration_ms)
    rate = rng.uniform(*rate_range)
    n_lost = int(round(rate * duration / duration_ms, 0))
    bursts: list[int] = []
    for _ in range(n_lost):
        bursts.append(int(rng.integers(1, max_burst)))
        if n_lost - sum(bursts) <= max_burst:
            bursts.append(n_lost - sum(bursts))
            break
    if not bursts or n_packets == 0:
        return []
    bursts = bursts[:n_packets]
    starts = rng.choice(n_packets, len(bursts), replace=False)
    lost = {int(s) + k for s, b in zip(starts, bursts) for k in range(b)}
    return sorted(lost)
