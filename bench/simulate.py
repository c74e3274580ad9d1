"""Render throughput and peak memory of `use-repro simulate render`.

    python bench/simulate.py                                   # results/mini/corpus if built, else a synthetic corpus
    python bench/simulate.py --corpus-dir results/mini/corpus --config mini --split test --threads 2

Samples the split's parameters from the profile, then renders every row twice:

1. in this process, one row at a time (after one warm-up row), timing each row's render and
   FLAC writes: throughput in seconds of audio per second of one core, both as is and
   16 kHz-equivalent (a row of T samples counts T / 16000 s, so a 48 kHz second counts 3),
   overall and per distortion, and this worker's peak resident memory;
2. through the CLI with --threads workers (process start-up and imports included).

Both are given per CPU-second (user + system time of the worker processes), which a busy
machine does not distort, and per wall-clock second.

Goal (issue 3): >= 50x real time per core, 16 kHz-equivalent, averaged over the set; < 1 GB per worker.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def synthetic_corpus(root: Path) -> Path:
    """Speech-like bursts at every rate (2-4 s), noise, 48 kHz RIRs and wind, URGENT manifests."""
    from use_repro.audio.io import SUPPORTED_RATES, write_audio
    from use_repro.data.manifest import write_kv, write_scp

    rng = np.random.default_rng(0)
    speech, noise, rirs, wind, spk = [], [], [], [], []
    for fs in SUPPORTED_RATES:
        for k in range(6):
            n = int(fs * rng.uniform(2, 4))
            t = np.arange(n) / fs
            f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
            ph = 2 * np.pi * np.cumsum(f0) / fs
            x = sum(np.sin(h * ph) / h for h in range(1, 25) if 160 * h < fs / 2)
            x *= (np.sin(2 * np.pi * 2 * t + k) > -0.3)
            p = root / "speech" / f"sp_{fs}_{k}.flac"
            write_audio(p, 0.3 * x / np.abs(x).max() + 0.003 * rng.standard_normal(n), fs)
            speech.append((f"sp_{fs}_{k}", fs, str(p)))
            spk.append((f"sp_{fs}_{k}", f"spk{k}"))
    for fs in (16000, 44100, 48000):
        for k in range(4):
            p = root / "noise" / f"noise_{fs}_{k}.flac"
            write_audio(p, 0.1 * rng.standard_normal(fs * 6), fs)
            noise.append((f"noise_{fs}_{k}", fs, str(p)))
    for k in range(6):
        n = 48000
        h = np.zeros(n)
        d = int(48 * (5 + 4 * k))
        h[d] = 0.5
        h[d + 20:] = 0.04 * rng.standard_normal(n - d - 20) * np.exp(-6.9 * np.arange(n - d - 20) / (0.5 * 48000))
        p = root / "rir" / f"rir_{k}.flac"
        write_audio(p, h, 48000, subtype="PCM_24")
        rirs.append((f"rir_{k}", 48000, str(p)))
    for k in range(2):
        w = np.cumsum(rng.standard_normal(48000 * 8)) / 200
        w -= np.convolve(w, np.ones(960) / 960, mode="same")
        p = root / "wind" / f"wind_noise_{k}.flac"
        write_audio(p, 0.5 * w / np.abs(w).max(), 48000)
        wind.append((f"wind_noise_48000hz_{k}", 48000, str(p)))
    write_scp(root / "speech_test.scp", speech)
    write_kv(root / "utt2spk", spk)
    write_scp(root / "noise_test.scp", noise)
    write_scp(root / "rir_test.scp", rirs)
    write_scp(root / "wind_noise_test.scp", wind)
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus-dir", default=None)
    ap.add_argument("--config", default="mini")
    ap.add_argument("--split", default="test", choices=["train", "valid", "test"])
    ap.add_argument("--rows", type=int, default=0, help="override the split's row count (0: the profile's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    from use_repro.cli import main as cli
    from use_repro.config import load_config
    from use_repro.data.manifest import read_meta
    from use_repro.data.params import SimConfig, output_paths
    from use_repro.data.render import RenderSettings, render_row
    from use_repro.data.simulate import load_sources, row_distortions, write_row

    tmp = Path(tempfile.mkdtemp(prefix="bench_simulate_"))
    corpus = Path(args.corpus_dir) if args.corpus_dir else ROOT / "results" / "mini" / "corpus"
    if not (corpus / f"speech_{'validation' if args.split == 'valid' else args.split}.scp").exists() \
            and not (corpus / args.split / "speech.scp").exists():
        print(f"no corpus at {corpus}; building a synthetic one under {tmp}")
        corpus, args.split = synthetic_corpus(tmp / "corpus"), "test"
    out = tmp / args.split
    argv_params = ["simulate", "params", "--config", args.config, "--corpus-dir", str(corpus), "--split",
                   args.split, "--out", str(out)]
    if cli(argv_params) != 0:
        return 1
    rows = read_meta(out / "params.tsv")
    if args.rows:
        rows = rows[:args.rows]
    cfg = load_config(args.config)
    settings = RenderSettings.from_sim(SimConfig.from_config(cfg))
    ns = argparse.Namespace(corpus_dir=str(corpus), speech_scp=None, noise_scp=None, rir_scp=None, wind_scp=None)
    sources = load_sources(ns)

    # 1. one core, row by row
    render_row(rows[0], sources, settings)  # warm-up: imports, filter tables
    per_kind = defaultdict(lambda: [0.0, 0.0, 0])
    total_t = total_s = total_16k = total_cpu = 0.0
    for i, r in enumerate(rows):
        c0 = time.process_time()
        t0 = time.perf_counter()
        audio = render_row(r, sources, settings)
        write_row(r, output_paths(r["id"], i, out / "inproc", settings.windows_ms), settings, audio)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        total_cpu += cpu
        n, fs = int(r["length"]), int(r["fs"])
        total_t += dt
        total_s += n / fs
        total_16k += n / 16000
        for k in row_distortions(r):
            per_kind[k][0] += cpu
            per_kind[k][1] += n / 16000
            per_kind[k][2] += 1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nrows: {len(rows)}, audio: {total_s:.1f} s ({total_16k:.1f} s 16 kHz-equivalent), "
          f"rates: {sorted({int(r['fs']) for r in rows})}")
    print(f"one core, in process: {total_cpu:.2f} CPU-s -> {total_s / total_cpu:.1f}x real time, "
          f"{total_16k / total_cpu:.1f}x real time 16 kHz-equivalent per CPU-second (goal >= 50x); "
          f"wall {total_t:.2f} s -> {total_16k / total_t:.1f}x")
    print(f"peak resident memory of this worker: {peak_mb:.0f} MB (goal < 1024 MB)")
    print(f"{'distortion (rows having it)':<28}{'rows':>6}{'x RT per CPU-s (16k-eq)':>25}")
    for k, (t, s, c) in sorted(per_kind.items(), key=lambda kv: -kv[1][2]):
        print(f"{k:<28}{c:>6}{s / t:>25.1f}")

    # 2. the CLI with worker processes (start-up included)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "use_repro", "simulate", "render", "--config", args.config,
                          "--meta", str(out / "params.tsv"), "--corpus-dir", str(corpus), "--out", str(out / "cli"),
                          "--threads", str(args.threads)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    all_16k = sum(int(r["length"]) / 16000 for r in read_meta(out / "params.tsv"))
    print(f"\nCLI render, {args.threads} workers: exit {res.returncode}; {cpu:.1f} CPU-s -> "
          f"{all_16k / cpu:.1f}x real time per CPU-second, 16 kHz-equivalent, start-up and imports included; "
          f"{wall:.1f} s wall -> {all_16k / wall / args.threads:.1f}x per core")
    print(f"peak resident memory of one CLI worker: {after.ru_maxrss / 1024:.0f} MB")
    print(f"(outputs under {tmp})")
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
