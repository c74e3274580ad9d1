"""`use-repro simulate`: params -> render -> summary, official meta.tsv files, rejects, determinism."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from use_repro.cli import main
from use_repro.data.manifest import read_meta, write_scp

from .sim_fixtures import dag_split_tree, date_settings_with_the_corpus, speech_like, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), seconds=1.0)


@pytest.fixture(scope="module")
def rendered(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "test"
    assert main(["simulate", "params", "--corpus-dir", str(corpus), "--split", "test", "--out", str(out)]) == 0
    assert main(["simulate", "render", "--meta", str(out / "params.tsv"), "--corpus-dir", str(corpus),
                 "--out", str(out), "--threads", "2"]) == 0
    return out


def test_params_render_write_every_target(rendered):
    params = read_meta(rendered / "params.tsv")
    rows = read_meta(rendered / "meta.tsv")
    assert [r["id"] for r in rows] == [r["id"] for r in params] and len(rows) == 14
    assert {int(r["fs"]) for r in rows} == {8000, 16000, 22050, 24000, 32000, 44100, 48000}
    assert {r["lang"] for r in rows} == {"en", "it"}
    cols = ["noisy_path", "clean_path", "clean_shifted_path", "clean_anechoic_path", "clean_early50ms_path",
            "clean_early25ms_path", "clean_early10ms_path", "clean_early0ms_path"]
    for r in rows:
        for c in cols:
            info = sf.info(r[c])
            assert info.samplerate == int(r["fs"]) and info.frames == int(r["length"]) and info.subtype == "PCM_16"
        # every target has its own file in its own folder; duplicates are hard links
        assert len({r[c] for c in cols}) == len(cols)
        ino = {c: os.stat(r[c]).st_ino for c in cols}
        if r["rir_uid"] == "none":
            assert ino["clean_shifted_path"] == ino["clean_anechoic_path"] == ino["clean_path"]
        else:
            assert ino["clean_early0ms_path"] == ino["clean_shifted_path"] != ino["clean_path"]
            assert ino["clean_anechoic_path"] != ino["clean_shifted_path"]
    rejects = list(csv.reader(open(rendered / "rejects.tsv"), delimiter="\t"))
    assert rejects == [["id", "reason"]]


def test_summary_counts(rendered, tmp_path):
    out = tmp_path / "summary.csv"
    assert main(["simulate", "summary", "--meta", str(rendered / "meta.tsv"), "--out", str(out)]) == 0
    lines = list(csv.DictReader(open(out)))
    assert set(lines[0]) == {"split", "distortion", "fs", "snr_bin", "rows"}
    total = sum(int(x["rows"]) for x in lines if x["distortion"] == "all")
    assert total == 14 and {x["split"] for x in lines} == {"test"}
    rev = sum(int(x["rows"]) for x in lines if x["distortion"] == "reverberation")
    assert rev == sum(r["rir_uid"] != "none" for r in read_meta(rendered / "meta.tsv"))


def _render_in_subprocess(meta, corpus, out, threads):
    env = dict(os.environ, PYTHONHASHSEED=str(threads * 7 + 1))
    cmd = [sys.executable, "-m", "use_repro", "simulate", "render", "--meta", str(meta), "--corpus-dir",
           str(corpus), "--out", str(out), "--threads", str(threads)]
    subprocess.run(cmd, check=True, env=env, capture_output=True)


def test_bit_identical_in_two_processes(rendered, corpus, tmp_path):
    params = read_meta(rendered / "params.tsv")
    keep = [r for r in params if r["augmentation"] != "none" or r["rir_uid"] != "none"][:5]
    from use_repro.data.manifest import write_meta

    meta = tmp_path / "five.tsv"
    write_meta(meta, keep)
    _render_in_subprocess(meta, corpus, tmp_path / "a", 1)
    _render_in_subprocess(meta, corpus, tmp_path / "b", 2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.flac"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.flac"))
    assert files_a == files_b and len(files_a) >= 5
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


OFFICIAL_HEADER = "id\tnoisy_path\tspeech_uid\tspeech_sid\tclean_path\tnoise_uid\tsnr_dB\trir_uid\taugmentation\tfs\tlength\ttext"


def _official_rows(corpus):
    """Rows as the challenge's generate_data_param.py writes them (its paths, its strings)."""
    def row(i, speech, fs, noise, snr, rir, aug):
        n = sf.info(corpus / "train" / "speech" / f"{speech}.flac").frames
        return (f"fileid_{i}\tsimulation_validation/noisy/0/fileid_{i}.flac\t{speech}\tspk0\t"
                f"simulation_validation/clean/0/fileid_{i}.flac\t{noise}\t{snr}\t{rir}\t{aug}\t{fs}\t{n}\t<not-available>")
    return [
        row(1, "train_sp_48000_0", 48000, "train_noise_48000_0", "3.7206385926441264", "train_rir_0",
            "bandwidth_limitation-kaiser_fast->24000"),
        row(2, "train_sp_44100_0", 44100, "train_noise_44100_1", "-2.5", "none",
            "clipping(min=0.018182123899424113,max=0.9425406853049546)/codec(format=ogg,encoder=opus,qscale=3)"),
        row(3, "train_sp_16000_1", 16000, "train_noise_16000_0", "12.0", "train_rir_2",
            "packet_loss(packet_loss_indices=[3, 4, 5, 17, 30, 31],packet_duration_ms=20)"),
        row(4, "train_sp_8000_0", 8000, "train_noise_8000_0", "0.5", "none",
            "bandwidth_limitation-none->8000/codec(format=mp3,encoder=None,qscale=5)"),
        row(5, "train_sp_22050_0", 22050, "wind_noise_train_48000hz_0", "4.9", "none",
            "wind_noise(threshold=0.2210436,ratio=13.26,attack=47.1,release=5.9,sc_gain=1.1,clipping=False,"
            "clipping_threshold=0.93)/"),
        row(6, "train_sp_32000_1", 32000, "wind_noise_train_48000hz_0", "-8.1", "train_rir_1",
            "wind_noise(threshold=0.1,ratio=1.5,attack=5.0,release=99.0,sc_gain=0.8,clipping=True,"
            "clipping_threshold=0.9)/codec(format=ogg,encoder=vorbis,qscale=-1)/bandwidth_limitation-polyphase->16000"),
        row(7, "train_sp_24000_0", 24000, "train_noise_48000_2", "19.0", "none",
            "bandwidth_limitation-scipy->22050/bandwidth_limitation-kaiser_best->8000"),
        row(8, "train_sp_16000_0", 16000, "train_noise_16000_1", "7.0", "none", "none"),
    ]


def test_official_meta_renders_without_edits(corpus, tmp_path):
    meta = tmp_path / "meta.tsv"
    meta.write_text(OFFICIAL_HEADER + "\n" + "\n".join(_official_rows(corpus)) + "\n")
    status = main(["simulate", "render", "--meta", str(meta), "--out", str(tmp_path / "out"),
                   "--speech-scp", str(corpus / "train" / "speech.scp"),
                   "--noise-scp", str(corpus / "train" / "noise.scp"),
                   "--wind-scp", str(corpus / "train" / "wind_noise.scp"),
                   "--rir-scp", str(corpus / "train" / "rir.scp")])
    assert status == 0
    rows = read_meta(tmp_path / "out" / "meta.tsv")
    assert len(rows) == 8
    for r in rows:
        x, fs = sf.read(r["noisy_path"])
        assert fs == int(r["fs"]) and x.shape[0] == int(r["length"]) and 0 < np.abs(x).max() <= 0.9 + 1e-4


def test_bad_rows_go_to_rejects(corpus, tmp_path, capsys):
    short = tmp_path / "short.flac"
    sf.write(short, speech_like(16000, 0.05, 3), 16000)
    scp = tmp_path / "speech.scp"
    write_scp(scp, [("short", 16000, str(short)), ("gone", 16000, str(tmp_path / "missing.flac")),
                    ("ok16", 16000, str(corpus / "train" / "speech" / "train_sp_16000_0.flac")),
                    ("ok11", 11025, str(corpus / "train" / "speech" / "train_sp_16000_1.flac"))])
    rows = [
        "fileid_1\tn\tok16\ts\tc\ttrain_noise_16000_0\t5.0\tnone\tnone\t16000\tnone\tt",
        "fileid_2\tn\tgone\ts\tc\ttrain_noise_16000_0\t5.0\tnone\tnone\t16000\tnone\tt",
        "fileid_3\tn\tok16\ts\tc\ttrain_noise_16000_0\t5.0\tnone\treverse(speed=2)\t16000\tnone\tt",
        "fileid_4\tn\tok11\ts\tc\ttrain_noise_16000_0\t5.0\tnone\tnone\t11025\tnone\tt",
        "fileid_5\tn\tshort\ts\tc\ttrain_noise_16000_0\t5.0\tnone\tnone\t16000\tnone\tt",
        "fileid_6\tn\tok16\ts\tc\ttrain_noise_16000_0\t-3.0\ttrain_rir_0\tclipping(min=0.01,max=0.99)\t16000\tnone\tt",
    ]
    meta = tmp_path / "meta.tsv"
    meta.write_text(OFFICIAL_HEADER + "\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    status = main(["simulate", "render", "--meta", str(meta), "--out", str(out), "--speech-scp", str(scp),
                   "--noise-scp", str(corpus / "train" / "noise.scp"), "--rir-scp", str(corpus / "train" / "rir.scp")])
    assert status == 1
    rejects = {r["id"]: r["reason"] for r in csv.DictReader(open(out / "rejects.tsv"), delimiter="\t")}
    assert set(rejects) == {"fileid_2", "fileid_3", "fileid_4", "fileid_5"}
    assert "no such file" in rejects["fileid_2"] and "reverse(speed=2)" in rejects["fileid_3"]
    assert "11025" in rejects["fileid_4"] and "shorter than 0.1 s" in rejects["fileid_5"]
    assert [r["id"] for r in read_meta(out / "meta.tsv")] == ["fileid_1", "fileid_6"]
    err = capsys.readouterr().err
    assert "2 of 6 done, 4 failed" in err and "rejects.tsv" in err


def test_params_from_profile_config_and_missing_manifests(corpus, tmp_path):
    assert main(["simulate", "params", "--config", "tiny", "--corpus-dir", str(corpus), "--split", "valid",
                 "--out", str(tmp_path / "valid")]) == 0
    rows = read_meta(tmp_path / "valid" / "params.tsv")
    assert len(rows) == 6 and all("encoder=opus" not in r["augmentation"] for r in rows)
    assert main(["simulate", "params", "--corpus-dir", str(tmp_path / "nowhere"), "--split", "train",
                 "--out", str(tmp_path / "x")]) == 2


def test_dag_has_the_simulate_rules():
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--config", "profile=tiny", "--",
                          "results/tiny/simulation/summary.csv"], cwd=root, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"snakemake dry run unavailable: {res.stderr[-300:]}")
    for rule in ("simulate_params", "simulate_render", "simulate"):
        assert f"rule {rule}:" in res.stdout or f"{rule} " in res.stdout


def test_on_the_fly_simulation_matches_rendering_the_row(corpus):
    from use_repro.data.manifest import read_scp
    from use_repro.data.params import SimConfig, SpeechItem
    from use_repro.data.render import RenderSettings, Sources, render_row, simulate

    d = corpus / "train"
    sp = read_scp(d / "speech.scp")[-1]
    item = SpeechItem(sp.uid, sp.fs, sp.path, sf.info(sp.path).frames)
    noise, rir, wind = read_scp(d / "noise.scp"), read_scp(d / "rir.scp"), read_scp(d / "wind_noise.scp")
    sim = SimConfig(prob_reverberation=1.0)
    row, audio = simulate(np.random.default_rng(5), item, noise, rir, wind, sim, row_id="otf_5")
    assert row["rir_uid"] != "none" and set(audio) >= {"noisy", "early", "shifted", "anechoic", "early0ms"}
    again = render_row(row, Sources([sp], noise + wind, rir), RenderSettings.from_sim(sim))
    assert all(np.array_equal(audio[k], again[k]) for k in audio)


def test_a_given_meta_replaces_sampling(corpus, tmp_path):
    meta = tmp_path / "official.tsv"
    meta.write_text(OFFICIAL_HEADER + "\n" + "\n".join(_official_rows(corpus)[:3]) + "\n")
    prof = tmp_path / "p.yaml"
    prof.write_text(f"profile: p\nsimulation:\n  splits:\n    valid: {{meta: {meta}}}\n")
    out = tmp_path / "valid"
    assert main(["simulate", "params", "--config", str(prof), "--split", "valid", "--out", str(out)]) == 0
    rows = read_meta(out / "params.tsv")
    assert [r["id"] for r in rows] == ["fileid_1", "fileid_2", "fileid_3"]
    assert rows[0]["noisy_path"] == str(out / "noisy" / "0" / "fileid_1.flac")
    assert rows[0]["augmentation"] == "bandwidth_limitation-kaiser_fast->24000"
    assert main(["simulate", "render", "--config", str(prof), "--meta", str(out / "params.tsv"),
                 "--corpus-dir", str(corpus), "--out", str(out)]) == 0


def _bad_input_batch(tmp_path):
    """A batch with one row per bad-input class beside ten good rows and a stereo one.
    Returns (meta, scp args, {row id: (class, words its reason must contain)})."""
    fs = 16000
    d = tmp_path / "in"
    d.mkdir()
    good = d / "good.flac"
    sf.write(good, speech_like(fs, 0.5, 1), fs)
    sf.write(d / "nz.flac", np.random.default_rng(0).standard_normal(2 * fs) * 0.1, fs)
    sf.write(d / "nz_nan.wav", np.full(2 * fs, np.nan), fs, subtype="FLOAT")
    h = np.zeros(800)
    h[10], h[300] = 0.5, np.inf
    sf.write(d / "h_inf.wav", h, fs, subtype="FLOAT")
    (d / "empty.flac").write_bytes(b"")
    (d / "notaudio.flac").write_text("this is not audio\n")
    x = speech_like(fs, 0.5, 2)
    x[100] = np.nan
    sf.write(d / "nan.wav", x, fs, subtype="FLOAT")
    sf.write(d / "full.flac", speech_like(fs, 3.0, 3), fs)
    data = (d / "full.flac").read_bytes()
    (d / "trunc.flac").write_bytes(data[:len(data) // 2])
    sf.write(d / "one.wav", np.array([0.1]), fs, subtype="FLOAT")
    st = np.stack([speech_like(fs, 0.5, 4), speech_like(fs, 0.5, 5)], axis=1)
    sf.write(d / "stereo.flac", st, fs)
    speech = [("good", fs, good), ("missing", fs, d / "missing.flac"), ("empty", fs, d / "empty.flac"),
              ("notaudio", fs, d / "notaudio.flac"), ("nan", fs, d / "nan.wav"), ("trunc", fs, d / "trunc.flac"),
              ("one", fs, d / "one.wav"), ("stereo", fs, d / "stereo.flac")]
    (d / "speech.scp").write_text("".join(f"{u} {f} {p}\n" for u, f, p in speech[:4]) + "badline 16000\n"
                                  + "".join(f"{u} {f} {p}\n" for u, f, p in speech[4:]))
    write_scp(d / "noise.scp", [("nz", fs, str(d / "nz.flac")), ("nz_nan", fs, str(d / "nz_nan.wav"))])
    write_scp(d / "rir.scp", [("h_inf", fs, str(d / "h_inf.wav"))])

    def row(i, sp, noise="nz", rir="none", rate=fs):
        return f"fileid_{i}\tn\t{sp}\ts\tc\t{noise}\t5.0\t{rir}\tnone\t{rate}\tnone\tt"

    rows = [row(i, "good") for i in range(1, 11)] + [row(11, "stereo")]
    expect = {
        "fileid_12": ("missing file", ["missing.flac", "no such file"]),
        "fileid_13": ("empty file", ["empty.flac", "empty file"]),
        "fileid_14": ("non-audio", ["notaudio.flac", "not a readable sound file"]),
        "fileid_15": ("NaN speech", ["nan.wav", "NaN"]),
        "fileid_16": ("Inf in the RIR", ["h_inf.wav", "infinite"]),
        "fileid_17": ("truncated FLAC", ["trunc.flac", "truncated"]),
        "fileid_18": ("1-sample speech", ["one.wav", "shorter than 0.1 s"]),
        "fileid_19": ("unsupported rate", ["11025", "not a rate the challenge supports"]),
        "fileid_20": ("malformed manifest line", ["badline", "no speech manifest"]),
        "fileid_21": ("malformed meta.tsv line", ["meta.tsv line 22", "malformed row"]),
        "fileid_22": ("NaN noise", ["nz_nan.wav", "NaN"]),
    }
    rows += [row(12, "missing"), row(13, "empty"), row(14, "notaudio"), row(15, "nan"),
             row(16, "good", rir="h_inf"), row(17, "trunc"), row(18, "one"), row(19, "good", rate=11025),
             row(20, "badline"), "fileid_21\tn\tgood\ts", row(22, "good", noise="nz_nan")]
    meta = tmp_path / "meta.tsv"
    meta.write_text(OFFICIAL_HEADER + "\n" + "\n".join(rows) + "\n")
    scps = ["--speech-scp", str(d / "speech.scp"), "--noise-scp", str(d / "noise.scp"), "--rir-scp", str(d / "rir.scp")]
    return meta, scps, expect


def test_every_bad_input_class_is_a_named_reject_and_the_rest_renders(tmp_path, capsys):
    meta, scps, expect = _bad_input_batch(tmp_path)
    out = tmp_path / "out"
    # 11 of 22 rows are bad: above the default limit (1 %), so the exit status is 1 ...
    assert main(["simulate", "render", "--meta", str(meta), "--out", str(out), "--threads", "2", *scps]) == 1
    err = capsys.readouterr().err
    rejects = {r["id"]: r["reason"] for r in csv.DictReader(open(out / "rejects.tsv"), delimiter="\t")}
    behaved = []
    for rid, (what, words) in expect.items():
        ok = rid in rejects and all(w in rejects[rid] for w in words) and rid in err
        behaved.append(ok)
        assert ok, (what, rejects.get(rid))
    manifest_lines = [k for k in rejects if k.endswith("speech.scp line 5")]
    assert len(manifest_lines) == 1 and "expected 'uid fs path'" in rejects[manifest_lines[0]]
    assert len(rejects) == len(expect) + 1
    # ... the rest of the batch is done and listed (stereo: first channel, as the challenge)
    done = read_meta(out / "meta.tsv")
    assert [r["id"] for r in done] == [f"fileid_{i}" for i in range(1, 12)]
    st = sf.read(tmp_path / "in" / "stereo.flac")[0]
    clean = sf.read(done[-1]["clean_path"])[0]
    assert np.corrcoef(clean, st[:, 0])[0, 1] > 0.999 and np.corrcoef(clean, st[:, 1])[0, 1] < 0.9
    assert "11 of 22 done, 11 failed" in err and "above the limit" in err and "rejects.tsv" in err
    assert sum(behaved) == len(expect) == 11

    # within the configured fraction the same batch succeeds, the rejects still listed
    out2 = tmp_path / "out2"
    assert main(["simulate", "render", "--meta", str(meta), "--out", str(out2), "--max-reject-fraction", "0.5",
                 *scps]) == 0
    assert len(read_meta(out2 / "meta.tsv")) == 11
    assert len(list(csv.DictReader(open(out2 / "rejects.tsv"), delimiter="\t"))) == 12
    assert "within the limit" in capsys.readouterr().err


def test_reject_fraction_from_the_profile_and_its_limits(tmp_path):
    from use_repro.data.simulate import render_status

    assert render_status(100, 1, 0.01) == 0 and render_status(100, 2, 0.01) == 1
    assert render_status(10, 10, 1.0) == 1  # nothing rendered is never a success
    assert render_status(0, 0, 1.0) == 1    # nor is an empty batch
    assert render_status(10, 0, 0.0) == 0 and render_status(10, 1, 0.0) == 1
    meta, scps, _ = _bad_input_batch(tmp_path)
    prof = tmp_path / "p.yaml"
    prof.write_text("profile: p\nsimulation:\n  max_reject_fraction: 0.5\n")
    assert main(["simulate", "render", "--config", str(prof), "--meta", str(meta), "--out", str(tmp_path / "o"),
                 *scps]) == 0
    prof.write_text("profile: p\nsimulation:\n  max_reject_fraction: 0.4\n")
    assert main(["simulate", "render", "--config", str(prof), "--meta", str(meta), "--out", str(tmp_path / "o"),
                 *scps]) == 1
    assert main(["simulate", "render", "--meta", str(meta), "--out", str(tmp_path / "o"),
                 "--max-reject-fraction", "1.5", *scps]) == 2


def test_dag_render_failure_keeps_rejects_and_tolerates_up_to_the_fraction(tmp_path):
    """The real workflow on a hand-made corpus: a render above the reject fraction fails and
    Snakemake deletes meta.tsv, but rejects.tsv (naming the unreadable file) survives; within the
    fraction the job succeeds."""
    root = Path(__file__).resolve().parents[2]
    rows = [f"fileid_{i}\tn\t{sp}\ts\tc\tnz\t5.0\tnone\tnone\t16000\tnone\tt"
            for i, sp in enumerate(["sp", "sp", "bad"], 1)]
    results, corpus, sim, now = dag_split_tree(tmp_path, OFFICIAL_HEADER, rows, 32000, {"bad": "not audio"})
    prof = tmp_path / "p.yaml"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--cores", "1",
           "--config", f"profile={prof}", "--", str(sim / "meta.tsv")]
    base = f"profile: p\nresults_root: {results}\nfigures_root: {tmp_path / 'figures'}\n"

    prof.write_text(base)  # default fraction (1 %): 1 of 3 rows is too many
    # a dry run writes the jobs' settings files, dated with the corpus so that it still counts as done
    dry = subprocess.run(cmd[:3] + ["-n"] + cmd[3:], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    date_settings_with_the_corpus(results, now)
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode != 0
    assert "simulate_render" in res.stderr and not (sim / "meta.tsv").exists()
    rejects = {r["id"]: r["reason"] for r in csv.DictReader(open(sim / "rejects.tsv"), delimiter="\t")}
    assert list(rejects) == ["fileid_3"] and "bad.flac" in rejects["fileid_3"]
    log = (results / "p" / "logs" / "simulate" / "render_test.log").read_text()
    assert "2 of 3 done, 1 failed" in log and "bad.flac" in log

    prof.write_text(base + "simulation:\n  max_reject_fraction: 0.5\n")
    # the new fraction is read by `simulate params` too, which would then remake the hand-made
    # params.tsv from the empty corpus lists: its new settings file is dated with the corpus
    dry = subprocess.run(cmd[:3] + ["-n"] + cmd[3:], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    for f in (results / "p" / "settings").iterdir():
        os.utime(f, (now - 300, now - 300))
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["id"] for r in read_meta(sim / "meta.tsv")] == ["fileid_1", "fileid_2"]
    assert list(csv.DictReader(open(sim / "rejects.tsv"), delimiter="\t"))[0]["id"] == "fileid_3"


def test_bad_config_key_or_value_and_unusable_meta_are_named(tmp_path, caplog):
    meta = tmp_path / "meta.tsv"
    meta.write_text(OFFICIAL_HEADER + "\n")
    cases = {"value": ("simulation:\n  max_reject_fraction: 2\n", "simulation.max_reject_fraction"),
             "key": ("simulation:\n  max_reject_fractoin: 0.1\n", "simulation.max_reject_fractoin")}
    for name, (body, key) in cases.items():
        prof = tmp_path / f"{name}.yaml"
        prof.write_text("profile: p\n" + body)
        caplog.clear()
        assert main(["simulate", "render", "--config", str(prof), "--meta", str(meta), "--out", str(tmp_path / "o")]) == 2
        assert key in caplog.text, name
    for bad, words in ((tmp_path / "absent.tsv", "absent.tsv"), (tmp_path / "empty.tsv", "empty file")):
        if bad.name == "empty.tsv":
            bad.write_text("")
        caplog.clear()
        assert main(["simulate", "render", "--meta", str(bad), "--out", str(tmp_path / "o")]) == 2
        assert words in caplog.text
    # a meta.tsv without rows renders nothing: not a success
    caplog.clear()
    assert main(["simulate", "render", "--meta", str(meta), "--out", str(tmp_path / "o")]) == 1
    assert "holds no rows" in caplog.text


def test_params_lists_unreadable_speech_and_bad_lines_and_honours_the_fraction(corpus, tmp_path, capsys):
    d = corpus / "test"
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "text.flac").write_text("not audio")
    good = (d / "speech.scp").read_text()
    (tmp_path / "speech.scp").write_text(good + f"gone 16000 {tmp_path / 'gone.flac'}\n"
                                         f"empty 16000 {tmp_path / 'empty.flac'}\n"
                                         f"text 16000 {tmp_path / 'text.flac'}\nbroken line\n")
    scps = ["--speech-scp", str(tmp_path / "speech.scp"), "--noise-scp", str(d / "noise.scp"),
            "--rir-scp", str(d / "rir.scp"), "--wind-scp", str(d / "wind_noise.scp")]
    prof = tmp_path / "p.yaml"
    prof.write_text("profile: p\nsimulation:\n  max_reject_fraction: 0.25\n")
    out = tmp_path / "a"
    # 3 unreadable of 17 entries: within 25 %
    assert main(["simulate", "params", "--config", str(prof), "--split", "test", "--out", str(out), *scps]) == 0
    rejects = {r["id"]: r["reason"] for r in csv.DictReader(open(out / "params_rejects.tsv"), delimiter="\t")}
    assert "gone.flac" in rejects["gone"] and "empty.flac" in rejects["empty"] and "text.flac" in rejects["text"]
    assert any(k.endswith("speech.scp line 18") and "expected 'uid fs path'" in v for k, v in rejects.items())
    assert len(rejects) == 4
    assert {r["speech_uid"] for r in read_meta(out / "params.tsv")} == {
        line.split()[0] for line in good.splitlines()}
    assert "14 of 17 done, 3 failed" in capsys.readouterr().err
    # the default limit (1 %) is exceeded: exit 1, the list is kept
    out = tmp_path / "b"
    assert main(["simulate", "params", "--split", "test", "--out", str(out), *scps]) == 1
    assert (out / "params_rejects.tsv").exists() and "above the limit" in capsys.readouterr().err
