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
rate, an existing file (relative paths resolve against official_dir); the first lines of every
list are also opened. Errors name the file and line. The speech training list is required;
any other missing list is reported and written empty.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from use_repro.audio.io import AudioError, audio_info
from use_repro.data.corpus import layout, summary
from use_repro.data.manifest import ManifestError, read_kv, write_kv, write_scp

log = logging.getLogger("use_repro.corpus")
HEADER_CHECKS = 20

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


def read_list(path: Path, root: Path) -> list[tuple[str, int, str]]:
    """Read an official list (3-column, or 2-column with utt2fs beside it), checking every line."""
    fs_map = read_kv(path.parent / "utt2fs") if (path.parent / "utt2fs").exists() else {}
    out, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) == 3:
                uid, fs_s, p = parts
            elif len(parts) == 2 and parts[0] in fs_map:
                uid, p = parts
                fs_s = fs_map[uid]
            else:
                raise ManifestError(f"{path} line {lineno}: expected 'uid fs path' (or 'uid path' with "
                                    f"utt2fs beside it), got {len(parts)} fields: {line.strip()!r}")
            try:
                fs = int(float(fs_s))
            except ValueError:
                raise ManifestError(f"{path} line {lineno}: sampling rate {fs_s!r} is not a number") from None
            if uid in seen:
                raise ManifestError(f"{path} line {lineno}: duplicate uid {uid!r}")
            seen.add(uid)
            full = p if os.path.isabs(p) else str(root / p)
            if not os.path.exists(full):
                raise ManifestError(f"{path} line {lineno}: {full}: no such file")
            if len(out) < HEADER_CHECKS:
                try:
                    afs, _ = audio_info(full)
                except AudioError as e:
                    raise ManifestError(f"{path} line {lineno}: {e}") from None
                if afs != fs:
                    raise ManifestError(f"{path} line {lineno}: {full}: file is {afs} Hz but the list says {fs} Hz")
            out.append((uid, fs, full))
    return out


def build(cfg: dict, out: Path) -> list[dict]:
    root = Path(cfg["corpus"]["official_dir"] or "")
    if not cfg["corpus"]["official_dir"] or not root.is_dir():
        raise OfficialError(f"config key corpus.official_dir: {str(root)!r} is not a folder; point it at the "
                            f"URGENT 2025 data prepared by the challenge's prepare_espnet_data.sh")
    out.mkdir(parents=True, exist_ok=True)
    side: dict[str, dict[str, str]] = {k: {} for k in layout.SIDE_FILES}
    info, sources = [], []
    for split in layout.SPLITS:
        path = _find(root, _SPEECH[split])
        if path is None:
            if split == "train":
                raise OfficialError(f"{root}: no speech training list (looked for {', '.join(_SPEECH['train'])})")
            sources.append((f"official:speech_{split}", "missing", f"none of {', '.join(_SPEECH[split])}"))
            write_scp(out / layout.scp_name("speech", split), [])
            continue
        entries = read_list(path, root)
        write_scp(out / layout.scp_name("speech", split), entries)
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
            path = _find(root, [name, f"tmp/{name}"])
            entries = read_list(path, root) if path else []
            write_scp(out / name, entries)
            sources.append((f"official:{name}", "ok" if path else "missing", str(path) if path else "not found"))
    for k, mapping in side.items():
        write_kv(out / k, sorted(mapping.items()))
    from use_repro.data.corpus.build import _write_tsv

    _write_tsv(out / "speech_info.tsv", layout.SPEECH_INFO_COLUMNS, info)
    _write_tsv(out / "sources.tsv", ("source", "status", "detail"),
               [dict(source=s, status=st, detail=d) for s, st, d in sources])
    for name, cols in (("noise_info.tsv", layout.NOISE_INFO_COLUMNS), ("rir_info.tsv", layout.RIR_INFO_COLUMNS),
                       ("wind_info.tsv", layout.WIND_INFO_COLUMNS), ("crowd_dirty.tsv", ("uid", "dirty", "kind"))):
        _write_tsv(out / name, cols, [])
    rows = summary.summarise(out)
    summary.write(out / "summary.csv", rows)
    for line in summary.report(rows):
        log.info("%s", line)
    return rows
