"""URGENT 2025 manifests: the contract between stages, byte-compatible with the official data.

Formats (one item per line, UTF-8):

- `*.scp` audio lists: ``uid fs path`` (space separated; the path may not contain spaces).
- side files ``utt2spk``, ``utt2lang``, ``text``: ``uid value`` where the value is the rest of
  the line (a transcript keeps its spaces).
- ``meta.tsv``: tab separated with a header; the challenge's columns
  ``id noisy_path speech_uid speech_sid clean_path noise_uid snr_dB rir_uid augmentation fs length text``
  followed by any extra columns (our extra target paths). Empty values are written as ``none``,
  as in the official files.
- info tables (the corpus's ``speech_info.tsv``, ``sources.tsv``, ...): tab separated with a
  header, one row per dict, an absent or None value as an empty field (:func:`write_tsv`).

Errors name the file and the 1-based line: ``speech_train.scp line 14: ...``.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from use_repro.audio.io import AudioError, audio_info
from use_repro.fs import atomic_path

META_COLUMNS = ("id", "noisy_path", "speech_uid", "speech_sid", "clean_path", "noise_uid",
                "snr_dB", "rir_uid", "augmentation", "fs", "length", "text")


class ManifestError(ValueError):
    """A malformed manifest line or a line whose audio is unusable."""


@dataclass(frozen=True)
class ScpEntry:
    uid: str
    fs: int
    path: str


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if line.strip() and not line.lstrip().startswith("#"):
                yield i, line


def read_scp(path: str | os.PathLike, check_audio: bool = False,
             base_dir: str | os.PathLike | None = None,
             rejected: list[tuple[str, str]] | None = None) -> list[ScpEntry]:
    """Read an ``uid fs path`` list.

    Relative paths are resolved against `base_dir` when given (kept as written otherwise).
    With `check_audio`, every file is opened (header only) and its rate compared with the
    line's; full-sample checks (NaN, Inf, truncation) are left to `check_entry_audio`.
    A malformed line (field count, rate, duplicate uid) raises ManifestError, or, with
    `rejected`, is appended to it as ("<file> line N", reason) and the rest is read.
    """
    path = Path(path)
    out, seen = [], {}
    for lineno, line in _lines(path):
        try:
            out.append(_scp_entry(path, lineno, line, seen, base_dir, check_audio))
        except ManifestError as e:
            if rejected is None:
                raise
            rejected.append((f"{path.name} line {lineno}", str(e).split(": ", 1)[1]))
    return out


def _scp_entry(path: Path, lineno: int, line: str, seen: dict, base_dir, check_audio: bool) -> ScpEntry:
    parts = line.split()
    if len(parts) != 3:
        raise ManifestError(f"{path.name} line {lineno}: expected 'uid fs path' "
                            f"(3 space-separated fields), got {len(parts)}: {line!r}")
    uid, fs_s, p = parts
    try:
        fs = int(float(fs_s))
    except ValueError:
        raise ManifestError(f"{path.name} line {lineno}: sampling rate {fs_s!r} is not a number "
                            f"(expected 'uid fs path')") from None
    if uid in seen:
        raise ManifestError(f"{path.name} line {lineno}: duplicate uid {uid!r} (first on line {seen[uid]})")
    seen[uid] = lineno
    if base_dir is not None and not os.path.isabs(p):
        p = str(Path(base_dir) / p)
    entry = ScpEntry(uid, fs, p)
    if check_audio:
        check_entry_audio(entry, path.name, lineno, full=False)
    return entry


def check_entry_audio(entry: ScpEntry, manifest_name: str, lineno: int, full: bool = True) -> None:
    """Raise ManifestError naming the manifest line when the entry's audio is unusable."""
    from use_repro.data.audiocheck import check_audio

    try:
        if full:  # every frame decoded: NaN, Inf and truncation are caught, not only the header
            fs = check_audio(entry.path).fs
        else:
            fs, _ = audio_info(entry.path)
    except AudioError as e:
        raise ManifestError(f"{manifest_name} line {lineno}: {e}") from None
    if fs != entry.fs:
        raise ManifestError(f"{manifest_name} line {lineno}: {entry.path}: file is {fs} Hz "
                            f"but the list says {entry.fs} Hz")


def write_scp(path: str | os.PathLike, entries: Iterable[ScpEntry | tuple]) -> None:
    lines = []
    for e in entries:
        uid, fs, p = (e.uid, e.fs, e.path) if isinstance(e, ScpEntry) else e
        if any(c.isspace() for c in f"{uid}{p}"):
            raise ManifestError(f"{path}: uid/path may not contain whitespace: {uid!r} {p!r}")
        lines.append(f"{uid} {int(fs)} {p}\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines), encoding="utf-8")


def read_audio_scp(path: str | os.PathLike,
                   rejected: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """(uid, path) pairs of an audio list in either of two layouts, line by line:
    URGENT ``uid fs path`` or ESPnet/Kaldi ``uid path`` (a ``wav.scp``).

    Paths are returned as written (`resolve_listed` finds them). Refused, naming the line: other
    field counts, a 3-field line whose rate is not a number, a duplicate uid, and Kaldi's piped
    commands (``uid sox a.wav -t wav - |``: run the command and list the file it writes). A
    refused line raises ManifestError, or, with `rejected`, is appended to it as
    ("<file> line N", reason) and the rest is read.
    """
    path = Path(path)
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for lineno, line in _lines(path):
        parts = line.split()
        try:
            if parts[-1].endswith("|"):
                raise ManifestError(f"{path.name} line {lineno}: a command (Kaldi's 'uid cmd ... |'), not "
                                    f"a file; run it to write a file and list that instead")
            if len(parts) == 3:
                try:
                    float(parts[1])
                except ValueError:
                    raise ManifestError(f"{path.name} line {lineno}: sampling rate {parts[1]!r} is not a number "
                                        f"(expected 'uid path' or 'uid fs path')") from None
            elif len(parts) != 2:
                raise ManifestError(f"{path.name} line {lineno}: expected 'uid path' (ESPnet/Kaldi wav.scp) or "
                                    f"'uid fs path' (URGENT), got {len(parts)} fields: {line!r}")
            uid = parts[0]
            if uid in seen:
                raise ManifestError(f"{path.name} line {lineno}: duplicate uid {uid!r} (first on line {seen[uid]})")
            seen[uid] = lineno
            out.append((uid, parts[-1]))
        except ManifestError as e:
            if rejected is None:
                raise
            rejected.append((f"{path.name} line {lineno}", str(e).split(": ", 1)[1]))
    return out


def resolve_listed(p: str, list_path: str | os.PathLike) -> str:
    """A path read from a list (scp, meta.tsv), found by the rule every list of the project
    follows: absolute as written; a relative one against the list's own folder, else against
    the nearest of its ancestors where it exists (the project root, for the paths the DAG writes
    such as `results/<profile>/corpus/...`), so a list is read the same from any working
    directory and in a moved or copied tree; else as written (a hand-made list relative to where
    a command runs); else against the list's folder, so a missing file is named there."""
    if os.path.isabs(p):
        return p
    folder = Path(list_path).parent
    base = _LAST_BASE.get(folder)  # entries of one list share their root: try it first
    if base is not None and (base / p).exists():
        return str(base / p)
    for base in (folder, *folder.parents):
        if (base / p).exists():
            _LAST_BASE[folder] = base
            return str(base / p)
    return p if os.path.exists(p) else str(folder / p)


def resolve_entries(entries: Iterable[ScpEntry], list_path: str | os.PathLike) -> list[ScpEntry]:
    """`entries` read from `list_path` with their paths found by resolve_listed (for opening
    the audio; a list written from entries keeps them as read)."""
    return [ScpEntry(e.uid, e.fs, resolve_listed(e.path, list_path)) for e in entries]


# list folder -> the folder its last entry was found under (resolve_listed)
_LAST_BASE: dict[Path, Path] = {}


def read_kv(path: str | os.PathLike) -> dict[str, str]:
    """Read a ``uid value...`` side file (utt2spk, utt2lang, text)."""
    path = Path(path)
    out: dict[str, str] = {}
    for lineno, line in _lines(path):
        parts = line.split(maxsplit=1)
        if len(parts) == 0:
            continue
        uid = parts[0]
        if uid in out:
            raise ManifestError(f"{path.name} line {lineno}: duplicate uid {uid!r}")
        out[uid] = parts[1].strip() if len(parts) > 1 else ""
    return out


def write_kv(path: str | os.PathLike, mapping: dict[str, str] | Iterable[tuple[str, str]]) -> None:
    items = mapping.items() if isinstance(mapping, dict) else mapping
    text = "".join(f"{k} {str(v).strip()}\n" for k, v in items)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_tsv(path: str | os.PathLike, columns: Iterable[str], rows: Iterable[dict]) -> None:
    """Write an info table atomically: a header of `columns`, then each row's values in that
    order (csv-quoted where a value holds a tab, a quote or a newline; a missing key or None is
    empty). Here, with the other manifest writers, because both ways of building a corpus (the
    embedded build and the official-data mode) write the same tables with it."""
    columns = tuple(columns)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])


def read_meta(path: str | os.PathLike, rejected: list[tuple[str, str]] | None = None,
              label_by_id: bool = False) -> list[dict[str, str]]:
    """Read a ``meta.tsv``; every row is a dict keyed by column. Extra columns are kept.

    A line with the wrong number of fields raises ManifestError, or, with `rejected`, is
    appended to it as (label, "<file> line N: malformed row, ...") and the rest is read (a bad
    header still raises). The label is "<file> line N", or with `label_by_id` the line's first
    field when it has one (`simulate render` keys its failures by row id).
    """
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(reader)
        except StopIteration:
            raise ManifestError(f"{path.name}: empty file (expected a header with {', '.join(META_COLUMNS)})") from None
        missing = [c for c in ("id", "speech_uid", "fs") if c not in header]
        if missing:
            raise ManifestError(f"{path.name} line 1: header lacks column(s) {', '.join(missing)}; "
                                f"expected {' '.join(META_COLUMNS)}")
        rows = []
        for lineno, fields in enumerate(reader, 2):
            if not fields or all(not x.strip() for x in fields):
                continue
            if len(fields) != len(header):
                where = f"{path.name} line {lineno}"
                msg = f"{where}: malformed row, {len(fields)} fields, header has {len(header)}"
                if rejected is None:
                    raise ManifestError(msg)
                rejected.append((fields[0].strip() if label_by_id and fields[0].strip() else where, msg))
                continue
            rows.append(dict(zip(header, fields)))
    return rows


def write_meta(path: str | os.PathLike, rows: list[dict], extra_columns: Iterable[str] = ()) -> None:
    """Write ``meta.tsv`` with the challenge's columns first, then `extra_columns` (or any
    further keys found in the rows, in first-seen order)."""
    columns = list(META_COLUMNS)
    for c in list(extra_columns) + [k for r in rows for k in r]:
        if c not in columns:
            columns.append(c)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(columns) + "\n")
        for r in rows:
            vals = []
            for c in columns:
                v = r.get(c, "none")
                v = "none" if v is None or v == "" else str(v)
                if "\t" in v or "\n" in v:
                    raise ManifestError(f"{path}: row {r.get('id')}: column {c} holds a tab or newline")
                vals.append(v)
            f.write("\t".join(vals) + "\n")
