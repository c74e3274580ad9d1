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


# --- the output folder: checkpoint binding, uids, merging, refusals, formats -------------------

@pytest.fixture(scope="module")
def other_ckpt(tmp_path_factory):
    from use_repro.config import load_config
    from use_repro.models.build import build_regression
    from use_repro.models.checkpoint import save_checkpoint

    torch.manual_seed(1)  # the same architecture, other weights: another model
    model = build_regression(load_config("tiny"))
    with torch.no_grad():  # an untrained model may start as the identity: make this one differ
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return save_checkpoint(tmp_path_factory.mktemp("enh2") / "final.pt", model)


def _records(out):
    from use_repro.enhance import read_records

    return read_records(out)


def test_another_checkpoint_replaces_outputs_and_removes_those_it_did_not_remake(tmp_path, tiny_ckpt, other_ckpt):
    from use_repro.enhance import checkpoint_digest

    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.flac", tone(16000, 0.5), 16000)
    sf.write(src / "b.flac", tone(16000, 0.5, freq=300), 16000)
    out = tmp_path / "out"
    assert enhance(tiny_ckpt, src, out) == 0
    first = sf.read(str(out / "a.flac"))[0]
    assert {r["checkpoint"] for r in _records(out).values()} == {checkpoint_digest(tiny_ckpt)}
    # the other model on a.flac only: a is remade, b (the old model's) is no longer kept
    assert enhance(other_ckpt, src / "a.flac", out) == 0
    second = sf.read(str(out / "a.flac"))[0]
    assert np.abs(first - second).max() > 1e-3
    recs = _records(out)
    assert list(recs) == ["a"] and recs["a"]["checkpoint"] == checkpoint_digest(other_ckpt)
    assert not (out / "b.flac").exists()
    assert (out / "enhanced.scp").read_text() == f"a 16000 {out / 'a.flac'}\n"
    # the same model again keeps its output untouched
    before = os.stat(out / "a.flac").st_mtime_ns
    assert enhance(other_ckpt, src / "a.flac", out) == 0
    assert os.stat(out / "a.flac").st_mtime_ns == before


def test_a_changed_source_is_enhanced_again(tmp_path, tiny_ckpt):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.flac", tone(16000, 0.5), 16000)
    out = tmp_path / "out"
    assert enhance(tiny_ckpt, src, out) == 0
    sf.write(src / "a.flac", tone(16000, 0.8), 16000)  # new content, new length
    assert enhance(tiny_ckpt, src, out) == 0
    assert sf.info(str(out / "a.flac")).frames == int(16000 * 0.8)


def test_names_with_spaces_same_stems_and_upper_case_round_trip(tmp_path, tiny_ckpt):
    from use_repro.data.manifest import read_scp
    from use_repro.metrics.evaluate import read_audio_list

    src = tmp_path / "my data"
    (src / "spk 1").mkdir(parents=True)
    (src / "spk2").mkdir()
    files = {"a.flac": 16000, "a.wav": 8000, "my file.flac": 16000, "LOUD.WAV": 8000,
             "spk 1/x.flac": 16000, "spk2/x.flac": 16000}
    for name, fs in files.items():
        sf.write(src / name, tone(fs, 0.3), fs)
    out = tmp_path / "out dir"  # a space in --out too
    assert enhance(tiny_ckpt, src, out) == 0
    entries = read_scp(out / "enhanced.scp", base_dir=out)
    uids = [e.uid for e in entries]
    assert sorted(uids) == ["LOUD", "a_flac", "a_wav", "my_file", "spk2-x", "spk_1-x"]
    assert len({u.lower() for u in uids}) == len(uids)
    for e in entries:
        assert os.path.exists(e.path) and sf.info(e.path).samplerate == e.fs
    # the mapping file leads every uid back to its original file
    recs = _records(out)
    assert {u: os.path.relpath(r["source"], src.resolve()) for u, r in recs.items()} == {
        "LOUD": "LOUD.WAV", "a_flac": "a.flac", "a_wav": "a.wav", "my_file": "my file.flac",
        "spk_1-x": "spk 1/x.flac", "spk2-x": "spk2/x.flac"}
    assert sf.info(str(out / "LOUD.wav")).frames == int(8000 * 0.3)
    # the project's own readers accept the folder and the list
    assert sorted(read_audio_list(out)) == sorted(uids)
    assert sorted(read_audio_list(out / "enhanced.scp")) == sorted(uids)


def test_enhanced_scp_is_merged_across_runs_and_uids_stay_stable(tmp_path, tiny_ckpt):
    d1, d2 = tmp_path / "one", tmp_path / "two"
    d1.mkdir(), d2.mkdir()
    sf.write(d1 / "a.flac", tone(16000, 0.3), 16000)
    sf.write(d2 / "a.flac", tone(16000, 0.4), 16000)  # the same stem in another folder
    sf.write(d2 / "b.flac", tone(16000, 0.4), 16000)
    out = tmp_path / "out"
    assert enhance(tiny_ckpt, d1, out) == 0
    assert enhance(tiny_ckpt, d2, out) == 0
    lines = sorted((out / "enhanced.scp").read_text().splitlines())
    assert [line.split()[0] for line in lines] == ["a", "a_flac", "b"]
    recs = _records(out)
    assert recs["a"]["source"] == str((d1 / "a.flac").resolve())
    assert recs["a_flac"]["source"] == str((d2 / "a.flac").resolve())
    assert sf.info(str(out / "a.flac")).frames == int(16000 * 0.3)
    assert sf.info(str(out / "a_flac.flac")).frames == int(16000 * 0.4)


@pytest.mark.parametrize("where", ["same", "inside"])
def test_out_equal_to_or_inside_the_input_folder_is_refused(tmp_path, tiny_ckpt, caplog, where):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "x.flac", tone(8000, 0.5), 8000)
    before = sorted(p.name for p in src.rglob("*"))
    out = src if where == "same" else src / "enhanced"
    with caplog.at_level(logging.ERROR):
        assert enhance(tiny_ckpt, src, out) == 2
    assert "choose an output folder outside it" in caplog.text and str(src) in caplog.text
    assert sorted(p.name for p in src.rglob("*")) == before


def test_every_libsndfile_format_is_enhanced_and_anything_else_is_named(tmp_path, tiny_ckpt, caplog):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "talk.opus", tone(48000, 0.5), 48000, format="OGG", subtype="OPUS")
    sf.write(src / "noext", tone(16000, 0.5), 16000, format="WAV")  # no suffix, still audio
    sf.write(src / "c.caf", tone(16000, 0.5), 16000, format="CAF")
    (src / "voice.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))
    (src / "notes.txt").write_text("not audio")
    (src / ".x.flac.tmp1.flac").write_bytes(b"fLaC")  # a killed writer's temp file: hidden
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        assert enhance(tiny_ckpt, src, out) == 1  # the .m4a was asked for and not done
    assert sorted(p.name for p in out.glob("*.flac")) == ["c.flac", "noext.flac", "talk.flac"]
    assert "voice: " in caplog.text and "m4a is not a format libsndfile reads" in caplog.text
    assert "voice\t" in (out / "enhance_failures.tsv").read_text()
    skipped = (out / "enhance_skipped.tsv").read_text().splitlines()
    assert skipped[1:] == [f"{src / '.x.flac.tmp1.flac'}\thidden file",
                           f"{src / 'notes.txt'}\tnot a format libsndfile reads (Error opening "
                           f"{str(src / 'notes.txt')!r}: Format not recognised.)"]
    assert "notes.txt" in caplog.text


def test_a_failure_while_writing_the_lists_loses_nothing(tmp_path, tiny_ckpt, monkeypatch):
    import use_repro.enhance as E

    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "good.flac", tone(16000, 0.4), 16000)
    (src / "bad.flac").write_bytes(b"fLaC broken")
    out = tmp_path / "out"

    def broken_scp(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(E, "write_scp", broken_scp)
    with pytest.raises(OSError, match="disk full"):
        enhance(tiny_ckpt, src, out)
    assert "bad\t" in (out / "enhance_failures.tsv").read_text()
    assert "good" in (out / E.JOURNAL).read_text()  # what was done survives in the journal
    monkeypatch.undo()
    before = os.stat(out / "good.flac").st_mtime_ns
    assert enhance(tiny_ckpt, src, out) == 1
    assert os.stat(out / "good.flac").st_mtime_ns == before  # recovered from the journal, not redone
    assert (out / "enhanced.scp").read_text() == f"good 16000 {out / 'good.flac'}\n"
    assert not (out / E.JOURNAL).exists()
