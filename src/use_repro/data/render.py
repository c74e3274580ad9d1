"""Render one meta.tsv row to audio in memory: the noisy mixture and the requested targets.

Order of operations, as the challenge's ``simulate_data_from_param.py: process_one_sample``:

1. read speech, noise and RIR (first channel, float64), resampling any source whose rate
   differs from the row's ``fs`` as the challenge's ``read_audio`` does (``librosa.resample``
   with ``soxr_hq``: soxr HQ, then zero-padded or cut to ``ceil(N * fs / fs_file)`` samples);
2. reverberation: mixture speech ``(s * h)[:T]``; targets from targets.py (the challenge's
   early target plus the paper's shifted/anechoic targets and early windows);
3. noise at the row's SNR on active frames of the (reverberant) speech, or the wind-noise
   mixing for wind rows, with a noise offset drawn from the row's RNG;
4. the ``/``-separated augmentations, in the order written;
5. the challenge's level rule, for every row: one scale ``0.9 / max(peak(noisy), peak(early),
   peak(noise))`` applied to the mixture and to every target, so all keep the relative levels
   they have in the mixture. The extra targets (shifted, anechoic, windows) take no part in the
   rule; one that then peaks above what 16-bit PCM holds is written losslessly by
   ``simulate render`` as 32-bit float WAV instead of FLAC (see simulate.py), never rescaled.

The row's RNG is seeded like the challenge's (``default_rng(int(id.split('_')[-1]))`` for ids
such as ``fileid_123``, so the official meta.tsv draws the official noise offsets), and from
``seeding.rng_for`` otherwise; a row renders bit-identically wherever it runs.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from use_repro.audio.io import SUPPORTED_RATES, AudioError
from use_repro.audio.resample import resample_fixed_length
from use_repro.data import augmentation as A
from use_repro.data.distortions.bandwidth import limit_bandwidth
from use_repro.data.distortions.clipping import clip_quantiles
from use_repro.data.distortions.codec import apply_codec
from use_repro.data.distortions.noise import fit_noise, mix_noise
from use_repro.data.distortions.packet_loss import apply_packet_loss
from use_repro.data.distortions.wind import mix_wind
from use_repro.data.manifest import ScpEntry
from use_repro.data.targets import make_targets, target_names, window_name
from use_repro.seeding import rng_for

MIN_SPEECH_SECONDS = 0.1
_EXACT_LENGTH_FORMATS = ("FLAC", "WAV", "WAVEX", "AIFF")


class RowError(ValueError):
    """A row that cannot be rendered (missing file, unknown augmentation, bad rate, too short)."""


@dataclass
class RenderSettings:
    windows_ms: tuple = (50.0, 25.0, 10.0, 0.0)
    target_gain: str = "direct_path"
    early_seconds: float = 0.05
    wind_quirks: bool = True  # reproduce the challenge's wind-row quirks (distortions/wind.py)
    # Targets to render (names from targets.target_names); None: all of them. The early target
    # is computed whatever this says: the level rule needs its peak.
    targets: tuple | None = None
    # Write only the targets' own files: the noisy mixture (and the clean file of a row without
    # reverberation, which every target of that row links to) are another job's, already written
    # (simulate render --targets-only: one job per training target, data/simulate.py).
    targets_only: bool = False

    @classmethod
    def from_sim(cls, sim, targets=None, targets_only=False) -> "RenderSettings":
        return cls(tuple(sim.early_windows_ms), sim.target_gain, sim.early_ms / 1000.0, sim.wind_challenge_quirks,
                   None if targets is None else tuple(targets), targets_only)

    def target_list(self) -> list[str]:
        """The targets to render, in column order; ValueError naming a target no setting makes."""
        names = target_names(self.windows_ms)
        if self.targets is None:
            return names
        unknown = [t for t in self.targets if t not in names]
        if unknown:
            raise ValueError(f"target(s) {', '.join(unknown)} not made by this configuration: the targets are "
                             f"{', '.join(names)} (windows from simulation.early_windows_ms)")
        return [n for n in names if n in self.targets]


class Sources:
    """uid -> path for speech, noise (wind included) and RIRs."""

    def __init__(self, speech=(), noise=(), rir=()):
        self.speech = self._table(speech)
        self.noise = self._table(noise)
        self.rir = self._table(rir)

    @staticmethod
    def _table(entries) -> dict[str, str]:
        if isinstance(entries, dict):
            return dict(entries)
        return {e.uid: e.path for e in entries}

    def path(self, kind: str, uid: str) -> str:
        table = getattr(self, kind)
        if uid not in table:
            raise RowError(f"{kind} uid {uid!r} is in no {kind} manifest")
        p = table[uid]
        if not os.path.exists(p):
            raise RowError(f"{kind} {uid}: {p}: no such file")
        return p


def row_rng(row_id: str) -> np.random.Generator:
    m = re.fullmatch(r".*_(\d+)", row_id)
    if m:
        return np.random.default_rng(int(m.group(1)))
    return rng_for("simulate.render", row_id)


def read_source(path: str, fs: int) -> np.ndarray:
    """First channel of `path` as float64 [T] at `fs`, resampled as the challenge's ``read_audio``
    (audio.resample.resample_fixed_length) when the file's rate differs. The file is opened once:
    its header (format, frame count) and its samples come from the same handle."""
    try:
        if os.path.getsize(path) == 0:
            raise AudioError(f"{path}: empty file (0 bytes)")
        with sf.SoundFile(path) as f:
            fmt, frames, fs_file = f.format, f.frames, f.samplerate
            x = f.read(dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not a readable sound file (truncated or not audio: {e})") from None
    except OSError as e:
        raise AudioError(f"{path}: cannot be read ({e})") from None
    if x.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples")
    # Only formats whose header frame count is exact (compressed ones may estimate it).
    if fmt in _EXACT_LENGTH_FORMATS and x.shape[0] != frames:
        raise AudioError(f"{path}: truncated, holds {x.shape[0]} samples, its header says {frames}")
    x = np.ascontiguousarray(x[:, 0])
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return resample_fixed_length(x, fs_file, fs) if fs_file != fs else x


def read_noise(path: str, fs: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """The noise fitted to `length` samples exactly as ``noise.fit_noise(read_source(path, fs),
    length, rng)`` (same offset draw), reading only the needed segment when no resampling is due
    (NaN/Inf outside that segment are then not seen: the corpus check reads whole files)."""
    try:
        if os.path.getsize(path) == 0:
            raise AudioError(f"{path}: empty file (0 bytes)")
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: not a readable sound file (truncated or not audio: {e})") from None
    except OSError as e:
        raise AudioError(f"{path}: cannot be read ({e})") from None
    with f:  # one handle for the header and the segment
        frames = f.frames
        if f.samplerate != fs or frames <= length:
            f.close()
            return fit_noise(read_source(path, fs), length, rng)
        offset = int(rng.integers(0, frames - length))
        try:
            f.seek(offset)
            x = f.read(length, dtype="float64", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{path}: not a readable sound file (truncated: {e})") from None
    if x.shape[0] != length:
        raise AudioError(f"{path}: truncated, holds {offset + x.shape[0]} samples, its header says {frames}")
    x = np.ascontiguousarray(x[:, 0])
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return x


def render_row(row: dict, sources: Sources, settings: RenderSettings | None = None,
               return_info: bool = False):
    """Render `row` → {"noisy", "noise", "early", <requested targets>...}: float64 [T] arrays after scaling.

    Target names: ``early`` (the ``clean_path`` column), ``shifted``, ``anechoic``,
    ``early{W}ms`` for each configured window; `settings.targets` chooses which are returned
    (``early`` always is). With `return_info`, also a dict with
    ``reverberant`` (bool), ``n0`` (direct-path index or None), ``scale`` and ``wind`` (bool).
    Raises RowError (or AudioError) naming what is wrong with the row.
    """
    settings = settings or RenderSettings()
    rid = row.get("id", "?")
    try:
        fs = int(float(row["fs"]))
    except (KeyError, ValueError):
        raise RowError(f"fs {row.get('fs')!r} is not a number") from None
    if fs not in SUPPORTED_RATES:
        raise RowError(f"fs={fs} Hz is not a rate the challenge supports ({', '.join(map(str, SUPPORTED_RATES))})")
    try:
        augs = A.parse(row.get("augmentation", "none"))
    except A.AugmentationError as e:
        raise RowError(str(e)) from None
    speech_path = sources.path("speech", row["speech_uid"])
    speech = read_source(speech_path, fs)
    n = speech.shape[0]
    if n < MIN_SPEECH_SECONDS * fs:
        raise RowError(f"speech {row['speech_uid']} ({speech_path}) lasts {n / fs:.3f} s, "
                       f"shorter than {MIN_SPEECH_SECONDS} s")
    length = row.get("length", "none")
    if length not in ("none", "", None) and int(float(length)) != n:
        raise RowError(f"speech {row['speech_uid']} has {n} samples at {fs} Hz but the row says length={length}")
    rng = row_rng(rid)
    noise_src = read_noise(sources.path("noise", row["noise_uid"]), fs, n, rng)
    rir_uid = row.get("rir_uid", "none")
    rir = None if rir_uid in ("none", "", None) else read_source(sources.path("rir", rir_uid), fs)

    wanted = settings.target_list()
    # Only the requested windows are convolved (each costs a convolution per row).
    windows = [w for w in settings.windows_ms if window_name(w) in wanted]
    reverberant, targets = make_targets(speech, rir, fs, windows, settings.target_gain, settings.early_seconds)
    mixture_speech = speech if reverberant is None else reverberant
    snr = float(row["snr_dB"])
    wind = A.is_wind_row(row["noise_uid"], augs)
    if wind:
        w = [a for a in augs if isinstance(a, A.Wind)]
        if len(w) != 1:
            raise RowError(f"wind-noise row (noise {row['noise_uid']}) needs exactly one wind_noise(...) "
                           f"entry in its augmentation, found {len(w)}")
        noisy, noise, pre = mix_wind(mixture_speech, noise_src, fs, snr, w[0].params, rng,
                                     clip_as_written=not settings.wind_quirks)
        if settings.wind_quirks and rir is None:
            targets = {k: v * pre for k, v in targets.items()}
    else:
        noisy, noise = mix_noise(mixture_speech, noise_src, snr, rng)

    for aug in augs:
        if isinstance(aug, A.BandwidthLimitation):
            if aug.method != "none" and aug.fs_new != fs:
                if aug.fs_new > fs:
                    raise RowError(f"bandwidth_limitation to {aug.fs_new} Hz above the row's {fs} Hz")
                noisy = limit_bandwidth(noisy, fs, aug.fs_new, aug.method)
        elif isinstance(aug, A.Clipping):
            noisy = clip_quantiles(noisy, aug.min_quantile, aug.max_quantile)
        elif isinstance(aug, A.Codec):
            noisy = apply_codec(noisy, fs, aug.format, aug.encoder, aug.qscale)
        elif isinstance(aug, A.PacketLoss):
            noisy = apply_packet_loss(noisy, fs, aug.indices, aug.duration_ms)
    if noisy.shape[0] != n:
        raise RowError(f"rendered mixture has {noisy.shape[0]} samples, expected {n}")

    # The challenge's rule, whatever the extra targets' peaks (see the module docstring).
    peak = max(_peak(noisy), _peak(targets["early"]), _peak(noise))
    scale = 0.9 / peak if peak > 0 else 1.0
    out = {"noisy": noisy * scale, "noise": noise * scale}
    for name in ["early"] + [n for n in wanted if n != "early"]:
        out[name] = targets[name] * scale
    if not return_info:
        return out
    from use_repro.data.distortions.reverb import direct_path_index

    info = {"reverberant": rir is not None, "n0": None if rir is None else direct_path_index(rir),
            "scale": scale, "wind": wind}
    return out, info


def _peak(x: np.ndarray) -> float:
    """max |x| (the same value, without an array of absolute values)."""
    return float(np.maximum(x.max(), -x.min())) if x.size else 0.0


def simulate(rng: np.random.Generator, speech, noise, rir=None, wind=None, sim=None,
             row_id: str = "otf_0", split: str = "train") -> tuple[dict, dict[str, np.ndarray]]:
    """On-the-fly simulation: draw a row for `speech` (a params.SpeechItem) and render it.

    `noise`, `rir`, `wind` are params.Pool objects or lists of ScpEntry; `sim` a
    params.SimConfig. Returns (meta row, render_row's arrays). The row's own RNG comes from
    `row_id` (give each draw a distinct numeric suffix, e.g. ``otf_<draw seed>``).
    """
    from use_repro.data.params import Pool, SimConfig, sample_row

    sim = sim or SimConfig()
    pools = [x if x is None or isinstance(x, Pool) else Pool(x) for x in (noise, rir, wind)]
    row = sample_row(rng, speech, pools[0], pools[1], pools[2], sim, row_id=row_id, split=split)

    def entries(pool):
        if pool is None:
            return []
        return [e for table in (pool.unused, pool.used) for items in table.values() for e in items]

    sources = Sources([ScpEntry(speech.uid, speech.fs, speech.path)], entries(pools[0]) + entries(pools[2]),
                      entries(pools[1]))
    return row, render_row(row, sources, RenderSettings.from_sim(sim))

