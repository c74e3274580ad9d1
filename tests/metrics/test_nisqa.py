"""NISQA against the official NISQA code with the real v2.0 weights, and the backend's honesty.

The real `nisqa.tar` (a file the project never ships) is read from `weights/nisqa/` of the
folder $USE_REPRO_SHARED names, else of `shared/` beside the clone (tests/shared.py); tests that
need it skip, saying so, where it is in neither.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.metrics.conftest import add_noise, need
from tests.shared import require_shared
from use_repro.audio.resample import resample
from use_repro.metrics import nisqa as N
from use_repro.metrics import registry

ROOT = Path(__file__).resolve().parents[2]
RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


def _real_nisqa() -> Path:
    return require_shared("weights/nisqa/nisqa.tar", "the real NISQA v2.0 weights (nisqa.tar; a user "
                          "installs them with `use-repro weights fetch nisqa`)")


@pytest.fixture(scope="module")
def rate_files(tmp_path_factory, tts_speech) -> Path:
    """The TTS sentence at every rate, each with white noise at its own SNR (so the
    predictions spread), written as 16-bit WAV like the challenge's files."""
    import soundfile as sf

    x16, fs16, _ = tts_speech
    d = tmp_path_factory.mktemp("nisqa_rates")
    for i, fs in enumerate(RATES):
        y = resample(x16, fs16, fs)
        y = add_noise(y, snr_db=[40, 5, 20, 10, 30, 0, 15][i], seed=i)
        y = 0.7 * y / np.max(np.abs(y))
        sf.write(d / f"s{fs}.wav", y, fs, subtype="PCM_16")
    return d


@pytest.mark.slow  # the official code and ours, 7 files each (~45 s on 2 cores)
def test_equals_official_code_at_every_rate(rate_files):
    need("nisqa")
    real = _real_nisqa()
    from use_repro.audio.io import read_audio

    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "metrics" / "nisqa_official.py"), str(real), str(rate_files)],
        capture_output=True, text=True, cwd=rate_files)
    assert proc.returncode == 0, f"the official NISQA code failed: {proc.stderr[-2000:]}"
    ref = json.loads(proc.stdout)
    assert sorted(ref) == sorted(f"s{fs}.wav" for fs in RATES)
    scorer = N.NISQA(real)
    ours = {}
    for fs in RATES:
        x, rate = read_audio(rate_files / f"s{fs}.wav")
        assert rate == fs
        ours[fs] = scorer(x, rate)["NISQA"]
        assert abs(ours[fs] - ref[f"s{fs}.wav"]) <= 1e-4, (fs, ours[fs], ref[f"s{fs}.wav"])
    # the files are not scored alike: the comparison covers a real spread of predictions
    assert max(ours.values()) - min(ours.values()) > 0.5
    # features at the file's own rate: forcing 48 kHz gives another prediction at 22.05 kHz
    x, fs = read_audio(rate_files / "s22050.wav")
    scorer.args = {**scorer.args, "ms_sr": 48000}
    assert abs(scorer(x, fs)["NISQA"] - ours[22050]) > 1e-3


def test_registry_names_the_official_file_as_the_paper_backend(tmp_path):
    need("nisqa")
    real = _real_nisqa()
    (tmp_path / "nisqa").mkdir()
    (tmp_path / "nisqa" / "nisqa.tar").symlink_to(real)
    b = registry.resolve("NISQA", tmp_path)
    assert b.available and b.paper
    assert b.version == f"sha256:{N.OFFICIAL_SHA256}"
    assert "official" in b.name and "nisqa 2.0" in b.name


def test_another_checkpoint_is_not_called_the_paper_backend(tmp_path):
    need("nisqa")
    nl = N.official_lib()
    args = dict(model="NISQA_DIM", ms_sr=None, ms_n_fft=4096, ms_hop_length=0.01, ms_win_length=0.02,
                ms_n_mels=48, ms_fmax=20000, ms_seg_length=15, ms_seg_hop_length=4, ms_max_segments=1300)
    (tmp_path / "nisqa").mkdir()
    torch.manual_seed(0)
    torch.save({"args": args, "model_state_dict": nl.NISQA_DIM().state_dict()}, tmp_path / "nisqa" / "nisqa.tar")
    b = registry.resolve("NISQA", tmp_path)
    assert b.available and not b.paper
    assert "not the official" in b.name and b.describe()["paper_backend"] is False


def test_model_code_comes_from_the_installed_distribution_not_sys_path(tmp_path, monkeypatch):
    need("nisqa")
    fake = tmp_path / "nisqa"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "NISQA_lib.py").write_text("raise ImportError('the shadowing copy was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib.metadata

    path = N.official_lib_path()
    assert path != (fake / "NISQA_lib.py").resolve()
    dist = importlib.metadata.distribution("nisqa")
    assert path == Path(dist.locate_file("nisqa/NISQA_lib.py")).resolve()
    assert hasattr(N.official_lib(), "NISQA_DIM")


def test_checkpoint_of_another_model_is_refused_with_its_name(tmp_path):
    need("nisqa")
    p = tmp_path / "de.tar"
    torch.save({"args": {"model": "NISQA_DE"}, "model_state_dict": {}}, p)
    with pytest.raises(ValueError, match=r"de\.tar.*NISQA_DE"):
        N.NISQA(p)
    torch.save({"args": {"model": "NISQA_DIM"}}, p)
    with pytest.raises(ValueError, match="model_state_dict"):
        N.NISQA(p)


def test_json_does_not_claim_a_backend_that_failed_everywhere():
    from use_repro.metrics.evaluate import summarize

    b = registry.Backend("NISQA", ("NISQA",), "NISQA v2.0 official nisqa.tar", "sha256:x", True, lambda t: None)
    rows = [{"id": "a", "NISQA": float("nan"), "error": "NISQA: ValueError: boom"},
            {"id": "b", "NISQA": float("nan"), "error": "NISQA: ValueError: boom"}]
    info = summarize(rows, {"NISQA": b})
    assert info["backends"]["NISQA"]["backend"] == "n/a"
    assert info["backends"]["NISQA"]["paper_backend"] is False
    assert "boom" in info["backends"]["NISQA"]["reason"]
    # one success keeps the backend's name (the failures stay in the CSV's error column)
    rows[0]["NISQA"], rows[0]["error"] = 3.1, ""
    info = summarize(rows, {"NISQA": b})
    assert info["backends"]["NISQA"]["paper_backend"] is True and info["counts"]["NISQA"] == 1
    # n/a rows (no error) are not failures: e.g. no reference for an intrusive metric
    rows = [{"id": "a", "NISQA": float("nan"), "error": "", "na": "reference-based metrics: no reference"}]
    assert summarize(rows, {"NISQA": b})["backends"]["NISQA"]["paper_backend"] is True
