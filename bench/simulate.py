"""Render cost of `use-repro simulate render`: CPU per row, where it goes, before and after.

    python bench/simulate.py --before HEAD~1 --meta results/small/simulation/{train,test}/meta.tsv \
        --corpus-dir results/small/corpus --rows 60          # this tree vs a commit, same rows
    python bench/simulate.py                                   # results/mini/corpus if built, else a synthetic corpus
    python bench/simulate.py --corpus-dir results/mini/corpus --config mini --split test --threads 2

Rows: those of the given `--meta` files (rendered or params meta.tsv; the first `--rows` of each;
the targets a rendered meta.tsv has paths for), else the split's parameters sampled from the
profile. Each tree renders them in its own subprocess on one thread (OMP/MKL/OpenBLAS/torch
threads = 1): one untimed pass (imports, filter tables, the page cache), then `--repeat` timed
passes, every row's render and file writes timed in CPU seconds (user + system of that process,
which a busy machine distorts far less than wall time); a row's cost is its least over the
passes. The profile splits each row's CPU by phase, exclusive of nested phases: reading,
resampling (sources at another rate), RIR convolution (every target made from the RIR), noise
or wind mixing, each augmentation, FLAC encoding (and the file writes: libsndfile encodes in
memory, the bytes are then written atomically), hard links for duplicate targets, and other.
Phases are timed by wrapping the functions `render_row` and `write_row` call by name, so the same
timers run in both trees.

With `--before REV`, REV is checked out in a temporary `git worktree` and renders the same rows
there; the bench prints CPU per row before / after and the ratio, both profiles, and compares the
sha256 of every file the two trees wrote (the renderer must stay bit-identical).
Measured at 8348cba against b159e91 (the renderer before its cuts), 2-core AMD EPYC shared with a
training job (load average 7), 100 evenly spaced rows of results/small/simulation/train and of
test (all 7 rates), `--before b159e91 --config small --meta .../train/meta.tsv .../test/meta.tsv
--corpus-dir results/small/corpus --rows 100`: 22.9 -> 19.0 CPU ms per row (1.21x), 1000 files,
all bit-identical. By phase (ms/row, before -> after): codec 6.51 -> 6.53, FLAC encoding and
writing 6.81 -> 4.77, reading 2.36 -> 2.03, RIR convolution 1.99 -> 1.69, bandwidth 1.65 -> 1.61,
links 1.02 -> 0.07, wind 0.85 -> 0.63, other 0.88 -> 0.81. Half is out of reach without changing a
sample: the lossy codecs (libsndfile's LAME, Vorbis and Opus encoders) and FLAC encoding
(libFLAC at libsndfile's settings) are ~55% of what is left, and the FFTs, resampling filters and
the wind compressor's sequential loop must keep their exact arithmetic.

Then, unless --before is given, the CLI renders the rows with --threads workers (process
start-up and imports included).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
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



def main(args) -> int:
    """Sample the split's rows from the profile; time them in this process, then through the CLI."""
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


# ---------------------------------------------------------------------------------------------
# phase timers: exclusive CPU time of the functions a row's rendering calls, by phase
# ---------------------------------------------------------------------------------------------

# (module, attribute, phase): the names render_row and write_row call (patched where they are
# looked up). A name a tree lacks is skipped; its time is then counted as "other".
PHASES = [
    ("use_repro.data.render", "read_source", "reading"),
    ("use_repro.data.render", "read_noise", "reading"),
    ("use_repro.data.render", "resample_fixed_length", "resampling"),
    ("use_repro.data.render", "make_targets", "RIR convolution"),
    ("use_repro.data.render", "mix_noise", "noise"),
    ("use_repro.data.render", "mix_wind", "wind"),
    ("use_repro.data.render", "limit_bandwidth", "bandwidth_limitation"),
    ("use_repro.data.render", "clip_quantiles", "clipping"),
    ("use_repro.data.render", "apply_codec", "codec"),
    ("use_repro.data.render", "apply_packet_loss", "packet_loss"),
    ("use_repro.data.simulate", "_write", "FLAC encoding"),
    ("use_repro.data.simulate", "_link", "links"),
]
PHASE_ORDER = ["reading", "resampling", "RIR convolution", "noise", "wind", "bandwidth_limitation", "clipping",
               "codec", "packet_loss", "FLAC encoding", "links", "other"]


class PhaseTimer:
    """Exclusive CPU seconds per phase: a phase's time excludes the phases nested in it."""

    def __init__(self):
        self.totals = defaultdict(float)
        self._stack = []  # [phase, start, time of nested phases]

    def wrap(self, fn, phase):
        clock = time.process_time

        def timed(*a, **kw):
            self._stack.append([phase, clock(), 0.0])
            try:
                return fn(*a, **kw)
            finally:
                ph, t0, inner = self._stack.pop()
                dt = clock() - t0
                self.totals[ph] += dt - inner
                if self._stack:
                    self._stack[-1][2] += dt
        timed.__wrapped__ = fn
        return timed

    def install(self):
        import importlib

        for mod, name, phase in PHASES:
            m = importlib.import_module(mod)
            if hasattr(m, name):
                setattr(m, name, self.wrap(getattr(m, name), phase))

    def take(self) -> dict:
        out, self.totals = dict(self.totals), defaultdict(float)
        return out


def _targets_of(rows: list[dict], windows_ms) -> list[str] | None:
    """The targets a rendered meta.tsv has files for (None: a params.tsv, every target)."""
    from use_repro.data.targets import target_column, target_names

    names = [n for n in target_names(windows_ms)
             if any(r.get(target_column(n), "none") not in ("none", "") for r in rows)]
    return names or None


def worker(args) -> int:
    """Render the rows in this process (one thread) → JSON on stdout."""
    import use_repro
    from use_repro.config import load_config
    from use_repro.data.manifest import read_meta
    from use_repro.data.params import SimConfig, output_paths
    from use_repro.data.render import RenderSettings
    import use_repro.data.render as R
    import use_repro.data.simulate as S

    if args.expect_src and not Path(use_repro.__file__).resolve().is_relative_to(Path(args.expect_src).resolve()):
        raise SystemExit(f"imported {use_repro.__file__}, expected a module under {args.expect_src}")
    os.chdir(args.chdir)
    sim = SimConfig.from_config(load_config(args.config))
    timer = PhaseTimer()
    timer.install()
    jobs = []  # (meta index, row index, row, settings)
    for m, meta in enumerate(args.meta):
        rows = read_meta(meta)
        if args.rows and args.rows < len(rows):  # evenly spaced: the meta.tsv may be sorted by rate
            rows = [rows[k * len(rows) // args.rows] for k in range(args.rows)]
        settings = RenderSettings.from_sim(sim, _targets_of(rows, sim.early_windows_ms))
        jobs += [(m, i, r, settings) for i, r in enumerate(rows)]
    ns = argparse.Namespace(corpus_dir=args.corpus_dir, speech_scp=None, noise_scp=None, rir_scp=None, wind_scp=None)
    sources = S.load_sources(ns)
    out = Path(args.out)
    cost = [float("inf")] * len(jobs)
    phases = [None] * len(jobs)
    for p in range(1 + args.repeat):
        # each pass writes new files, as a render does (renaming onto existing files costs more)
        shutil.rmtree(out, ignore_errors=True)
        for k, (m, i, r, settings) in enumerate(jobs):
            timer.take()
            c0 = time.process_time()
            audio = R.render_row(r, sources, settings)
            S.write_row(r, output_paths(r["id"], i, out / f"meta{m}", settings.windows_ms), settings, audio)
            cpu = time.process_time() - c0
            ph = timer.take()
            if p > 0 and cpu < cost[k]:
                cost[k] = cpu
                ph["other"] = cpu - sum(ph.values())
                phases[k] = ph
    hashes = {}
    for f in sorted(out.rglob("*")):
        if f.is_file():
            hashes[str(f.relative_to(out))] = hashlib.sha256(f.read_bytes()).hexdigest()
    rows = [dict(meta=m, id=r["id"], fs=int(r["fs"]), length=int(r["length"]), cpu=cost[k], phases=phases[k],
                 distortions=S.row_distortions(r)) for k, (m, i, r, _) in enumerate(jobs)]
    json.dump(dict(rows=rows, hashes=hashes, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   module=use_repro.__file__), sys.stdout)
    return 0


ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "TORCH_NUM_THREADS")}


def run_tree(src: Path, args, out: Path, chdir: Path) -> dict:
    """The worker on `src`'s package, one thread, in a subprocess → its JSON."""
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(src)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--expect-src", str(src), "--chdir", str(chdir),
           "--out", str(out), "--config", args.config, "--corpus-dir", str(Path(args.corpus_dir).resolve()),
           "--rows", str(args.rows), "--repeat", str(args.repeat), "--meta", *[str(Path(m).resolve()) for m in args.meta]]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"worker on {src} failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return json.loads(res.stdout)


def _source_root(corpus: Path) -> Path:
    """The folder the corpus manifests' relative paths start from (they are written relative
    to the checkout that built them: results/<profile>/corpus/...)."""
    for scp in sorted(corpus.glob("*.scp")):
        line = next((ln for ln in scp.read_text().splitlines() if ln.strip()), None)
        if line is None:
            continue
        p = line.split()[2]
        if os.path.isabs(p):
            return corpus
        for base in [Path.cwd(), corpus, *corpus.parents]:
            if (base / p).exists():
                return base
    return Path.cwd()


def summarise(res: dict) -> dict:
    rows = res["rows"]
    cpu = sum(r["cpu"] for r in rows)
    s16 = sum(r["length"] / 16000 for r in rows)
    sec = sum(r["length"] / r["fs"] for r in rows)
    ph = defaultdict(float)
    for r in rows:
        for k, v in r["phases"].items():
            ph[k] += v
    return dict(n=len(rows), cpu=cpu, per_row=cpu / len(rows), s16=s16, sec=sec, phases=ph, peak_mb=res["peak_mb"])


def compare(args) -> int:
    import platform

    tmp = Path(tempfile.mkdtemp(prefix="bench_simulate_"))
    chdir = _source_root(Path(args.corpus_dir).resolve())
    trees = []
    wt = None
    if args.before:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before], capture_output=True,
                             text=True, check=True).stdout.strip()
        wt = tmp / f"before-{rev}"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(wt), rev], check=True)
        trees.append((f"before ({rev})", wt / "src"))
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    trees.append((f"after ({head}{'+changes' if dirty else ''})", ROOT / "src"))
    results = {}
    try:
        for name, src in trees:
            t0 = time.time()
            results[name] = run_tree(src, args, tmp / name.split()[0], chdir)
            print(f"{name}: rendered in {time.time() - t0:.0f} s wall", file=sys.stderr)
    finally:
        if wt is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)], check=False)
    load = os.getloadavg()
    first = results[trees[0][0]]
    sm = {name: summarise(r) for name, r in results.items()}
    s0 = next(iter(sm.values()))
    print(f"\n{s0['n']} rows from {', '.join(args.meta)} ({args.rows or 'all'} evenly spaced rows of each), "
          f"{s0['sec']:.1f} s of audio ({s0['s16']:.1f} s 16 kHz-equivalent); rates "
          f"{sorted({r['fs'] for r in first['rows']})}; one thread each, best of {args.repeat} timed pass(es) "
          f"after 1 untimed; {platform.processor() or platform.machine()}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    names = list(sm)
    print(f"\n{'CPU per row (ms), by phase':<28}" + "".join(f"{n:>26}" for n in names)
          + ("      ratio" if len(names) == 2 else ""))
    for ph in PHASE_ORDER:
        vals = [sm[n]["phases"].get(ph, 0.0) / sm[n]["n"] * 1000 for n in names]
        line = f"{ph:<28}" + "".join(f"{v:>20.2f} ({v / (sm[n]['per_row'] * 1000):>3.0%})" for v, n in zip(vals, names))
        if len(names) == 2:
            line += f"  {vals[0] / vals[1]:>8.2f}x" if vals[1] > 0 else f"{'':>11}"
        print(line)
    tot = [sm[n]["per_row"] * 1000 for n in names]
    print(f"{'total':<28}" + "".join(f"{v:>26.2f}" for v in tot) + (f"  {tot[0] / tot[1]:>8.2f}x" if len(names) == 2 else ""))
    for n in names:
        print(f"{n}: {sm[n]['cpu']:.2f} CPU-s for {sm[n]['n']} rows = {sm[n]['per_row'] * 1000:.1f} ms/row; "
              f"{sm[n]['s16'] / sm[n]['cpu']:.0f}x real time 16 kHz-equivalent per CPU-second "
              f"({sm[n]['sec'] / sm[n]['cpu']:.0f}x as is); peak RSS {sm[n]['peak_mb']:.0f} MB")
    # per rate, CPU per second of audio
    if len(names) == 2:
        by = defaultdict(lambda: [0.0, 0.0, 0.0])
        for a, b in zip(results[names[0]]["rows"], results[names[1]]["rows"]):
            k = by[a["fs"]]
            k[0] += a["cpu"]
            k[1] += b["cpu"]
            k[2] += a["length"] / a["fs"]
        print("CPU ms per second of audio, by rate (before -> after): " + ", ".join(
            f"{fs}: {v[0] / v[2] * 1000:.1f} -> {v[1] / v[2] * 1000:.1f}" for fs, v in sorted(by.items())))
        ha, hb = results[names[0]]["hashes"], results[names[1]]["hashes"]
        same = sum(1 for k in ha if hb.get(k) == ha[k])
        diff = sorted(k for k in set(ha) | set(hb) if ha.get(k) != hb.get(k))
        print(f"files: {len(hb)} written; {same} bit-identical to {names[0]}'s, {len(diff)} differ"
              + (": " + ", ".join(diff[:10]) + (" ..." if len(diff) > 10 else "") if diff else ""))
        if diff:
            return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def cli_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus-dir", default=None)
    ap.add_argument("--config", default="mini")
    ap.add_argument("--split", default="test", choices=["train", "valid", "test"])
    ap.add_argument("--rows", type=int, default=0,
                    help="rows to render (0: all; with --meta, that many evenly spaced rows of each file)")
    ap.add_argument("--threads", type=int, default=2, help="CLI workers (the run without --meta/--before)")
    ap.add_argument("--meta", nargs="+", default=None, help="render these meta.tsv rows (with --corpus-dir)")
    ap.add_argument("--before", default=None, metavar="REV",
                    help="also render the rows with REV's package (a temporary git worktree) and compare")
    ap.add_argument("--repeat", type=int, default=1, help="timed passes after the untimed one (least CPU per row)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--expect-src", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--chdir", default=".", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


if __name__ == "__main__":
    _args = cli_args()
    if _args.worker:
        sys.exit(worker(_args))
    if _args.meta or _args.before:
        if not (_args.meta and _args.corpus_dir):
            sys.exit("--before needs --meta and --corpus-dir (the rows to render)")
        sys.exit(compare(_args))
    sys.exit(main(_args))
