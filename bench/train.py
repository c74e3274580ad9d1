"""Benchmark of the trainer: steps per second and peak memory of every training stage.

    python bench/train.py [--threads 2] [--steps 8] [--only cpu backends profile gpu] [--out FILE.json]

1. ``cpu``  the `mini` profile's models (regression; the two-stage GAN = frozen regression +
   residual generator vs the multi-band discriminator; the adversarial fine-tune baseline) on
   `--threads` CPU threads, trained through the real `Trainer` (data loading, losses, AdamW,
   clipping; validation and checkpoints off) on generated 16 kHz and 48 kHz utterances cropped
   to the profile's `segment_seconds` (2 s). Reports steps/s and seconds of audio trained per
   second, and the measurement process's peak resident memory.
2. ``backends``  issue 15's before/after: the regression training step of the mini model (its
   2 s crops) and of the paper-size model (the `gpu` profile's 30-block model on the CPU, on
   `--paper-seconds` crops), on each of `--thread-counts`, for: the pure-PyTorch scan with
   OMP_WAIT_POLICY=PASSIVE (how `use-repro train` ran before), the same with libgomp's default
   waiting, the compiled CPU scan (now), and for the paper model the compiled scan without the
   BiMamba layers' recomputation in backward. Seconds per step and per second of audio, CPU
   time, peak RSS and the speed-up over "before", in one run.
3. ``profile``  torch.profiler of one training step (after a warm-up step) of both models with
   the torch and the compiled scan, at `--threads`: the top ops by self CPU time.
4. ``gpu``  with CUDA only: the paper's models (the `gpu` profile: 30-block regression,
   6-block generator) on `--gpu-seconds` crops (10 s) at `--gpu-rates` (48 kHz), bf16 autocast:
   steps/s and peak GPU memory for each scan (the fused mamba_ssm kernel when it imports, else
   said so; the pure-PyTorch scan) with and without the BiMamba layers' recomputation; then a
   short regression run of `--gpu-run-steps` steps whose training-loss means per 10 steps are
   printed (is it learning). Skipped (and said so) without CUDA.

Every measurement runs in a fresh subprocess, so its peak memory is its own. Steps are timed
after `--warmup` steps, between the requests of consecutive batches (the last one until the
trainer returns), so the time of a step is everything the loop does for it. The machine may be shared: the load average is printed, and
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


SECTIONS = ("cpu", "backends", "profile", "gpu")


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

    from use_repro.models.mamba import resolve_backend

    torch.set_num_threads(job["threads"])
    device = pick_device(job["device"])
    info = DistInfo(0, 1, 0, device)
    cfg = load_config(job["profile"])
    cfg["train"]["segment_seconds"] = job["segment_seconds"]
    for part in ("regression", "generator"):   # the scan (and recomputation) under comparison
        for key in ("scan_backend", "mamba_checkpoint"):
            if key in job:
                cfg["model"][part][key] = job[key]
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
        # with job["profile_ops"]: torch.profiler records step number `warmup` alone
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) \
            if job.get("profile_ops") else None

        def stamp():
            if device.type == "cuda":
                torch.cuda.synchronize()
            stamps.append((time.perf_counter(), time.process_time()))
            if prof is not None and len(stamps) == job["warmup"] + 1:
                prof.start()
            elif prof is not None and len(stamps) == job["warmup"] + 2:
                prof.stop()

        def timed(start):
            for b in make(start):
                stamp()
                yield b

        total = job["warmup"] + job["steps"]
        log_every = job.get("log_every", 10**9)
        settings = LoopSettings(steps=total, checkpoint_every=10**9, validate_every=0, log_every=log_every,
                                amp=job["amp"], seed=0, **{k: cfg["train"][k] for k in ("lr", "grad_clip")})
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        Trainer(task, timed, settings, os.path.join(tmp, "run"), info).fit()
        stamp()   # the end of the last step (the trainer asks for no further batch)
        losses = []
        if job.get("log_every"):
            import csv

            with open(os.path.join(tmp, "run", "train_log.csv")) as f:
                losses = [(int(r["step"]), r["metric"], float(r["value"])) for r in csv.DictReader(f)]
    timed_stamps = stamps[job["warmup"]: job["warmup"] + job["steps"] + 1]
    step_times = [b[0] - a[0] for a, b in zip(timed_stamps, timed_stamps[1:])]
    mean = sum(step_times) / len(step_times)
    cpu = (timed_stamps[-1][1] - timed_stamps[0][1]) / len(step_times)
    res = {"steps_per_s": 1.0 / mean, "s_per_step": mean, "min_s_per_step": min(step_times),
           "cpu_s_per_step": cpu, "audio_s_per_s": job["segment_seconds"] / mean,
           "trainable_parameters": trainable, "peak_rss_mb": _rss_mb(),
           "scan": resolve_backend(cfg["model"]["regression"].get("scan_backend", "auto"), device),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}
    if prof is not None:
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows) or 1.0
        res["profile_top"] = [{"op": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6, "calls": e.count,
                               "share": e.self_cpu_time_total / total} for e in rows[:job["profile_ops"]]]
        res["profile_total_cpu_s"] = total / 1e6
    if losses:
        res["train_log"] = losses
    if device.type == "cuda":
        from use_repro.models.mamba import fused_available

        res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        res["fused_kernel"] = bool(fused_available())
    return res


JOB_TIMEOUT = [None]   # seconds one measurement may take (--job-timeout); None: no limit


def run_job(job: dict) -> dict:
    """Run `job` in a fresh process. job["wait_policy"]: OMP_WAIT_POLICY for it ("default":
    unset, libgomp's own spin-then-sleep); without the key the caller's environment is kept."""
    env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"]), "MKL_NUM_THREADS": str(job["threads"])}
    if job.get("wait_policy") == "default":
        env.pop("OMP_WAIT_POLICY", None)
    elif job.get("wait_policy"):
        env["OMP_WAIT_POLICY"] = job["wait_policy"]
    try:
        r = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True,
                           text=True, env=env, timeout=JOB_TIMEOUT[0])
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {JOB_TIMEOUT[0]:g} s (--job-timeout)"}
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(results: dict, where: str, stages, base: dict) -> None:
    """Run each stage at 16 and 48 kHz in its own CPU process; print a line and keep the numbers
    (the GPU section prints its own: `section_gpu`)."""
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
                    f"{r['audio_s_per_s']:5.2f} s of audio/s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                    f"{r['trainable_parameters']:,} trainable parameters")
            print(line)


# Before/after of issue 15 on the CPU: how `use-repro train` ran before (the pure-PyTorch scan,
# OMP_WAIT_POLICY=PASSIVE set by use_repro.cli), the torch scan with libgomp's default waiting
# (the wait policy's share), the compiled scan with either policy (use_repro.cli now picks PASSIVE
# only on a machine busier than its cores), and "after": the compiled scan, default waiting. Extra variants for the
# paper model: without the BiMamba layers' recomputation in the backward pass (memory for time).
VARIANTS = (
    {"name": "before: torch scan, PASSIVE", "scan_backend": "torch", "wait_policy": "PASSIVE"},
    {"name": "torch scan, default wait", "scan_backend": "torch", "wait_policy": "default", "threads_min": 2,
     "models": ("mini",)},
    {"name": "compiled scan, PASSIVE", "scan_backend": "cpp", "wait_policy": "PASSIVE", "threads_min": 2},
    {"name": "after: compiled scan", "scan_backend": "cpp", "wait_policy": "default"},
    {"name": "after, no recompute", "scan_backend": "cpp", "wait_policy": "default", "mamba_checkpoint": False,
     "models": ("paper",)},
)


def backend_models(args) -> list[dict]:
    """The mini model on its profile's crops, and the paper-size model (the gpu profile's
    30-block regression model, on the CPU) on short crops, one utterance per step."""
    from use_repro.config import load_config

    mini_seg = float(load_config("mini")["train"]["segment_seconds"])
    return [{"model": "mini", "profile": "mini", "segment_seconds": mini_seg, "steps": args.steps,
             "warmup": args.warmup},
            {"model": "paper", "profile": "gpu", "segment_seconds": args.paper_seconds,
             "steps": args.paper_steps, "warmup": 1}]


def _job(model: dict, variant: dict, threads: int, **extra) -> dict:
    job = {"stage": "regression", "fs": 16000, "device": "cpu", "amp": False, "threads": threads,
           "utterance_seconds": model["segment_seconds"] + 0.5,
           **{k: model[k] for k in ("profile", "segment_seconds", "steps", "warmup")},
           **{k: variant[k] for k in ("scan_backend", "wait_policy", "mamba_checkpoint") if k in variant}}
    return {**job, **extra}


def section_backends(results: dict, args) -> None:
    """Regression training step (forward, backward, AdamW, clipping) per variant, model and
    thread count, each in its own process, one after the other."""
    print(f"\n== training step before/after (16 kHz, regression, one utterance per step; "
          f"load average {_load()}) ==")
    print(f"   {'model':<6} {'thr':>3} {'variant':<28} {'s/step':>8} {'steps/s':>8} {'s per s audio':>13} "
          f"{'CPU s/step':>10} {'peak RSS MB':>11} {'vs before':>9}   load avg")
    for model in backend_models(args):
        for threads in args.thread_counts:
            before = None
            for v in VARIANTS:
                if threads < v.get("threads_min", 1) or model["model"] not in v.get("models", (model["model"],)):
                    continue
                r = run_job(_job(model, v, threads))
                results[f"backends_{model['model']}_{threads}t_{v['name']}"] = {**r, **model, "threads": threads}
                head = f"   {model['model']:<6} {threads:>3} {v['name']:<28}"
                if "error" in r:
                    print(f"{head} failed: {r['error']}")
                    continue
                before = r["s_per_step"] if before is None else before
                print(f"{head} {r['s_per_step']:>8.3f} {r['steps_per_s']:>8.3f} "
                      f"{r['s_per_step'] / model['segment_seconds']:>13.3f} {r['cpu_s_per_step']:>10.3f} "
                      f"{r['peak_rss_mb']:>11.0f} {before / r['s_per_step']:>8.2f}x   {_load()}")


def section_profile(results: dict, args) -> None:
    """torch.profiler of one training step (after the warm-up) of each model and scan: top ops by
    self CPU time."""
    for model in backend_models(args):
        for v in (VARIANTS[0], VARIANTS[3]):
            if v["scan_backend"] == "torch" and model["model"] not in args.profile_torch:
                continue
            r = run_job(_job(model, v, args.threads, profile_ops=args.profile_top, steps=1))
            results[f"profile_{model['model']}_{v['scan_backend']}"] = r
            print(f"\n== profile: {model['model']} model, {v['name']}, {args.threads} threads, "
                  f"{model['segment_seconds']:g} s crop (load average {_load()}) ==")
            if "error" in r:
                print(f"   failed: {r['error']}")
                continue
            print(f"   step {r['s_per_step']:.3f} s wall; profiled self CPU total {r['profile_total_cpu_s']:.3f} s")
            for e in r["profile_top"]:
                print(f"   {e['share']:6.1%} {e['self_cpu_s']:8.3f} s {e['calls']:>7} calls  {e['op']}")


GPU_VARIANTS = (
    {"name": "fused scan (mamba_ssm)", "scan_backend": "fused", "mamba_checkpoint": True},
    {"name": "torch scan, recompute", "scan_backend": "torch", "mamba_checkpoint": True},
    {"name": "torch scan, no recompute", "scan_backend": "torch", "mamba_checkpoint": False},
)


def section_gpu(results: dict, args) -> None:
    """The gpu profile's paper-size models on long crops, bf16 autocast, one utterance per step:
    each scan variant and stage in its own process (peak GPU memory is its own), then a short
    regression run with its training-loss log."""
    import torch

    from use_repro.models.mamba import fused_available

    name = torch.cuda.get_device_name(0)
    print(f"== gpu profile (paper models) on {name}, {args.gpu_seconds:g} s crops, bf16 autocast, "
          f"torch {torch.__version__} ==")
    results["gpu_device"] = name
    results["gpu_torch"] = torch.__version__
    base = {"threads": args.threads, "steps": args.gpu_steps, "warmup": args.warmup, "profile": "gpu",
            "device": "cuda", "segment_seconds": args.gpu_seconds, "utterance_seconds": args.gpu_seconds + 0.5,
            "amp": True}
    for v in GPU_VARIANTS:
        if args.gpu_variants and v["name"] not in args.gpu_variants and v["scan_backend"] != "fused":
            continue
        if v["scan_backend"] == "fused" and not fused_available():
            print(f"   {v['name']}: not measured (mamba_ssm does not import on this machine)")
            results[f"gpu_{v['name']}"] = "mamba_ssm not importable"
            continue
        for stage in args.gpu_stages:
            for fs in args.gpu_rates:
                r = run_job({**base, **{k: v[k] for k in ("scan_backend", "mamba_checkpoint")},
                             "stage": stage, "fs": fs})
                results[f"gpu_{stage}_{fs // 1000}k_{v['name']}"] = r
                head = f"   {v['name']:<26} {stage:>10} {fs / 1000:g} kHz:"
                if "error" in r:
                    print(f"{head} failed: {r['error']}")
                    continue
                print(f"{head} {r['steps_per_s']:6.3f} steps/s ({r['s_per_step']:.3f} s/step, best "
                      f"{r['min_s_per_step']:.3f}), {r['audio_s_per_s']:6.2f} s of audio/s, peak GPU "
                      f"{r['peak_gpu_mb'] / 1024:.1f} GiB, {r['trainable_parameters']:,} trainable parameters")
    if args.gpu_run_steps:
        v = GPU_VARIANTS[0] if fused_available() else GPU_VARIANTS[1]
        fs = args.gpu_run_rate or args.gpu_rates[-1]
        seconds = args.gpu_run_seconds or args.gpu_seconds
        r = run_job({**base, **{k: v[k] for k in ("scan_backend", "mamba_checkpoint")}, "stage": "regression",
                     "fs": fs, "steps": args.gpu_run_steps, "warmup": 1, "log_every": 4,
                     "segment_seconds": seconds, "utterance_seconds": seconds + 0.5})
        results["gpu_short_run"] = r
        print(f"\n== gpu short run: regression, {v['name']}, {args.gpu_run_steps + 1} steps of "
              f"{seconds:g} s at {fs / 1000:g} kHz ==")
        if "error" in r:
            print(f"   failed: {r['error']}")
        else:
            print(f"   {r['s_per_step']:.3f} s/step, peak GPU {r['peak_gpu_mb'] / 1024:.1f} GiB")
            for step, metric, value in r["train_log"]:
                if metric in ("loss", "total", "magnitude"):
                    print(f"   step {step:>4} {metric:<10} {value:.4f}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="sections to run (default: all)")
    p.add_argument("--thread-counts", type=int, nargs="+", default=[1, 2],
                   help="thread counts of the `backends` section")
    p.add_argument("--paper-seconds", type=float, default=0.5,
                   help="crop length of the paper-size model in `backends`/`profile` (~4 GB per s with "
                        "the compiled scan, ~12 GB per s with the torch scan)")
    p.add_argument("--paper-steps", type=int, default=2, help="timed steps of the paper-size model")
    p.add_argument("--profile-top", type=int, default=12, help="ops listed per profile")
    p.add_argument("--profile-torch", nargs="*", default=["mini", "paper"], choices=("mini", "paper"),
                   help="models also profiled with the torch scan (the paper model's step takes minutes)")
    p.add_argument("--gpu-seconds", type=float, default=10.0, help="crop length of the `gpu` section")
    p.add_argument("--gpu-rates", type=int, nargs="+", default=[48000], help="sampling rates of the `gpu` section")
    p.add_argument("--gpu-steps", type=int, default=5, help="timed steps per `gpu` measurement")
    p.add_argument("--gpu-run-steps", type=int, default=100,
                   help="steps of the `gpu` section's short regression run (0: none)")
    p.add_argument("--gpu-variants", nargs="*", help="scan variants of the `gpu` section by name (default: all)")
    p.add_argument("--gpu-stages", nargs="+", default=["regression", "gan"], choices=("regression", "gan"))
    p.add_argument("--gpu-run-seconds", type=float, help="crop length of the short run (default: --gpu-seconds)")
    p.add_argument("--gpu-run-rate", type=int, help="rate of the short run (default: the last of --gpu-rates)")
    p.add_argument("--job-timeout", type=float, help="stop a measurement after this many seconds "
                   "(it is reported as failed); default: no limit")
    p.add_argument("--out", help="also write the results as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    import torch

    JOB_TIMEOUT[0] = args.job_timeout
    sys.stdout.reconfigure(line_buffering=True)  # progress lines show up in logs as they come
    results: dict = {"load_average_before": os.getloadavg(), "threads": args.threads}
    common = {"threads": args.threads, "steps": args.steps, "warmup": args.warmup}
    if "cpu" in args.only:
        from use_repro.config import load_config

        seg = float(load_config("mini")["train"]["segment_seconds"])
        print(f"== mini profile on {args.threads} CPU threads, {seg:g} s crops "
              f"(load average {os.getloadavg()[0]:.2f}) ==")
        measure(results, "cpu", ("regression", "gan", "finetune"),
                {**common, "profile": "mini", "device": "cpu", "segment_seconds": seg,
                 "utterance_seconds": seg + 1.0, "amp": False})
    if "backends" in args.only:
        section_backends(results, args)
    if "profile" in args.only:
        section_profile(results, args)
    if "gpu" in args.only:
        if not torch.cuda.is_available():
            print("== gpu: skipped (no CUDA device) ==")
            results["gpu"] = "skipped: no CUDA device"
        else:
            section_gpu(results, args)
    results["load_average_after"] = os.getloadavg()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
