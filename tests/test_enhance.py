"""`use-repro enhance`: any rate, length kept, chunks, bad files, resume, inputs never overwritten."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from use_repro.cli import main
from use_repro.enhance import chunk_spans, crossfade_weights, enhance_signal

from .conftest import tone
from .train.conftest import one_thread  # noqa: F401 (autouse: one torch thread)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from use_repro.config import load_config
    from use_repro.models.build import build_regression
    from use_repro.models.checkpoint import save_checkpoint

    torch.manual_seed(0)  # the tiny profile's regression model (1 block, 4 channels), untrained
    return save_checkpoint(tmp_path_factory.mktemp("enh") / "final.pt", build_regression(load_config("tiny")))


def enhance(ckpt, inp, out, *extra) -> int:
    return main(["enhance", "--checkpoint", str(ckpt), "--in", str(inp), "--out", str(out),
                 "--device", "cpu", *map(str, extra)])


def test_48k_8k_and_stereo_files_keep_rate_length_and_channels(tmp_path, tiny_ckpt):
    src = tmp_path / "in"
    sf.write(src.mkdir() or src / "a48.flac", tone(48000, 0.3), 48000, subtype="PCM_24")
    sf.write(src / "b8.wav", tone(8000, 0.7, freq=200), 8000, subtype="PCM_16")
    sf.write(src / "c16.flac", np.stack([tone(16000, 0.9), tone(16000, 0.9, freq=300)], 1), 16000)
    out = tmp_path / "out"
    assert enhance(tiny_ckpt, src, out, "--chunk-seconds", 0.2, "--overlap-seconds", 0.05) == 0
    for name in ("a48.flac", "b8.wav", "c16.flac"):
        i, o = sf.info(str(src / name)), sf.info(str(out / name))
        assert (o.samplerate, o.frames, o.channels, o.subtype) == (i.samplerate, i.frames, i.channels, i.subtype)
        y, _ = sf.read(str(out / name))
        assert np.isfinite(y).all() and np.abs(y).max() > 0
    scp = (out / "enhanced.scp").read_text().split("\n")
    assert sorted(line.split()[:2] for line in scp if line) == [["a48", "48000"], ["b8", "8000"], ["c16", "16000"]]


def test_bad_file_is_reported_and_skipped_and_a_rerun_skips_finished_outputs(tmp_path, tiny_ckpt, caplog):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "good.flac", tone(16000, 0.6), 16000)
    (src / "bad.wav").write_bytes(b"RIFF....WAVEfmt this is not audio")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        assert enhance(tiny_ckpt, src, out) == 1
    assert "enhance: 1 of 2 done, 1 failed: bad: " in caplog.text
    assert (out / "good.flac").exists() and not (out / "bad.wav").exists()
    assert (out / "enhance_failures.tsv").read_text().splitlines()[1].startswith("bad\t")
    before = os.stat(out / "good.flac").st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert enhance(tiny_ckpt, src, out) == 1
    assert os.stat(out / "good.flac").st_mtime_ns == before  # kept, not recomputed
    assert "1 output(s) already existed" in caplog.text


def test_inputs_are_never_overwritten(tmp_path, tiny_ckpt):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "x.flac", tone(8000, 0.5), 8000)
    original = (src / "x.flac").read_bytes()
    assert enhance(tiny_ckpt, src / "x.flac", src) == 1
    assert (src / "x.flac").read_bytes() == original


def test_overlap_add_of_chunks_is_exact_for_an_identity_model():
    spans = chunk_spans(10_000, 3000, 500)
    assert spans[0][0] == 0 and spans[-1][1] == 10_000
    total = np.zeros(10_000)
    for (a, b), w in zip(spans, crossfade_weights(spans)):
        total[a:b] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    x = tone(8000, 4.0)
    identity = lambda t, fs: t  # noqa: E731
    np.testing.assert_allclose(enhance_signal(identity, x, 8000, chunk_seconds=1.0, overlap_seconds=0.25),
                               x, atol=1e-6)
    # a rate the SFI STFT cannot use (not a multiple of 25 Hz) runs at the next supported rate
    y = enhance_signal(identity, tone(11111, 1.0, freq=300), 11111)
    assert y.shape == (11111,)


def test_scp_list_input(tmp_path, tiny_ckpt):
    d = tmp_path / "data"
    d.mkdir()
    sf.write(d / "a.wav", tone(22050, 0.3), 22050, subtype="FLOAT")
    (d / "list.scp").write_text("utt_a 22050 a.wav\nutt_gone 16000 missing.flac\n")  # paths relative to the list
    out = tmp_path / "out"
    assert enhance(tiny_ckpt, d / "list.scp", out) == 1  # the missing file fails, the other is done
    info = sf.info(str(out / "utt_a.wav"))
    assert (info.samplerate, info.frames, info.subtype) == (22050, int(22050 * 0.3), "FLOAT")
    assert (out / "enhanced.scp").read_text() == f"utt_a 22050 {out / 'utt_a.wav'}\n"
    assert "utt_gone" in (out / "enhance_failures.tsv").read_text()
