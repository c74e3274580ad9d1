"""Benchmark of the trainer: steps per second and peak memory of every training stage.

    python bench/train.py [--threads 2] [--steps 8] [--only cpu|gpu] [--out FILE.json]

1. ``cpu``  the `mini` profile's models (regression; the two-stage GAN = frozen regression +
   residual generator vs the multi-band discriminator; the adversarial fine-tune baseline) on
   `--threads` CPU threads, trained through the real `Trainer` (data loading, losses, AdamW,
   clipping; validation and checkpoints off) on generated 16 kHz and 48 kHz utterances cropped
   to the profile's `segment_seconds` (2 s). Reports steps/s and seconds of audio trained per
   second, and the measurement process's peak resident memory.
2. ``gpu``  with CUDA only: the paper's models (the `gpu` profile: 30-block regression,
   6-block generator; the fused mamba_ssm kernel when it imports) on 4 s utterances at 16 kHz
   and 48 kHz, bf16 autocast, with peak GPU memory. Skipped (and said so) without CUDA.

Every measurement runs in a fresh subprocess, so its peak memory is its own. Steps are timed
after `--warmup` steps, between the requests of consecutive batches (so the time of a step is
everything the loop does for it). The machine may be shared: the load average is printed, and
the process CPU time per step beside the wall time (on idle cores, wall ~ CPU / threads).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_meta(root: str, fs: int, seconds: float, n: int = 4) -> str:
    """n utterances (harmonic 'speech' + noise) with every target column, as a rendered meta.tsv."""
    import numpy as np

    from use_repro.audio.io import write_audio
    from use_repro.data.manifest import write_meta

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        t = np.arange(int(fs * seconds)) / fs
        f0 = 100 + 30 * i
        clean = sum(0.2 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 30) if f0 * k < fs / 2)
        noisy = clean + 0.05 * rng.standard_normal(t.size)
        uid = f"fileid_{i + 1}"
        row = {"id": uid, "speech_uid": uid, "fs": str(fs), "length": str(t.size)}
        row["noisy_path"] = str(write_audio(os.path.join(root, "noisy", f"{uid}.flac"), noisy, fs))
        for col in ("clean_path", "clean_shifted_path"):
            row[col] = str(write_audio(os.path.join(root, col, f"{uid}.flac"), clean, fs))
        rows.append(row)
    path = os.path.join(root, "meta.tsv")
    write_meta(path, rows)
    return path


def worker(job: dict) -> dict:
    """One stage, one rate: train warmup + steps steps, time the last `steps`."""
    import torch

    from use_repro.config import load_config
    from use_repro.data.dataset import MetaDataset, batches_from, load_rows
    from use_repro.models.build import build_discriminator, build_generator, build_regression
    from use_repro.models.generator import TwoStage
    from use_repro.models.usemamba import count_parameters
    from use_repro.train.distributed import DistInfo, pick_device
    from use_repro.train.gan import AdversarialTask
    from use_repro.train.loop import LoopSettings, Trainer
    from use_repro.train.regression import RegressionTask

    torch.set_num_threads(job["threads"])
    device = pick_device(job["device"])
    info = DistInfo(0, 1, 0, device)
    cfg = load_config(job["profile"])
    cfg["train"]["segment_seconds"] = job["segment_seconds"]
    torch.manual_seed(0)
    regression = build_regression(cfg)
    if job["stage"] == "regression":
        task = RegressionTask(regression, cfg["train"]["loss_weights"], info, {})
    else:
        model = regression if job["stage"] == "finetune" else TwoStage.from_models(regression, build_generator(cfg))
        task = AdversarialTask(model, build_discriminator(cfg), cfg["train"]["gan_loss_weights"], info, {})
    trainable = sum(count_parameters(m, trainable_only=True) for m in
                    ([task.model] + ([task.disc] if hasattr(task, "disc") else [])))
    with tempfile.TemporaryDirectory() as tmp:
        meta = make_meta(tmp, job["fs"], job["utterance_seconds"])
        ds = MetaDataset(load_rows(meta, "shifted"), job["segment_seconds"])
        make = batches_from(ds, seed=0)
        stamps = []

        def timed(start):
            for b in make(start):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                stamps.append((time.perf_counter(), time.process_time()))
                yield b

        total = job["warmup"] + job["steps"]
        settings = LoopSettings(steps=total, checkpoint_every=10**9, validate_every=0, log_every=10**9,
                                amp=job["amp"], seed=0, **{k: cfg["train"][k] for k in ("lr", "grad_clip")})
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        Trainer(task, timed, settings, os.path.join(tmp, "run"), info).fit()
    timed_stamps = stamps[job["warmup"]: job["warmup"] + job["steps"] + 1]
    step_times = [b[0] - a[0] for a, b in zip(timed_stamps, timed_stamps[1:])]
    mean = sum(step_times) / len(step_times)
    cpu = (timed_stamps[-1][1] - timed_stamps[0][1]) / len(step_times)
    res = {"steps_per_s": 1.0 / mean, "s_per_step": mean, "min_s_per_step": min(step_times),
           "cpu_s_per_step": cpu, "audio_s_per_s": job["segment_seconds"] / mean,
           "trainable_parameters": trainable, "peak_rss_mb": _rss_mb()}
    if device.type == "cuda":
        from use_repro.models.mamba import fused_available

        res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        res["fused_kernel"] = bool(fused_available())
    return res


def run_job(job: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"]), "MKL_NUM_THREADS": str(job["threads"])}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `use-repro train` runs (see use_repro.cli)
    r = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(results: dict, where: str, stages, base: dict) -> None:
    """Run each stage at 16 and 48 kHz in its own process; print a line and keep the numbers."""
    for stage in stages:
        for fs in (16000, 48000):
            r = run_job({**base, "stage": stage, "fs": fs})
            results[f"{where}_{stage}_{fs // 1000}k"] = r
            head = f"{stage:>10} {fs // 1000:>2} kHz:"
            if "error" in r:
                print(f"{head} failed: {r['error']}")
                continue
            line = (f"{head} {r['steps_per_s']:6.2f} steps/s ({r['s_per_step']:.3f} s/step, best "
                    f"{r['min_s_per_step']:.3f}, CPU {r['cpu_s_per_step']:.3f} s/step), "
                    f"{r['audio_s_per_s']:5.2f} s of audio/s, ")
            if "peak_gpu_mb" in r:
                line += f"peak GPU {r['peak_gpu_mb']:.0f} MB, fused kernel: {r['fused_kernel']}"
            else:
                line += (f"peak RSS {r['peak_rss_mb']:.0f} MB, "
                         f"{r['trainable_parameters']:,} trainable parameters")
            print(line)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", choices=("cpu", "gpu"), default=None)
    p.add_argument("--out", help="also write the results as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    import torch

    sys.stdout.reconfigure(line_buffering=True)  # progress lines show up in logs as they come
    results: dict = {"load_average_before": os.getloadavg(), "threads": args.threads}
    common = {"threads": args.threads, "steps": args.steps, "warmup": args.warmup}
    if args.only in (None, "cpu"):
        from use_repro.config import load_config

        seg = float(load_config("mini")["train"]["segment_seconds"])
        print(f"== mini profile on {args.threads} CPU threads, {seg:g} s crops "
              f"(load average {os.getloadavg()[0]:.2f}) ==")
        measure(results, "cpu", ("regression", "gan", "finetune"),
                {**common, "profile": "mini", "device": "cpu", "segment_seconds": seg,
                 "utterance_seconds": seg + 1.0, "amp": False})
    if args.only in (None, "gpu"):
        if not torch.cuda.is_available():
            print("== gpu: skipped (no CUDA device) ==")
            results["gpu"] = "skipped: no CUDA device"
        else:
            print(f"== gpu profile (paper models) on {torch.cuda.get_device_name(0)}, 4 s utterances, bf16 ==")
            measure(results, "gpu", ("regression", "gan"),
                    {**common, "profile": "gpu", "device": "cuda", "segment_seconds": 4.0,
                     "utterance_seconds": 4.0, "amp": True})
    results["load_average_after"] = os.getloadavg()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
