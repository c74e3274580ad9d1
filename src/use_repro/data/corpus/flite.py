"""Held-out synthetic English speech: the flite synthesiser with its CMU voices.

A voice family that never appears in training (training's synthetic speech is piper's `joe`),
so the test split gets more English speech from speakers the models never heard, for the
metrics whose backends cover English only (character accuracy, LPS). Voices (all 16 kHz):
`awb` (Scottish English male), `rms` (US male) and `slt` (US female), statistical-parametric
clustergen voices built from the CMU ARCTIC recordings, and `kal16` (US male, diphone). It is
labelled synthetic in speech_info.tsv (source `flite`) and the summary.

Flite and its voices come from Debian (`flite`, `libflite1`, and `libasound2`, which
libflite links), fetched with `apt-get download` and unpacked with `dpkg-deb -x` like the
other packages; the binary runs from the cache with `LD_LIBRARY_PATH` pointing into it, no root
needed. Flite has no random draws: the same text, voice and settings give the same samples.
mbrola voices would be another family, but Debian ships them in `non-free` only.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

BIN = "usr/bin/flite"
LIB_DIRS = ("usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu", "usr/lib", "lib/x86_64-linux-gnu",
            "lib/aarch64-linux-gnu")
NATIVE_FS = {"awb": 16000, "rms": 16000, "slt": 16000, "kal16": 16000, "kal": 8000}


class FliteError(RuntimeError):
    pass


class Flite:
    """The unpacked flite binary and the library folders it needs."""

    def __init__(self, roots: dict[str, Path]):
        if "flite" not in roots:
            raise FliteError("package flite is not available")
        self.exe = Path(roots["flite"]) / BIN
        if not self.exe.exists():
            raise FliteError(f"{self.exe} missing from the unpacked flite package")
        libs = []
        for pkg in ("libflite1", "libasound2", "flite"):
            if pkg in roots:
                libs += [str(Path(roots[pkg]) / d) for d in LIB_DIRS if (Path(roots[pkg]) / d).is_dir()]
        self.libs = libs

    def _env(self) -> dict:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(self.libs + [env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
        return env

    def _run(self, args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
        try:
            r = subprocess.run([str(self.exe), *args], capture_output=True, text=True, env=self._env(),
                               timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FliteError(f"{self.exe}: {e}") from None
        if r.returncode != 0:
            raise FliteError(f"{self.exe} {' '.join(args[:2])}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
        return r

    def voices(self) -> list[str]:
        """Voices the binary knows (`flite -lv`); flite falls back to kal silently for others."""
        r = self._run(["-lv"])
        line = (r.stdout + r.stderr).split(":", 1)[-1]
        return line.split()

    def synthesize(self, voice: str, text: str, duration_stretch: float = 1.0) -> tuple[np.ndarray, int]:
        """[T] float32 samples and their rate."""
        with tempfile.TemporaryDirectory(prefix="flite.") as tmp:
            wav = Path(tmp) / "out.wav"
            self._run(["-voice", voice, "--setf", f"duration_stretch={duration_stretch:.3f}", "-t", text,
                       "-o", str(wav)])
            try:
                x, fs = sf.read(str(wav), dtype="float32", always_2d=True)
            except RuntimeError as e:
                raise FliteError(f"flite wrote no readable audio for voice {voice}: {e}") from None
        x = x.mean(axis=1)
        if not x.size or not np.isfinite(x).all() or not np.any(x):
            raise FliteError(f"flite voice {voice} gave empty or silent audio for {text!r}")
        return x.astype(np.float32), int(fs)


def available(roots: dict[str, Path], wanted: list[str]) -> tuple[Flite | None, list[str], str | None]:
    """(flite, usable voices, None) or (None, [], why not)."""
    try:
        fl = Flite(roots)
        known = fl.voices()
    except FliteError as e:
        return None, [], str(e)
    voices = [v for v in wanted if v in known]
    if not voices:
        return None, [], f"none of the voices {', '.join(wanted)} in flite (it has {', '.join(known) or 'none'})"
    return fl, voices, None
