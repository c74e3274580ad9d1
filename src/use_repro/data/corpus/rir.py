"""Room impulse responses: pyroomacoustics shoebox rooms at 48 kHz.

Each RIR is an image-source response (the early part, where individual reflections matter)
joined to an exponentially decaying Gaussian tail (the late, diffuse part), a common hybrid:
running the image-source method to the order a 1.3 s decay needs takes seconds per RIR, and
its tail decays faster or slower than the Sabine target depending on the room's shape. The tail
starts `mix_ms` after the direct path, its level is fitted to the image-source energy just
before, and its decay constant is corrected until the RT60 measured by Schroeder backward
integration (T20, extrapolated to 60 dB) is inside the split's range. The measured value and
the direct-path delay (source-microphone distance / c, 5-30 ms) are written to `rir_info.tsv`.

pyroomacoustics centres its fractional-delay filter `frac_delay_length // 2` samples late; that
offset is removed so the direct-path peak sits exactly at the recorded delay.
Test rooms come from a different size and RT60 range than training rooms (profile keys
`corpus.rir.*`), and every room has its own id, so test rooms are never seen in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FS = 48000
C = 343.0


@dataclass(frozen=True)
class RoomSpec:
    room: str
    dims: tuple[float, float, float]
    rt60: float            # target
    src: tuple[float, float, float]
    mic: tuple[float, float, float]

    @property
    def delay_ms(self) -> float:
        return 1000.0 * float(np.linalg.norm(np.subtract(self.src, self.mic))) / C


def sample_room(rng: np.random.Generator, size: dict,
                rt60_range: tuple[float, float]) -> tuple[tuple[float, float, float], float]:
    """Room dimensions (x, y, z in metres, from `size` = {x: [lo, hi], y: [...], z: [...]}) and target RT60."""
    dims = tuple(float(rng.uniform(*size[k])) for k in ("x", "y", "z"))
    return dims, float(rng.uniform(*rt60_range))


def place(rng: np.random.Generator, dims, delay_ms: tuple[float, float], margin: float = 0.5):
    """Source and microphone positions whose distance gives a direct-path delay in `delay_ms`."""
    dims = np.asarray(dims)
    max_d = float(np.linalg.norm(dims - 2 * margin))
    hi = min(delay_ms[1], 1000 * max_d / C * 0.95)
    if hi < delay_ms[0]:
        raise ValueError(f"room {dims.round(2).tolist()} too small for a {delay_ms[0]} ms direct path")
    for _ in range(2000):
        # a whole number of samples at 48 kHz: the direct path is then one tap, never smeared
        # by the fractional-delay filter, and stays the largest peak of the response
        d = round(float(rng.uniform(delay_ms[0], hi)) * FS / 1000) * C / FS
        mic = rng.uniform(margin, dims - margin)
        mic[2] = rng.uniform(margin, min(dims[2] - margin, 2.0))
        v = rng.standard_normal(3)
        v[2] *= 0.3
        src = mic + d * v / np.linalg.norm(v)
        if np.all(src >= margin) and np.all(src <= dims - margin):
            return tuple(map(float, src)), tuple(map(float, mic))
    raise ValueError(f"could not place source and microphone in room {dims.round(2).tolist()}")


def schroeder_rt60(h: np.ndarray, fs: int, lo_db: float = -5.0, hi_db: float = -25.0) -> float:
    """RT60 from Schroeder backward integration: a line fitted to the energy decay curve between
    `lo_db` and `hi_db` (T20 by default), extrapolated to -60 dB. h: [T]."""
    e = np.cumsum((np.asarray(h, np.float64) ** 2)[::-1])[::-1]
    edc = 10 * np.log10(e / e[0] + 1e-300)
    i0 = int(np.argmax(edc <= lo_db))
    i1 = int(np.argmax(edc <= hi_db))
    if i1 <= i0 + 1:
        return float("nan")
    t = np.arange(i0, i1) / fs
    slope, _ = np.polyfit(t, edc[i0:i1], 1)
    return float(-60.0 / slope)


def direct_delay_ms(h: np.ndarray, fs: int) -> float:
    """Position of the direct-path (largest) peak in milliseconds."""
    return 1000.0 * int(np.argmax(np.abs(h))) / fs


def render(spec: RoomSpec, rng: np.random.Generator, rt60_range: tuple[float, float],
           mix_ms: float = 50.0, fs: int = FS) -> tuple[np.ndarray, float]:
    """The RIR [T] at `fs` (direct-path peak normalised to 0.9) and its measured RT60."""
    import pyroomacoustics as pra

    e_abs, _ = pra.inverse_sabine(spec.rt60, list(spec.dims))
    delay_s = spec.delay_ms / 1000
    t_mix = delay_s + mix_ms / 1000
    order = int(np.ceil(C * (t_mix + 0.01) / min(spec.dims))) + 1
    room = pra.ShoeBox(list(spec.dims), fs=fs, materials=pra.Material(float(min(e_abs, 0.99))),
                       max_order=order, air_absorption=False)
    room.add_source(list(spec.src))
    room.add_microphone(np.array(spec.mic)[:, None])
    room.compute_rir()
    h_ism = np.asarray(room.rir[0][0], np.float64)[pra.constants.get("frac_delay_length") // 2:]

    n_mix = int(round(t_mix * fs))
    length = n_mix + int(1.1 * rt60_range[1] * fs)
    early = np.zeros(length)
    m = min(len(h_ism), length)
    early[:m] = h_ism[:m]
    # fit the tail level to the image-source energy between the direct path + 10 ms and t_mix
    w0 = int((delay_s + 0.01) * fs)
    seg = early[w0:n_mix]
    noise = rng.standard_normal(length - n_mix)
    fade = min(int(0.005 * fs), n_mix - w0)
    rt = spec.rt60
    lo, hi = rt60_range
    for _ in range(8):
        t_seg = np.arange(w0, n_mix) / fs - delay_s
        decay = np.exp(-6.9078 * t_seg / rt)
        a2 = float(np.mean(seg**2) / np.mean(decay**2)) if seg.size else 1e-6
        t_tail = np.arange(n_mix, length) / fs - delay_s
        tail = np.sqrt(a2) * noise * np.exp(-6.9078 * t_tail / rt)
        h = early.copy()
        h[n_mix:] = 0.0
        if fade > 0:  # cross-fade image-source response into the tail
            ramp = np.linspace(1.0, 0.0, fade)
            h[n_mix - fade:n_mix] *= ramp
            tail_pre = np.sqrt(a2) * _tail_head(noise, fade) * np.exp(-6.9078 * (np.arange(n_mix - fade, n_mix) / fs - delay_s) / rt)
            h[n_mix - fade:n_mix] += tail_pre * (1 - ramp)
        h[n_mix:] += tail
        measured = schroeder_rt60(h, fs)
        if lo <= measured <= hi and abs(measured - spec.rt60) <= 0.1 * spec.rt60:
            break
        rt = float(np.clip(rt * spec.rt60 / measured, 0.05, 5.0))
    h = h * (0.9 / np.max(np.abs(h)))
    return h.astype(np.float32), float(measured)


def _tail_head(noise: np.ndarray, n: int) -> np.ndarray:
    """The first `n` tail samples reused (reversed) for the cross-fade, so no new draws are made."""
    return noise[:n][::-1]
