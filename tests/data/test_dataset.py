"""Training data: target columns, speech-list filtering, resumable order, seeded crops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from use_repro.audio.io import write_audio
from use_repro.data.dataset import (Draw, DrawSampler, MetaDataset, load_rows, target_column)
from use_repro.data.manifest import write_meta, write_scp


def test_target_columns():
    assert target_column("early") == "clean_path"
    assert target_column("shifted") == "clean_shifted_path"
    assert target_column("anechoic") == "clean_anechoic_path"
    assert target_column("early25ms") == "clean_early25ms_path"
    with pytest.raises(ValueError, match="unknown target"):
        target_column("reverberant")


@pytest.fixture
def meta(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i, fs in enumerate((8000, 16000, 8000)):
        x = (0.1 * rng.standard_normal(fs)).astype(np.float32)  # 1 s
        write_audio(tmp_path / "audio" / f"u{i}.flac", x, fs)
        rows.append({"id": f"fileid_{i}", "speech_uid": f"sp{i}", "fs": fs,
                     # relative to the meta.tsv's folder, as a copied data set has them
                     "noisy_path": f"audio/u{i}.flac", "clean_path": f"audio/u{i}.flac",
                     "clean_shifted_path": "none" if i == 2 else f"audio/u{i}.flac"})
    write_meta(tmp_path / "meta.tsv", rows)
    return tmp_path / "meta.tsv"


def test_rows_follow_the_target_and_the_speech_list(meta, tmp_path):
    assert [r["id"] for r in load_rows(meta, "early")] == ["fileid_0", "fileid_1", "fileid_2"]
    assert [r["id"] for r in load_rows(meta, "shifted")] == ["fileid_0", "fileid_1"]  # no target: skipped
    write_scp(tmp_path / "filtered.scp", [("sp1", 16000, "x.flac"), ("sp2", 8000, "y.flac")])
    rows = load_rows(meta, "early", speech_list=tmp_path / "filtered.scp")
    assert [r["id"] for r in rows] == ["fileid_1", "fileid_2"]
    assert rows[0]["noisy"] == str(tmp_path / "audio" / "u1.flac")
    with pytest.raises(ValueError, match="no column clean_anechoic_path"):
        load_rows(meta, "anechoic")


def test_draw_order_is_resumable_and_shared_out_over_ranks():
    full = [d for _, d in zip(range(20), DrawSampler(7, seed=3))]
    resumed = [d for _, d in zip(range(8), DrawSampler(7, seed=3, start=12))]
    assert resumed == full[12:]
    assert sorted(d.index for d in full[:7]) == list(range(7))  # an epoch is a permutation
    assert [d.index for d in full[:7]] != list(range(7))
    r0 = [d for _, d in zip(range(3), DrawSampler(6, seed=3, rank=0, world=2))]
    r1 = [d for _, d in zip(range(3), DrawSampler(6, seed=3, rank=1, world=2))]
    assert sorted(d.index for d in r0 + r1) == list(range(6))  # ranks split the epoch
    assert len({d.seed for d in full}) == len(full)


def test_crops_are_seeded_aligned_and_normalised(meta):
    ds = MetaDataset(load_rows(meta, "early"), segment_seconds=0.25)
    a, b, c = ds[Draw(1, 5)], ds[Draw(1, 5)], ds[Draw(1, 6)]
    assert a["fs"] == 16000 and a["noisy"].shape == (4000,)
    assert torch.equal(a["noisy"], b["noisy"]) and not torch.equal(a["noisy"], c["noisy"])
    assert torch.equal(a["noisy"], a["clean"])  # same file: the same span of both
    assert abs(float(a["noisy"].pow(2).mean()) - 1.0) < 1e-4  # unit-RMS input
    assert ds[0]["noisy"].shape == (8000,)  # an int index: the whole utterance


def test_segment_max_rate_caps_the_samples_of_a_crop(meta):
    """train.segment_max_rate: crops above that rate hold segment_seconds x max_rate samples (a
    shorter time span), crops at or below it are segment_seconds long."""
    from use_repro.data.dataset import segment_samples

    assert segment_samples(1.0, 48000) == 48000
    assert segment_samples(1.0, 48000, 16000) == 16000  # 1/3 s at 48 kHz
    assert segment_samples(1.0, 8000, 16000) == 8000
    assert segment_samples(0.5, 44100, 16000) == 8000
    ds = MetaDataset(load_rows(meta, "early"), segment_seconds=0.5, segment_max_rate=8000)
    assert ds[Draw(1, 5)]["noisy"].shape == (4000,)  # 16 kHz row: 0.25 s
    assert ds[Draw(0, 5)]["noisy"].shape == (4000,)  # 8 kHz row: 0.5 s
    assert MetaDataset(load_rows(meta, "early"), segment_seconds=0.5)[Draw(1, 5)]["noisy"].shape == (8000,)
