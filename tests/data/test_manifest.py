from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from use_repro.audio.io import read_audio, write_audio

from use_repro.data.manifest import (META_COLUMNS, ManifestError, ScpEntry, read_kv, read_meta, read_scp,
                                     write_kv, write_meta, write_scp)


def test_scp_round_trip(tmp_path, make_wav):
    a = make_wav("a.flac", 16000)
    b = make_wav("b.flac", 48000)
    write_scp(tmp_path / "speech_train.scp", [ScpEntry("u1", 16000, str(a)), ("u2", 48000, str(b))])
    text = (tmp_path / "speech_train.scp").read_text()
    assert text == f"u1 16000 {a}\nu2 48000 {b}\n"
    entries = read_scp(tmp_path / "speech_train.scp", check_audio=True)
    assert entries == [ScpEntry("u1", 16000, str(a)), ScpEntry("u2", 48000, str(b))]


def test_reads_handwritten_official_style_lines(tmp_path, make_wav):
    make_wav("fileid_1.flac", 48000)
    (tmp_path / "speech_validation.scp").write_text(
        "dns5_clean_read_speech_fileid_1 48000 fileid_1.flac\n\n")
    (tmp_path / "text").write_text("dns5_clean_read_speech_fileid_1 the quick brown fox\n")
    (tmp_path / "utt2spk").write_text("dns5_clean_read_speech_fileid_1 reader_01\n")
    e = read_scp(tmp_path / "speech_validation.scp", base_dir=tmp_path, check_audio=True)
    assert e[0].uid == "dns5_clean_read_speech_fileid_1" and e[0].fs == 48000
    assert read_kv(tmp_path / "text") == {"dns5_clean_read_speech_fileid_1": "the quick brown fox"}
    assert read_kv(tmp_path / "utt2spk")["dns5_clean_read_speech_fileid_1"] == "reader_01"


def test_kv_round_trip_keeps_spaces(tmp_path):
    write_kv(tmp_path / "text", {"a": "hello world", "b": "x"})
    assert read_kv(tmp_path / "text") == {"a": "hello world", "b": "x"}


@pytest.mark.parametrize("line,msg", [
    ("u1 16000", "line 2: expected 'uid fs path'"),
    ("u1 sixteen /x.flac", "line 2: sampling rate 'sixteen' is not a number"),
])
def test_malformed_lines_name_line_and_format(tmp_path, line, msg):
    p = tmp_path / "speech_train.scp"
    p.write_text(f"u0 16000 /a.flac\n{line}\n")
    with pytest.raises(ManifestError, match=msg):
        read_scp(p)


def test_bad_audio_names_manifest_line_and_file(tmp_path, make_wav):
    good = make_wav("good.flac", 16000)
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "junk.flac").write_text("junk")
    x = np.zeros(160, dtype=np.float32)
    x[3] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    cases = {"missing.flac": "no such file", "empty.flac": "empty file", "junk.flac": "not a sound file",
             "nan.wav": "NaN"}
    for name, why in cases.items():
        p = tmp_path / "speech_train.scp"
        p.write_text(f"ok 16000 {good}\nbad 16000 {tmp_path / name}\n")
        from use_repro.data.manifest import check_entry_audio
        entries = read_scp(p)
        with pytest.raises(ManifestError, match=f"speech_train.scp line 2: .*{name}.*{why}"):
            check_entry_audio(entries[1], p.name, 2, full=True)


def test_rate_mismatch_is_reported(tmp_path, make_wav):
    a = make_wav("a.flac", 16000)
    p = tmp_path / "speech_train.scp"
    p.write_text(f"a 48000 {a}\n")
    with pytest.raises(ManifestError, match="line 1: .*16000 Hz but the list says 48000 Hz"):
        read_scp(p, check_audio=True)


def test_meta_round_trip_with_extra_columns(tmp_path):
    row = {"id": "fileid_1", "noisy_path": "noisy/fileid_1.flac", "speech_uid": "s1", "speech_sid": "spk1",
           "clean_path": "clean/fileid_1.flac", "noise_uid": "n1", "snr_dB": "5.2", "rir_uid": "none",
           "augmentation": "clipping(min=0.01,max=0.95)/codec(format=ogg,encoder=opus,qscale=3)",
           "fs": "16000", "length": "16000", "text": "hello world", "clean_shifted_path": "x.flac"}
    write_meta(tmp_path / "meta.tsv", [row])
    header = (tmp_path / "meta.tsv").read_text().splitlines()[0].split("\t")
    assert tuple(header[:len(META_COLUMNS)]) == META_COLUMNS and header[-1] == "clean_shifted_path"
    assert read_meta(tmp_path / "meta.tsv") == [row]


def test_audio_lists_of_two_or_three_columns_and_where_their_paths_are_read(tmp_path, monkeypatch):
    from use_repro.data.manifest import read_audio_scp, resolve_listed

    lst = tmp_path / "lists" / "wav.scp"
    lst.parent.mkdir()
    lst.write_text("# a comment\nu1 a.wav\nu2 16000 sub/b.flac\nu3 16000.0 /abs/c.wav\n")
    assert read_audio_scp(lst) == [("u1", "a.wav"), ("u2", "sub/b.flac"), ("u3", "/abs/c.wav")]
    lst.write_text("u1 a.wav\nu1 b.wav\nu2 x y z\nu3 rate b.wav\nu4 sox a.wav -t wav - |\nu5 ok.wav\n")
    rejected = []
    assert read_audio_scp(lst, rejected=rejected) == [("u1", "a.wav"), ("u5", "ok.wav")]
    assert [r[0] for r in rejected] == ["wav.scp line 2", "wav.scp line 3", "wav.scp line 4", "wav.scp line 5"]
    assert "duplicate uid 'u1'" in rejected[0][1] and "a command" in rejected[3][1]
    with pytest.raises(ManifestError, match="wav.scp line 2: duplicate"):
        read_audio_scp(lst)
    # relative paths: beside the list first; the working directory only where the file is there
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists" / "a.wav").write_bytes(b"x")
    (tmp_path / "a.wav").write_bytes(b"x")     # the same name in the cwd: not taken
    (tmp_path / "only_here.wav").write_bytes(b"x")
    assert resolve_listed("a.wav", lst) == str(tmp_path / "lists" / "a.wav")
    assert resolve_listed("only_here.wav", lst) == str(tmp_path / "only_here.wav")  # an ancestor of the list
    assert resolve_listed("missing.wav", lst) == str(tmp_path / "lists" / "missing.wav")
    assert resolve_listed("/abs/x.wav", lst) == "/abs/x.wav"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "mine").mkdir(parents=True)
    (elsewhere / "mine" / "c.wav").write_bytes(b"x")
    monkeypatch.chdir(elsewhere)  # a hand-made list relative to where the command runs
    assert resolve_listed("mine/c.wav", lst) == "mine/c.wav"


def test_paths_the_dag_writes_are_found_from_any_directory_and_after_a_move(tmp_path, monkeypatch):
    """The DAG writes list paths relative to the project root (`results/<profile>/...`): they
    are found under the nearest ancestor of the list that holds them, so the same list reads the
    same files from any working directory and in a moved tree, and a list written from read
    entries keeps them as they were read."""
    from use_repro.data.manifest import read_scp, resolve_entries, resolve_listed, write_scp

    root = tmp_path / "project"
    audio = root / "results" / "p" / "corpus" / "audio"
    audio.mkdir(parents=True)
    for name in ("a", "b"):
        write_audio(audio / f"{name}.flac", np.zeros(160, dtype=np.float32), 16000)
    lst = root / "results" / "p" / "corpus" / "speech.scp"
    lst.write_text("a 16000 results/p/corpus/audio/a.flac\nb 16000 results/p/corpus/audio/b.flac\n")
    monkeypatch.chdir(root)
    assert resolve_listed("results/p/corpus/audio/a.flac", "results/p/corpus/speech.scp") == "results/p/corpus/audio/a.flac"
    for cwd in (tmp_path, root / "results", audio):
        monkeypatch.chdir(cwd)
        found = resolve_entries(read_scp(lst), lst)
        assert [e.path for e in found] == [str(audio / "a.flac"), str(audio / "b.flac")]
        assert all(read_audio(e.path)[1] == 16000 for e in found)
    moved = tmp_path / "moved"
    root.rename(moved)
    found = resolve_entries(read_scp(moved / "results" / "p" / "corpus" / "speech.scp"), moved / "results" / "p" / "corpus" / "speech.scp")
    assert [Path(e.path).is_file() for e in found] == [True, True]
    # a list made from read entries (a filtered list in another folder) keeps the root-relative paths
    sub = moved / "results" / "p" / "vqscore" / "filtered" / "speech.x.scp"
    write_scp(sub, read_scp(moved / "results" / "p" / "corpus" / "speech.scp")[:1])
    assert sub.read_text() == "a 16000 results/p/corpus/audio/a.flac\n"
    assert Path(resolve_listed(read_scp(sub)[0].path, sub)) == moved / "results" / "p" / "corpus" / "audio" / "a.flac"


def test_write_tsv_writes_columns_in_order_and_none_or_missing_as_empty(tmp_path):
    from use_repro.data.manifest import write_tsv

    p = tmp_path / "info.tsv"
    write_tsv(p, ("uid", "fs", "note"), [{"uid": "a", "fs": 16000, "note": None, "extra": 1},
                                         {"uid": "b", "note": "two\twords"}])
    assert p.read_bytes() == b'uid\tfs\tnote\na\t16000\t\nb\t\t"two\twords"\n'
    write_tsv(p, ["uid"], [])
    assert p.read_text() == "uid\n"
