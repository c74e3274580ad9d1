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
    assert (out / "enhanced.scp").read_text() == "utt_a 22050 utt_a.wav\n"  # relative to the list
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
    assert (out / "enhanced.scp").read_text() == "a 16000 a.flac\n"
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
    assert (out / "enhanced.scp").read_text() == "good 16000 good.flac\n"
    assert not (out / E.JOURNAL).exists()


# --- one writer at a time, paths that survive a move, two-column lists, checkpoint errors -------

def _cli(*args) -> list[str]:
    import sys

    return [sys.executable, "-m", "use_repro", *map(str, args)]


def _env():
    import use_repro

    env = dict(os.environ, OMP_NUM_THREADS="1")
    src = os.path.dirname(os.path.dirname(use_repro.__file__))  # this checkout's src/, whatever is installed
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def test_two_concurrent_runs_into_one_folder_lose_no_entry(tmp_path, tiny_ckpt):
    import subprocess
    import time

    from use_repro.lock import folder_lock

    ins = []
    for name in ("one", "two"):
        d = tmp_path / name
        d.mkdir()
        for i in range(6):
            sf.write(d / f"{name}_{i}.flac", tone(8000, 0.3, freq=150 + 20 * i), 8000)
        ins.append(d)
    out = tmp_path / "out"
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    # hold the folder while both start, so that both certainly meet a locked folder
    with folder_lock(out, "test"):
        procs = [subprocess.Popen(_cli("enhance", "--checkpoint", tiny_ckpt, "--in", d, "--out", out,
                                       "--device", "cpu", "--threads", 1),
                                  stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=_env())
                 for d, log in zip(ins, logs)]
        deadline = time.monotonic() + 240
        while not all("waiting for it to finish" in log.read_text() for log in logs):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                [log.read_text()[-2000:] for log in logs]
            time.sleep(0.2)
        assert "is being written by pid" in logs[0].read_text()
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    listed = sorted(line.split()[0] for line in (out / "enhanced.scp").read_text().splitlines())
    assert listed == sorted(f"{n}_{i}" for n in ("one", "two") for i in range(6))
    assert sorted(p.stem for p in out.glob("*.flac")) == listed
    assert len(_records(out)) == 12


@pytest.mark.parametrize("keep_mtime", [True, False])
def test_a_copied_tree_keeps_every_uid_and_output_from_any_directory(tmp_path, tiny_ckpt, monkeypatch, keep_mtime):
    import shutil

    from use_repro.metrics.evaluate import read_audio_list

    root = tmp_path / "a"
    data = root / "data" / "noisy"
    (data / "0").mkdir(parents=True)
    for i in (1, 2):
        sf.write(data / "0" / f"fileid_{i}.flac", tone(16000, 0.4, freq=200 * i), 16000)
    sf.write(data / "fileid_3.flac", tone(16000, 0.4, freq=650), 16000)
    shutil.copy(tiny_ckpt, root / "final.pt")
    out = root / "results" / "enhanced"
    monkeypatch.chdir(root)
    assert enhance("final.pt", "data/noisy", "results/enhanced") == 0  # paths relative to the cwd
    uids = sorted(read_audio_list(out / "enhanced.scp"))
    assert uids == ["fileid_1", "fileid_2", "fileid_3"]
    for name in ("enhanced.tsv", "enhanced.scp"):  # nothing absolute, nothing relative to the cwd
        text = (out / name).read_text()
        assert str(tmp_path) not in text and "results/enhanced" not in text
    assert (out / "enhanced.scp").read_text().splitlines()[0] == "fileid_1 16000 fileid_1.flac"

    copy = tmp_path / "elsewhere" / "b"
    shutil.copytree(root, copy, copy_function=shutil.copy2 if keep_mtime else shutil.copy)
    shutil.rmtree(root)  # the original is gone: nothing may still point into it
    made = {p.name: p.stat().st_mtime_ns for p in (copy / "results" / "enhanced").glob("*.flac")}
    monkeypatch.chdir(tmp_path)  # another working directory, holding a file of an output's name
    (tmp_path / "fileid_1.flac").write_bytes(b"not the output")
    assert enhance(copy / "final.pt", copy / "data" / "noisy", copy / "results" / "enhanced") == 0
    out2 = copy / "results" / "enhanced"
    assert {p.name: p.stat().st_mtime_ns for p in out2.glob("*.flac")} == made  # nothing re-enhanced
    assert sorted(read_audio_list(out2 / "enhanced.scp")) == uids            # the same uids
    assert {u: os.path.dirname(p) for u, p in read_audio_list(out2 / "enhanced.scp").items()} == \
        {u: str(out2) for u in uids}  # read against the list's folder, not the cwd
    recs = _records(out2)
    assert {u: r["source"] for u, r in recs.items()} == {
        "fileid_1": str((copy / "data/noisy/0/fileid_1.flac").resolve()),
        "fileid_2": str((copy / "data/noisy/0/fileid_2.flac").resolve()),
        "fileid_3": str((copy / "data/noisy/fileid_3.flac").resolve())}
    # a retrained model remakes the outputs under the same uids (issue 21: `0-fileid_1`)
    from use_repro.models.checkpoint import load_model, save_checkpoint

    model = load_model(copy / "final.pt")
    with torch.no_grad():
        next(model.parameters()).add_(0.1)
    save_checkpoint(copy / "final.pt", model)
    assert enhance(copy / "final.pt", copy / "data" / "noisy", out2) == 0
    assert sorted(read_audio_list(out2 / "enhanced.scp")) == uids


def test_a_source_moved_on_its_own_keeps_its_uid_and_output(tmp_path, tiny_ckpt):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.flac", tone(16000, 0.4), 16000)
    out = tmp_path / "out"
    assert enhance(tiny_ckpt, src / "a.flac", out) == 0
    before = os.stat(out / "a.flac").st_mtime_ns
    (tmp_path / "moved" / "deeper").mkdir(parents=True)
    os.rename(src / "a.flac", tmp_path / "moved" / "deeper" / "a.flac")
    assert enhance(tiny_ckpt, tmp_path / "moved", out) == 0
    assert os.stat(out / "a.flac").st_mtime_ns == before and list(_records(out)) == ["a"]
    assert _records(out)["a"]["source"] == str((tmp_path / "moved/deeper/a.flac").resolve())


def test_lists_of_the_previous_layout_are_read_and_their_outputs_kept(tmp_path, tiny_ckpt):
    from use_repro.enhance import LEGACY_COLUMNS, read_records

    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.flac", tone(16000, 0.4), 16000)
    out = tmp_path / "out"
    assert enhance(tiny_ckpt, src, out) == 0
    rec = read_records(out)["a"]  # rewritten as the previous version wrote it: absolute, no sha256
    (out / "enhanced.tsv").write_text("\t".join(LEGACY_COLUMNS) + "\n" + "\t".join(rec[c] for c in LEGACY_COLUMNS) + "\n")
    before = os.stat(out / "a.flac").st_mtime_ns
    assert enhance(tiny_ckpt, src, out) == 0
    assert os.stat(out / "a.flac").st_mtime_ns == before
    assert read_records(out)["a"]["source_sha256"] and str(tmp_path) not in (out / "enhanced.tsv").read_text()


def test_two_column_kaldi_lists_and_three_column_lines_mix(tmp_path, tiny_ckpt, caplog):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    sf.write(d / "a.wav", tone(16000, 0.3), 16000)
    sf.write(d / "sub" / "b.flac", tone(8000, 0.3), 8000)
    sf.write(d / "c.flac", tone(16000, 0.3), 16000)
    (d / "wav.scp").write_text(f"utt1 a.wav\nutt2 sub/b.flac\nutt3 16000 {d / 'c.flac'}\n"
                               "utt4 sox a.wav -t wav - |\nutt5 x y z\n")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        assert enhance(tiny_ckpt, d / "wav.scp", out) == 1  # the piped command and the 4-field line
    assert (out / "enhanced.scp").read_text() == "utt1 16000 utt1.wav\nutt2 8000 utt2.flac\nutt3 16000 utt3.flac\n"
    failures = (out / "enhance_failures.tsv").read_text()
    assert "wav.scp line 4\ta command" in failures and "wav.scp line 5\texpected 'uid path'" in failures


@pytest.mark.parametrize("kind", ["text", "numpy pickle", "other dict", "random bytes"])
def test_a_file_that_is_not_a_checkpoint_gets_one_line(tmp_path, caplog, kind):
    bad = tmp_path / "model.pt"
    if kind == "text":
        bad.write_text("this is not a model\nsecond line\n")
    elif kind == "numpy pickle":
        torch.save({"weights": np.zeros(3)}, bad)  # torch's weights-only refusal, a paragraph
    elif kind == "other dict":
        torch.save({"weights": torch.zeros(3)}, bad)
    else:
        bad.write_bytes(bytes(range(7, 200)))
    sf.write(tmp_path / "x.flac", tone(8000, 0.3), 8000)
    with caplog.at_level(logging.ERROR):
        assert enhance(bad, tmp_path / "x.flac", tmp_path / "out") == 2
    [err] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "\n" not in err and str(bad) in err, err
    assert "expected a use-repro checkpoint (the final.pt of `use-repro train`) or the authors' RE-USE " \
           "release (g_<step>.pth or model.safetensors)" in err
    assert "file an issue" not in err and "Weights only load failed" not in err and len(err) < 400, err
