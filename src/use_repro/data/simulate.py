"""URGENT 2025 simulation, in the challenge's two steps, plus a summary.

  use-repro simulate params  --config mini --corpus-dir results/mini/corpus --split train --out results/mini/simulation/train
      sample parameters into <out>/params.tsv (the challenge's meta.tsv columns, its
      augmentation grammar, plus lang and one path column per extra target)
  use-repro simulate render  --config mini --meta <out>/params.tsv --corpus-dir results/mini/corpus --out <out> --threads 2
      render any meta.tsv (ours, or the official one with --speech-scp/--noise-scp/--wind-scp/
      --rir-scp) to 16-bit FLAC at the row's rate: <out>/noisy, <out>/clean (the challenge's
      early target), <out>/clean_shifted, <out>/clean_anechoic, <out>/clean_early{W}ms, each
      <folder>/<row index // 5000>/<id>.flac (identical targets are hard links); writes
      <out>/meta.tsv with the rows that rendered (paths filled in) and <out>/rejects.tsv
      (id, reason) with those that did not, and exits 1 with a summary if any failed
  use-repro simulate summary --meta <split>/meta.tsv ... --out results/mini/simulation/summary.csv
      rows per split, distortion (all, noise, wind_noise, reverberation, bandwidth_limitation,
      clipping, codec, packet_loss; plus lang=<code> rows), sampling rate and SNR bin

Manifests are found under --corpus-dir by name (for split S, any of S/speech.scp,
speech_S.scp, ...; 'valid' also matches 'validation' and 'dev'), or given explicitly.
Rows whose rendering fails never stop the others; a row's files are written atomically.
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

log = logging.getLogger("use_repro.simulate")

SPLIT_ALIASES = {"train": ("train",), "valid": ("valid", "validation", "dev"), "test": ("test",)}
KIND_NAMES = {
    "speech": ("speech",),
    "noise": ("noise",),
    "rir": ("rir", "rirs"),
    "wind": ("wind_noise", "wind"),
}
SIDE_FILES = ("utt2spk", "text", "utt2lang")
SNR_BINS = (-math.inf, -5, 0, 5, 10, 15, 20, math.inf)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="{params,render,summary}")

    def common(q):
        q.add_argument("--config", default=None, help="profile name or YAML path (its `simulation` section); "
                       "schema defaults (the challenge's training config) when omitted")
        q.add_argument("--corpus-dir", default=None, help="folder holding the corpus manifests")
        for kind in ("speech", "noise", "rir", "wind"):
            q.add_argument(f"--{kind}-scp", nargs="+", default=None, help=f"{kind} manifest(s), 'uid fs path' lines")

    q = sub.add_parser("params", help="sample meta.tsv rows for one split")
    common(q)
    q.add_argument("--split", required=True, choices=sorted(SPLIT_ALIASES))
    q.add_argument("--out", required=True, help="the split's simulation folder (params.tsv goes there)")
    for side in SIDE_FILES:
        q.add_argument(f"--{side}", nargs="+", default=None, help=f"{side} side file(s)")
    q.add_argument("--seed", type=int, default=None, help="master seed (default: the profile's)")

    q = sub.add_parser("render", help="render a meta.tsv to FLAC")
    common(q)
    q.add_argument("--meta", required=True, help="meta.tsv to render (ours or the challenge's)")
    q.add_argument("--out", required=True, help="output folder (audio, meta.tsv, rejects.tsv)")
    q.add_argument("--threads", type=int, default=1, help="worker processes (0: all cores)")
    q.add_argument("--resume", action="store_true", help="keep rows whose files all exist already")

    q = sub.add_parser("summary", help="rows per distortion, sampling rate and SNR bin")
    q.add_argument("--meta", nargs="+", required=True, help="rendered meta.tsv files (split = parent folder name)")
    q.add_argument("--out", required=True, help="summary CSV")


def run(args: argparse.Namespace) -> int:
    return {"params": run_params, "render": run_render, "summary": run_summary}[args.action](args)


def _config(name: str | None) -> dict:
    from use_repro.config import load_config, validate_config

    return load_config(name) if name else validate_config({})


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------

def find_manifest(corpus_dir: str | Path, kind: str, split: str | None) -> list[Path]:
    """Manifests of `kind` (speech/noise/rir/wind or a side file) for `split` under `corpus_dir`."""
    root = Path(corpus_dir)
    names = KIND_NAMES.get(kind, (kind,))
    aliases = SPLIT_ALIASES.get(split, (split,)) if split else ()
    cands = []
    for a in aliases:
        for nm in names:
            if kind in SIDE_FILES:
                cands += [root / a / nm, root / f"speech_{a}.{nm}", root / f"speech_{a}_{nm}", root / f"{nm}_{a}",
                          root / a / f"speech.{nm}"]
            else:
                cands += [root / a / f"{nm}.scp", root / f"{nm}_{a}.scp", root / a / f"{nm}_{a}.scp"]
    if kind in SIDE_FILES:
        cands.append(root / kind)  # one side file over every split (the embedded corpus's layout)
    for c in cands:
        if c.is_file():
            return [c]
    return []


def all_manifests(corpus_dir: str | Path, kind: str) -> list[Path]:
    """Every ``*.scp`` under `corpus_dir` whose name says it holds `kind` (for render lookups)."""
    out = []
    root = Path(corpus_dir)
    # Manifests sit at the top or one folder down; never walk the (possibly huge) audio tree.
    for p in sorted(list(root.glob("*.scp")) + list(root.glob("*/*.scp"))):
        stem = p.stem.lower()
        if kind == "wind":
            hit = stem.startswith("wind")
        elif kind == "noise":
            hit = stem.startswith("noise")
        elif kind == "rir":
            hit = stem.startswith("rir")
        else:
            hit = stem.startswith("speech")
        if hit:
            out.append(p)
    return out


def _read_entries(paths) -> list:
    from use_repro.data.manifest import ScpEntry, read_scp
    from use_repro.data.render import resolve_path

    out, seen = [], set()
    for p in paths or []:
        for e in read_scp(p):
            if e.uid in seen:
                continue
            seen.add(e.uid)
            out.append(ScpEntry(e.uid, e.fs, resolve_path(e.path, p)))
    return out


def _read_side(paths) -> dict[str, str]:
    from use_repro.data.manifest import read_kv

    out: dict[str, str] = {}
    for p in paths or []:
        out.update(read_kv(p))
    return out


# ---------------------------------------------------------------------------------------------
# params
# ---------------------------------------------------------------------------------------------

def run_params(args) -> int:
    from use_repro.data.manifest import read_meta, write_meta
    from use_repro.data.params import SimConfig, SpeechItem, output_paths, sample_split

    cfg = _config(args.config)
    sim = SimConfig.from_config(cfg)
    seed = cfg.get("seed", 0) if args.seed is None else args.seed
    out = Path(args.out)
    split_cfg = sim.split(args.split)

    def manifests(kind, explicit):
        if explicit:
            return [Path(p) for p in explicit]
        return find_manifest(args.corpus_dir, kind, args.split) if args.corpus_dir else []

    if split_cfg["meta"]:
        # A given meta.tsv (e.g. the official validation set): keep its rows, add our columns.
        rows = read_meta(split_cfg["meta"])
        for i, r in enumerate(rows):
            r.update(output_paths(r["id"], i, out, sim.early_windows_ms))
            r.setdefault("lang", "none")
        write_meta(out / "params.tsv", rows, extra_columns=_extra_columns(sim))
        log.info("params %s: %d rows taken from %s", args.split, len(rows), split_cfg["meta"])
        return 0

    speech_scps = manifests("speech", args.speech_scp)
    if not speech_scps:
        log.error("params %s: no speech manifest (looked under %s for %s); pass --speech-scp",
                  args.split, args.corpus_dir, ", ".join(f"{a}/speech.scp, speech_{a}.scp" for a in SPLIT_ALIASES[args.split]))
        return 2
    noise = _read_entries(manifests("noise", args.noise_scp))
    if not noise:
        log.error("params %s: no noise manifest found; pass --noise-scp", args.split)
        return 2
    rir = _read_entries(manifests("rir", args.rir_scp))
    wind = _read_entries(manifests("wind", args.wind_scp))
    side = {s: _read_side(getattr(args, s) or manifests(s, None)) for s in SIDE_FILES}

    from use_repro.audio.io import AudioError, audio_info

    speech, missing = [], []
    for e in _read_entries(speech_scps):
        try:
            fs_file, frames = audio_info(e.path)
        except AudioError as err:
            missing.append(f"{e.uid}: {err}")
            continue
        speech.append(SpeechItem(e.uid, fs_file, e.path, frames, side["utt2spk"].get(e.uid, e.uid),
                                 side["text"].get(e.uid, "<not-available>"), side["utt2lang"].get(e.uid, "none")))
    for m in missing:
        log.warning("params %s: speech skipped: %s", args.split, m)
    rows, notes = sample_split(speech, noise, rir, wind, sim, args.split, seed, out)
    for n in notes:
        log.warning("params %s: %s", args.split, n)
    if not rows:
        log.error("params %s: no rows (no usable speech among %d entries)", args.split, len(speech))
        return 1
    write_meta(out / "params.tsv", rows, extra_columns=_extra_columns(sim))
    c = Counter(r["fs"] for r in rows)
    log.info("params %s: %d rows (%s) from %d speech, %d noise, %d RIR, %d wind entries -> %s",
             args.split, len(rows), ", ".join(f"{k} Hz: {v}" for k, v in sorted(c.items(), key=lambda kv: int(kv[0]))),
             len(speech), len(noise), len(rir), len(wind), out / "params.tsv")
    return 0


def _extra_columns(sim) -> list[str]:
    from use_repro.data.targets import target_column, target_names

    return ["lang"] + [target_column(n) for n in target_names(sim.early_windows_ms) if n != "early"]


# ---------------------------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(sources, settings, out, resume):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    _WORKER.update(sources=sources, settings=settings, out=Path(out), resume=resume)


def _render_one(job):
    """Worker: render and write one row → (index, row with paths, reason or None, seconds)."""
    index, row = job
    from use_repro.data.params import output_paths
    from use_repro.data.render import render_row

    settings, out = _WORKER["settings"], _WORKER["out"]
    t0 = time.perf_counter()
    try:
        paths = output_paths(row["id"], index, out, settings.windows_ms)
        files, links = planned_files(row, paths, settings)
        result = {**row, **paths}
        result.setdefault("lang", "none")
        if _WORKER["resume"] and all(os.path.exists(p) for p in paths.values()):
            return index, result, None, 0.0
        audio = render_row(row, _WORKER["sources"], settings)
        fs = int(float(row["fs"]))
        for name, path in files.items():
            _write(path, audio[name], fs)
        for dst, src in links.items():
            _link(src, dst)
        return index, result, None, time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - every failure becomes a reject with its reason
        return index, None, f"{type(e).__name__}: {e}", time.perf_counter() - t0


def planned_files(row: dict, paths: dict, settings) -> tuple[dict, dict]:
    """(audio name -> path of each file to encode, path -> path it duplicates).

    Every column gets its own file, so each target folder is complete, but duplicates are
    hard links rather than encoded again: without reverberation every target is the dry
    speech (= the clean file); one-sample early windows (e.g. 0 ms) are the shifted target.
    """
    from use_repro.data.targets import target_column, target_names

    fs = int(float(row["fs"]))
    reverberant = row.get("rir_uid", "none") not in ("none", "", None)
    files = {"noisy": paths["noisy_path"]}
    links = {}
    for name in target_names(settings.windows_ms):
        col = target_column(name)
        if name == "early":
            files[name] = paths[col]
        elif not reverberant:
            links[paths[col]] = paths["clean_path"]
        elif name.startswith("early") and int(float(name[5:-2]) * fs / 1000) <= 1:
            links[paths[col]] = paths[target_column("shifted")]
        else:
            files[name] = paths[col]
    return files, links


def _link(src: str, dst: str) -> None:
    """`dst` as a hard link to `src` (a copy where links are not possible), atomically."""
    import shutil

    from use_repro.fs import atomic_path

    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _write(path: str, x, fs: int) -> str:
    """16-bit FLAC, atomically; the same bytes as audio.io.write_audio, encoded in memory first
    because libsndfile's many small writes are slow on some file systems."""
    import io

    import numpy as np
    import soundfile as sf

    from use_repro.fs import atomic_path

    buf = io.BytesIO()
    y = np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0 - 2.0**-15)
    sf.write(buf, y, int(fs), subtype="PCM_16", format="FLAC")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return str(path)


def load_sources(args):
    """Sources for render: explicit manifests, else every matching manifest under --corpus-dir."""
    from use_repro.data.render import Sources

    def entries(kind, explicit):
        if explicit:
            return _read_entries(explicit)
        return _read_entries(all_manifests(args.corpus_dir, kind)) if args.corpus_dir else []

    speech = entries("speech", args.speech_scp)
    noise = entries("noise", args.noise_scp) + entries("wind", args.wind_scp)
    rir = entries("rir", args.rir_scp)
    return Sources(speech, noise, rir)


def run_render(args) -> int:
    import multiprocessing as mp

    from use_repro.batch import Failures
    from use_repro.data.manifest import ManifestError, read_meta, write_meta
    from use_repro.data.params import SimConfig
    from use_repro.data.render import RenderSettings
    from use_repro.progress import progress

    cfg = _config(args.config)
    sim = SimConfig.from_config(cfg)
    settings = RenderSettings.from_sim(sim)
    out = Path(args.out)
    try:
        rows = read_meta(args.meta)
    except (ManifestError, OSError) as e:
        log.error("render: %s", e)
        return 2
    sources = load_sources(args)
    log.info("render: %d rows from %s; %d speech, %d noise, %d RIR sources; %s", len(rows), args.meta,
             len(sources.speech), len(sources.noise), len(sources.rir), out)
    threads = args.threads or os.cpu_count() or 1
    jobs = list(enumerate(rows))
    failures = Failures("simulate render")
    results: dict[int, dict] = {}
    seconds = busy = 0.0
    t0 = time.perf_counter()
    if threads <= 1:
        _init_worker(sources, settings, out, args.resume)
        it = map(_render_one, jobs)
        pool = None
    else:
        # fork where there is one: workers inherit the imported modules (scipy.signal alone takes
        # seconds to import) and start at once; rendering needs no BLAS threads, so nothing
        # inherited changes a result.
        import use_repro.data.render  # noqa: F401 - imported before forking

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(threads, initializer=_init_worker,
                                           initargs=(sources, settings, str(out), args.resume))
        it = pool.imap_unordered(_render_one, jobs, chunksize=max(1, min(16, len(jobs) // (threads * 8) or 1)))
    try:
        for index, result, reason, dt in progress(it, desc="render", total=len(jobs)):
            busy += dt
            if reason is not None:
                failures.add(rows[index].get("id", f"row {index + 2}"), reason)
            else:
                results[index] = result
                seconds += int(float(result["length"])) / int(float(result["fs"])) if result.get("length") not in (None, "none") else 0.0
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    wall = time.perf_counter() - t0
    done = [results[i] for i in sorted(results)]
    extra = _extra_columns(sim)
    write_meta(out / "meta.tsv", done, extra_columns=extra)
    failures.write(out / "rejects.tsv")
    if done:
        log.info("render: %d rows, %.1f s of audio in %.1f s wall (%.1fx real time per worker-second)",
                 len(done), seconds, wall, seconds / busy if busy else float("nan"))
    status = failures.exit_status(total=len(rows))
    if failures:
        print(failures.summary(len(rows)), file=sys.stderr)
        print(f"rejected rows are listed in {out / 'rejects.tsv'}", file=sys.stderr)
    return status


# ---------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------

def snr_bin(snr: float) -> str:
    for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:]):
        if lo <= snr < hi:
            if lo == -math.inf:
                return f"<{hi}"
            if hi == math.inf:
                return f">={lo}"
            return f"[{lo},{hi})"
    return "nan"


def row_distortions(row: dict) -> list[str]:
    """Distortion names a row has: noise or wind_noise, reverberation, and each augmentation."""
    from use_repro.data import augmentation as A

    try:
        augs = A.parse(row.get("augmentation", "none"))
    except A.AugmentationError:
        augs = []
    out = ["wind_noise" if A.is_wind_row(row.get("noise_uid", ""), augs) else "noise"]
    if row.get("rir_uid", "none") not in ("none", ""):
        out.append("reverberation")
    for a in augs:
        k = A.kind_of(a)
        if k != "wind_noise" and k not in out:
            out.append(k)
    return out


def summarize(meta_paths) -> list[dict]:
    from use_repro.data.manifest import read_meta

    counts: Counter = Counter()
    for p in meta_paths:
        split = Path(p).parent.name
        for r in read_meta(p):
            fs = int(float(r["fs"]))
            b = snr_bin(float(r["snr_dB"]))
            counts[(split, "all", fs, b)] += 1
            for d in row_distortions(r):
                counts[(split, d, fs, b)] += 1
            counts[(split, f"lang={r.get('lang', 'none')}", fs, b)] += 1
    order = {"all": 0, "noise": 1, "wind_noise": 2, "reverberation": 3, "bandwidth_limitation": 4,
             "clipping": 5, "codec": 6, "packet_loss": 7}
    keys = sorted(counts, key=lambda k: (k[0], order.get(k[1], 99), k[1], k[2], _bin_order(k[3])))
    return [{"split": k[0], "distortion": k[1], "fs": k[2], "snr_bin": k[3], "rows": counts[k]} for k in keys]


def _bin_order(b: str) -> int:
    labels = [snr_bin(lo if lo != -math.inf else -1e9) for lo in SNR_BINS[:-1]]
    return labels.index(b) if b in labels else len(labels)


def run_summary(args) -> int:
    from use_repro.fs import atomic_path

    rows = summarize(args.meta)
    with atomic_path(args.out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["split", "distortion", "fs", "snr_bin", "rows"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    # A readable pivot for the log: rows per split and distortion, by rate.
    table: dict = {}
    for r in rows:
        table.setdefault((r["split"], r["distortion"]), Counter())[r["fs"]] += r["rows"]
    rates = sorted({r["fs"] for r in rows})
    print(f"{'split':<6} {'distortion':<22}" + "".join(f"{fs:>7}" for fs in rates) + f"{'total':>7}")
    for (split, dist), c in table.items():
        print(f"{split:<6} {dist:<22}" + "".join(f"{c.get(fs, 0):>7}" for fs in rates) + f"{sum(c.values()):>7}")
    log.info("summary: %d lines -> %s", len(rows), args.out)
    return 0
