"""Fixtures of the training tests: a few short generated utterances, a tiny model, a test profile."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from use_repro.audio.io import write_audio
from use_repro.config import CONFIG_DIR
from use_repro.data.manifest import write_meta

TARGET_COLUMNS = ("clean_path", "clean_shifted_path", "clean_anechoic_path")


def harmonic(fs: int, seconds: float, f0: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(fs * seconds)) / fs
    x = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in range(1, 10) if f0 * k < fs / 2)
    return (x * (0.6 + 0.4 * np.sin(2 * np.pi * 2.5 * t))).astype(np.float32)


def make_meta(root: Path, n: int = 3, rates=(8000,), seconds: float = 0.5, seed: int = 0) -> Path:
    """A rendered-looking meta.tsv: noisy = clean + white noise; every target column = clean."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        fs = rates[i % len(rates)]
        clean = harmonic(fs, seconds, 110.0 + 37.0 * i, rng)
        noisy = clean + 0.05 * rng.standard_normal(clean.size).astype(np.float32)
        uid = f"fileid_{i + 1}"
        row = {"id": uid, "speech_uid": f"speech_{i + 1}", "speech_sid": "spk", "noise_uid": "noise_1",
               "snr_dB": "10.0", "rir_uid": "none", "augmentation": "none", "fs": str(fs),
               "length": str(clean.size), "text": "none"}
        row["noisy_path"] = str(write_audio(root / "noisy" / f"{uid}.flac", noisy, fs))
        for col in TARGET_COLUMNS:
            row[col] = str(write_audio(root / col / f"{uid}.flac", clean, fs))
        rows.append(row)
    write_meta(root / "meta.tsv", rows)
    return root / "meta.tsv"


def write_profile(path: Path, **train) -> Path:
    """The tiny profile with `train` overrides, as a YAML file the CLI takes via --config."""
    cfg = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    base = {"lr": 2e-3, "checkpoint_every": 5, "keep_last": 2, "validate_every": 10, "log_every": 5,
            "valid_utterances": 2, "valid_metrics": ["magnitude", "phase", "time"],
            "segment_seconds": 0.25, "deterministic": True}
    base.update(train)
    cfg["train"] = {**(cfg.get("train") or {}), **base}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine the idle one spins."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_meta(tmp_path_factory) -> Path:
    return make_meta(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def tiny_regression(tmp_path_factory) -> Path:
    """An untrained USEMamba of the tiny profile's size (1 block, 4 channels), as `--init` takes it."""
    from use_repro.config import load_config
    from use_repro.models.build import build_regression
    from use_repro.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("tiny_model") / "regression.pt",
                           build_regression(load_config("tiny")))
