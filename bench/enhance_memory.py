"""Peak memory of `use-repro enhance` on long files: whole files in memory (before) against the
streamed path (after), in one run.

    python bench/enhance_memory.py [--minutes 0.5 5 30] [--rate 48000] [--before REV]
                                   [--threads 1] [--chunk-seconds 30] [--out FILE.json]

For each length it writes one mono FLAC file at `--rate` (speech-like harmonics with noise,
generated block by block), then enhances it with `use-repro enhance` twice, each in a fresh
subprocess whose own peak resident size (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) is the
measurement:

- before: the package as it was at `--before` (default 91edbda, the last commit whose enhance
  read, enhanced and wrote whole files), extracted with `git archive` into a temporary folder;
- after: this checkout's `src/` (copied at the start).

The model is the `tiny` profile's regression model (2,399 parameters; seeded), so a 30-minute
file takes minutes, and the memory that does not depend on the file's length (torch, one chunk's
activations) is what a tiny model needs. Both runs use the same `--chunk-seconds` (30, the CLI's
default) and 1 s overlaps, so their outputs must be equal: the largest absolute sample
difference is printed beside each pair. The machine may be shared: the load average is printed
with the timings.

Measured at eea0093 against 91edbda (2 CPUs, load average 2.5 at the start, 1.2 at the end; peak
RSS in MB): 30 s 1090 -> 985, 5 min 1599 -> 1364, 30 min 2992 -> 1425 (0.48x); from 30 s to 30 min
the whole-file path grew 2.75x, the streamed one 1.45x, all of it by the third or so chunk
(glibc's heap, fragmented by the model's 4-32 MB activations); outputs identical (max |diff| 0).

Measured at c5d2bf7 (glibc's malloc thresholds fixed, `use_repro.enhancer.bound_c_heap`) against
fad10aa, `python bench/enhance_memory.py --before fad10aa --minutes 0.5 5 30 --threads 1`
(2 CPUs shared with other jobs, load average 1.7 at the start, 3.1 at the end; peak RSS in MB,
CPU s): 30 s 1027 -> 1032 (4.0 -> 4.1 s), 5 min 1237 -> 1046 (38.4 -> 45.9 s), 30 min
1262 -> 1051 (222.7 -> 259.4 s); 30 min / 30 s 1.23 -> 1.02 (1.45 in the run above: the default
heap's growth varies from run to run); outputs identical (max |diff| 0). The price is ~16% more
CPU time on long files (system time: page faults of the 4-32 MB blocks, now mapped afresh for
every chunk instead of reused from the heap); a one-chunk file pays ~2%.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SRC = os.path.join(REPO, "src")
sys.path.insert(0, SRC)

BEFORE = "91edbda"  # the last commit whose enhance held whole files

WORKER = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[2]))
from use_repro.cli import main
t0, c0 = time.time(), time.process_time()
rc = main(sys.argv[3:])
print("RESULT " + json.dumps({"rc": rc, "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0,
                              "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_signal(path: str, seconds: float, fs: int, block_s: float = 10.0) -> None:
    """A speech-like mono FLAC (harmonics of a gliding f0, syllable-rate envelope, noise), block by block."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    n = int(round(seconds * fs))
    with sf.SoundFile(path, "w", samplerate=fs, channels=1, subtype="PCM_16", format="FLAC") as f:
        for start in range(0, n, int(block_s * fs)):
            t = np.arange(start, min(n, start + int(block_s * fs))) / fs
            f0 = 140 + 30 * np.sin(2 * np.pi * 0.3 * t)
            phase = 2 * np.pi * np.cumsum(f0) / fs + 2 * np.pi * 140 * start / fs
            x = sum(0.2 / k * np.sin(k * phase) for k in range(1, 12))
            x = x * (0.55 + 0.45 * np.sin(2 * np.pi * 3.5 * t)) + 0.02 * rng.standard_normal(t.size)
            f.write(x.astype(np.float32))


def make_checkpoint(path: str) -> None:
    import torch

    from use_repro.config import load_config
    from use_repro.models.build import build_regression
    from use_repro.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_regression(load_config("tiny"))
    with torch.no_grad():  # an untrained model may start as the identity: make it do something
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_checkpoint(path, model)


def extract(rev: str, dest: str) -> str:
    """`src/` of commit `rev` under dest (git archive: the repository is only read)."""
    data = subprocess.run(["git", "-C", REPO, "archive", rev, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return os.path.join(dest, "src")


def measure(src: str, threads: int, args: list[str], log: str) -> dict:
    env = dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS=str(threads))
    with open(log, "w") as err:
        p = subprocess.run([sys.executable, "-c", WORKER, src, str(threads), *args], stdout=subprocess.PIPE,
                           stderr=err, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines or json.loads(lines[-1][7:])["rc"]:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"enhance failed (exit {p.returncode}); {log}:\n{tail}")
    return json.loads(lines[-1][7:])


def max_diff(a: str, b: str, block: int = 1 << 20) -> float:
    import soundfile as sf

    worst = 0.0
    with sf.SoundFile(a) as fa, sf.SoundFile(b) as fb:
        if (fa.frames, fa.samplerate) != (fb.frames, fb.samplerate):
            return float("inf")
        while True:
            x, y = fa.read(block, dtype="float32"), fb.read(block, dtype="float32")
            if not len(x):
                return worst
            worst = max(worst, float(np.abs(x - y).max()))


def label(minutes: float) -> str:
    return f"{minutes * 60:g} s" if minutes < 1 else f"{minutes:g} min"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, nargs="+", default=[0.5, 5, 30])
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--before", default=BEFORE, help="the commit measured as 'before'")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--chunk-seconds", type=float, default=30.0)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="enhance_memory.")
    print(f"bench/enhance_memory.py: {args.rate} Hz mono FLAC, tiny model, chunks {args.chunk_seconds:g} s, "
          f"{args.threads} thread(s); before = {args.before}, after = a copy of {SRC}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs",
          flush=True)
    results = []
    try:
        ckpt = os.path.join(tmp, "final.pt")
        make_checkpoint(ckpt)
        # both as copies, so that editing the checkout while the bench runs changes nothing
        after = os.path.join(tmp, "after", "src")
        shutil.copytree(SRC, after, ignore=shutil.ignore_patterns("__pycache__"))
        srcs = {"before": extract(args.before, os.path.join(tmp, "before")), "after": after}
        for minutes in args.minutes:
            wav = os.path.join(tmp, f"in_{minutes:g}min.flac")
            write_signal(wav, minutes * 60, args.rate)
            row = {"minutes": minutes, "file_mb": os.path.getsize(wav) / 2**20}
            for which, src in srcs.items():
                out = os.path.join(tmp, f"out_{which}_{minutes:g}")
                r = measure(src, args.threads, ["enhance", "--checkpoint", ckpt, "--in", wav, "--out", out,
                                                "--device", "cpu", "--chunk-seconds", str(args.chunk_seconds)],
                            os.path.join(tmp, f"{which}_{minutes:g}.log"))
                row[which] = r
                print(f"  {label(minutes):>7} {which:<6} peak RSS {r['maxrss_mb']:8.0f} MB  {r['wall_s']:7.1f} s wall "
                      f"{r['cpu_s']:7.1f} s CPU", flush=True)
            name = os.path.basename(wav)
            row["max_abs_diff"] = max_diff(os.path.join(tmp, f"out_before_{minutes:g}", name),
                                           os.path.join(tmp, f"out_after_{minutes:g}", name))
            shutil.rmtree(os.path.join(tmp, f"out_before_{minutes:g}"))
            shutil.rmtree(os.path.join(tmp, f"out_after_{minutes:g}"))
            os.remove(wav)
            results.append(row)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'length':>8} {'before MB':>10} {'after MB':>9} {'after/before':>13} {'before s':>9} {'after s':>8} "
          f"{'max |diff|':>11}")
    for r in results:
        b, a = r["before"], r["after"]
        print(f"{label(r['minutes']):>8} {b['maxrss_mb']:10.0f} {a['maxrss_mb']:9.0f} "
              f"{a['maxrss_mb'] / b['maxrss_mb']:13.2f} {b['wall_s']:9.1f} {a['wall_s']:8.1f} {r['max_abs_diff']:11.2e}")
    if len(results) > 1:
        first, last = results[0], results[-1]
        for which in ("before", "after"):
            print(f"{which}: peak RSS at {label(last['minutes'])} / at {label(first['minutes'])} = "
                  f"{last[which]['maxrss_mb'] / first[which]['maxrss_mb']:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rate": args.rate, "threads": args.threads, "before": args.before,
                       "chunk_seconds": args.chunk_seconds, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
