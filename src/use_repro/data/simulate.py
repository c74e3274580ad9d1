"""URGENT 2025 simulation, in the challenge's two steps, plus a summary.

  use-repro simulate params  --config mini --corpus-dir results/mini/corpus --split train --out results/mini/simulation/train
      sample parameters into <out>/params.tsv (the challenge's meta.tsv columns, its
      augmentation grammar, plus lang and one path column per extra target)
  use-repro simulate render  --config mini --meta <out>/params.tsv --corpus-dir results/mini/corpus --out <out> --threads 2
      render any meta.tsv (ours, or the official one with --speech-scp/--noise-scp/--wind-scp/
      --rir-scp) to 16-bit FLAC at the row's rate: <out>/noisy, <out>/clean (the challenge's
      early target) and the targets --targets names (default all: <out>/clean_shifted,
      <out>/clean_anechoic, <out>/clean_early{W}ms; the columns of the others say none), each
      <folder>/<row index // 5000>/<id>.flac (identical targets are hard links; an extra target
      whose shared scale puts it beyond 16-bit PCM is <id>.wav, 32-bit float); writes
      <out>/rejects.tsv (id, reason: rows that did not render and skipped manifest lines), then
      <out>/meta.tsv with the rows that rendered (paths filled in); exits 1, with a summary naming
      every reject, when more than --max-reject-fraction (simulation.max_reject_fraction) of the
      rows were rejected or none rendered
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

from use_repro.shards import parse_shard  # light (no torch): the --shard argument type

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
    q.add_argument("--targets", nargs="*", default=None, metavar="TARGET",
                   help="targets to write besides noisy (early, shifted, anechoic, early<W>ms); the columns of "
                        "the others say none; none given: only noisy (and the clean file of a row without "
                        "reverberation). Default: every target the configuration makes")
    q.add_argument("--targets-only", action="store_true",
                   help="write only the --targets' own files; the noisy files (and the clean files of dry rows) "
                        "must have been written by a render of the same --meta into --out, and are listed as "
                        "they are. The DAG renders each training target so, in its own job, so a new target "
                        "re-renders nothing else")
    q.add_argument("--list-name", default="meta.tsv",
                   help="name of the list written (rejects.tsv and counts.json take its middle part: "
                        "meta.early.tsv -> rejects.early.tsv)")
    q.add_argument("--max-reject-fraction", type=float, default=None,
                   help="rejected rows tolerated, as a fraction of all rows, before the exit status is 1 "
                        "(default: the profile's simulation.max_reject_fraction)")
    q.add_argument("--shard", type=parse_shard, default=None, metavar="k/K",
                   help="render only shard k of K (rows [k*n/K, (k+1)*n/K) of --meta, each still at its own "
                        "index's path) and write its meta.tsv, rejects.tsv and counts.json to --lists; the "
                        "reject limit is then the gather's (use-repro gather simulate), over the whole split")
    q.add_argument("--lists", default=None,
                   help="folder for meta.tsv and rejects.tsv (default: --out; the audio always goes to --out)")
    q.add_argument("--keep-newer-than", default=None, metavar="FILE",
                   help="as --resume, but keep a row only when its files were written after FILE (the "
                        "params.tsv they render): a job resubmitted on the same parameters resumes, and "
                        "files of earlier parameters are never kept")

    q = sub.add_parser("summary", help="rows per distortion, sampling rate and SNR bin")
    q.add_argument("--meta", nargs="+", required=True, help="rendered meta.tsv files (split = parent folder name)")
    q.add_argument("--out", required=True, help="summary CSV")



def run(args: argparse.Namespace) -> int:
    from use_repro.config import ConfigError

    try:
        return {"params": run_params, "render": run_render, "summary": run_summary}[args.action](args)
    except ConfigError as e:  # a bad profile key or value: its message names the key, no traceback
        log.error("simulate %s: %s", args.action, e)
        return 2


def simulation_settings(name: str | None, split: str):
    """The SimulationSettings of the profile or settings file `name` (the schema's defaults
    without one) for `split` ("": no split's own entry)."""
    from use_repro.config import validate_config
    from use_repro.stage_settings import SimulationSettings, load

    return load(SimulationSettings, name, split=split) if name else \
        SimulationSettings.from_config(validate_config({}), split=split)


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


def _read_entries(paths, issues: list | None = None) -> list:
    """Entries of the given scp manifests (first occurrence of a uid wins).

    A malformed line fails the whole read unless `issues` is given: then the line is skipped and
    (``<manifest> line <n>``, reason) appended to `issues`, so one bad line costs only the rows
    that use it.
    """
    from use_repro.data.manifest import ManifestError, read_scp, resolve_entries

    out, seen = [], set()
    for p in paths or []:
        try:
            entries = read_scp(p)
        except (ManifestError, UnicodeDecodeError):
            if issues is None:
                raise
            entries = _read_scp_lines(Path(p), issues)
        for e in resolve_entries(entries, p):
            if e.uid in seen:
                continue
            seen.add(e.uid)
            out.append(e)
    return out


def _read_scp_lines(path: Path, issues: list) -> list:
    """The well-formed ``uid fs path`` lines of `path`; each other line becomes an issue."""
    from use_repro.data.manifest import ScpEntry

    out, seen = [], {}
    # Undecodable bytes become U+FFFD: the line is then reported (or its path fails) on its own.
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            where = f"{path} line {lineno}"
            if len(parts) != 3:
                issues.append((where, f"expected 'uid fs path' (3 space-separated fields), got {len(parts)}: {line!r}"))
                continue
            try:
                fs = int(float(parts[1]))
            except ValueError:
                issues.append((where, f"sampling rate {parts[1]!r} is not a number: {line!r}"))
                continue
            if parts[0] in seen:
                issues.append((where, f"duplicate uid {parts[0]!r} (first on line {seen[parts[0]]}); kept the first"))
                continue
            seen[parts[0]] = lineno
            out.append(ScpEntry(parts[0], fs, parts[2]))
    return out


def read_meta_rows(path) -> tuple[list[dict], list[tuple[str, str]]]:
    """(rows, malformed lines as (row id or "<file> line N", reason)) of a meta.tsv;
    ManifestError when the file itself is unusable (empty, no header, no id/speech_uid/fs column)."""
    from use_repro.data.manifest import read_meta

    bad: list[tuple[str, str]] = []
    return read_meta(path, rejected=bad, label_by_id=True), bad


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

    settings = simulation_settings(args.config, args.split)
    sim = SimConfig.from_config(settings.section())
    seed = settings.seed if args.seed is None else args.seed
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
    issues: list[tuple[str, str]] = []  # malformed manifest lines: skipped, logged, never fatal
    noise = _read_entries(manifests("noise", args.noise_scp), issues)
    if not noise:
        log.error("params %s: no noise manifest found; pass --noise-scp", args.split)
        return 2
    rir = _read_entries(manifests("rir", args.rir_scp), issues)
    wind = _read_entries(manifests("wind", args.wind_scp), issues)
    side = {s: _read_side(getattr(args, s) or manifests(s, None)) for s in SIDE_FILES}

    from use_repro.audio.io import AudioError, audio_info

    from use_repro.batch import Failures

    # Unreadable speech (only headers are read here; NaN or truncated audio is render's to find)
    # and malformed manifest lines are skipped and listed in params_rejects.tsv, which no DAG job
    # declares, so it survives a failed job.
    speech, failures = [], Failures(f"simulate params {args.split}")
    entries = _read_entries(speech_scps, issues)
    for e in entries:
        try:
            fs_file, frames = audio_info(e.path)
        except AudioError as err:
            failures.add(e.uid, f"speech skipped: {err}")
            continue
        speech.append(SpeechItem(e.uid, fs_file, e.path, frames, side["utt2spk"].get(e.uid, e.uid),
                                 side["text"].get(e.uid, "<not-available>"), side["utt2lang"].get(e.uid, "none")))
    unreadable = len(failures)
    for item, reason in issues:
        failures.add(item, f"manifest line skipped: {reason}")
    failures.write(out / "params_rejects.tsv")
    rows, notes = sample_split(speech, noise, rir, wind, sim, args.split, seed, out)
    for n in notes:
        log.warning("params %s: %s", args.split, n)
    if not rows:
        log.error("params %s: no rows (no usable speech among %d entries)", args.split, len(speech))
        return 1
    write_meta(out / "params.tsv", rows, extra_columns=_extra_columns(sim))
    if failures:
        status = render_status(len(entries), unreadable, sim.max_reject_fraction)
        print(render_summary(failures.items, len(entries), unreadable, sim.max_reject_fraction,
                             out / "params_rejects.tsv", status, stage=f"simulate params {args.split}",
                             unit="speech entries"), file=sys.stderr)
        if status:
            return status
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
# The largest sample 16-bit PCM holds: libsndfile maps x to round(x * 32768), clipped to
# [-32768, 32767], so anything that rounds above 32767 / 32768 would be clipped.
PCM16_MAX = 32767.5 / 32768
PCM16_MIN = -32768.5 / 32768
FLOAT_SUFFIX = ".wav"


def _init_worker(sources, settings, out, resume, since=None):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    _WORKER.update(sources=sources, settings=settings, out=Path(out), resume=resume, since=since)


def _fresh(path: str | None) -> bool:
    """Whether a kept file exists and, under --keep-newer-than, was written after that file."""
    since = _WORKER.get("since")
    return path is not None and (since is None or os.stat(path).st_mtime_ns >= since)


def _render_one(job):
    """Worker: render and write one row → (index, row with paths, reason or None, seconds)."""
    index, row = job
    from use_repro.data.params import output_paths
    from use_repro.data.render import render_row
    from use_repro.data.targets import target_column

    settings, out = _WORKER["settings"], _WORKER["out"]
    t0 = time.perf_counter()
    try:
        paths = output_paths(row["id"], index, out, settings.windows_ms)
        files, links = planned_files(row, paths, settings)
        result = {**row, **{k: "none" for k in paths}}
        result.setdefault("lang", "none")
        if _WORKER["resume"]:
            kept = {name: _existing(p) for name, p in files.items()}
            kept.update({name: _existing(paths[target_column(name)]) for name in links})
            if all(_fresh(p) for p in kept.values()):
                result.update({_column(n): p for n, p in {**_given(paths, settings, files, links), **kept}.items()})
                return index, result, None, 0.0
        audio = render_row(row, _WORKER["sources"], settings)
        result.update(write_row(row, paths, settings, audio))
        return index, result, None, time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - every failure becomes a reject with its reason
        return index, None, f"{type(e).__name__}: {e}", time.perf_counter() - t0


def write_row(row: dict, paths: dict, settings, audio: dict) -> dict:
    """Write a rendered row (render_row's `audio`) to `paths` (params.output_paths) → {meta.tsv
    column: path written} for noisy and each target `settings` asks for."""
    from use_repro.data.targets import target_column

    files, links = planned_files(row, paths, settings)
    fs = int(float(row["fs"]))
    written = {name: _write(path, audio[name], fs) for name, path in files.items()}
    written.update(_given(paths, settings, files, links))
    for name, src in links.items():
        dst = _with_suffix(paths[target_column(name)], written[src])  # a link takes its source's format
        _link(written[src], dst)
        written[name] = dst
    return {_column(n): p for n, p in written.items()}


def _column(name: str) -> str:
    from use_repro.data.targets import target_column

    return "noisy_path" if name == "noisy" else target_column(name)


def _with_suffix(path: str, like: str) -> str:
    """`path` with the suffix of `like` (a link takes its source's format)."""
    return str(Path(path).with_suffix(Path(like).suffix))


def _existing(path: str) -> str | None:
    """`path`, or its float-WAV sibling, whichever exists (None if neither)."""
    for p in (path, str(Path(path).with_suffix(FLOAT_SUFFIX))):
        if os.path.exists(p):
            return p
    return None


def planned_files(row: dict, paths: dict, settings) -> tuple[dict, dict]:
    """(name -> path of each file to encode, name -> name of the file it duplicates).

    Names are ``noisy`` and the targets `settings` asks for (settings.target_list()). Every
    rendered target gets its own file in its own folder, but duplicates are hard links rather
    than encoded again: without reverberation every target is the dry speech (= the clean file,
    which is always encoded: the level rule and the official layout need it); one-sample early
    windows (e.g. 0 ms) are the shifted target.
    """
    from use_repro.data.targets import target_column

    fs = int(float(row["fs"]))
    reverberant = row.get("rir_uid", "none") not in ("none", "", None)
    wanted = settings.target_list()
    only = getattr(settings, "targets_only", False)
    # --targets-only: the noisy file, and the clean file of a dry row, are the noisy job's
    files = {} if only else {"noisy": paths["noisy_path"]}
    links = {}
    if ("early" in wanted and reverberant) or not (reverberant or only):
        files["early"] = paths["clean_path"]
    for name in wanted:
        col = target_column(name)
        if name == "early":
            continue
        if not reverberant:
            links[name] = "early"
        elif name.startswith("early") and int(float(name[5:-2]) * fs / 1000) <= 1:
            if "shifted" in wanted:
                links[name] = "shifted"
            else:
                files[name] = paths[col]
        else:
            files[name] = paths[col]
    return files, links


def _given(paths: dict, settings, files: dict, links: dict) -> dict:
    """Under --targets-only, the files of the row the noisy job wrote (`files`, `links`: the
    row's planned_files): its noisy file (listed beside the target) and, for a dry row, the
    clean file its targets link to. RowError when one is missing (the noisy job has not
    rendered the row)."""
    from use_repro.data.render import RowError

    if not getattr(settings, "targets_only", False):
        return {}
    need = {"noisy": paths["noisy_path"]}
    if "early" in links.values() or ("early" in settings.target_list() and "early" not in files):
        need["early"] = paths["clean_path"]
    given = {}
    for name, path in need.items():
        found = _existing(path)
        if found is None:
            raise RowError(f"{path}: not rendered (the split's noisy job writes it before its targets' jobs)")
        given[name] = found
    return given


def _link(src: str, dst: str) -> None:
    """`dst` as a hard link to `src` (a copy where links are not possible), atomically: the link
    is made under a temporary name and renamed onto `dst`."""
    import shutil

    _drop_other_format(dst)
    folder = os.path.dirname(dst)
    _ensure_dir(folder)
    tmp = ""
    try:
        while True:
            tmp = _temp_name(dst)
            try:
                os.link(src, tmp)
                break
            except FileExistsError:  # a leftover of a killed writer with the same process id
                continue
            except FileNotFoundError:
                if folder not in _DIRS or not os.path.exists(src):
                    raise
                _DIRS.discard(folder)  # the folder was removed since this process made it
                _ensure_dir(folder)
            except OSError:
                shutil.copyfile(src, tmp)
                break
        os.replace(tmp, dst)
    except BaseException:
        _unlink_quietly(tmp)
        raise


# Folders this process has made or seen (a row's files go to a handful of folders, so each is
# made once instead of once per file).
_DIRS: set[str] = set()
_TEMP_COUNT = [0]


def _ensure_dir(path: str) -> None:
    if path not in _DIRS:
        os.makedirs(path or ".", exist_ok=True)
        _DIRS.add(path)


def _temp_name(path: str) -> str:
    """A name beside `path` no other writer uses: hidden, with this process's id and a counter."""
    _TEMP_COUNT[0] += 1
    head, name = os.path.split(path)
    return os.path.join(head, f".{name}.{os.getpid()}.{_TEMP_COUNT[0]}.tmp")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write_bytes_atomic(path: str, data: bytes) -> None:
    """`data` as the file `path`, atomically (written under a temporary name, then renamed).

    What fs.atomic_path does for any writer, at a third of its system calls, for the renderer's
    several files per row: the temporary file is created with O_EXCL and mode 0666, which the
    kernel narrows by the umask itself (atomic_path's mkstemp makes it 0600 and reads the umask
    from /proc to widen it), and the folder is made once per process."""
    folder = os.path.dirname(path)
    _ensure_dir(folder)
    while True:
        tmp = _temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:  # a leftover of a killed writer with the same process id
            continue
        except FileNotFoundError:  # the folder was removed since this process made it
            if folder not in _DIRS:
                raise
            _DIRS.discard(folder)
            _ensure_dir(folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _drop_other_format(path: str) -> None:
    """Remove the file a previous run may have written for the same row in the other format,
    so a folder never holds two files for one id (evaluate reads folders by stem)."""
    stem, suffix = os.path.splitext(path)
    other = stem + (".flac" if suffix == FLOAT_SUFFIX else FLOAT_SUFFIX)
    if os.path.lexists(other):
        os.unlink(other)


def _write(path: str, x, fs: int) -> str:
    """Write one signal atomically → the path written.

    16-bit FLAC from float64 (the challenge's ``sf.write``: casting to float32 first moves some
    samples by one 16-bit step), encoded in memory first because libsndfile's many small writes
    are slow on some file systems. A signal 16-bit PCM cannot hold (only an extra target can
    exceed it: the level rule keeps noisy, clean and noise at 0.9 peak) is written as 32-bit float
    WAV beside it (same stem, ``.wav``), so it keeps the scale it shares with the noisy signal
    instead of being clipped or rescaled; meta.tsv points to that file.
    """
    import io

    import numpy as np
    import soundfile as sf

    y = np.asarray(x, dtype=np.float64)
    fits = y.size == 0 or (float(y.max()) < PCM16_MAX and float(y.min()) >= PCM16_MIN)
    if not fits:
        path = str(Path(path).with_suffix(FLOAT_SUFFIX))
    buf = io.BytesIO()
    if fits:
        sf.write(buf, y, int(fs), subtype="PCM_16", format="FLAC")
    else:
        sf.write(buf, y.astype(np.float32), int(fs), subtype="FLOAT", format="WAV")
    _drop_other_format(path)
    _write_bytes_atomic(str(path), buf.getbuffer())
    return str(path)


def load_sources(args, issues: list | None = None):
    """Sources for render: explicit manifests, else every matching manifest under --corpus-dir.
    With `issues`, malformed manifest lines are skipped and listed there (see _read_entries)."""
    from use_repro.data.render import Sources

    def entries(kind, explicit):
        if explicit:
            return _read_entries(explicit, issues)
        return _read_entries(all_manifests(args.corpus_dir, kind), issues) if args.corpus_dir else []

    speech = entries("speech", args.speech_scp)
    noise = entries("noise", args.noise_scp) + entries("wind", args.wind_scp)
    rir = entries("rir", args.rir_scp)
    return Sources(speech, noise, rir)


def run_render(args) -> int:
    import multiprocessing as mp

    from use_repro.batch import Failures
    from use_repro.data.manifest import ManifestError, write_meta
    from use_repro.data.params import SimConfig
    from use_repro.data.render import RenderSettings
    from use_repro.progress import progress

    # rendering reads no split's own entry (the rows say everything per utterance)
    sim = SimConfig.from_config(simulation_settings(args.config, "").section())
    settings = RenderSettings.from_sim(sim, args.targets, args.targets_only)
    try:
        names = list_names(args.list_name)
    except ValueError as e:
        log.error("render: %s", e)
        return 2
    limit = sim.max_reject_fraction if args.max_reject_fraction is None else args.max_reject_fraction
    if not 0.0 <= limit <= 1.0:
        log.error("render: --max-reject-fraction %s: expected a fraction in [0, 1]", limit)
        return 2
    try:
        settings.target_list()
    except ValueError as e:
        log.error("render: --targets: %s", e)
        return 2
    out = Path(args.out)
    try:
        rows, malformed = read_meta_rows(args.meta)
    except (ManifestError, OSError, UnicodeDecodeError) as e:
        log.error("render: %s: %s", args.meta, e)
        return 2
    manifest_issues: list[tuple[str, str]] = []
    first = args.shard is None or args.shard[0] == 0
    if not first:
        malformed = []  # a split's malformed lines are shard 0's to report, once
    try:
        sources = load_sources(args, manifest_issues)
    except OSError as e:
        log.error("render: %s", e)
        return 2
    for item, reason in manifest_issues:
        log.warning("render: manifest line skipped: %s: %s", item, reason)
    log.info("render: %d rows from %s; %d speech, %d noise, %d RIR sources; targets %s; %s", len(rows), args.meta,
             len(sources.speech), len(sources.noise), len(sources.rir), ", ".join(settings.target_list()), out)
    threads = args.threads or os.cpu_count() or 1
    from use_repro.shards import shard_range

    # a row keeps its index in the whole split (it names the row's audio folder) in any shard
    jobs = [(i, rows[i]) for i in shard_range(len(rows), args.shard)]
    resume = args.resume or args.keep_newer_than is not None
    since = os.stat(args.keep_newer_than).st_mtime_ns if args.keep_newer_than else None
    failures = Failures("simulate render")
    for item, reason in malformed:
        failures.add(item, reason)
    results: dict[int, dict] = {}
    seconds = busy = 0.0
    t0 = time.perf_counter()
    if threads <= 1 or not jobs:
        _init_worker(sources, settings, out, resume, since)
        it = map(_render_one, jobs)
        pool = None
    else:
        # fork where there is one: workers inherit the imported modules (scipy.signal alone takes
        # seconds to import) and start at once; rendering needs no BLAS threads, so nothing
        # inherited changes a result.
        import use_repro.data.render  # noqa: F401 - imported before forking

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(threads, initializer=_init_worker,
                                           initargs=(sources, settings, str(out), resume, since))
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
    rejected = len(failures)  # rows only: the manifest lines below are not rows
    for item, reason in manifest_issues if first else ():
        failures.items.append((item, reason))
    lists = Path(args.lists) if args.lists else out
    # rejects.tsv first: whatever happens next, the list of what failed is on disk.
    failures.write(lists / names["rejects"])
    write_meta(lists / names["meta"], done, extra_columns=extra)
    if done:
        log.info("render: %d rows, %.1f s of audio in %.1f s wall (%.1fx real time per worker-second)",
                 len(done), seconds, wall, seconds / busy if busy else float("nan"))
    total = len(jobs) + len(malformed)
    if args.shard is not None:
        # the limit applies to the whole split: the gather adds up every shard's counts
        import json

        from use_repro.fs import write_text_atomic

        write_text_atomic(lists / names["counts"], json.dumps({"total": total, "rejected": rejected}) + "\n")
        log.info("render: shard %d/%d: %d of %d rows, %d rejected", *args.shard, len(jobs), len(rows), rejected)
        return 0
    status = render_status(total, rejected, limit)
    if total == 0:
        log.error("render: %s holds no rows: nothing rendered", args.meta)
    if failures:
        print(render_summary(failures.items, total, rejected, limit, lists / names["rejects"], status), file=sys.stderr)
    return status


def list_names(meta_name: str = "meta.tsv") -> dict[str, str]:
    """The files a render writes beside its audio, named after its list: meta.tsv, rejects.tsv,
    counts.json (a shard's); for `meta.<target>.tsv` (a --targets-only render)
    rejects.<target>.tsv and counts.<target>.json."""
    from use_repro.shards import SIM_COUNTS

    if not (meta_name.startswith("meta") and meta_name.endswith(".tsv")) or "/" in meta_name:
        raise ValueError(f"--list-name {meta_name!r}: expected meta.tsv or meta.<name>.tsv")
    middle = meta_name[len("meta"):-len(".tsv")]
    stem, ext = SIM_COUNTS.rsplit(".", 1)
    return {"meta": meta_name, "rejects": f"rejects{middle}.tsv", "counts": f"{stem}{middle}.{ext}"}


def render_status(total: int, rejected: int, limit: float) -> int:
    """0 when at least one row rendered and the rejected rows are at most `limit` of all rows."""
    if total == 0 or rejected >= total:
        return 1
    return 0 if rejected <= limit * total else 1


def render_summary(items, total: int, rejected: int, limit: float, rejects_path, status: int, show: int = 20,
                   stage: str = "simulate render", unit: str = "rows") -> str:
    """The end-of-run summary: counts, the verdict against the limit, and the rejects by name."""
    verdict = ("within" if status == 0 else "above") + f" the limit simulation.max_reject_fraction = {limit:g}"
    lines = [f"{stage}: {total - rejected} of {total} done, {rejected} failed "
             f"({rejected / total:.1%} of the {unit}, {verdict})" if total else f"{stage}: no {unit}"]
    lines += [f"  {item}: {reason}" for item, reason in items[:show]]
    if len(items) > show:
        lines.append(f"  (+{len(items) - show} more)")
    lines.append(f"the rejects are listed in {rejects_path}")
    return "\n".join(lines)


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
