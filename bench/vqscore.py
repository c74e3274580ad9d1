"""Benchmark of VQScore scoring throughput (the paper: 2,500 h in under 8 h on one A100, ~312x).

    python bench/vqscore.py [--estimator results/mini/vqscore/estimator.pt] [--files 40]
                            [--seconds 6] [--rate 22050] [--out FILE.json]

Measured side by side in one run, on one CPU core (torch.set_num_threads(1)):

1. ``model``  STFT -> encoder -> codebook lookup on 16 kHz audio already in memory
   (what the estimator itself costs; the decoder is not needed to score).
2. ``file``   the whole per-file path of `use-repro vqscore score`: FLAC decode at the native
   rate, soxr resampling to 16 kHz, then (1).
3. ``gpu``    with CUDA: (1) on the GPU, per file as `score` runs it, and in batches of equal-
   length files. Skipped, and said so, without CUDA.

Throughput is seconds of audio per second, "x real time"; goals: >= 100x on one CPU core,
>= 1000x on a GPU. The machine may be shared: wall-clock numbers are printed with the load
average, and CPU-time numbers (the work itself) beside them. Without --estimator an untrained
2048 x 32 model is used (the cost does not depend on the weights). The audio is made here:
the tests' speech-like voiced syllables (tests/quality/conftest.py) at `--rate`, as FLAC.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.quality.conftest import babble_voice  # noqa: E402  (the tests' speech-like audio)
from use_repro.audio.io import write_audio  # noqa: E402
from use_repro.data.manifest import ScpEntry  # noqa: E402
from use_repro.quality import vqscore as V  # noqa: E402
from use_repro.quality.filtering import load_16k  # noqa: E402


def timed(fn, repeats: int = 1) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of `repeats` calls."""
    fn()  # warm-up
    w, c = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--estimator", default=None)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rate", type=int, default=22050)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    torch.set_num_threads(1)
    if args.estimator:
        model, _ = V.load_estimator(args.estimator)
    else:
        torch.manual_seed(0)
        model = V.VQScoreModel().eval()
        model.codebook.embed.copy_(V.l2norm(torch.randn_like(model.codebook.embed)))
    audio_s = args.files * args.seconds
    results: dict = {"files": args.files, "seconds_per_file": args.seconds, "rate": args.rate,
                     "estimator": args.estimator or "untrained 2048 x 32", "load_average": os.getloadavg()}
    print(f"VQScore scoring: {args.files} files x {args.seconds:g} s at {args.rate} Hz "
          f"({audio_s / 60:.1f} min of audio); load average {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        entries = []
        for i in range(args.files):
            p = Path(tmp) / f"u{i:03d}.flac"
            write_audio(p, babble_voice(args.seconds, args.rate, seed=i), args.rate)
            entries.append(ScpEntry(f"u{i:03d}", args.rate, str(p)))
        wavs16 = [load_16k(e)[0] for e in entries]

        def score_model():
            with torch.no_grad():
                for w in wavs16:
                    model.score_magnitude(V.magnitude(torch.from_numpy(w)))

        def score_files():
            with torch.no_grad():
                for e in entries:
                    model.score_magnitude(V.magnitude(torch.from_numpy(load_16k(e)[0])))

        print(f"{'section':<8} {'wall s':>8} {'x RT (wall)':>12} {'CPU s':>8} {'x RT (CPU)':>11}")
        for name, fn in (("model", score_model), ("file", score_files)):
            wall, cpu = timed(fn)
            results[name] = {"wall_s": wall, "cpu_s": cpu, "x_rt_wall": audio_s / wall, "x_rt_cpu": audio_s / cpu}
            print(f"{name:<8} {wall:8.2f} {audio_s / wall:12.0f} {cpu:8.2f} {audio_s / cpu:11.0f}")

        if torch.cuda.is_available():
            dev = torch.device("cuda")
            gm = model.to(dev)
            gw = [torch.from_numpy(w).to(dev) for w in wavs16]
            batch = torch.stack(gw)

            def gpu_files():
                with torch.no_grad():
                    for w in gw:
                        gm.score_magnitude(V.magnitude(w))
                torch.cuda.synchronize()

            def gpu_batch():
                with torch.no_grad():
                    gm.score_magnitude(V.magnitude(batch))
                torch.cuda.synchronize()

            for name, fn in (("gpu_file", gpu_files), ("gpu_batch", gpu_batch)):
                wall, _ = timed(fn, repeats=5)
                wall /= 5
                results[name] = {"wall_s": wall, "x_rt_wall": audio_s / wall, "device": torch.cuda.get_device_name()}
                print(f"{name:<8} {wall:8.3f} {audio_s / wall:12.0f}")
        else:
            results["gpu"] = "skipped: no CUDA device"
            print("gpu      skipped: no CUDA device")
    goal = results["model"]["x_rt_cpu"] >= 100
    print(f"goal >= 100x real time on one CPU core (model, CPU time): {'met' if goal else 'NOT met'}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
