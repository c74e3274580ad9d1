"""Shared fixtures: tests make their own audio.

Without CUDA, Triton kernels (the Triton selective scan, tests/models/test_scan_triton.py) run
in Triton's interpreter on CPU tensors. Triton reads TRITON_INTERPRET when it is imported, so it
is set here, before any test module is collected; nothing else in the package uses triton, and
with CUDA present it is left alone (the tests then run the compiled kernels).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from use_repro.audio.io import write_audio


def tone(fs: int, seconds: float = 1.0, freq: float = 440.0, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: speech-like enough for I/O and DSP tests. [T] float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    x = sum(amp / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, 6) if freq * k < fs / 2)
    return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture
def make_wav(tmp_path):
    """make_wav(name, fs, seconds=1.0, **tone_kw) -> Path of a FLAC file written under tmp_path."""

    def _make(name: str, fs: int, seconds: float = 1.0, **kw):
        path = tmp_path / name
        write_audio(path, tone(fs, seconds, **kw), fs)
        return path

    return _make
