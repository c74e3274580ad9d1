"""The challenge's augmentation grammar (the ``augmentation`` column of ``meta.tsv``).

One string per row, entries joined by ``/`` and applied in order; ``none`` (or an empty
entry) means nothing. Entries, exactly as ``generate_data_param.py`` writes them:

    bandwidth_limitation-<method>-><fs_new>                e.g. bandwidth_limitation-kaiser_fast->24000
    clipping(min=<q>,max=<q>)                              e.g. clipping(min=0.052,max=0.93)
    codec(format=<mp3|ogg>,encoder=<None|vorbis|opus>,qscale=<int>)
    packet_loss(packet_loss_indices=[<i>, ...],packet_duration_ms=<ms>)
    wind_noise(threshold=..,ratio=..,attack=..,release=..,sc_gain=..,clipping=<True|False>,clipping_threshold=..)

A wind-noise row starts with its ``wind_noise(...)`` entry followed by ``/`` even when nothing
follows (``wind_noise(...)/``), as the challenge writes it. Numbers are written with Python's
``repr`` so a row survives a round trip unchanged.

Also the wind convention: a row is a wind-noise row when its ``noise_uid`` starts with
``wind_noise`` (the challenge's test) or its augmentation has a ``wind_noise(...)`` entry.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Union

from use_repro.data.distortions.bandwidth import METHODS as RESAMPLE_METHODS
from use_repro.data.distortions.wind import WindParams

WIND_UID_PREFIX = "wind_noise"


class AugmentationError(ValueError):
    """An augmentation entry that does not parse or names something unknown."""


@dataclass(frozen=True)
class BandwidthLimitation:
    method: str
    fs_new: int

    def format(self) -> str:
        return f"bandwidth_limitation-{self.method}->{self.fs_new}"


@dataclass(frozen=True)
class Clipping:
    min_quantile: float
    max_quantile: float

    def format(self) -> str:
        return f"clipping(min={self.min_quantile!r},max={self.max_quantile!r})"


@dataclass(frozen=True)
class Codec:
    format: str
    encoder: str | None
    qscale: int | None

    def format_str(self) -> str:
        return f"codec(format={self.format},encoder={self.encoder},qscale={self.qscale})"


@dataclass(frozen=True)
class PacketLoss:
    indices: tuple[int, ...]
    duration_ms: int

    def format(self) -> str:
        return f"packet_loss(packet_loss_indices={list(self.indices)!r},packet_duration_ms={self.duration_ms})"


@dataclass(frozen=True)
class Wind:
    params: WindParams
    clipping_text: str = ""  # the flag as written ("True"/"False"), kept for round trips

    def format(self) -> str:
        p = self.params
        flag = self.clipping_text or str(p.clipping)
        return (f"wind_noise(threshold={p.threshold!r},ratio={p.ratio!r},attack={p.attack!r},"
                f"release={p.release!r},sc_gain={p.sc_gain!r},clipping={flag},"
                f"clipping_threshold={p.clipping_threshold!r})")


Augmentation = Union[BandwidthLimitation, Clipping, Codec, PacketLoss, Wind]
KINDS = ("bandwidth_limitation", "clipping", "codec", "packet_loss", "wind_noise")

_NUM = r"([-+0-9.eEinfa]+)"
_BW = re.compile(r"bandwidth_limitation-(.+)->(\d+)")
_CLIP = re.compile(rf"clipping\(min={_NUM},max={_NUM}\)")
_CODEC = re.compile(r"codec\(format=(\w+),encoder=(\w+),qscale=(-?\w+)\)")
_PL = re.compile(r"packet_loss\(packet_loss_indices=(\[[^\]]*\]),packet_duration_ms=(\d+)\)")
_WIND = re.compile(rf"wind_noise\(threshold={_NUM},ratio={_NUM},attack={_NUM},release={_NUM},"
                   rf"sc_gain={_NUM},clipping=(\w+),clipping_threshold={_NUM}\)")


def kind_of(aug: Augmentation) -> str:
    return {BandwidthLimitation: "bandwidth_limitation", Clipping: "clipping", Codec: "codec",
            PacketLoss: "packet_loss", Wind: "wind_noise"}[type(aug)]


def parse_one(entry: str) -> Augmentation:
    """One ``/``-separated entry → its dataclass; AugmentationError when unknown or malformed."""
    e = entry.strip()
    try:
        if e.startswith("bandwidth_limitation"):
            m = _fullmatch(_BW, e)
            method = m.group(1)
            if method != "none" and method not in RESAMPLE_METHODS:
                raise AugmentationError(f"{e!r}: unknown resampling method {method!r} "
                                        f"(known: {', '.join(RESAMPLE_METHODS)})")
            return BandwidthLimitation(method, int(m.group(2)))
        if e.startswith("clipping"):
            m = _fullmatch(_CLIP, e)
            lo, hi = float(m.group(1)), float(m.group(2))
            if not 0.0 <= lo <= hi <= 1.0:
                raise AugmentationError(f"{e!r}: quantiles must satisfy 0 <= min <= max <= 1")
            return Clipping(lo, hi)
        if e.startswith("codec"):
            m = _fullmatch(_CODEC, e)
            fmt, enc, q = m.groups()
            enc = None if enc in ("None", "none") else enc
            if (fmt, enc) not in (("mp3", None), ("ogg", "vorbis"), ("ogg", "opus")):
                raise AugmentationError(f"{e!r}: unknown codec format={fmt} encoder={enc} "
                                        "(known: mp3/None, ogg/vorbis, ogg/opus)")
            return Codec(fmt, enc, None if q in ("None", "none") else int(q))
        if e.startswith("packet_loss"):
            m = _fullmatch(_PL, e)
            idx = ast.literal_eval(m.group(1))
            if not isinstance(idx, list) or not all(isinstance(i, int) and i >= 0 for i in idx):
                raise AugmentationError(f"{e!r}: packet_loss_indices must be a list of non-negative integers")
            return PacketLoss(tuple(idx), int(m.group(2)))
        if e.startswith("wind_noise"):
            m = _fullmatch(_WIND, e)
            th, ra, at, re_, sc, flag, ct = m.groups()
            if flag not in ("True", "False"):
                raise AugmentationError(f"{e!r}: clipping must be True or False")
            p = WindParams(float(th), float(ra), float(at), float(re_), float(sc), flag == "True", float(ct))
            return Wind(p, flag)
    except (ValueError, SyntaxError) as err:
        if isinstance(err, AugmentationError):
            raise
        raise AugmentationError(f"{e!r}: {err}") from None
    raise AugmentationError(f"unknown augmentation {e!r} (known: {', '.join(KINDS)})")


def _fullmatch(rx: re.Pattern, e: str) -> re.Match:
    m = rx.fullmatch(e)
    if m is None:
        raise AugmentationError(f"malformed augmentation {e!r} (expected the form {rx.pattern})")
    return m


def parse(text: str) -> list[Augmentation]:
    """The whole column → entries in order (``none`` and empty entries dropped)."""
    out = []
    for entry in (text or "").split("/"):
        if entry.strip() in ("", "none"):
            continue
        out.append(parse_one(entry))
    return out


def format_one(aug: Augmentation) -> str:
    return aug.format_str() if isinstance(aug, Codec) else aug.format()


def format_augmentations(augs: list[Augmentation]) -> str:
    """Entries → the column text, with the challenge's ``wind_noise(...)/`` prefix convention."""
    wind = [a for a in augs if isinstance(a, Wind)]
    rest = [a for a in augs if not isinstance(a, Wind)]
    text = "/".join(format_one(a) for a in rest)
    if wind:
        return format_one(wind[0]) + "/" + text
    return text or "none"


def is_wind_row(noise_uid: str, augs: list[Augmentation]) -> bool:
    return str(noise_uid).startswith(WIND_UID_PREFIX) or any(isinstance(a, Wind) for a in augs)
