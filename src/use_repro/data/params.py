"""Simulation parameters: one ``meta.tsv`` row per utterance, drawn as URGENT 2025 draws them.

Mirrors the challenge's ``simulation/generate_data_param.py`` with its training config
(``conf/simulation_train.yaml``), all of it read from the profile's ``simulation`` section:

- wind noise with probability 0.05 instead of the additive noise, SNR ~ U(-10, 15) dB, with
  side-chain compressor settings and a clipping threshold drawn per row; otherwise additive
  noise, SNR ~ U(-5, 20) dB (SNR on active frames of the reverberant speech, see noise.py);
- reverberation with probability 0.5;
- 0-3 further augmentations ({0: .25, 1: .40, 2: .20, 3: .15}) drawn without replacement from
  bandwidth limitation, clipping, codec and packet loss (never clipping on a wind row, whose
  mixing already clips); bandwidth limitation to a random lower supported rate with a random
  method of four; clipping quantiles U(0, .1) / U(.9, 1); codec mp3 (qscale 1-9) or ogg
  (vorbis or opus, qscale -1..9); packet loss of 20 ms packets at rate U(.05, .25) in bursts;
- noise, wind and RIRs are picked at the speech's rate, or a higher one when none is left
  there, each used once before any is reused (``reuse_*``), as the challenge's select_sample.

One deliberate difference: the challenge skips the RIR when ``rand() <= prob_reverberation``,
i.e. reverberates with probability ``1 - prob_reverberation``; with its 0.5 that is the same,
and here ``prob_reverberation`` means what it says.

`sample_row` is the per-utterance sampler (also used for on-the-fly simulation by the
trainer); `sample_split` draws a whole split deterministically from the master seed.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from use_repro.audio.io import SUPPORTED_RATES
from use_repro.data import augmentation as A
from use_repro.data.distortions.packet_loss import sample_packet_loss
from use_repro.data.distortions.wind import WindParams
from use_repro.data.manifest import ScpEntry
from use_repro.data.targets import target_column, target_names

AUGMENTATION_KINDS = ("bandwidth_limitation", "clipping", "codec", "packet_loss")
# Output sub-folders (per target) of a rendered split; files are <folder>/<bucket>/<id>.flac.
FILES_PER_FOLDER = 5000


@dataclass
class SimConfig:
    """The profile's ``simulation`` section (keys and defaults: experiments/config/schema.yaml)."""

    snr_range: tuple[float, float] = (-5.0, 20.0)
    wind_snr_range: tuple[float, float] = (-10.0, 15.0)
    prob_wind_noise: float = 0.05
    prob_reverberation: float = 0.5
    num_augmentations_probs: tuple[float, ...] = (0.25, 0.40, 0.20, 0.15)
    augmentation_weights: dict = field(default_factory=lambda: {k: 1.0 for k in AUGMENTATION_KINDS})
    resample_methods: tuple[str, ...] = ("kaiser_best", "kaiser_fast", "scipy", "polyphase")
    clipping_min_quantile: tuple[float, float] = (0.0, 0.1)
    clipping_max_quantile: tuple[float, float] = (0.9, 1.0)
    codecs: tuple = ({"format": "mp3", "encoders": [None], "qscale": [1, 10]},
                     {"format": "ogg", "encoders": ["vorbis", "opus"], "qscale": [-1, 10]})
    packet_duration_ms: int = 20
    packet_loss_rate: tuple[float, float] = (0.05, 0.25)
    max_continuous_packet_loss: int = 10
    wind: dict = field(default_factory=lambda: {
        "threshold": [0.1, 0.3], "ratio": [1, 20], "attack": [5, 100], "release": [5, 100],
        "sc_gain": [0.8, 1.2], "clipping_threshold": [0.85, 1.0], "clipping_chance": 0.75})
    reuse_noise: bool = True
    reuse_rir: bool = True
    min_speech_s: float = 0.1
    early_ms: float = 50.0
    early_windows_ms: tuple[float, ...] = (50.0, 25.0, 10.0, 0.0)
    target_gain: str = "direct_path"
    wind_challenge_quirks: bool = True
    max_reject_fraction: float = 0.01
    splits: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict | None) -> "SimConfig":
        """From a whole profile config (uses its ``simulation`` key) or the section itself."""
        sec = dict((cfg or {}).get("simulation", cfg or {}))
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in sec.items() if k in known}
        for k in ("snr_range", "wind_snr_range", "num_augmentations_probs", "resample_methods",
                  "clipping_min_quantile", "clipping_max_quantile", "packet_loss_rate", "early_windows_ms"):
            if k in kw:
                kw[k] = tuple(kw[k])
        if "codecs" in kw:
            kw["codecs"] = tuple(kw["codecs"])
        return cls(**kw)

    def split(self, name: str) -> dict:
        """Per-split settings (rows, max_speech_s, repeat_per_utt, reuse_*, ogg_encoders, meta)."""
        base = {"rows": 0, "max_speech_s": 0.0, "repeat_per_utt": 1, "reuse_noise": self.reuse_noise,
                "reuse_rir": self.reuse_rir, "ogg_encoders": None, "meta": ""}
        base.update({k: v for k, v in (self.splits.get(name) or {}).items() if v is not None})
        return base


@dataclass(frozen=True)
class SpeechItem:
    uid: str
    fs: int
    path: str
    length: int  # samples
    sid: str = "none"
    text: str = "<not-available>"
    lang: str = "none"


class Pool:
    """Noise/RIR/wind entries by rate, each used once before any is reused (the challenge's
    ``select_sample``): the speech's rate first, else a random higher rate; when every entry
    at usable rates is used, pick among used ones if `reuse`, else nothing."""

    def __init__(self, entries: Iterable[ScpEntry], reuse: bool = True):
        self.unused: dict[int, list[ScpEntry]] = defaultdict(list)
        self.used: dict[int, list[ScpEntry]] = defaultdict(list)
        for e in entries:
            self.unused[int(e.fs)].append(e)
        self.reuse = reuse

    def __len__(self) -> int:
        return sum(map(len, self.unused.values())) + sum(map(len, self.used.values()))

    def pick(self, rng: np.random.Generator, fs: int) -> ScpEntry | None:
        e = self._pick_from(self.unused, rng, fs, move=True)
        if e is None and self.reuse:
            e = self._pick_from(self.used, rng, fs, move=False)
        return e

    def _pick_from(self, table, rng, fs, move):
        if table.get(fs):
            rate = fs
        else:
            rates = [r for r in table if r > fs and table[r]]
            if not rates:
                return None
            rate = rates[int(rng.integers(len(rates)))] if len(rates) > 1 else rates[0]
        items = table[rate]
        i = int(rng.integers(len(items)))
        e = items[i]
        if move:
            items[i] = items[-1]
            items.pop()
            self.used[rate].append(e)
        return e


def _as_pool(x, reuse=True) -> Pool | None:
    if x is None or isinstance(x, Pool):
        return x
    return Pool(x, reuse=reuse)


def _uniform(rng, lo_hi) -> float:
    return float(rng.uniform(float(lo_hi[0]), float(lo_hi[1])))


def sample_augmentations(rng: np.random.Generator, cfg: SimConfig, use_wind: bool) -> list[str]:
    """Which further augmentations a row gets, in application order."""
    probs = np.asarray(cfg.num_augmentations_probs, dtype=float)
    k = int(rng.choice(len(probs), p=probs / probs.sum()))
    names = [n for n in AUGMENTATION_KINDS if cfg.augmentation_weights.get(n, 0) > 0]
    if k == 0 or not names:
        return []
    w = np.array([cfg.augmentation_weights[n] for n in names], dtype=float)
    w /= w.sum()
    k = min(k, len(names) - (1 if use_wind and "clipping" in names else 0))
    if k <= 0:
        return []
    for _ in range(1000):
        pick = [names[i] for i in rng.choice(len(names), size=k, replace=False, p=w)]
        if not (use_wind and "clipping" in pick):
            return pick
    raise RuntimeError("could not draw augmentations without clipping for a wind-noise row")


def sample_row(rng: np.random.Generator, speech: SpeechItem, noise, rir=None, wind=None,
               cfg: SimConfig | None = None, row_id: str = "fileid_1", split: str = "train") -> dict:
    """One meta.tsv row (challenge columns + ``lang``; no output paths) for `speech`.

    `noise`, `rir`, `wind` are Pools or plain lists of ScpEntry (then reused freely).
    """
    cfg = cfg or SimConfig()
    noise, rir, wind = _as_pool(noise), _as_pool(rir), _as_pool(wind)
    fs = int(speech.fs)
    if fs not in SUPPORTED_RATES:
        raise ValueError(f"{speech.uid}: {fs} Hz is not a supported rate ({', '.join(map(str, SUPPORTED_RATES))})")
    use_wind = bool(wind is not None and len(wind) > 0 and rng.random() < cfg.prob_wind_noise)
    aug_names = sample_augmentations(rng, cfg, use_wind)

    augs: list[A.Augmentation] = []
    if use_wind:
        entry = wind.pick(rng, fs)
        wc = cfg.wind
        params = WindParams(threshold=_uniform(rng, wc["threshold"]), ratio=_uniform(rng, wc["ratio"]),
                            attack=_uniform(rng, wc["attack"]), release=_uniform(rng, wc["release"]),
                            sc_gain=_uniform(rng, wc["sc_gain"]),
                            clipping_threshold=_uniform(rng, wc["clipping_threshold"]),
                            clipping=bool(rng.random() < float(wc["clipping_chance"])))
        augs.append(A.Wind(params))
        snr = _uniform(rng, cfg.wind_snr_range)
    else:
        entry = noise.pick(rng, fs) if noise is not None else None
        snr = _uniform(rng, cfg.snr_range)
    if entry is None:
        raise ValueError(f"{speech.uid}: no {'wind ' if use_wind else ''}noise at {fs} Hz or higher")

    rir_entry = None
    if rir is not None and len(rir) > 0 and rng.random() < cfg.prob_reverberation:
        rir_entry = rir.pick(rng, fs)

    ogg_encoders = cfg.split(split)["ogg_encoders"]
    for name in aug_names:
        if name == "bandwidth_limitation":
            lower = [r for r in SUPPORTED_RATES if r < fs]
            if lower:
                method = str(cfg.resample_methods[int(rng.integers(len(cfg.resample_methods)))])
                augs.append(A.BandwidthLimitation(method, int(lower[int(rng.integers(len(lower)))])))
            else:
                augs.append(A.BandwidthLimitation("none", fs))
        elif name == "clipping":
            augs.append(A.Clipping(_uniform(rng, cfg.clipping_min_quantile), _uniform(rng, cfg.clipping_max_quantile)))
        elif name == "codec":
            c = cfg.codecs[int(rng.integers(len(cfg.codecs)))]
            encoders = list(c.get("encoders") or [None])
            if c["format"] == "ogg" and ogg_encoders:
                encoders = [e for e in encoders if e in ogg_encoders] or list(ogg_encoders)
            enc = encoders[int(rng.integers(len(encoders)))]
            q = c.get("qscale")
            qscale = int(rng.integers(int(q[0]), int(q[1]))) if isinstance(q, (list, tuple)) else q
            augs.append(A.Codec(c["format"], None if enc in (None, "None") else str(enc), qscale))
        elif name == "packet_loss":
            idx = sample_packet_loss(rng, speech.length, fs, cfg.packet_duration_ms, cfg.packet_loss_rate,
                                     cfg.max_continuous_packet_loss)
            augs.append(A.PacketLoss(tuple(idx), int(cfg.packet_duration_ms)))

    return {
        "id": row_id,
        "speech_uid": speech.uid,
        "speech_sid": speech.sid,
        "noise_uid": entry.uid,
        "snr_dB": repr(snr),
        "rir_uid": rir_entry.uid if rir_entry is not None else "none",
        "augmentation": A.format_augmentations(augs),
        "fs": str(fs),
        "length": str(speech.length),
        "text": (speech.text or "<not-available>").replace("\t", " "),
        "lang": speech.lang,
    }


def select_speech(items: Sequence[SpeechItem], n: int, rng: np.random.Generator) -> list[SpeechItem]:
    """`n` items spread evenly over (rate, language) groups, so small sets keep every rate and
    language; the original order is kept. n <= 0 or n >= len(items) returns all."""
    if n <= 0 or n >= len(items):
        return list(items)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[(it.fs, it.lang)].append(i)
    order = sorted(groups)
    queues = []
    for key in order:
        idx = list(groups[key])
        rng.shuffle(idx)
        queues.append(idx)
    chosen: list[int] = []
    while len(chosen) < n:
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(q.pop())
    return [items[i] for i in sorted(chosen)]


def output_paths(row_id: str, index: int, out_dir: str | Path, windows_ms) -> dict[str, str]:
    """Where `render` writes a row: ``{out}/<folder>/<index // 5000>/<id>.flac`` per column."""
    bucket = str(index // FILES_PER_FOLDER)
    paths = {"noisy_path": str(Path(out_dir) / "noisy" / bucket / f"{row_id}.flac")}
    for name in target_names(windows_ms):
        folder = "clean" if name == "early" else f"clean_{name}"
        paths[target_column(name)] = str(Path(out_dir) / folder / bucket / f"{row_id}.flac")
    return paths


def sample_split(speech: Sequence[SpeechItem], noise: Sequence[ScpEntry], rir: Sequence[ScpEntry] | None,
                 wind: Sequence[ScpEntry] | None, cfg: SimConfig, split: str, seed: int,
                 out_dir: str | Path) -> tuple[list[dict], list[str]]:
    """All rows of a split (with output paths under `out_dir`) and notes on skipped speech.

    Deterministic for (`seed`, `split`, inputs). Rows are ordered by rate, highest first, then
    by manifest order, and numbered ``fileid_1, fileid_2, ...`` as the challenge numbers them.
    """
    from use_repro.seeding import rng_for

    sc = cfg.split(split)
    rng = rng_for(seed, "simulate.params", split)
    min_len = cfg.min_speech_s
    max_len = float(sc["max_speech_s"] or 0)
    notes, usable = [], []
    for it in speech:
        dur = it.length / it.fs
        if it.fs not in SUPPORTED_RATES:
            notes.append(f"{it.uid}: skipped, {it.fs} Hz is not a supported rate")
        elif dur < min_len:
            notes.append(f"{it.uid}: skipped, {dur:.3f} s is shorter than {min_len} s")
        elif max_len and dur > max_len:
            continue  # longer than this split's cap: not an error, just not used here
        else:
            usable.append(it)
    repeat = max(1, int(sc["repeat_per_utt"]))
    n_rows = int(sc["rows"] or 0)
    chosen = select_speech(usable, math.ceil(n_rows / repeat) if n_rows else 0, rng)
    chosen.sort(key=lambda it: -it.fs)  # stable: manifest order within a rate
    noise_pool = Pool(noise, reuse=bool(sc["reuse_noise"]))
    rir_pool = Pool(rir, reuse=bool(sc["reuse_rir"])) if rir else None
    wind_pool = Pool(wind, reuse=bool(sc["reuse_noise"])) if wind else None
    rows = []
    for it in chosen:
        for _ in range(repeat):
            if n_rows and len(rows) >= n_rows:
                break
            row_id = f"fileid_{len(rows) + 1}"
            row = sample_row(rng, it, noise_pool, rir_pool, wind_pool, cfg, row_id=row_id, split=split)
            row.update(output_paths(row_id, len(rows), out_dir, cfg.early_windows_ms))
            rows.append(row)
    return rows, notes
