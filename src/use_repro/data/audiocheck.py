"""A full read of an audio file, with a cache so reruns stay fast.

A header (`sf.info`) says a file is FLAC at 16 kHz with N frames; it does not say the samples
are there, or finite. Training and the corpus check need that, so `check_audio` decodes every
frame and rejects, naming the file:

- a missing or zero-length file, one libsndfile cannot open;
- a truncated one: decoding fails part-way (FLAC), or the header claims more data than the file
  holds (WAV: libsndfile notes "data : N (should be M)"), or fewer frames decode than announced;
- one with no samples, or with a NaN or infinite sample (float WAV can hold them).

`AudioCheckCache` remembers each verdict keyed by (path, size, mtime_ns): a file changed since is
checked again. It is a JSON file written atomically; a damaged cache is ignored and rebuilt.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from use_repro.audio.io import AudioError
from use_repro.fs import atomic_path

log = logging.getLogger(__name__)

BLOCK = 1 << 16  # frames decoded at a time: memory stays small for hour-long files
_WAV_SHORT = re.compile(r"^data\s*:\s*\d+\s*\(should be", re.M)


@dataclass(frozen=True)
class AudioFacts:
    fs: int
    frames: int
    channels: int


def check_audio(path: str | os.PathLike) -> AudioFacts:
    """Decode all of `path`; its (rate, frames, channels), or AudioError naming the file."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        # a FLAC cut short often fails here already: its decoder reads ahead while opening
        raise AudioError(f"{path}: not a sound file, or truncated ({str(e).strip()})") from None
    with f:
        announced, fs, channels = f.frames, f.samplerate, f.channels
        if _WAV_SHORT.search(f.extra_info or ""):
            raise AudioError(f"{path}: truncated (the header announces more data than the file holds)")
        n = 0
        try:
            for block in f.blocks(blocksize=BLOCK, dtype="float32", always_2d=True):
                finite = np.isfinite(block)
                if not finite.all():
                    first = int(np.argwhere(~finite)[0][0])
                    bad = "NaN" if np.isnan(block[first]).any() else "infinite"
                    raise AudioError(f"{path}: contains {bad} samples (first at frame {n + first})")
                n += block.shape[0]
        except (sf.LibsndfileError, RuntimeError) as e:  # opened, then failed part-way: cut off
            raise AudioError(f"{path}: truncated or corrupt after {n} of {announced} frames "
                             f"({str(e).strip()})") from None
    if n == 0:
        raise AudioError(f"{path}: holds no samples")
    if n < announced:
        raise AudioError(f"{path}: truncated ({n} of {announced} frames decode)")
    return AudioFacts(int(fs), int(n), int(channels))


class AudioCheckCache:
    """`check_audio` with verdicts remembered in a JSON file, keyed by path, size and mtime."""

    VERSION = 1  # bump when check_audio's rules change: older verdicts are then discarded

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict] = {}
        self.dirty = False
        if self.path and self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if data.get("version") == self.VERSION:
                    self.entries = dict(data["entries"])
            except (ValueError, KeyError, TypeError) as e:
                log.warning("%s: unreadable check cache (%s); every file is checked again", self.path, e)

    @staticmethod
    def _key(path: Path) -> tuple[str, list[int]]:
        st = path.stat()
        return str(path.resolve()), [st.st_size, st.st_mtime_ns]

    def check_cached(self, path: str | os.PathLike) -> AudioFacts:
        """The cached verdict on an unchanged file: its facts, or AudioError; KeyError when the
        file was never checked or changed since."""
        path = Path(path)
        if not path.exists():  # never cached: it may appear later
            raise AudioError(f"{path}: no such file")
        key, stamp = self._key(path)
        hit = self.entries.get(key)
        if hit is None or hit["stamp"] != stamp:
            raise KeyError(str(path))
        if hit["error"]:
            raise AudioError(hit["error"])
        return AudioFacts(**hit["facts"])

    def record(self, path: str | os.PathLike, facts: AudioFacts | None, error: str = "") -> None:
        """Remember the verdict of a `check_audio` run on `path` (facts, or the error)."""
        key, stamp = self._key(Path(path))
        self.entries[key] = {"stamp": stamp, "error": error, "facts": asdict(facts) if facts else None}
        self.dirty = True

    def check(self, path: str | os.PathLike) -> AudioFacts:
        """Like `check_audio`, answered from the cache when the file is unchanged."""
        try:
            return self.check_cached(path)
        except KeyError:
            pass
        try:
            facts = check_audio(path)
        except AudioError as e:
            self.record(path, None, str(e))
            raise
        self.record(path, facts)
        return facts

    def save(self) -> None:
        """Write the cache atomically (nothing to do without a path or without news)."""
        if not self.path or not self.dirty:
            return
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({"version": self.VERSION, "entries": self.entries}), encoding="utf-8")
        self.dirty = False
