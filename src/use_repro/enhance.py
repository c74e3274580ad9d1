"""Enhance files, folders or audio lists with a trained checkpoint or the authors' released model.

    use-repro enhance --checkpoint CKPT --in FILE|DIR|LIST [--in ...] --out DIR
                      [--threads N] [--chunk-seconds S] [--overlap-seconds O] [--device auto|cpu|cuda]

- Checkpoint: the final.pt of `use-repro train` (regression or two-stage GAN), or the authors'
  RE-USE release (g_<step>.pth or model.safetensors). Any other file is refused in one line.
- Inputs: an audio file, a folder (searched recursively; every file libsndfile reads, whatever
  its suffix or case: FLAC, WAV, Ogg/Opus, MP3, AIFF, CAF, ...), or an audio list (suffix .scp)
  of URGENT ``uid fs path`` or ESPnet/Kaldi ``uid path`` lines (a wav.scp). A relative path in a
  list is read against the list's folder (or, where it exists there instead, the current
  directory). A folder's other files are named in `enhance_skipped.tsv` and the log; an audio
  container libsndfile cannot decode (.m4a, .aac, ...) is a failure with a hint.
- Uids are valid URGENT uids and unique (case-insensitively) whatever the file names: the list's
  uid, else the file's stem, else (stems repeat) its relative path joined by "-", else that plus
  its extension (`a.wav` beside `a.flac`), spaces and separators becoming "_". Every output is
  `--out/<uid><ext>`; FLAC and WAV keep their format and sample encoding, others become FLAC.
- `--out/enhanced.tsv` maps each uid to its output, its original source file (with its size,
  mtime and sha256) and the sha256 of the checkpoint that made it; `--out/enhanced.scp` lists
  every output as ``uid fs path``. Every path in both is relative to --out itself (absolute
  only where no relative path exists), so --out, or the whole tree around it, can be moved or
  copied and read from any directory. Both are merged with what --out already holds, so runs
  over several inputs add up.
- One writer at a time: a run holds an exclusive lock on --out (`.use-repro.lock`,
  :mod:`use_repro.lock`) from reading its lists to writing them; a second run into the same
  --out says which process holds it and waits, so no entry is lost.
- Rates, chunks, memory (:mod:`use_repro.enhancer`): any rate 8-48 kHz through the same model;
  long files in cross-faded chunks of `--chunk-seconds` overlapping by `--overlap-seconds`,
  streamed so memory does not grow with a file's length, with a progress bar inside a long file.
- Resumable: an output is kept when the same checkpoint made it from the same source: the same
  file unchanged since (size, mtime), or, copied or moved since, a file of the same content
  (sha256). A source keeps its uid when the tree around --out moves (paths are relative), and
  when the source alone moved (found by content once its recorded path is gone). An output
  another checkpoint made is replaced (or removed, if its source is not in this run). Each
  finished file is journalled as it completes and the lists are written even when the run
  fails, so nothing done is lost.
- Inputs are never overwritten: an --out that is, or lies inside, an input folder is refused
  (exit 2) before anything runs, and an output path that is one of the inputs is a failure.
- A file that cannot be read or enhanced is reported (`enhance_failures.tsv`) and skipped; the
  command ends with a summary and exit status 1 when anything failed (0 otherwise).

From Python, `use_repro.Enhancer` enhances arrays and single files the same way.
This is also the tool for cleaning TTS training data (paper Section 3.9).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from use_repro.shards import parse_shard  # light (no torch): the --shard argument type
from use_repro.batch import Failures
from use_repro.data.manifest import write_scp
from use_repro.fs import atomic_path, refuse_overwrite, sha256_file, sha256_file_cached
from use_repro.lock import folder_lock

if TYPE_CHECKING:
    from use_repro.enhancer import Enhancer

log = logging.getLogger(__name__)

KEEP_FORMAT = {".flac", ".wav"}

# names that lived here before the model side moved to use_repro.enhancer (still importable)
_MOVED = {"Enhancer", "load_enhancer", "wave_fn", "model_rate", "chunk_spans", "crossfade_weights",
          "span_weights", "normalized_call", "enhance_signal", "enhance_stream", "WaveFn",
          "MIN_RATE", "MAX_RATE"}


def __getattr__(name: str):
    if name in _MOVED:
        from use_repro import enhancer

        return getattr(enhancer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- jobs: which input goes to which output ---------------------------------------------------

# Suffixes that name audio formats libsndfile reads (its own list plus common aliases). A file with
# one of them becomes a job (a damaged one is a reported failure); a file with another suffix is
# still probed, so any file libsndfile can read is enhanced whatever its name.
SNDFILE_SUFFIXES = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                    ".au", ".snd", ".caf", ".w64", ".rf64", ".sd2", ".voc", ".paf", ".iff", ".svx",
                    ".nist", ".sph", ".wve", ".mat", ".mat4", ".mat5", ".pvf", ".xi", ".htk", ".sf",
                    ".ircam", ".avr", ".sds", ".mpc"}
# Audio containers libsndfile cannot decode: named as failures (the user asked for them to be
# enhanced and they were not), with a conversion hint.
FOREIGN_AUDIO = {".m4a", ".aac", ".mp4", ".wma", ".amr", ".ape", ".alac", ".webm", ".mka", ".3gp", ".wv"}

MANIFEST = "enhanced.tsv"          # uid -> output, source, checkpoint digest (the mapping file)
JOURNAL = "enhance_journal.tsv"    # appended per finished file; folded into the lists at the end
# paths ("path", "source") are relative to the folder that holds the file
MANIFEST_COLUMNS = ("uid", "fs", "path", "source", "source_size", "source_mtime_ns", "source_sha256",
                    "checkpoint")
# the layout before source_sha256 (absolute paths): still read, its outputs kept
LEGACY_COLUMNS = ("uid", "fs", "path", "source", "source_size", "source_mtime_ns", "checkpoint")
_UNSAFE = re.compile(r"[\s/\\:*?\"<>|\x00-\x1f]+")


class EnhanceSetupError(ValueError):
    """Arguments that cannot work (e.g. --out equal to or inside an input folder)."""


@dataclass(frozen=True)
class Job:
    uid: str
    src: Path
    dst: Path


@dataclass(frozen=True)
class Candidate:
    """An input file before its uid is fixed: uid candidates from most to least preferred."""
    src: Path
    names: tuple[str, ...]
    fixed: bool = False  # a list's uid: used as given (made unique only if two lists repeat it)


def source_digest(path: str | os.PathLike) -> str:
    """sha256 of a source file (remembered per path, size and mtime within a process)."""
    return sha256_file_cached(path)


def safe_uid(name: str) -> str:
    """`name` as a valid URGENT uid and file name: no whitespace, separators or control
    characters (each run of them becomes "_"), no leading dot (a hidden file)."""
    uid = _UNSAFE.sub("_", name).lstrip(".")
    return uid or "utt"


def checkpoint_digest(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint file, or of every file of a checkpoint folder (names and bytes,
    in sorted order): what `enhanced.tsv` records as the maker of each output."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _output_suffix(src: Path) -> str:
    return src.suffix.lower() if src.suffix.lower() in KEEP_FORMAT else ".flac"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_layout(inputs: list[str], out_dir: Path) -> None:
    """Refuse an --out that is an input folder or lies inside one (outputs would mix with, and
    could replace, the inputs), or that is an input file."""
    out = out_dir.resolve()
    for item in inputs:
        p = Path(item).resolve()
        if p.is_dir() and _inside(out, p):
            what = "is" if out == p else "lies inside"
            raise EnhanceSetupError(f"--out {out_dir} {what} the input folder {item}; choose an output "
                                    f"folder outside it (inputs are never overwritten)")
        if p.is_file() and out == p:
            raise EnhanceSetupError(f"--out {out_dir} is the input file {item}")


def scan_folder(folder: Path, out_dir: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    """Files of `folder` (recursively) that libsndfile reads or that carry an audio suffix;
    everything else is appended to `skipped` as (path, reason): other files, and hidden files
    and folders (named once, not their contents; a killed writer's temp files are hidden)."""
    import soundfile as sf

    out = out_dir.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        skipped += [(str(here / d), "hidden folder") for d in sorted(dirnames) if d.startswith(".")]
        # never our own outputs (--out inside --in is refused before this; a guard all the same)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not _inside((here / d).resolve(), out))
        for name in sorted(filenames):
            q = here / name
            if name.startswith("."):
                skipped.append((str(q), "hidden file"))
            elif q.is_file():
                found.append(q)
    files = []
    for q in sorted(found):
        suffix = q.suffix.lower()
        if suffix in SNDFILE_SUFFIXES or suffix in FOREIGN_AUDIO:
            files.append(q)
            continue
        try:
            sf.info(str(q))
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            skipped.append((str(q), f"not a format libsndfile reads ({str(e).strip() or type(e).__name__})"))
            continue
        files.append(q)
    return files


def _candidates_of_folder(folder: Path, files: list[Path]) -> list[Candidate]:
    out = []
    for f in files:
        rel = f.relative_to(folder)
        joined = "-".join(rel.with_suffix("").parts)
        # stem; the relative path (stems repeat in subfolders); plus the extension (a.wav, a.flac)
        out.append(Candidate(f, (safe_uid(f.stem), safe_uid(joined), safe_uid(f"{joined}_{f.suffix.lstrip('.')}"))))
    return out


def assign_uids(cands: list[Candidate], previous: dict[str, str],
                moved: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """One uid per candidate, unique case-insensitively (outputs are `<uid><ext>` files, and
    file systems may fold case) and valid for the scp format.

    `previous` (uid -> resolved source) is what this --out already holds: a source enhanced
    before keeps its uid, and a uid taken by another source is not reused. `moved` (uid ->
    (size, sha256)) are the earlier sources no longer at their recorded path: a file of the same
    content that could bear that uid (one of its names) takes it, so a source moved on its own
    keeps its uid. Otherwise each file
    takes the first of its names that no other file of this run shares at that level (so `a.wav`
    and `a.flac` become `a_wav` and `a_flac`, not `a` and `a_flac`), with `_2`, `_3`... last.
    """
    by_source = {src: uid for uid, src in previous.items()}
    taken = {uid.lower(): src for uid, src in previous.items()}
    result: list[str | None] = [None] * len(cands)
    for i, c in enumerate(cands):
        key = str(c.src.resolve())
        if key in by_source and taken.get(by_source[key].lower()) == key:
            result[i] = by_source[key]
    orphans = dict(moved or {})
    for i, c in enumerate(cands):
        if result[i] is not None or not orphans or not c.src.is_file():
            continue
        size = str(c.src.stat().st_size)
        names = {n.lower() for n in c.names}
        for uid, (o_size, o_sha) in orphans.items():
            if uid.lower() in names and o_size == size and o_sha and source_digest(c.src) == o_sha:
                result[i] = uid
                taken[uid.lower()] = str(c.src.resolve())
                del orphans[uid]
                break
    levels = max((len(c.names) for c in cands), default=0)
    for level in range(levels):
        pending = [i for i, c in enumerate(cands) if result[i] is None]
        counts: dict[str, int] = {}
        for i in pending:
            name = cands[i].names[min(level, len(cands[i].names) - 1)]
            counts[name.lower()] = counts.get(name.lower(), 0) + 1
        for i in pending:
            c = cands[i]
            name = c.names[min(level, len(c.names) - 1)]
            if (counts[name.lower()] == 1 or c.fixed) and name.lower() not in taken:
                result[i] = name
                taken[name.lower()] = str(c.src.resolve())
    for i, c in enumerate(cands):
        if result[i] is None:
            base, n = c.names[-1], 2
            while f"{base}_{n}".lower() in taken:
                n += 1
            result[i] = f"{base}_{n}"
            taken[result[i].lower()] = str(c.src.resolve())
    return [r for r in result if r is not None]


def collect_jobs(inputs: list[str], out_dir: Path, previous: dict[str, str] | None = None,
                 skipped: list[tuple[str, str]] | None = None,
                 bad_lines: list[tuple[str, str]] | None = None,
                 moved: dict[str, tuple[str, str]] | None = None) -> list[Job]:
    """Expand files, folders and audio lists into (uid, source, destination) jobs.

    Every output is `<out_dir>/<uid><ext>` (flat: a uid is unique in --out). Files of a folder
    that are not audio go to `skipped` (path, reason); malformed list lines to `bad_lines`
    ("<list> line N", reason), else the first one raises ManifestError. `previous` and `moved`:
    see `assign_uids` (`sources_of` makes both from an --out's records).
    """
    from use_repro.data.manifest import ManifestError, read_audio_scp, resolve_listed

    skipped = skipped if skipped is not None else []
    cands: list[Candidate] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            cands += _candidates_of_folder(p, scan_folder(p, out_dir, skipped))
        elif p.suffix.lower() == ".scp":
            rejected: list[tuple[str, str]] = []
            entries = read_audio_scp(p, rejected=rejected)
            if bad_lines is not None:
                bad_lines += rejected
            elif rejected:
                raise ManifestError(f"{rejected[0][0]}: {rejected[0][1]}")
            for uid, listed in entries:
                cands.append(Candidate(Path(resolve_listed(listed, p)), (safe_uid(uid),), fixed=True))
        else:  # a single file; a missing one becomes a reported failure, not a crash
            cands.append(Candidate(p, (safe_uid(p.stem), safe_uid(f"{p.stem}_{p.suffix.lstrip('.')}"))))
    uids = assign_uids(cands, previous or {}, moved)
    return [Job(uid, c.src, out_dir / f"{uid}{_output_suffix(c.src)}") for uid, c in zip(uids, cands)]


# --- the output folder's records --------------------------------------------------------------
# In memory a record's "path" and "source" are absolute (real paths); on disk both are relative
# to the folder that holds the list.

def _root(out_dir: Path) -> str:
    return os.path.realpath(out_dir)


def _from_disk(p: str, root: str) -> str:
    return os.path.realpath(os.path.join(root, p)) if p else p  # an absolute p stays itself


def _to_disk(p: str, root: str) -> str:
    try:
        return os.path.relpath(p, root) if p else p
    except ValueError:  # no relative path between them (another drive)
        return p


def _source_stat(src: Path) -> tuple[str, str]:
    st = src.stat()
    return str(st.st_size), str(st.st_mtime_ns)


def read_records(out_dir: Path) -> dict[str, dict[str, str]]:
    """uid -> record of `enhanced.tsv`, updated by the journal a killed run left behind (a torn
    last journal line is ignored: its output is recomputed). Paths come back absolute."""
    root = _root(out_dir)
    records: dict[str, dict[str, str]] = {}
    for name in (MANIFEST, JOURNAL):
        path = out_dir / name
        if not path.exists():
            continue
        lines = path.read_text(encoding="utf-8").split("\n")
        if name == MANIFEST:
            header = tuple(lines[0].split("\t"))
            if header not in (MANIFEST_COLUMNS, LEGACY_COLUMNS):
                # another layout: nothing in it can be trusted, so all is redone
                log.warning("%s: unexpected header %r; its outputs will be made again", path, lines[0])
                continue
            lines = lines[1:]
        for line in lines:
            fields = line.split("\t")
            if len(fields) == len(MANIFEST_COLUMNS):
                rec = dict(zip(MANIFEST_COLUMNS, fields))
            elif len(fields) == len(LEGACY_COLUMNS):
                rec = dict(zip(LEGACY_COLUMNS, fields), source_sha256="")
            else:
                continue
            rec["path"], rec["source"] = _from_disk(rec["path"], root), _from_disk(rec["source"], root)
            records[rec["uid"]] = rec
    return records


def sources_of(records: dict[str, dict[str, str]]) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(uid -> source path, uid -> (size, sha256) of sources no longer at their path): what
    `collect_jobs` needs to keep each source's uid."""
    previous = {u: r["source"] for u, r in records.items()}
    moved = {u: (r["source_size"], r["source_sha256"]) for u, r in records.items()
             if r["source_sha256"] and not os.path.exists(r["source"])}
    return previous, moved


def _row(rec: dict[str, str], root: str) -> tuple[str, ...]:
    disk = dict(rec, path=_to_disk(rec["path"], root), source=_to_disk(rec["source"], root))
    return tuple(disk[c] for c in MANIFEST_COLUMNS)


def _write_tsv(path: Path, columns: tuple[str, ...], rows: list[tuple]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("\t".join(columns) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows),
                       encoding="utf-8")


def write_lists(out_dir: Path, records: dict[str, dict[str, str]], failures: Failures,
                skipped: list[tuple[str, str]]) -> None:
    """enhanced.tsv, enhanced.scp, enhance_failures.tsv, enhance_skipped.tsv, each atomic; the
    journal is removed only once all of them are written. Paths relative to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    root = _root(out_dir)
    # failures first: if a later list cannot be written, the reasons are already on disk
    failures.write(out_dir / "enhance_failures.tsv")
    _write_tsv(out_dir / "enhance_skipped.tsv", ("path", "reason"), skipped)
    rows = sorted(records.values(), key=lambda r: r["uid"])
    _write_tsv(out_dir / MANIFEST, MANIFEST_COLUMNS, [_row(r, root) for r in rows])
    write_scp(out_dir / "enhanced.scp", [(r["uid"], int(r["fs"]), _to_disk(r["path"], root)) for r in rows])
    with contextlib.suppress(FileNotFoundError):
        (out_dir / JOURNAL).unlink()


@dataclass
class EnhanceSummary:
    """What `enhance_jobs` did: jobs run (`total`), outputs made, outputs kept, and failures
    (bad list lines included)."""
    total: int = 0
    made: int = 0
    kept: int = 0
    failures: Failures = field(default_factory=lambda: Failures("enhance"))

    @property
    def ok(self) -> bool:
        return not self.failures


def _unchanged(rec: dict[str, str], job: Job, size: str, mtime: str) -> bool:
    """Whether `rec`'s output was made from the file `job.src` is now: the same file untouched
    since, or (copied or moved since) the same content."""
    if rec["source"] == str(job.src.resolve()) and (rec["source_size"], rec["source_mtime_ns"]) == (size, mtime):
        return True
    return bool(rec["source_sha256"]) and rec["source_size"] == size and source_digest(job.src) == rec["source_sha256"]


def enhance_jobs(enhancer: "Enhancer", jobs: list[Job], out_dir: Path, checkpoint: str = "",
                 skipped: list[tuple[str, str]] | None = None,
                 bad_lines: list[tuple[str, str]] = ()) -> EnhanceSummary:
    """Run every job with `enhancer` under the lock of `out_dir`; a failed file is recorded
    (`enhance_failures.tsv`) and the rest go on. Files skipped as not audio are named in the log
    and enhance_skipped.tsv but are not failures.

    An output is kept only when `enhanced.tsv` says this `checkpoint` (digest) made it from
    this source, unchanged since (`_unchanged`); otherwise it is made again. Outputs another
    checkpoint made for files not in this run are deleted. The lists are merged with what
    --out already holds and written in a `finally`, and each finished file is journalled as it
    completes, so neither an error nor a kill loses what was done.
    """
    with folder_lock(out_dir, "enhance"):
        return _enhance_jobs(enhancer, jobs, out_dir, checkpoint, list(skipped or []), bad_lines)


def _enhance_jobs(enhancer: "Enhancer", jobs: list[Job], out_dir: Path, checkpoint: str,
                  skipped: list[tuple[str, str]], bad_lines) -> EnhanceSummary:
    import soundfile as sf

    from use_repro.audio.io import AudioError
    from use_repro.progress import progress

    summary = EnhanceSummary(total=len(jobs) + len(bad_lines))
    failures = summary.failures
    inputs = {j.src.resolve() for j in jobs}
    for where, why in bad_lines:  # malformed list lines: named failures, the rest still runs
        failures.add(where, why)
    records = read_records(out_dir)
    stale = [u for u, r in records.items() if r.get("checkpoint") != checkpoint]
    mine = {j.uid for j in jobs}
    out_real = Path(_root(out_dir))
    for uid in stale:  # made by another model: replaced below if in this run, else removed now
        rec = records.pop(uid)
        if uid not in mine and _inside(Path(rec["path"]), out_real):
            with contextlib.suppress(FileNotFoundError):
                Path(rec["path"]).unlink()
    if stale:
        log.warning("enhance: %d output(s) in %s were made by another checkpoint; they are replaced "
                    "or removed", len(stale), out_dir)
    for uid in [u for u, r in records.items() if not Path(r["path"]).exists()]:
        del records[uid]  # deleted by hand since: no longer listed
    out_dir.mkdir(parents=True, exist_ok=True)
    root = _root(out_dir)
    journal = open(out_dir / JOURNAL, "a", encoding="utf-8")

    def note(rec: dict[str, str]) -> None:
        records[rec["uid"]] = rec
        journal.write("\t".join(_row(rec, root)) + "\n")
        journal.flush()

    try:
        for job in progress(jobs, desc="enhance", total=len(jobs)):
            try:
                refuse_overwrite(job.dst, inputs)
                size, mtime = _source_stat(job.src) if job.src.exists() else ("", "")
                rec = records.get(job.uid)
                dst = os.path.realpath(job.dst)
                if rec is not None and job.dst.exists() and rec["path"] == dst and size and _unchanged(rec, job, size, mtime):
                    summary.kept += 1
                    now = dict(rec, source=str(job.src.resolve()), source_size=size, source_mtime_ns=mtime,
                               source_sha256=rec["source_sha256"] or source_digest(job.src))
                    if now != rec:  # found at another path, touched, or from before sha256s were kept
                        note(now)
                    continue
                if records.pop(job.uid, None) is not None:
                    # an earlier output of this uid is stale from here on: never left behind
                    # listed-but-wrong, nor unlisted-but-evaluated if this attempt fails
                    job.dst.unlink(missing_ok=True)
                if job.src.suffix.lower() in FOREIGN_AUDIO and job.src.exists():
                    raise AudioError(f"{job.src}: {job.src.suffix} is not a format libsndfile reads; convert "
                                     f"it first (e.g. ffmpeg -i '{job.src.name}' '{job.src.stem}.flac')")
                sha = source_digest(job.src) if size else ""
                fs = enhancer.enhance_file(job.src, job.dst)
                note(dict(uid=job.uid, fs=str(fs), path=dst, source=str(job.src.resolve()), source_size=size,
                          source_mtime_ns=mtime, source_sha256=sha, checkpoint=checkpoint))
                summary.made += 1
            except (AudioError, FileExistsError, RuntimeError, ValueError, OSError, sf.LibsndfileError) as e:
                failures.add(job.uid, e)
    finally:
        journal.close()
        write_lists(out_dir, records, failures, skipped)
    if summary.kept:
        log.info("enhance: %d output(s) already existed (same checkpoint, same source) and were kept", summary.kept)
    for path, reason in skipped[:5]:
        log.warning("enhance: skipped %s: %s", path, reason)
    if skipped:
        log.warning("enhance: %d file(s) skipped (listed in %s)", len(skipped), out_dir / "enhance_skipped.tsv")
    (log.error if failures else log.info)(failures.summary(summary.total))
    return summary


# --- CLI --------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="final.pt of `use-repro train` (regression or gan), or the RE-USE release "
                             "g_<step>.pth / model.safetensors")
    parser.add_argument("--in", dest="inputs", required=True, action="append",
                        help="audio file, folder, or .scp list of 'uid fs path' or 'uid path' lines (repeatable)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--chunk-seconds", type=float, default=30.0,
                        help="enhance longer files in chunks of this length (0: whole files)")
    parser.add_argument("--overlap-seconds", type=float, default=1.0, help="overlap between chunks")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--shard", type=parse_shard, default=None, metavar="k/K",
                        help="enhance only the files whose uid falls in shard k of K of the sorted uids "
                             "(uids assigned over all inputs first, so each keeps its unsharded name); "
                             "`use-repro gather enhance` joins the shards' folders into the unsharded one")



def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def run(args: argparse.Namespace) -> int:
    """The CLI: library errors become exit statuses here (2: nothing could run; 1: some file failed)."""
    from use_repro.data.manifest import ManifestError

    out_dir = Path(args.out)
    skipped: list[tuple[str, str]] = []
    bad_lines: list[tuple[str, str]] = []
    try:
        check_layout(args.inputs, out_dir)
    except EnhanceSetupError as e:
        log.error("enhance: %s", e)
        return 2
    with folder_lock(out_dir, "enhance"):  # held from reading the lists to writing them
        try:  # everything that can be refused is refused before the model loads
            previous, moved = sources_of(read_records(out_dir))
            jobs = collect_jobs(args.inputs, out_dir, previous, skipped, bad_lines, moved)
            if args.shard is not None:
                from use_repro.shards import select

                jobs = select(sorted(jobs, key=lambda j: j.uid), args.shard)
                bad_lines = bad_lines if args.shard[0] == 0 else []  # reported once, by shard 0
        except (ManifestError, OSError) as e:
            log.error("enhance: %s", e)
            return 2
        import torch

        from use_repro.enhancer import Enhancer

        if args.threads > 0:
            torch.set_num_threads(args.threads)
        try:
            enhancer = Enhancer.from_checkpoint(args.checkpoint, args.device, args.chunk_seconds,
                                                args.overlap_seconds)
            digest = checkpoint_digest(args.checkpoint)
        except Exception as e:  # any loader error: a missing, truncated or foreign file, no CUDA
            from use_repro.models.checkpoint import EXPECTED, CheckpointError
            from use_repro.models.released import ReleasedCheckpointError

            if isinstance(e, FileNotFoundError):
                log.error("enhance: --checkpoint %s: no such file; %s", args.checkpoint, EXPECTED)
            elif isinstance(e, (CheckpointError, ReleasedCheckpointError)):
                msg = _one_line(e)
                log.error("enhance: --checkpoint %s%s", msg, "" if EXPECTED in msg else f"; {EXPECTED}")
            else:
                log.error("enhance: --checkpoint %s cannot be loaded: %s: %s", args.checkpoint,
                          type(e).__name__, _one_line(e))
            return 2
        log.info("enhance: %d file(s) with %s (sha256 %s) on %s", len(jobs), args.checkpoint, digest[:12],
                 enhancer.device)
        summary = enhance_jobs(enhancer, jobs, out_dir, checkpoint=digest, skipped=skipped, bad_lines=bad_lines)
    return 0 if summary.ok else 1
