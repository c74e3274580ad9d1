"""The data stages of `urgent2025` in CPU-hours and wall time, from per-unit costs measured here.

    python bench/data_plan.py --meta results/small/simulation/{train,test}/meta.tsv \
        --corpus-dir results/small/corpus [--rows 60] [--nodes-cores 1x16 4x32 16x32] [--out FILE.json]

Measured in this run, one thread, CPU seconds per second of audio (a busy machine distorts CPU
time far less than wall time):

- corpus (`kind: official`): every listed file is decoded in full once (data/audiocheck.py);
  FLAC files made here at 16 and 48 kHz;
- simulation: bench/simulate.py's worker renders the `--meta` rows (real rows of an embedded
  corpus: every distortion, every rate) and writes their files; the cost per second of audio at
  16 and 48 kHz is the mean over the rows of that rate;
- VQScore scoring: decode, resample to 16 kHz, STFT, encoder and codebook lookup (what
  `vqscore score` does per file; bench/vqscore.py's "file" path) on files made here;

taken from measurements made on this machine before (said so in the output):

- enhancement: the paper-size model's CPU real-time factor from `bench/models.py --only infer`
  with the fused inference kernels (5.16 CPU-s per audio-s at 16 kHz, 16.4 at 48 kHz: CPU time of
  2 threads; wall real-time factors 2.6 and 8.3); not rerun here (it takes many minutes);
- evaluation: the whole embedded metric suite, `bench/metrics.py` (docs/benchmarks.md: 3.39x
  real time on 2 cores on 10 s clips at 16 kHz = 0.59 CPU-s per audio-s; the intrusive metrics'
  real-time factor grows from 0.05 to 0.115 at 48 kHz, so 0.66 at 48 kHz).

Sizes: the paper's 2518 h of training speech (URGENT 2025 track 1; every utterance is rendered
once, and scored once by VQScore), `--noise-hours` of noise, RIR and wind files checked beside it,
`--test-utterances` x `--test-seconds` of test audio enhanced and evaluated per system (the
profile's test and unseen runs, plus the noisy input evaluated as is). 48 kHz is the upper bound
the training plan uses too (docs/compute-plan.md); the 16 kHz column is the lower bound.
Wall time: a stage runs as `jobs` DAG jobs (one corpus job; per split, per VQScore list and per
system the profile's `sharding` count of shard jobs: urgent2025's 64 render, 16 scoring, 4
enhancement and 8 evaluation shards), each on one node's C cores with the files spread over them;
so wall = max(CPU-h / (N x C), ceil(jobs / N) x one job's CPU-h / C).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

ENHANCE_CPU = {16000: 5.16, 48000: 16.4}  # bench/models.py --only infer (2 threads), paper model, CPU-s per audio-s
METRICS_CPU = {16000: 0.59, 48000: 0.66}  # bench/metrics.py, whole suite (docs/benchmarks.md)


def speech_audio(seconds: float, fs: int, seed: int) -> np.ndarray:
    from tests.data.sim_fixtures import speech_like

    return speech_like(fs, seconds, seed)


def measure_corpus_check(tmp: Path, files: int, seconds: float) -> dict[int, float]:
    from use_repro.audio.io import write_audio
    from use_repro.data.audiocheck import check_audio

    out = {}
    for fs in (16000, 48000):
        paths = []
        for i in range(files):
            p = tmp / f"check_{fs}_{i}.flac"
            write_audio(p, speech_audio(seconds, fs, i), fs)
            paths.append(p)
        check_audio(paths[0])
        c = time.process_time()
        for p in paths:
            check_audio(p)
        out[fs] = (time.process_time() - c) / (files * seconds)
    return out


def measure_vqscore(tmp: Path, files: int, seconds: float) -> dict[int, float]:
    import torch

    from use_repro.audio.io import write_audio
    from use_repro.data.manifest import ScpEntry
    from use_repro.quality import vqscore as V
    from use_repro.quality.filtering import load_16k

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = V.VQScoreModel().eval()  # the cost does not depend on the weights
    out = {}
    for fs in (16000, 48000):
        entries = []
        for i in range(files):
            p = tmp / f"vq_{fs}_{i}.flac"
            write_audio(p, speech_audio(seconds, fs, 100 + i), fs)
            entries.append(ScpEntry(f"u{i}", fs, str(p)))
        with torch.no_grad():
            model.score_magnitude(V.magnitude(torch.from_numpy(load_16k(entries[0])[0])))
            c = time.process_time()
            for e in entries:
                model.score_magnitude(V.magnitude(torch.from_numpy(load_16k(e)[0])))
        out[fs] = (time.process_time() - c) / (files * seconds)
    return out


def measure_simulation(args, tmp: Path) -> tuple[dict[int, float], float, int]:
    """(CPU-s per audio-s by rate, peak RSS MB, rows) of bench/simulate.py's worker."""
    import simulate as bench_sim

    ns = argparse.Namespace(config=args.config, corpus_dir=args.corpus_dir, rows=args.rows, repeat=1, meta=args.meta)
    chdir = bench_sim._source_root(Path(args.corpus_dir).resolve())
    res = bench_sim.run_tree(ROOT / "src", ns, tmp / "sim", chdir)
    by = defaultdict(lambda: [0.0, 0.0])
    for r in res["rows"]:
        by[r["fs"]][0] += r["cpu"]
        by[r["fs"]][1] += r["length"] / r["fs"]
    return {fs: c / s for fs, (c, s) in sorted(by.items())}, res["peak_mb"], len(res["rows"])


def sharding(profile: str) -> dict[str, int]:
    """Shards per stage of `profile` (its `sharding` section: one DAG job per shard)."""
    from use_repro.config import load_config

    section = load_config(profile).get("sharding") or {}
    return {k: int(section.get(k, 1) or 1) for k in ("simulate", "vqscore", "enhance", "evaluate")}


def render_passes(profile: str) -> int:
    """Renders of each train/valid row: the split's noisy job plus one job per training target
    of the profile's runs (each renders the whole row again to write its target; simulate.smk)."""
    from use_repro.config import load_config
    from use_repro.report.experiments import experiments

    return 1 + len({e.target for e in experiments(load_config(profile)).values() if e.trained})


def plan(costs: dict, sizes: dict, configs: list[tuple[int, int]]) -> list[dict]:
    """Rows of the plan: per stage, audio hours, CPU-h at 16 and 48 kHz, wall per configuration (48 kHz)."""
    rows = []
    for stage, (hours, per16, per48, jobs) in sizes.items():
        row = dict(stage=stage, audio_h=hours, cpu_per_s_16k=per16, cpu_per_s_48k=per48,
                   cpu_h_16k=hours * per16, cpu_h_48k=hours * per48, jobs=jobs)
        for n, c in configs:
            # the DAG runs `jobs` independent jobs of a stage; each takes a node's cores
            per_job = row["cpu_h_48k"] / jobs
            waves = -(-jobs // n)
            row[f"wall_h_{n}x{c}"] = max(row["cpu_h_48k"] / (n * c), waves * per_job / c)
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meta", nargs="+", default=None, help="rendered meta.tsv files whose rows to render")
    ap.add_argument("--corpus-dir", default=None)
    ap.add_argument("--sim-cost", nargs=2, type=float, default=None, metavar=("CPU16K", "CPU48K"),
                    help="simulation CPU-s per audio-s at 16 and 48 kHz from an earlier run, instead of "
                         "rendering --meta rows here")
    ap.add_argument("--config", default="small")
    ap.add_argument("--rows", type=int, default=60, help="evenly spaced rows of each --meta")
    ap.add_argument("--files", type=int, default=8, help="files per rate for the corpus check and VQScore")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--speech-hours", type=float, default=2518.0, help="training speech (the paper's)")
    ap.add_argument("--noise-hours", type=float, default=500.0,
                    help="noise, RIR and wind audio the corpus check decodes besides the speech (assumed)")
    ap.add_argument("--valid-hours", type=float, default=10.0, help="official validation set rendered (assumed)")
    ap.add_argument("--test-utterances", type=int, default=1000)
    ap.add_argument("--test-seconds", type=float, default=8.0, help="mean test utterance length (assumed)")
    ap.add_argument("--systems", type=int, default=7, help="enhanced systems (urgent2025: 5 test + 2 unseen runs)")
    ap.add_argument("--nodes-cores", nargs="+", default=["1x16", "4x32", "16x32"])
    ap.add_argument("--profile", default="urgent2025", help="profile whose `sharding` sets the jobs per stage")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not args.sim_cost and not (args.meta and args.corpus_dir):
        ap.error("give --meta and --corpus-dir (rows to render), or --sim-cost")
    configs = [tuple(int(v) for v in s.split("x")) for s in args.nodes_cores]

    tmp = Path(tempfile.mkdtemp(prefix="bench_data_plan_"))
    t0 = time.time()
    check = measure_corpus_check(tmp, args.files, args.seconds)
    vq = measure_vqscore(tmp, args.files, args.seconds)
    if args.sim_cost:  # per-unit simulation costs of an earlier run (this one has no rendered rows)
        sim, sim_mb, sim_rows = {16000: args.sim_cost[0], 48000: args.sim_cost[1]}, float("nan"), 0
    else:
        sim, sim_mb, sim_rows = measure_simulation(args, tmp)
    sim16 = sim.get(16000, float("nan"))
    sim48 = sim.get(48000, float("nan"))
    test_h = args.test_utterances * args.test_seconds / 3600
    shards = sharding(args.profile)
    passes = render_passes(args.profile)
    sizes = {
        "corpus (official: decode every file)": (args.speech_hours + args.noise_hours, check[16000], check[48000], 1),
        f"simulation (train: noisy + {passes - 1} targets)": (args.speech_hours * passes, sim16, sim48,
                                                              passes * shards["simulate"]),
        "simulation (valid + test)": (args.valid_hours * passes + test_h, sim16, sim48, (passes + 1) * shards["simulate"]),
        "VQScore scoring (training speech)": (args.speech_hours, vq[16000], vq[48000], shards["vqscore"]),
        "enhancement (test, CPU, per system)": (test_h * args.systems, ENHANCE_CPU[16000], ENHANCE_CPU[48000],
                                                args.systems * shards["enhance"]),
        "evaluation (test, per system + noisy)": (test_h * (args.systems + 1), METRICS_CPU[16000],
                                                  METRICS_CPU[48000], (args.systems + 1) * shards["evaluate"]),
    }
    rows = plan({}, sizes, configs)
    load = os.getloadavg()

    print(f"per-unit costs, one thread, CPU-s per second of audio (measured here in {time.time() - t0:.0f} s; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}):")
    print(f"  corpus check (decode FLAC): 16 kHz {check[16000]:.5f}, 48 kHz {check[48000]:.5f}")
    where = (f"{sim_rows} rows of {', '.join(args.meta)}; peak RSS {sim_mb:.0f} MB per worker" if sim_rows
             else "given by --sim-cost, not measured in this run")
    print(f"  simulation ({where}): " + ", ".join(f"{fs} Hz {v:.4f}" for fs, v in sim.items())
          + f"; each train/valid row is rendered {passes} times (noisy, then each training target)")
    print(f"  VQScore scoring (decode, resample, model): 16 kHz {vq[16000]:.5f}, 48 kHz {vq[48000]:.5f}")
    print(f"  enhancement, paper model (bench/models.py --only infer, earlier run, not rerun): "
          f"16 kHz {ENHANCE_CPU[16000]}, 48 kHz {ENHANCE_CPU[48000]}")
    print(f"  evaluation, whole metric suite (bench/metrics.py, docs/benchmarks.md, not rerun): "
          f"16 kHz {METRICS_CPU[16000]}, 48 kHz {METRICS_CPU[48000]}")
    print(f"\nsizes: {args.speech_hours:g} h training speech, {args.noise_hours:g} h noise/RIR/wind, "
          f"{args.valid_hours:g} h validation, test {args.test_utterances} x {args.test_seconds:g} s = {test_h:.2f} h, "
          f"{args.systems} systems\n")
    head = ["stage", "audio h", "CPU-s/s 16k", "CPU-s/s 48k", "CPU-h 16k", "CPU-h 48k", "jobs"] + \
        [f"wall {n}x{c} (48k)" for n, c in configs]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["stage"], f"{r['audio_h']:.1f}", f"{r['cpu_per_s_16k']:.4g}", f"{r['cpu_per_s_48k']:.4g}",
                 f"{r['cpu_h_16k']:,.1f}", f"{r['cpu_h_48k']:,.1f}", str(r["jobs"])]
        cells += [_hours(r[f"wall_h_{n}x{c}"]) for n, c in configs]
        print("| " + " | ".join(cells) + " |")
    tot16 = sum(r["cpu_h_16k"] for r in rows)
    tot48 = sum(r["cpu_h_48k"] for r in rows)
    print(f"| total | | | | {tot16:,.1f} | {tot48:,.1f} | | " +
          " | ".join(_hours(sum(r[f'wall_h_{n}x{c}'] for r in rows)) for n, c in configs) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(dict(check=check, vqscore=vq, simulation=sim, sim_peak_mb=sim_mb,
                                                  enhance=ENHANCE_CPU, metrics=METRICS_CPU, rows=rows,
                                                  peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                                             indent=2) + "\n")
    return 0


def _hours(h: float) -> str:
    return f"{h * 60:.0f} min" if h < 1 else f"{h:,.1f} h"


if __name__ == "__main__":
    sys.exit(main())
