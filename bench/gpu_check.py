"""The GPU check of issue 23: one call, about 6 minutes of GPU time, one JSON.

    python bench/gpu_check.py --out gpu_check.json [--mamba-sdist mamba_ssm-2.2.4.tar.gz]
                              [--budget-s 360] [--build-timeout-s 240] [--dry-run]

Sections, in order (each prints one line per result, or one line saying why it is skipped):

1. ``environment``  GPU, torch, triton, nvcc.
2. ``mamba_build``  with ``--mamba-sdist FILE`` (mamba-ssm's source package, carried as a file:
   it has no wheel on the registries): ``pip install --no-deps --no-build-isolation FILE`` with
   ``MAMBA_FORCE_BUILD=TRUE TORCH_CUDA_ARCH_LIST=9.0``, stopped (the whole process group) after
   ``--build-timeout-s`` (240 s), in which case the fused kernel is left out of what follows.
3. ``parity``       tests/models/test_scan_triton.py compiled on CUDA (pytest, TRITON_INTERPRET
   unset): the Triton scan against the reference, output and all eight gradients.
4. ``scan``         the selective scan at the paper model's shapes (the ``gpu`` profile's
   30-block USEMamba, 10 s at 48 kHz: the time pass is 481 sequences x L 501, the frequency pass
   501 sequences x L 481, d_inner 256, d_state 16), forward and forward + backward, for the
   torch scan, the Triton scan and mamba_ssm's fused kernel (each when it runs here).
5. ``steps``        one 30-block regression step and one GAN step (two-stage model, multi-band
   discriminator) on a 10 s, 48 kHz crop with the ``gpu`` profile's settings (AdamW, bf16
   autocast, recomputation per Mamba pair), the scan ``auto`` picks: seconds (after a first,
   compiling step) and peak GPU memory.
6. ``run50``        50 regression steps in a row: seconds per step (stopped at the budget).

The sections after the build share ``--budget-s`` (360 s, build included): a section that would
start after the budget is spent is skipped and says so. Without CUDA (or with ``--dry-run``)
every section prints that it is skipped, the JSON records it, and the exit status is 0.
Run from the repository root on the GPU machine; it imports the package from ``src/``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

SECTIONS = ("environment", "mamba_build", "parity", "scan", "steps", "run50")
FS = 48000
SECONDS = 10.0
PROFILE = "gpu"      # whose model and training settings the steps use
DEVICE = "cuda"      # the tests run the step sections on "cpu" with the tiny profile


class Check:
    """The results, the clock and the printing of one run."""

    def __init__(self, budget_s: float):
        self.t0 = time.monotonic()
        self.budget_s = budget_s
        self.results: dict = {}

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def skip(self, section: str, reason: str) -> None:
        print(f"[{section}] skipped: {reason}", flush=True)
        self.results[section] = {"status": "skipped", "reason": reason}

    def done(self, section: str, data: dict, status: str = "ok") -> None:
        self.results[section] = {"status": status, **data}

    def say(self, section: str, text: str) -> None:
        print(f"[{section}] {text}", flush=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_limited(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int | None, str, float]:
    """(exit status or None on timeout, the output's tail, seconds); on timeout the whole process
    group is killed (pip's compiler children too)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
        return proc.returncode, out[-3000:], time.monotonic() - t0
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        return None, (out or "")[-3000:], time.monotonic() - t0


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------

def section_environment(chk: Check, cuda: bool) -> None:
    import torch

    from use_repro.models import scan_triton

    data = {"torch": torch.__version__, "python": platform.python_version(),
            "triton": scan_triton.version() or f"not importable ({scan_triton.unavailable_reason()})",
            "nvcc": shutil.which("nvcc") or "", "cuda": bool(cuda)}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        data.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    torch_cuda=torch.version.cuda)
    chk.done("environment", data)
    chk.say("environment", ", ".join(f"{k} {v}" for k, v in data.items()))


def section_build(chk: Check, cuda: bool, sdist: str | None, timeout: float) -> None:
    name = "mamba_build"
    if not sdist:
        return chk.skip(name, "no --mamba-sdist given (mamba_ssm is measured only if it already imports)")
    if not cuda:
        return chk.skip(name, "no CUDA device (dry run): mamba-ssm's CUDA build not attempted")
    if not os.path.exists(sdist):
        return chk.skip(name, f"{sdist}: no such file")
    if not (shutil.which("nvcc") or os.environ.get("CUDA_HOME")):
        return chk.skip(name, "no nvcc on PATH and no CUDA_HOME: cannot compile mamba-ssm")
    env = {**os.environ, "MAMBA_FORCE_BUILD": "TRUE", "TORCH_CUDA_ARCH_LIST": "9.0",
           "MAX_JOBS": str(os.cpu_count() or 4)}
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", sdist]
    chk.say(name, f"building {os.path.basename(sdist)} (MAMBA_FORCE_BUILD=TRUE, TORCH_CUDA_ARCH_LIST=9.0, "
                  f"limit {timeout:.0f} s)")
    rc, tail, secs = run_limited(cmd, timeout, env)
    if rc is None:
        chk.done(name, {"seconds": round(secs, 1), "reason": f"build exceeded {timeout:.0f} s: stopped",
                        "tail": tail[-800:]}, status="skipped")
        return chk.say(name, f"skipped: the build exceeded {timeout:.0f} s and was stopped; no fused kernel")
    if rc != 0:
        chk.done(name, {"seconds": round(secs, 1), "exit": rc, "tail": tail[-1500:]}, status="error")
        return chk.say(name, f"FAILED after {secs:.0f} s (exit {rc}): {tail.strip().splitlines()[-1:]}")
    import importlib

    from use_repro.models import mamba

    importlib.invalidate_caches()
    mamba._fused_scan_fn.cache_clear()
    ok = mamba.fused_available()
    chk.done(name, {"seconds": round(secs, 1), "imports": ok}, status="ok" if ok else "error")
    chk.say(name, f"built in {secs:.0f} s; mamba_ssm's selective scan {'imports' if ok else 'does NOT import'}")


def section_parity(chk: Check, cuda: bool) -> None:
    name = "parity"
    if not cuda:
        return chk.skip(name, "no CUDA device (dry run): the CPU test suite runs these tests in Triton's "
                              "interpreter instead")
    if chk.left() < 60:
        return chk.skip(name, f"budget spent ({chk.left():.0f} s left)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/models/test_scan_triton.py"]
    rc, tail, secs = run_limited(cmd, min(180.0, chk.left()), {**env, "PYTHONPATH": os.path.join(REPO, "src")})
    summary = tail.strip().splitlines()[-1] if tail.strip() else ""
    status = "ok" if rc == 0 else ("skipped" if rc is None else "error")
    chk.done(name, {"seconds": round(secs, 1), "exit": rc, "summary": summary,
                    **({} if rc == 0 else {"tail": tail[-2000:]})}, status=status)
    chk.say(name, f"{'timed out' if rc is None else summary} ({secs:.0f} s)")


def paper_shapes() -> dict:
    """The scan calls of the gpu profile's regression model on 10 s at 48 kHz (batch 1)."""
    from use_repro.config import load_config
    from use_repro.models.info import describe

    section = load_config(PROFILE)["model"]["regression"]
    info = describe({"regression": section}, "regression", SECONDS)["regression"]
    _, channels, frames, bins = info["shapes"][FS]["latent"]
    cfg = info["config"]
    return {"d_inner": channels * cfg["expand"], "d_state": cfg["d_state"], "blocks": cfg["num_blocks"],
            "time_pass": {"batch": bins, "length": frames}, "freq_pass": {"batch": frames, "length": bins}}


def section_scan(chk: Check, cuda: bool) -> None:
    name = "scan"
    if not cuda:
        return chk.skip(name, "no CUDA device (dry run): torch / Triton / mamba_ssm scan timings not measured")
    if chk.left() < 30:
        return chk.skip(name, f"budget spent ({chk.left():.0f} s left)")
    sys.path.insert(0, HERE)
    from models import gpu_scan_times  # bench/models.py

    shapes = paper_shapes()
    data = {"shapes": shapes}
    for pass_name in ("time_pass", "freq_pass"):
        s = shapes[pass_name]
        times = gpu_scan_times(batch=s["batch"], dim=shapes["d_inner"], state=shapes["d_state"],
                               lengths=(s["length"],), backward_max_length=s["length"], repeats=3)
        row = next(iter(times.values()))
        data[pass_name] = row
        cells = [f"{k[:-2]} {v * 1e3:.1f} ms" for k, v in row.items() if k.endswith("_s")]
        cells += [f"{k}: {v}" for k, v in row.items() if k.endswith("_error")]
        chk.say(name, f"{pass_name} ({s['batch']} seq x L {s['length']} x d_inner {shapes['d_inner']}): "
                      + ", ".join(cells))
    # per training step of the model: 2 passes x 2 directions x blocks, forward + backward
    per_step = {}
    for backend in ("torch", "triton", "fused"):
        key = f"{backend}_fwdbwd_s"
        if all(key in data[p] for p in ("time_pass", "freq_pass")):
            per_step[backend] = 2 * shapes["blocks"] * (data["time_pass"][key] + data["freq_pass"][key])
    data["scan_seconds_per_training_step"] = per_step
    chk.done(name, data)
    chk.say(name, "scan time per training step (4 scans per block x 30 blocks, fwd+bwd, no recomputation): "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in per_step.items()))


def _batch():
    import torch

    g = torch.Generator().manual_seed(0)
    n = int(FS * SECONDS)
    clean = 0.1 * torch.randn(n, generator=g)
    return {"noisy": clean + 0.05 * torch.randn(n, generator=g), "clean": clean, "fs": FS}


def _updater(task, cfg):
    import torch

    t = cfg["train"]
    opts = {k: torch.optim.AdamW([p for p in v.values() if p.requires_grad], lr=t["lr"], betas=tuple(t["betas"]),
                                 weight_decay=t["weight_decay"]) for k, v in task.param_groups().items()}

    def update(name, loss):
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in opts[name].param_groups for p in g["params"]], t["grad_clip"])
        opts[name].step()
        return True
    return update


def _timed_steps(task, update, batch, n, deadline=None):
    """Seconds of each of n steps (bf16 autocast as the gpu profile), stopping at the deadline."""
    import torch

    cuda = task.info.device.type == "cuda"
    times = []
    for _ in range(n):
        if deadline is not None and time.monotonic() > deadline:
            break
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            task.training_step(batch, update)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def _peak_gb(device) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else math.nan


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _regression_task(cfg, device):
    from use_repro.models.build import build_regression
    from use_repro.train import distributed as D
    from use_repro.train.regression import RegressionTask

    info = D.DistInfo(0, 1, 0, device)
    model = build_regression(cfg)
    model.train(True)
    return RegressionTask(model, cfg["train"]["loss_weights"], info, {}), model


def section_steps(chk: Check, cuda: bool) -> None:
    name = "steps"
    if not cuda:
        return chk.skip(name, "no CUDA device (dry run): the 30-block regression and GAN steps not measured")
    if chk.left() < 45:
        return chk.skip(name, f"budget spent ({chk.left():.0f} s left)")
    import torch

    from use_repro.config import load_config
    from use_repro.models.build import build_discriminator, build_generator
    from use_repro.models.generator import TwoStage
    from use_repro.models.mamba import backend_label, model_scan_backends
    from use_repro.train import distributed as D
    from use_repro.train.gan import AdversarialTask

    device = torch.device(DEVICE)
    cfg = load_config(PROFILE)
    batch = _batch()
    data = {}
    for kind in ("regression", "gan"):
        if chk.left() < 20:
            chk.skip(f"{name}.{kind}", f"budget spent ({chk.left():.0f} s left)")
            continue
        try:
            task, model = _regression_task(cfg, device)
            if kind == "gan":
                two = TwoStage.from_models(model, build_generator(cfg).to(device))
                two.train(True)
                task = AdversarialTask(two, build_discriminator(cfg), cfg["train"]["gan_loss_weights"],
                                       D.DistInfo(0, 1, 0, device), {}, cfg["train"]["gan_loss"])
                model = two
            scan = [backend_label(b) for b in model_scan_backends(model, device)]
            update = _updater(task, cfg)
            first = _timed_steps(task, update, batch, 1)
            _reset_peak(device)
            second = _timed_steps(task, update, batch, 1)
            peak = _peak_gb(device)
            data[kind] = {"scan": scan, "first_step_s": first[0], "step_s": second[0], "peak_gpu_gb": peak}
            chk.say(name, f"{kind} step, {SECONDS:g} s at {FS // 1000} kHz, {', '.join(scan)}: {second[0]:.2f} s "
                          f"(first, compiling: {first[0]:.2f} s), peak GPU memory {peak:.1f} GB")
        except Exception as err:  # out of memory, a kernel error: recorded, the run goes on
            data[kind] = {"error": f"{type(err).__name__}: {err}"[:500]}
            chk.say(name, f"{kind} step FAILED: {type(err).__name__}: {str(err)[:200]}")
        finally:
            task = model = update = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
    chk.done(name, data, status="ok" if all("error" not in v for v in data.values()) else "error")


def section_run50(chk: Check, cuda: bool, steps: int = 50) -> None:
    name = "run50"
    if not cuda:
        return chk.skip(name, f"no CUDA device (dry run): the {steps}-step regression run not measured")
    if chk.left() < 30:
        return chk.skip(name, f"budget spent ({chk.left():.0f} s left)")
    import torch

    from use_repro.config import load_config

    device = torch.device(DEVICE)
    cfg = load_config(PROFILE)
    try:
        task, model = _regression_task(cfg, device)
        update = _updater(task, cfg)
        batch = _batch()
        _reset_peak(device)
        times = _timed_steps(task, update, batch, steps, deadline=chk.t0 + chk.budget_s)
    except Exception as err:
        chk.done(name, {"error": f"{type(err).__name__}: {err}"[:500]}, status="error")
        return chk.say(name, f"FAILED: {type(err).__name__}: {str(err)[:200]}")
    rest = times[1:] or times
    data = {"steps_done": len(times), "steps_asked": steps, "total_s": sum(times),
            "first_step_s": times[0] if times else math.nan,
            "mean_step_s_after_first": sum(rest) / max(len(rest), 1),
            "peak_gpu_gb": _peak_gb(device)}
    chk.done(name, data, status="ok" if len(times) == steps else "partial")
    chk.say(name, f"{len(times)}/{steps} regression steps in {sum(times):.1f} s: "
                  f"{data['mean_step_s_after_first']:.2f} s/step after the first"
                  + ("" if len(times) == steps else " (stopped at the budget)"))


# --------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="write the results as JSON here")
    p.add_argument("--mamba-sdist", help="mamba-ssm's source package (.tar.gz) to build first")
    p.add_argument("--budget-s", type=float, default=360.0, help="GPU seconds for the whole check (default 360)")
    p.add_argument("--build-timeout-s", type=float, default=240.0, help="stop the mamba-ssm build after this")
    p.add_argument("--dry-run", action="store_true", help="skip every GPU section even with CUDA present")
    args = p.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available() and not args.dry_run
    chk = Check(args.budget_s)
    if not cuda:
        print("gpu_check: no CUDA device" + (" used (--dry-run)" if args.dry_run else "")
              + ": dry run, every GPU section is skipped", flush=True)
    section_environment(chk, cuda)
    section_build(chk, cuda, args.mamba_sdist, min(args.build_timeout_s, max(chk.left() - 120, 1)))
    section_parity(chk, cuda)
    section_scan(chk, cuda)
    section_steps(chk, cuda)
    section_run50(chk, cuda)
    chk.results["dry_run"] = not cuda
    chk.results["wall_s"] = round(time.monotonic() - chk.t0, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(chk.results, f, indent=1, default=str)
        f.write("\n")
    print(f"gpu_check: wrote {args.out} ({chk.results['wall_s']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
