"""A small synthetic corpus for the simulation tests: speech-like bursts at every rate, noise,
48 kHz RIRs with a known direct path, wind-like noise, and URGENT-format manifests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from use_repro.audio.io import SUPPORTED_RATES, write_audio
from use_repro.data.manifest import write_kv, write_scp


def speech_like(fs: int, seconds: float, seed: int) -> np.ndarray:
    """Voiced bursts (harmonics with vibrato) separated by pauses; [T] float64."""
    rng = np.random.default_rng(seed)
    n = int(fs * seconds)
    t = np.arange(n) / fs
    f0 = 110 + 60 * rng.random() + 10 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / fs
    x = sum(np.sin(k * phase) / k for k in range(1, 30) if 200 * k < fs / 2)
    env = (np.sin(2 * np.pi * 2.5 * t + rng.random() * 6) > -0.2).astype(float)
    env = np.convolve(env, np.hanning(int(0.02 * fs)) / (0.01 * fs), mode="same")
    x = x * env + 0.02 * rng.standard_normal(n) * env
    return 0.3 * x / np.max(np.abs(x))


def rir_48k(seed: int, delay_ms: float = 10.0, rt60: float = 0.4, seconds: float = 0.6) -> np.ndarray:
    """Direct path at `delay_ms` (the largest tap) plus an exponentially decaying tail."""
    rng = np.random.default_rng(seed)
    fs = 48000
    n = int(seconds * fs)
    h = np.zeros(n)
    d = int(delay_ms * fs / 1000)
    tail = rng.standard_normal(n - d - 20) * np.exp(-6.9 * np.arange(n - d - 20) / (rt60 * fs))
    h[d + 20:] = 0.08 * tail  # the direct path stays the largest tap at every rate
    h[d] = 1.0
    return 0.5 * h


def write_corpus(root: Path, seconds: float = 1.2, rates=SUPPORTED_RATES, n_noise: int = 3) -> Path:
    """Write speech/noise/rir/wind manifests for splits train/valid/test under `root`."""
    root = Path(root)
    seed = 0
    for split in ("train", "valid", "test"):
        d = root / split
        speech, spk, text, lang, noise, rirs, wind = [], [], [], [], [], [], []
        for fs in rates:
            for k in range(2):
                seed += 1
                uid = f"{split}_sp_{fs}_{k}"
                p = d / "speech" / f"{uid}.flac"
                write_audio(p, speech_like(fs, seconds, seed), fs)
                speech.append((uid, fs, str(p)))
                spk.append((uid, f"spk{k}"))
                text.append((uid, f"utterance {uid}"))
                lang.append((uid, ("it" if k else "en") if split == "test" else "en"))
        for k in range(n_noise):
            for fs in (16000, 48000, 44100, 8000):
                seed += 1
                uid = f"{split}_noise_{fs}_{k}"
                p = d / "noise" / f"{uid}.flac"
                rng = np.random.default_rng(seed)
                write_audio(p, 0.1 * rng.standard_normal(int(fs * 0.9)), fs)
                noise.append((uid, fs, str(p)))
        for k in range(3):
            seed += 1
            uid = f"{split}_rir_{k}"
            p = d / "rir" / f"{uid}.flac"
            write_audio(p, rir_48k(seed, delay_ms=5 + 10 * k), 48000, subtype="PCM_24")
            rirs.append((uid, 48000, str(p)))
        for fs in (48000, 8000):
            seed += 1
            uid = f"wind_noise_{split}_{fs}hz_0"
            p = d / "wind" / f"{uid}.flac"
            rng = np.random.default_rng(seed)
            w = np.cumsum(rng.standard_normal(int(fs * 2))) / np.sqrt(fs)
            w -= np.convolve(w, np.ones(fs // 50) / (fs // 50), mode="same")
            write_audio(p, 0.5 * w / np.max(np.abs(w)), fs)
            wind.append((uid, fs, str(p)))
        write_scp(d / "speech.scp", speech)
        write_kv(d / "utt2spk", spk)
        write_kv(d / "text", text)
        write_kv(d / "utt2lang", lang)
        write_scp(d / "noise.scp", noise)
        write_scp(d / "rir.scp", rirs)
        write_scp(d / "wind_noise.scp", wind)
    return root


def dag_split_tree(tmp_path: Path, header: str, rows: list[str], noise_samples: int,
                   extra_speech: dict[str, str] | None = None) -> tuple[Path, Path, Path, float]:
    """A hand-made corpus and test split to run the real workflow's render on, profile `p`:
    results/p/corpus holds every manifest the corpus job writes (empty, so that job counts as
    done) but a speech list of sp.flac (plus `extra_speech`: uid -> the text of a file that is
    not audio) and a noise list of nz.flac (`noise_samples` at 16 kHz); results/p/simulation/test
    holds params.tsv (`header` and `rows`). The corpus is dated 200 s ago and params.tsv 100 s
    ago, so what render writes now is newer than its inputs however fast the machine is.
    Returns (results, corpus, sim, now)."""
    import os
    import time

    import soundfile as sf

    from use_repro.data.corpus.layout import manifest_files

    results = tmp_path / "results"
    corpus, sim = results / "p" / "corpus", results / "p" / "simulation" / "test"
    corpus.mkdir(parents=True)
    sim.mkdir(parents=True)
    for name in manifest_files():  # the corpus job's outputs, so it counts as done
        (corpus / name).write_text("")
    sf.write(corpus / "sp.flac", speech_like(16000, 0.5, 1), 16000)
    sf.write(corpus / "nz.flac", np.random.default_rng(0).standard_normal(noise_samples) * 0.1, 16000)
    speech = [("sp", 16000, str(corpus / "sp.flac"))]
    for uid, text in (extra_speech or {}).items():
        (corpus / f"{uid}.flac").write_text(text)
        speech.append((uid, 16000, str(corpus / f"{uid}.flac")))
    write_scp(corpus / "speech_test.scp", speech)
    write_scp(corpus / "noise_test.scp", [("nz", 16000, str(corpus / "nz.flac"))])
    (sim / "params.tsv").write_text(header + "\n" + "\n".join(rows) + "\n")
    now = time.time()
    for f in corpus.iterdir():
        os.utime(f, (now - 200, now - 200))
    os.utime(sim / "params.tsv", (now - 100, now - 100))
    return results, corpus, sim, now


def date_settings_with_the_corpus(results: Path, now: float) -> None:
    """Every job's settings file is one of its inputs, written when the DAG is parsed (a dry run
    writes them): dated before the hand-made corpus (dag_split_tree), that corpus still counts
    as done."""
    import os

    for f in (results / "p" / "settings").iterdir():
        os.utime(f, (now - 300, now - 300))
