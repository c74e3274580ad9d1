"""Benchmark of the models: training and inference cost, the parallel scan, peak memory.

    python bench/models.py [--threads 2] [--seconds 1.0] [--only SECTION ...] [--before REV] [--out FILE.json]

Sections (all by default):

1. ``train``  forward + backward (+ AdamW step) seconds per second of 16 kHz audio, for the
   paper's regression model (30 blocks, 64 channels; 9,607,747 parameters, the released
   USEMamba) and the ``mini`` profile's, on ``--threads`` CPU threads, with the process's peak
   resident memory.
2. ``infer``  inference real-time factor (STFT -> model -> iSTFT, no gradients, the fused CPU
   inference kernels as ``use-repro enhance`` runs them) of the same two models at 16 kHz, and
   of the paper model at 48 kHz; then (2b) the paper model's enhance forward before / after the
   fused inference kernels (``models/mamba_infer.py``), interleaved in one process at 16 kHz
   (2 x --seconds) and 48 kHz (--seconds), with the largest output difference; and (2c, with
   ``--before REV``) the same forward of git revision REV (a temporary worktree, its own
   extension build) beside this checkout's, alternating subprocesses: the speed-up of a change
   as a user sees it.
3. ``scan``   the pure-PyTorch parallel scan and the compiled C++ scan (when built:
   ``use_repro.models.scan_cpu``) against the sequential reference (a Python loop
   over time steps, mamba_ssm's ``selective_scan_ref`` semantics) at L = 100, 400, 1600, for a
   small layer (2 sequences x d_inner 64) and for one the size of the paper model's layers
   (8 sequences x d_inner 256), both d_state 16; forward, and forward + backward at L = 400.
   Also forward + backward at the shapes inside the paper model on 1 s of 16 kHz audio (the
   frequency pass: 51 sequences x L 161; the time pass: 161 sequences x L 51). The three are
   timed interleaved in one process; the goal is >= 10x at L >= 400.
   Then the Triton scan (``use_repro.models.scan_triton``): on the CPU only its parity with the
   reference, run in Triton's interpreter (``TRITON_INTERPRET=1``, a subprocess), no timings
   (the interpreter is not the kernel's speed); its timings are section 4's.
4. ``gpu``    with CUDA: the torch scan, the Triton scan and the fused ``mamba_ssm`` kernel (each
   when importable) side by side at 64 sequences x d_inner 256, forward and forward + backward,
   and the paper model on a 10 s, 48 kHz utterance (inference and forward + backward) with peak
   GPU memory. Skipped (and said so) without CUDA.

Every model measurement runs in a fresh subprocess, so "peak memory" (ru_maxrss) is that
measurement's own. It is the resident size, which on glibc includes heap space freed but kept by
malloc: the CPU scan frees many step-sized buffers, so for the 30-block model RSS runs ~4x the
live tensors (0.25 s of 16 kHz: 3.9 GB RSS, 0.94 GB with MALLOC_MMAP_THRESHOLD_=131072, which
makes RSS track live memory but the run ~3x slower). The machine may be shared: wall-clock
times are printed with the load average and the process CPU time beside them (CPU time /
threads ~ the wall time on idle cores); on an oversubscribed machine use --threads 1, since
OpenMP's spinning threads make 2-thread runs of small ops many times slower.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

PAPER = {"num_blocks": 30, "channels": 64, "d_state": 16, "d_conv": 4, "expand": 4, "dense_depth": 4}
SECTIONS = ("train", "infer", "scan", "gpu")


def mini_sizes() -> dict:
    from use_repro.config import load_config

    return dict(load_config("mini")["model"]["regression"])


# --------------------------------------------------------------------------------------------
# workers (run in a subprocess; print one JSON line)
# --------------------------------------------------------------------------------------------

def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _clock():
    return time.perf_counter(), time.process_time()


def worker_model(job: dict) -> dict:
    import torch

    from use_repro.audio.stft import mag_pha_istft, mag_pha_stft
    from use_repro.models.mamba_infer import fused_inference
    from use_repro.models.usemamba import USEMamba, count_parameters
    from use_repro.train.losses import RECONSTRUCTION, reconstruction_losses_spec, weighted_sum

    torch.set_num_threads(job["threads"])
    device = torch.device(job.get("device", "cpu"))
    torch.manual_seed(0)
    model = USEMamba(job["sizes"]).to(device)
    fs, seconds = job["fs"], job["seconds"]
    x = 0.1 * torch.randn(1, int(fs * seconds), device=device)
    base_rss = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    weights = {"magnitude": 0.9, "phase": 0.3, "complex": 0.1, "time": 0.2, "consistency": 0.1}
    opt = torch.optim.AdamW(model.parameters(), 2e-4) if job["mode"] == "train" else None

    def once():
        if job["mode"] == "infer":
            model.eval()
            with torch.no_grad(), fused_inference():      # as use-repro enhance runs it
                y = model.enhance_waveform(x, fs)
            return y
        model.train()
        mag_c, pha, com = mag_pha_stft(x, fs)
        out = model(mag_c, pha)
        wav = mag_pha_istft(out[0], out[1], fs, x.shape[-1])
        est = {"mag_c": out[0], "pha": out[1], "com": out[2], "wav": wav}
        ref = {"mag_c": mag_c, "pha": pha, "com": com, "wav": x}
        loss = weighted_sum(reconstruction_losses_spec(est, ref, fs, RECONSTRUCTION), weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    once()                                   # warm-up (allocator, kernels)
    sync()
    walls, cpus = [], []
    for _ in range(job["repeats"]):
        w0, c0 = _clock()
        once()
        sync()
        w1, c1 = _clock()
        walls.append(w1 - w0)
        cpus.append(c1 - c0)
    res = {"parameters": count_parameters(model), "wall_s": min(walls), "cpu_s": min(cpus),
           "peak_rss_mb": _rss_mb(), "rss_before_mb": base_rss}
    if device.type == "cuda":
        res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return res


def worker_infer_pair(job: dict) -> dict:
    """The enhancer's two CPU forwards of one model, interleaved on the same clip: `before`, the
    training forward under no_grad (what `use-repro enhance` ran until the fused inference
    kernels), and `after`, inside ``fused_inference`` (what it runs now). Best of `repeats`."""
    import torch

    from use_repro.models.mamba_infer import available, fused_inference
    from use_repro.models.usemamba import USEMamba

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    model = USEMamba(job["sizes"]).eval()
    fs, seconds = job["fs"], job["seconds"]
    x = 0.1 * torch.randn(1, int(fs * seconds))
    times = {"before": [], "after": []}
    outs = {}
    with torch.inference_mode():
        for rep in range(job["repeats"] + 1):         # the first round is the warm-up
            for mode in ("before", "after"):
                with fused_inference(mode == "after"):
                    w0, c0 = _clock()
                    outs[mode] = model.enhance_waveform(x, fs)
                    w1, c1 = _clock()
                if rep:
                    times[mode].append((w1 - w0, c1 - c0))
    res = {"fused_available": available(), "peak_rss_mb": _rss_mb(),
           "max_abs_diff": float((outs["after"] - outs["before"]).abs().max()),
           "max_abs_output": float(outs["before"].abs().max())}
    for mode, ts in times.items():
        res[f"{mode}_wall_s"] = min(t[0] for t in ts)
        res[f"{mode}_cpu_s"] = min(t[1] for t in ts)
    return res


def scan_inputs(batch, dim, state, length, device="cpu"):
    import torch

    g = torch.Generator().manual_seed(0)
    u = torch.randn(batch, dim, length, generator=g)
    delta = 0.5 * torch.randn(batch, dim, length, generator=g)
    A = -torch.arange(1, state + 1, dtype=torch.float32).repeat(dim, 1)
    B = torch.randn(batch, state, length, generator=g)
    C = torch.randn(batch, state, length, generator=g)
    D = torch.ones(dim)
    z = torch.randn(batch, dim, length, generator=g)
    bias = torch.full((dim,), -3.0)
    return [t.to(device) for t in (u, delta, A, B, C, D, z, bias)]


def worker_scan(job: dict) -> dict:
    import torch

    from use_repro.models.mamba import selective_scan_ref, selective_scan_torch
    from use_repro.models.scan_cpu import available, selective_scan_cpu

    torch.set_num_threads(job["threads"])
    xs = scan_inputs(job["batch"], job["dim"], job["state"], job["length"])
    backward = job.get("backward", False)
    if backward:
        xs = [t.requires_grad_(True) for t in xs]

    def timed(fn, repeats):
        def run():
            y = fn(*xs[:7], delta_bias=xs[7], delta_softplus=True)
            if backward:
                torch.autograd.grad(y.sum(), xs)
        run()
        walls, cpus = [], []
        for _ in range(repeats):
            w0, c0 = _clock()
            run()
            w1, c1 = _clock()
            walls.append(w1 - w0)
            cpus.append(c1 - c0)
        return min(walls), min(cpus)

    with torch.set_grad_enabled(backward):
        # interleaved, so load changes on a shared machine hit both alike
        ref_w, ref_c, tor_w, tor_c, cpp_w, cpp_c = [], [], [], [], [], []
        for _ in range(job["rounds"]):
            w, c = timed(selective_scan_ref, 1)
            ref_w.append(w), ref_c.append(c)
            w, c = timed(selective_scan_torch, 3)
            tor_w.append(w), tor_c.append(c)
            if available():   # the compiled scan (use_repro.models.scan_cpu), when built
                w, c = timed(selective_scan_cpu, 3)
                cpp_w.append(w), cpp_c.append(c)
    res = {"ref_wall_s": min(ref_w), "ref_cpu_s": min(ref_c), "torch_wall_s": min(tor_w),
           "torch_cpu_s": min(tor_c), "speedup_wall": min(ref_w) / min(tor_w),
           "speedup_cpu": min(ref_c) / min(tor_c), "peak_rss_mb": _rss_mb()}
    if cpp_w:
        res.update({"cpp_wall_s": min(cpp_w), "cpp_cpu_s": min(cpp_c),
                    "cpp_speedup_wall": min(ref_w) / min(cpp_w), "cpp_speedup_cpu": min(ref_c) / min(cpp_c),
                    "cpp_vs_torch_wall": min(tor_w) / min(cpp_w)})
    return res


def worker_triton_parity(job: dict) -> dict:
    """The Triton scan against the reference under TRITON_INTERPRET=1 (set by the driver before
    this process imports triton): the largest differences of the output and the 8 gradients."""
    import torch

    from use_repro.models import scan_triton
    from use_repro.models.mamba import selective_scan_ref

    if not scan_triton.available():
        return {"error": f"triton does not import ({scan_triton.unavailable_reason()})"}
    torch.set_num_threads(job["threads"])
    xs = [t.requires_grad_(True) for t in scan_inputs(job["batch"], job["dim"], job["state"], job["length"])]
    outs = []
    for fn in (selective_scan_ref, scan_triton.selective_scan_triton):
        ins = [t.detach().clone().requires_grad_(True) for t in xs]
        y = fn(*ins[:7], delta_bias=ins[7], delta_softplus=True)
        y.backward(torch.ones_like(y))
        outs.append([y.detach()] + [t.grad for t in ins])
    diffs = [float((a - b).abs().max()) for a, b in zip(*outs)]
    return {"triton": scan_triton.version(), "max_abs_diff_y": diffs[0], "max_abs_diff_grads": max(diffs[1:]),
            "chunk": scan_triton.default_chunk(job["length"])}


def gpu_scan_times(batch=64, dim=256, state=16, lengths=(100, 400, 1600, 6400), backward_max_length=1600,
                   repeats=5) -> dict:
    """Seconds per call of every scan available on this GPU (torch, triton, fused), forward and,
    up to ``backward_max_length``, forward + backward: ``{"L400": {"torch_fwd_s": ...}}``."""
    import torch

    from use_repro.models import scan_triton
    from use_repro.models.mamba import fused_available, selective_scan_fused, selective_scan_torch

    fns = [("torch", selective_scan_torch)]
    if scan_triton.available():
        fns.append(("triton", scan_triton.selective_scan_triton))
    if fused_available():
        fns.append(("fused", selective_scan_fused))
    out: dict = {}
    for length in lengths:
        row = {}
        for backward in (False, True):
            if backward and length > backward_max_length:
                continue
            xs = [t.requires_grad_(backward) for t in scan_inputs(batch, dim, state, length, device="cuda")]
            for name, fn in fns:
                def call():
                    with torch.set_grad_enabled(backward):
                        y = fn(*xs[:7], delta_bias=xs[7], delta_softplus=True)
                        if backward:
                            torch.autograd.grad(y.sum(), xs)
                try:
                    call()
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    for _ in range(repeats):
                        call()
                    torch.cuda.synchronize()
                    row[f"{name}_{'fwdbwd' if backward else 'fwd'}_s"] = (time.perf_counter() - t0) / repeats
                except Exception as err:  # e.g. out of memory: recorded, the others still run
                    row[f"{name}_{'fwdbwd' if backward else 'fwd'}_error"] = f"{type(err).__name__}: {err}"[:200]
                    torch.cuda.empty_cache()
        out[f"L{length}"] = row
    return out


def worker_gpu(job: dict) -> dict:
    import torch

    from use_repro.models import scan_triton
    from use_repro.models.mamba import fused_available

    out: dict = {"device": torch.cuda.get_device_name(0),
                 "triton": scan_triton.version() or f"not importable ({scan_triton.unavailable_reason()})",
                 "fused": "mamba_ssm" if fused_available() else "not importable: fused kernel not measured"}
    out["scan_64x256x16"] = gpu_scan_times()
    return out


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------

def run_worker(kind: str, job: dict, timeout: float = 3600, env: dict | None = None,
               repo: str = REPO) -> dict:
    """One measurement in a fresh subprocess: this file's worker `kind`, or that of the checkout
    `repo` (--before: the same script and package at another revision)."""
    cmd = [sys.executable, os.path.join(repo, "bench", "models.py"), "--worker", kind, json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=repo,
                          env=None if env is None else {**os.environ, **env})
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def section_train_infer(args, results: dict) -> None:
    mini = mini_sizes()
    models = [("paper", PAPER), ("mini", mini)]
    if "train" in args.only:
        print(f"\n1. forward + backward + AdamW step, 16 kHz, {args.seconds:g} s clip, {args.threads} thread(s)")
        print(f"   {'model':<6} {'params':>10} {'wall s/s audio':>15} {'cpu s/s audio':>14} {'peak RSS MB':>12}   load avg")
        for name, sizes in models:
            r = run_worker("model", {"sizes": sizes, "fs": 16000, "seconds": args.seconds, "mode": "train",
                                     "threads": args.threads, "repeats": 1 if name == "paper" else 3})
            results[f"train_{name}"] = r
            if "error" in r:
                print(f"   {name:<6} error: {r['error']}")
                continue
            print(f"   {name:<6} {r['parameters']:>10,} {r['wall_s'] / args.seconds:>15.2f} "
                  f"{r['cpu_s'] / args.seconds:>14.2f} {r['peak_rss_mb']:>12.0f}   {_load()}")
    if "infer" in args.only:
        print(f"\n2. inference (STFT, model, iSTFT; no gradients), {args.threads} thread(s)")
        print(f"   {'model':<6} {'fs':>6} {'RTF wall':>9} {'RTF cpu':>8} {'peak RSS MB':>12}   load avg")
        for name, sizes, fs, seconds in (("paper", PAPER, 16000, 2.0), ("mini", mini, 16000, 4.0),
                                         ("paper", PAPER, 48000, 1.0)):
            r = run_worker("model", {"sizes": sizes, "fs": fs, "seconds": seconds, "mode": "infer",
                                     "threads": args.threads, "repeats": 1 if name == "paper" else 2})
            results[f"infer_{name}_{fs}"] = r
            if "error" in r:
                print(f"   {name:<6} {fs:>6} error: {r['error']}")
                continue
            print(f"   {name:<6} {fs:>6} {r['wall_s'] / seconds:>9.3f} {r['cpu_s'] / seconds:>8.3f} "
                  f"{r['peak_rss_mb']:>12.0f}   {_load()}")


    if "infer" in args.only:
        print(f"\n2b. enhance's CPU forward of the paper model before / after the fused inference kernels "
              f"(models/mamba_infer.py), interleaved in one process, {args.threads} thread(s)")
        print(f"   {'fs':>6} {'s':>4} {'before RTF':>11} {'after RTF':>10} {'speed-up':>9} {'(cpu)':>7} "
              f"{'max |diff|':>11} {'max |y|':>8}   load avg")
        for fs, seconds in ((16000, args.seconds * 2), (48000, args.seconds)):
            r = run_worker("infer_pair", {"sizes": PAPER, "fs": fs, "seconds": seconds,
                                          "threads": args.threads, "repeats": 2})
            results[f"infer_pair_paper_{fs}"] = r
            if "error" in r:
                print(f"   {fs:>6} error: {r['error']}")
                continue
            if not r["fused_available"]:
                print(f"   {fs:>6} the fused inference kernels are not built here (see the log): both "
                      "columns are the training forward")
            print(f"   {fs:>6} {seconds:>4g} {r['before_wall_s'] / seconds:>11.2f} {r['after_wall_s'] / seconds:>10.2f} "
                  f"{r['before_wall_s'] / r['after_wall_s']:>8.2f}x {r['before_cpu_s'] / r['after_cpu_s']:>6.2f}x "
                  f"{r['max_abs_diff']:>11.2e} {r['max_abs_output']:>8.3f}   {_load()}")


    if "infer" in args.only and args.before:
        import tempfile

        print(f"\n2c. the paper model's inference as `use-repro enhance` runs it: revision {args.before} "
              f"(a temporary git worktree) vs this checkout, alternating, {args.threads} thread(s)")
        print(f"   {'fs':>6} {'s':>4} {'before RTF':>11} {'after RTF':>10} {'speed-up':>9} {'(cpu)':>7}   load avg")
        with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
            before_repo = os.path.join(tmp, "checkout")
            subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", "-q", before_repo, args.before],
                           check=True)
            try:
                for fs, seconds in ((16000, args.seconds * 2), (48000, args.seconds)):
                    job = {"sizes": PAPER, "fs": fs, "seconds": seconds, "mode": "infer",
                           "threads": args.threads, "repeats": 1}
                    runs = {"before": [], "after": []}
                    for _ in range(2):           # alternate, so a load change hits both alike
                        runs["before"].append(run_worker("model", job, repo=before_repo))
                        runs["after"].append(run_worker("model", job))
                    errors = [r["error"] for rs in runs.values() for r in rs if "error" in r]
                    if errors:
                        print(f"   {fs:>6} error: {errors[0]}")
                        continue
                    best = {k: min(rs, key=lambda r: r["wall_s"]) for k, rs in runs.items()}
                    results[f"infer_before_after_paper_{fs}"] = {**best, "before_rev": args.before}
                    b, a = best["before"], best["after"]
                    print(f"   {fs:>6} {seconds:>4g} {b['wall_s'] / seconds:>11.2f} {a['wall_s'] / seconds:>10.2f} "
                          f"{b['wall_s'] / a['wall_s']:>8.2f}x {b['cpu_s'] / a['cpu_s']:>6.2f}x   {_load()}")
            finally:
                subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", before_repo], check=False)


def section_scan(args, results: dict) -> None:
    print(f"\n3. selective scan: parallel torch and compiled C++ vs sequential reference, d_state 16, "
          f"{args.threads} thread(s)")
    print(f"   {'layer':<28} {'L':>5} {'pass':>8} {'ref ms':>9} {'torch ms':>9} {'speed-up':>9} {'(cpu)':>7} "
          f"{'C++ ms':>8} {'speed-up':>9} {'(cpu)':>7} {'C++/torch':>9}   load avg")
    cases = []
    for label, batch, dim in (("small: 2 seq x d_inner 64", 2, 64), ("paper: 8 seq x d_inner 256", 8, 256)):
        for length in (100, 400, 1600):
            cases.append((label, batch, dim, length, False))
        cases.append((label, batch, dim, 400, True))
    for label, batch, length in (("paper model 1 s, freq pass", 51, 161), ("paper model 1 s, time pass", 161, 51)):
        cases.append((label, batch, 256, length, True))
    for label, batch, dim, length, backward in cases:
        r = run_worker("scan", {"batch": batch, "dim": dim, "state": 16, "length": length,
                                "backward": backward, "threads": args.threads, "rounds": 2})
        key = f"scan_{batch}x{dim}_L{length}_{'fwdbwd' if backward else 'fwd'}"
        results[key] = r
        if "error" in r:
            print(f"   {label:<28} {length:>5} error: {r['error']}")
            continue
        line = (f"   {label:<28} {length:>5} {'fwd+bwd' if backward else 'fwd':>8} {r['ref_wall_s'] * 1e3:>9.1f} "
                f"{r['torch_wall_s'] * 1e3:>9.1f} {r['speedup_wall']:>8.1f}x {r['speedup_cpu']:>6.1f}x")
        if "cpp_wall_s" in r:
            line += (f" {r['cpp_wall_s'] * 1e3:>8.2f} {r['cpp_speedup_wall']:>8.1f}x {r['cpp_speedup_cpu']:>6.1f}x "
                     f"{r['cpp_vs_torch_wall']:>8.1f}x")
        else:
            line += "   (compiled scan unavailable)"
        print(f"{line}   {_load()}")
    job = {"batch": 2, "dim": 37, "state": 16, "length": 23, "threads": 1}
    r = run_worker("triton_parity", job, env={"TRITON_INTERPRET": "1"})
    results["triton_parity_interpreter"] = r
    if "error" in r:
        print(f"   Triton scan: {r['error']}")
    else:
        verdict = "parity" if max(r["max_abs_diff_y"], r["max_abs_diff_grads"]) < 1e-4 else "MISMATCH"
        print(f"   Triton scan (triton {r['triton']}, interpreter on CPU tensors; timed in section 4 on a GPU): "
              f"{job['batch']} seq x d_inner {job['dim']} x L {job['length']}, K {r['chunk']}: "
              f"max |y - ref| {r['max_abs_diff_y']:.1e}, max |grad - ref| {r['max_abs_diff_grads']:.1e} "
              f"(8 gradients) -> {verdict}")


def section_gpu(args, results: dict) -> None:
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    print("\n4. GPU")
    if not has_cuda:
        print("   no CUDA device: torch / Triton / fused scan timings and GPU measurements skipped")
        results["gpu"] = "skipped: no CUDA"
        return
    r = run_worker("gpu", {})
    results["gpu_scan"] = r
    if "error" in r:
        print(f"   scans: error: {r['error']}")
    else:
        print(f"   {r['device']}; triton: {r['triton']}; fused: {r['fused']}")
        print("   scan, 64 seq x d_inner 256 x d_state 16, ms per call (fwd / fwd+bwd)")
        for length, row in r["scan_64x256x16"].items():
            cells = [f"{name} {row.get(f'{name}_fwd_s', float('nan')) * 1e3:.2f}"
                     + (f" / {row[f'{name}_fwdbwd_s'] * 1e3:.2f}" if f"{name}_fwdbwd_s" in row else "")
                     for name in ("torch", "triton", "fused") if f"{name}_fwd_s" in row]
            errors = [f"{k}: {v}" for k, v in row.items() if k.endswith("_error")]
            print(f"   {length:>6}: " + ",  ".join(cells + errors))
    for mode in ("infer", "train"):
        m = run_worker("model", {"sizes": PAPER, "fs": 48000, "seconds": 10.0, "mode": mode,
                                 "threads": args.threads, "repeats": 3, "device": "cuda"})
        results[f"gpu_paper_48k_10s_{mode}"] = m
        if "error" in m:
            print(f"   paper model, 10 s at 48 kHz, {mode}: error: {m['error']}")
        else:
            print(f"   paper model, 10 s at 48 kHz, {mode}: {m['wall_s']:.3f} s (RTF {m['wall_s'] / 10:.4f}), "
                  f"peak GPU memory {m['peak_gpu_mb']:.0f} MB")


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, job = sys.argv[2], json.loads(sys.argv[3])
        fn = {"model": worker_model, "infer_pair": worker_infer_pair, "scan": worker_scan, "gpu": worker_gpu,
              "triton_parity": worker_triton_parity}[kind]
        print(json.dumps(fn(job)))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--seconds", type=float, default=1.0, help="clip length of the training measurement")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--out", help="also write the results as JSON here")
    p.add_argument("--before", metavar="REV",
                   help="infer section: also time the paper model's enhance forward of git revision REV "
                        "(e.g. the commit before a speed change) beside this checkout's, in one run")
    args = p.parse_args(argv)
    import torch

    print(f"use-repro model benchmark: torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"load average {_load()}")
    results: dict = {"threads": args.threads, "torch": torch.__version__}
    if {"train", "infer"} & set(args.only):
        section_train_infer(args, results)
    if "scan" in args.only:
        section_scan(args, results)
    if "gpu" in args.only:
        section_gpu(args, results)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
