"""data/render.py and `simulate render`'s writing: the challenge's source lengths, float64 16-bit
files, its level rule on every row, and targets written only where some job reads them."""
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from use_repro.cli import main
from use_repro.data.distortions.noise import scale_to_snr
from use_repro.data.manifest import read_meta, write_scp
from use_repro.data.render import Sources, render_row

from .sim_fixtures import speech_like, write_corpus

HEADER = "id\tnoisy_path\tspeech_uid\tspeech_sid\tclean_path\tnoise_uid\tsnr_dB\trir_uid\taugmentation\tfs\tlength\ttext"


def _meta(path, rows):
    path.write_text(HEADER + "\n" + "\n".join("\t".join(map(str, r)) for r in rows) + "\n")
    return path


def _row(i, speech, noise, snr, rir, fs, aug="none"):
    return [f"fileid_{i}", "n", speech, "s", "c", noise, snr, rir, aug, fs, "none", "t"]


# --- resampled sources --------------------------------------------------------------------------

def _official_read(path, fs, fix=True):
    """The challenge's read_audio(force_1ch=True, fs=fs) for a mono signal: first channel, float64,
    librosa.resample(res_type="soxr_hq"), i.e. soxr HQ then cut/zero-padded to ceil(N fs / fs_file).
    `fix=False` keeps soxr's own length (what the renderer did before)."""
    x, fs_file = sf.read(path, always_2d=True)
    x = x[:, 0]
    if fs_file == fs:
        return x
    y = soxr.resample(x, fs_file, fs, quality="HQ")
    if not fix:
        return y
    n = math.ceil(x.shape[0] * fs / fs_file)
    return np.concatenate([y, np.zeros(max(0, n - len(y)))])[:n]


def _official_noisy(speech_path, noise_path, fs, snr, uid, fix=True):
    """process_one_sample's mixture for a row without reverberation or augmentation (the SNR
    scaling itself is noise.scale_to_snr, held to the challenge's elsewhere)."""
    s = _official_read(speech_path, fs)
    n = _official_read(noise_path, fs, fix)
    rng = np.random.default_rng(int(uid.split("_")[-1]))
    if len(n) > len(s):
        offset = rng.integers(0, len(n) - len(s))
        n = n[offset:offset + len(s)]
    else:
        offset = rng.integers(0, len(s) - len(n))
        n = np.pad(n, (offset, len(s) - len(n) - offset), mode="wrap")
    noise = scale_to_snr(s, n, snr)
    noisy = s + noise
    scale = 0.9 / max(np.max(np.abs(noisy)), np.max(np.abs(s)), np.max(np.abs(noise)))
    return noisy * scale


def _short_noise_length(fs_file, fs):
    """A noise length at which soxr alone gives one sample fewer than the challenge's rule."""
    for n in range(2 * fs_file, 2 * fs_file + 200):
        if len(soxr.resample(np.zeros(n), fs_file, fs, quality="HQ")) < math.ceil(n * fs / fs_file):
            return n
    raise AssertionError("no length found where soxr is short")


def test_resampled_noise_source_follows_the_official_length_rule(tmp_path):
    fs, fs_noise = 16000, 44100
    n_noise = _short_noise_length(fs_noise, fs)
    speech = speech_like(fs, 1.0, 7)
    sf.write(tmp_path / "sp.flac", speech, fs)
    noise = np.random.default_rng(8).standard_normal(n_noise) * 0.1
    sf.write(tmp_path / "nz.wav", noise, fs_noise, subtype="FLOAT")
    n_ceil, n_soxr = math.ceil(n_noise * fs / fs_noise), math.ceil(n_noise * fs / fs_noise) - 1
    # a row whose offset draw depends on that one sample (the mixture then differs everywhere)
    k = next(i for i in range(1, 200)
             if np.random.default_rng(i).integers(0, n_ceil - fs) != np.random.default_rng(i).integers(0, n_soxr - fs))
    uid = f"fileid_{k}"
    sources = Sources({"sp": str(tmp_path / "sp.flac")}, {"nz": str(tmp_path / "nz.wav")}, {})
    row = dict(zip(HEADER.split("\t"), _row(k, "sp", "nz", 5.0, "none", fs)))
    ours = render_row(row, sources)["noisy"]
    ref = _official_noisy(tmp_path / "sp.flac", tmp_path / "nz.wav", fs, 5.0, uid)
    assert np.array_equal(ours, ref)
    old = _official_noisy(tmp_path / "sp.flac", tmp_path / "nz.wav", fs, 5.0, uid, fix=False)
    assert np.max(np.abs(old - ref)) > 1e-2  # the rule matters for this row

    # end to end: the FLAC equals the challenge's sf.write of its float64 mixture, bit for bit
    write_scp(tmp_path / "speech.scp", [("sp", fs, str(tmp_path / "sp.flac"))])
    write_scp(tmp_path / "noise.scp", [("nz", fs_noise, str(tmp_path / "nz.wav"))])
    meta = _meta(tmp_path / "meta.tsv", [_row(k, "sp", "nz", 5.0, "none", fs)])
    assert main(["simulate", "render", "--meta", str(meta), "--out", str(tmp_path / "out"),
                 "--speech-scp", str(tmp_path / "speech.scp"), "--noise-scp", str(tmp_path / "noise.scp")]) == 0
    [r] = read_meta(tmp_path / "out" / "meta.tsv")
    sf.write(tmp_path / "official.flac", ref, fs)
    assert np.array_equal(sf.read(r["noisy_path"], dtype="int16")[0], sf.read(tmp_path / "official.flac", dtype="int16")[0])


def test_resampled_speech_has_the_official_length(tmp_path):
    fs_file, fs = 44100, 16000
    n = _short_noise_length(fs_file, fs)
    sf.write(tmp_path / "sp.flac", speech_like(fs_file, n / fs_file, 3)[:n], fs_file)
    sf.write(tmp_path / "nz.flac", np.random.default_rng(1).standard_normal(3 * fs) * 0.1, fs)
    sources = Sources({"sp": str(tmp_path / "sp.flac")}, {"nz": str(tmp_path / "nz.flac")}, {})
    row = dict(zip(HEADER.split("\t"), _row(3, "sp", "nz", 0.0, "none", fs)))
    out = render_row(row, sources)
    assert out["noisy"].shape == out["early"].shape == (math.ceil(n * fs / fs_file),)


# --- level rule ---------------------------------------------------------------------------------

def _cancelling_room(tmp_path, fs=16000):
    """Low-frequency speech through an RIR whose reflection one sample after the direct path
    almost cancels it: the mixture and the early target are quiet, the anechoic and shifted targets
    (direct path only) some 20x louder than them."""
    t = np.arange(int(0.6 * fs)) / fs
    s = 0.3 * np.sin(2 * np.pi * 80 * t) * np.hanning(len(t))  # smooth: no edge the RIR would not cancel
    h = np.zeros(200)
    h[0], h[1] = 0.5, -0.495
    sf.write(tmp_path / "sp.wav", s, fs, subtype="FLOAT")
    sf.write(tmp_path / "h.wav", h, fs, subtype="FLOAT")
    sf.write(tmp_path / "nz.wav", np.random.default_rng(0).standard_normal(2 * fs) * 0.01, fs, subtype="FLOAT")
    write_scp(tmp_path / "speech.scp", [("sp", fs, str(tmp_path / "sp.wav"))])
    write_scp(tmp_path / "noise.scp", [("nz", fs, str(tmp_path / "nz.wav"))])
    write_scp(tmp_path / "rir.scp", [("h", fs, str(tmp_path / "h.wav"))])
    return Sources({"sp": str(tmp_path / "sp.wav")}, {"nz": str(tmp_path / "nz.wav")}, {"h": str(tmp_path / "h.wav")})


def test_official_level_rule_for_every_row_and_loud_targets_kept_as_float(tmp_path):
    sources = _cancelling_room(tmp_path)
    row = dict(zip(HEADER.split("\t"), _row(4, "sp", "nz", 20.0, "h", 16000)))
    out, info = render_row(row, sources, return_info=True)
    # the challenge's rule, 0.9 / max(noisy, clean, noise), whatever the extra targets' peaks
    assert max(np.max(np.abs(out[k])) for k in ("noisy", "early", "noise")) == pytest.approx(0.9, abs=1e-12)
    assert np.max(np.abs(out["anechoic"])) > 2.0
    # same scale for every target: anechoic = a * s * scale with a = h[n0] = 0.5
    s = sf.read(tmp_path / "sp.wav")[0]
    assert np.allclose(out["anechoic"], 0.5 * s * info["scale"], rtol=0, atol=1e-12)

    meta = _meta(tmp_path / "meta.tsv", [_row(4, "sp", "nz", 20.0, "h", 16000)])
    assert main(["simulate", "render", "--meta", str(meta), "--out", str(tmp_path / "out"),
                 "--speech-scp", str(tmp_path / "speech.scp"), "--noise-scp", str(tmp_path / "noise.scp"),
                 "--rir-scp", str(tmp_path / "rir.scp")]) == 0
    [r] = read_meta(tmp_path / "out" / "meta.tsv")
    for col in ("noisy_path", "clean_path", "clean_early50ms_path"):
        assert r[col].endswith(".flac") and sf.info(r[col]).subtype == "PCM_16", col
    for col, name in (("clean_anechoic_path", "anechoic"), ("clean_shifted_path", "shifted"),
                      ("clean_early0ms_path", "early0ms")):
        assert r[col].endswith(".wav") and sf.info(r[col]).subtype == "FLOAT", col
        x = sf.read(r[col], dtype="float32")[0]
        assert np.array_equal(x, out[name].astype(np.float32)), col  # not clipped, not rescaled
        assert not Path(r[col]).with_suffix(".flac").exists()
    # one file per id in each folder, also after a rerun
    assert main(["simulate", "render", "--meta", str(meta), "--out", str(tmp_path / "out"),
                 "--speech-scp", str(tmp_path / "speech.scp"), "--noise-scp", str(tmp_path / "noise.scp"),
                 "--rir-scp", str(tmp_path / "rir.scp")]) == 0
    assert len(list((tmp_path / "out" / "clean_anechoic").rglob("fileid_4.*"))) == 1
    # --resume finds the float files and keeps the row as it is
    before = (tmp_path / "out" / "meta.tsv").read_text()
    mtime = Path(r["clean_anechoic_path"]).stat().st_mtime_ns
    assert main(["simulate", "render", "--meta", str(meta), "--out", str(tmp_path / "out"), "--resume",
                 "--speech-scp", str(tmp_path / "speech.scp"), "--noise-scp", str(tmp_path / "noise.scp"),
                 "--rir-scp", str(tmp_path / "rir.scp")]) == 0
    assert (tmp_path / "out" / "meta.tsv").read_text() == before
    assert Path(r["clean_anechoic_path"]).stat().st_mtime_ns == mtime


# --- only the targets something reads -----------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), seconds=0.6, rates=(16000, 48000), n_noise=1)


def test_render_writes_only_the_requested_targets(corpus, tmp_path):
    out = tmp_path / "test"
    assert main(["simulate", "params", "--corpus-dir", str(corpus), "--split", "test", "--out", str(out)]) == 0
    assert main(["simulate", "render", "--meta", str(out / "params.tsv"), "--corpus-dir", str(corpus),
                 "--out", str(out), "--targets", "early", "anechoic"]) == 0
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["clean", "clean_anechoic", "noisy"]
    rows = read_meta(out / "meta.tsv")
    assert rows and any(r["rir_uid"] != "none" for r in rows)
    for r in rows:
        assert Path(r["clean_anechoic_path"]).exists() and Path(r["clean_path"]).exists()
        assert r["clean_shifted_path"] == r["clean_early50ms_path"] == r["clean_early0ms_path"] == "none"
    from use_repro.data.dataset import load_rows

    with pytest.raises(ValueError, match="no usable rows for target 'shifted'"):
        load_rows(out / "meta.tsv", "shifted")
    assert len(load_rows(out / "meta.tsv", "anechoic")) == len(rows)
    # a target the configuration does not make is refused by name
    assert main(["simulate", "render", "--meta", str(out / "params.tsv"), "--corpus-dir", str(corpus),
                 "--out", str(tmp_path / "x"), "--targets", "early7ms"]) == 2


def test_the_dag_renders_exactly_the_targets_its_jobs_read():
    """Planned `simulate render --targets` per split == the targets the planned train, residual
    and evaluation commands read (plus the clean panel of the Figure 5/6 spectrograms)."""
    from use_repro.config import load_config
    from use_repro.report.experiments import experiments

    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "-F", "tables", "--config", "profile=mini"],
                         cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    cmds = [line for line in res.stdout.splitlines() if "use-repro" in line]
    # the split's own render (test: with its references; train/valid: noisy only) and, on train
    # and valid, one --targets-only render per training target
    planned = {"train": set(), "valid": set(), "test": set()}
    for c in cmds:
        m = re.search(r"simulate render .*--meta \S+/simulation/(\w+)/params\.tsv .*--targets ?([\w. ]*?)"
                      r"( --targets-only --list-name (\S+))? --out", c)
        if m:
            planned[m.group(1)] |= set(m.group(2).split())
            if m.group(3):
                assert m.group(4) == f"meta.{m.group(2)}.tsv", c
    read = {"train": set(), "valid": set(), "test": set()}
    folder_target = {"clean": "early", "clean_anechoic": "anechoic", "clean_shifted": "shifted"}
    for c in cmds:
        m = re.search(r"--train-meta (\S+) --valid-meta (\S+) --target (\S+)", c)
        if m:
            read["train"].add(m.group(3))
            read["valid"].add(m.group(3))
            # each run reads its target's lists
            assert m.group(1).endswith(f"train/meta.{m.group(3)}.tsv") and m.group(2).endswith(f"valid/meta.{m.group(3)}.tsv"), c
        m = re.search(r"--test-meta \S+/simulation/test/meta\.tsv --target (\S+)", c)
        if m:
            read["test"].add(m.group(1))
        m = re.search(r"--ref \S+/simulation/test/(\w+)", c)
        if m:
            read["test"].add(folder_target[m.group(1)])
    cfg = load_config("mini")
    if any(re.search(r"report figure fig[56]\b", c) for c in cmds):
        read["test"].add(experiments(cfg)[cfg["report"]["spectrograms"]["regression"]].target)
    assert planned == read
    assert {"early", "anechoic"} <= planned["test"] and "early50ms" not in planned["train"]
    # rejects.tsv is no job's declared output, so a failed render (Snakemake then deletes the
    # job's outputs) keeps the list naming the culprits
    outputs = [line for line in res.stdout.splitlines() if line.strip().startswith("output:")]
    assert any("simulation/train/meta.tsv" in line for line in outputs)
    assert not any("rejects.tsv" in line for line in outputs)
