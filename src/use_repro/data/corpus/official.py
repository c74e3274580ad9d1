"""`corpus.kind: official`: the URGENT 2025 track-1 data, prepared by the challenge's own scripts
(`prepare_espnet_data.sh`), written into this project's corpus layout.

Each manifest is looked for under `corpus.official_dir` by the names the challenge's scripts
use; the first that exists wins:

| ours | looked for (relative to official_dir) |
|---|---|
| speech_train.scp | speech_train.scp, speech_train_track1.scp, speech_train_track1/wav.scp (+ utt2fs) |
| speech_validation.scp | speech_validation.scp, validation/spk1.scp (+ validation/utt2fs) |
| speech_test.scp | speech_test.scp, test/spk1.scp (+ test/utt2fs) |
| noise_/rir_/wind_noise_{split}.scp | the same name, then tmp/<name> |
| utt2spk, utt2lang, text | beside each speech list, merged over splits |

Every line is checked: 3 fields ``uid fs path`` (or 2 fields and a rate from utt2fs), a numeric
rate, a unique uid, an existing file (relative paths resolve against official_dir), and every
file is decoded in full (`use_repro.data.audiocheck`): missing, zero-length, non-audio,
truncated, NaN- or Inf-holding files and rate mismatches are rejected. Verdicts are cached in
`audio_check.json` (keyed by path, size and mtime) so a rerun only reads new or changed files.
A rejected line is left out of the written manifest and named, with its list, line and reason,
in `rejects.tsv` (not a declared output, so it survives a failed job); every other line is
written. As `simulate render` tolerates `simulation.max_reject_fraction` of its rows, the build
tolerates `corpus.max_reject_fraction` of each list's lines: within it the run goes on with a
summary in the log (a few unreadable files among millions must not stop a paper-scale run); above
it in any list, or when a list loses every line, it fails with the summary (ManifestError, exit 1)
so the rejects are seen before any training. The fraction is per list, so a short RIR list losing
half its lines fails even beside a long speech list. The speech training list is required; any
other missing list is reported and written empty.
"""
from __future__ import annotations

import csv
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from use_repro.audio.io import AudioError
from use_repro.data.audiocheck import AudioCheckCache, AudioFacts, check_audio
from use_repro.data.corpus import layout, summary
from use_repro.data.manifest import ManifestError, read_kv, write_kv, write_scp
from use_repro.fs import atomic_path
from use_repro.stage_settings import CorpusSettings

log = logging.getLogger("use_repro.corpus")
SAVE_EVERY_S = 60  # the check cache is saved at least this often while files are decoded
REJECTS = "rejects.tsv"
CHECK_CACHE = "audio_check.json"

_SPEECH = {
    "train": ["speech_train.scp", "speech_train_track1.scp", "speech_train_track1/wav.scp"],
    "validation": ["speech_validation.scp", "validation/spk1.scp"],
    "test": ["speech_test.scp", "test/spk1.scp"],
}


class OfficialError(RuntimeError):
    pass


def _find(root: Path, names: list[str]) -> Path | None:
    for n in names:
        if (root / n).is_file():
            return root / n
    return None


@dataclass
class Rejects:
    """Rejected lines: (list, line, uid, path, reason), in the order found; and the lines each
    list holds (the denominator of corpus.max_reject_fraction)."""
    items: list[tuple[str, int, str, str, str]] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)

    def add(self, path: Path, lineno: int, uid: str, audio: str, reason: str) -> None:
        self.items.append((str(path), lineno, uid, audio, reason.replace("\t", " ").replace("\n", " ")))

    def message(self, i: int) -> str:
        lst, lineno, _, _, reason = self.items[i]
        return f"{lst} line {lineno}: {reason}"

    def over(self, limit: float) -> list[str]:
        """The lists whose rejected lines exceed `limit` of their lines, or are all of them."""
        counts = {lst: sum(1 for r in self.items if r[0] == lst) for lst in self.lines}
        return [lst for lst, n in counts.items() if n and (n >= self.lines[lst] or n > limit * self.lines[lst])]

    def summary(self, limit: float, rejects_path: Path, show: int = 20) -> str:
        """Per list: lines, rejects, the verdict against `limit`; then the rejects by name."""
        over = set(self.over(limit))
        lines = []
        for lst, total in self.lines.items():
            n = sum(1 for r in self.items if r[0] == lst)
            if n:
                verdict = "above" if lst in over else "within"
                lines.append(f"corpus: {lst}: {total - n} of {total} lines kept, {n} rejected ({n / total:.1%}, "
                             f"{verdict} the limit corpus.max_reject_fraction = {limit:g})")
        lines += [f"  {self.message(i)}" for i in range(min(show, len(self.items)))]
        if len(self.items) > show:
            lines.append(f"  (+{len(self.items) - show} more)")
        lines.append(f"the rejects are listed in {rejects_path}")
        return "\n".join(lines)


def read_list(path: Path, root: Path, rejects: Rejects) -> list[tuple[str, int, str, int]]:
    """Read an official list (3-column, or 2-column with utt2fs beside it): (uid, fs, path, line)
    of every well-formed line whose file exists; the other lines go to `rejects`."""
    fs_map = read_kv(path.parent / "utt2fs") if (path.parent / "utt2fs").exists() else {}
    out, seen = [], {}
    rejects.lines.setdefault(str(path), 0)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            rejects.lines[str(path)] += 1
            uid = parts[0]
            if len(parts) == 3:
                uid, fs_s, p = parts
            elif len(parts) == 2 and parts[0] in fs_map:
                uid, p = parts
                fs_s = fs_map[uid]
            else:
                rejects.add(path, lineno, uid, "", f"expected 'uid fs path' (or 'uid path' with utt2fs "
                                                   f"beside it), got {len(parts)} fields: {line.strip()!r}")
                continue
            try:
                fs = int(float(fs_s))
            except ValueError:
                rejects.add(path, lineno, uid, p, f"sampling rate {fs_s!r} is not a number")
                continue
            if uid in seen:
                rejects.add(path, lineno, uid, p, f"duplicate uid {uid!r} (first on line {seen[uid]})")
                continue
            seen[uid] = lineno
            full = p if os.path.isabs(p) else str(root / p)
            if not os.path.exists(full):
                rejects.add(path, lineno, uid, full, f"{full}: no such file")
                continue
            out.append((uid, fs, full, lineno))
    return out


def _check_one(path: str) -> tuple[str, AudioFacts | None, str]:
    try:
        return path, check_audio(path), ""
    except AudioError as e:
        return path, None, str(e)


def check_audio_files(paths: list[str], cache: AudioCheckCache, threads: int = 1) -> dict[str, str]:
    """Decode every file not in `cache`, `threads` at a time; path -> error ("" when fine) for
    all `paths`. The cache is saved as results come in, so a killed check keeps its progress."""
    from use_repro.progress import progress

    verdicts: dict[str, str] = {}
    todo = []
    for p in dict.fromkeys(paths):
        try:
            cache.check_cached(p)
            verdicts[p] = ""
        except KeyError:
            todo.append(p)
        except AudioError as e:
            verdicts[p] = str(e)
    if not todo:
        return verdicts
    log.info("corpus: decoding %d file(s) not checked before (%d known)", len(todo), len(verdicts))
    last_save = time.monotonic()
    if threads > 1 and len(todo) > 1:
        pool = ProcessPoolExecutor(max_workers=threads)
        results = pool.map(_check_one, todo, chunksize=max(1, min(64, len(todo) // (4 * threads))))
    else:
        pool, results = None, map(_check_one, todo)
    try:
        for p, facts, err in progress(results, desc="check audio", total=len(todo)):
            cache.record(p, facts, err)
            verdicts[p] = err
            if time.monotonic() - last_save > SAVE_EVERY_S:
                cache.save()
                last_save = time.monotonic()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        cache.save()
    return verdicts


def checked_lists(lists: dict[Path, list[tuple[str, int, str, int]]], cache: AudioCheckCache, threads: int,
                  rejects: Rejects) -> dict[Path, list[tuple[str, int, str]]]:
    """The lines of every list whose file decodes and has the rate the line says."""
    verdicts = check_audio_files([e[2] for entries in lists.values() for e in entries], cache, threads)
    out = {}
    for path, entries in lists.items():
        kept = []
        for uid, fs, full, lineno in entries:
            if verdicts[full]:
                rejects.add(path, lineno, uid, full, verdicts[full])
                continue
            afs = cache.check_cached(full).fs
            if afs != fs:
                rejects.add(path, lineno, uid, full, f"{full}: file is {afs} Hz but the list says {fs} Hz")
                continue
            kept.append((uid, fs, full))
        out[path] = kept
    return out


def build(settings: CorpusSettings, out: Path, threads: int = 1) -> list[dict]:
    """The official corpus `settings.corpus` points at, listed under `out` (see the module's text)."""
    root = Path(settings.corpus["official_dir"] or "")
    if not settings.corpus["official_dir"] or not root.is_dir():
        raise OfficialError(f"config key corpus.official_dir: {str(root)!r} is not a folder; point it at the "
                            f"URGENT 2025 data prepared by the challenge's prepare_espnet_data.sh")
    out.mkdir(parents=True, exist_ok=True)
    side: dict[str, dict[str, str]] = {k: {} for k in layout.SIDE_FILES}
    info, sources = [], []
    rejects = Rejects()
    # every list is read first, so that all files are decoded in one parallel pass
    found: dict[str, Path | None] = {}
    for split in layout.SPLITS:
        path = _find(root, _SPEECH[split])
        if path is None and split == "train":
            raise OfficialError(f"{root}: no speech training list (looked for {', '.join(_SPEECH['train'])})")
        found[layout.scp_name("speech", split)] = path
    for bank in ("noise", "rir", "wind_noise"):
        for split in layout.SPLITS:
            name = layout.scp_name(bank, split)
            found[name] = _find(root, [name, f"tmp/{name}"])
    raw = {path: read_list(path, root, rejects) for path in found.values() if path is not None}
    cache = AudioCheckCache(out / CHECK_CACHE)
    lists = checked_lists(raw, cache, threads, rejects)

    for split in layout.SPLITS:
        name = layout.scp_name("speech", split)
        path = found[name]
        if path is None:
            sources.append((f"official:speech_{split}", "missing", f"none of {', '.join(_SPEECH[split])}"))
            write_scp(out / name, [])
            continue
        entries = lists[path]
        write_scp(out / name, entries)
        for k in layout.SIDE_FILES:
            if (path.parent / k).exists():
                side[k].update(read_kv(path.parent / k))
        for uid, fs, _ in entries:
            info.append(dict(uid=uid, split=split, source="official", origin="official",
                             spk=side["utt2spk"].get(uid, uid), lang=side["utt2lang"].get(uid, "unknown"),
                             fs=fs, native_fs=fs, duration_s=0, dirty=0))
        sources.append((f"official:speech_{split}", "ok", str(path)))
    for bank in ("noise", "rir", "wind_noise"):
        for split in layout.SPLITS:
            name = layout.scp_name(bank, split)
            path = found[name]
            write_scp(out / name, lists[path] if path else [])
            sources.append((f"official:{name}", "ok" if path else "missing", str(path) if path else "not found"))
    for lst in sorted({r[0] for r in rejects.items}):
        n = sum(1 for r in rejects.items if r[0] == lst)
        sources.append((f"official:{Path(lst).name}", "rejects", f"{n} line(s) rejected, see {REJECTS}"))
    for k, mapping in side.items():
        write_kv(out / k, sorted(mapping.items()))
    from use_repro.data.manifest import write_tsv

    write_tsv(out / "speech_info.tsv", layout.SPEECH_INFO_COLUMNS, info)
    write_tsv(out / "sources.tsv", ("source", "status", "detail"),
               [dict(source=s, status=st, detail=d) for s, st, d in sources])
    for name, cols in (("noise_info.tsv", layout.NOISE_INFO_COLUMNS), ("rir_info.tsv", layout.RIR_INFO_COLUMNS),
                       ("wind_info.tsv", layout.WIND_INFO_COLUMNS), ("crowd_dirty.tsv", ("uid", "dirty", "kind"))):
        write_tsv(out / name, cols, [])
    with atomic_path(out / REJECTS) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(("list", "line", "uid", "path", "reason"))
        w.writerows(rejects.items)
    rows = summary.summarise(out)
    summary.write(out / "summary.csv", rows)
    for line in summary.report(rows):
        log.info("%s", line)
    if rejects.items:
        limit = float(settings.corpus["max_reject_fraction"])
        over = rejects.over(limit)
        (log.error if over else log.warning)("%s", rejects.summary(limit, out / REJECTS))
        if over:
            n = len(rejects.items)
            head = "; ".join(rejects.message(i) for i in range(min(5, n)))
            raise ManifestError(f"corpus: {n} line(s) rejected and left out of the manifests (listed in "
                                f"{out / REJECTS}), above corpus.max_reject_fraction = {limit:g} in "
                                f"{', '.join(Path(p).name for p in over)}; fix or remove them and rerun "
                                f"(checked files are cached): {head}{f' (+{n - 5} more)' if n > 5 else ''}")
    return rows
