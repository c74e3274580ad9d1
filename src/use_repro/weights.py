"""`use-repro weights`: the files of the paper-faithful backends no package registry ships.

    use-repro weights status [--json]       what each backend needs, where it looks, what is
                                            there, its sha256 and whether that is the official file
    use-repro weights fetch NAME            download from the official public location into
                                            weights_dir, pinned by sha256; atomic and resumable
    use-repro weights add NAME FILE         check a file you already have and install it

NAME is one of `nisqa`, `utmos`, `vqscore`, `reuse` (see REGISTRY; `reuse` is the authors' released
USEMamba: `use-repro enhance --checkpoint reuse` runs it, and a profile's `stage: pretrained`
experiment scores it beside the retrained runs). The folder is `--weights-dir`, else
the profile's `weights_dir` (`--config`), else `./weights` -- the folder `use-repro evaluate`
and the DAG read, so what is installed here is used by the next `make tables` (the tables and
provenance name each metric's backend; a missing file leaves its metric n/a with the reason).

Downloads go to `<file>.part` beside the target and are renamed onto the final name only after
the size and sha256 check out, so the final name never holds a partial or wrong file. An
interrupted transfer keeps its `.part` and the next `fetch` resumes it with an HTTP Range
request; a completed download with the wrong sha256 is deleted. Where the authors publish no
digest (VQScore), nothing is invented: such a file is installed only when asked
(`--accept-unpinned`), and its digest is recorded in `weights_dir/weights.json` as
"recorded, not pinned". The authors' RE-USE release publishes no digest either, but it is fetched
from a fixed commit of its hub repository (a revision, never `main`), so `fetch reuse` needs no
flag; the sha256 of what was fetched is printed and recorded (weights.json and `<file>.sha256`
beside it, in `sha256sum` format) for the provenance, as a record, not as a published pin.

`ensure NAME` is `fetch` for a build step (the Makefile's `make tables`): it installs the file when
it is absent and reachable, says in one line when it is not (with the command that adds it), and
never fails; `--no-fetch` only says whether it is there.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import logging
import os
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from use_repro.fs import sha256_file, sha256_file_cached
from use_repro.metrics.nisqa import OFFICIAL_SHA256 as NISQA_SHA256  # one pin, shared with the backend

log = logging.getLogger(__name__)

MANIFEST = "weights.json"
DEFAULT_DIR = "weights"  # without --weights-dir or --config: ./weights
CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightFile:
    """One known file: where it comes from, where it goes, how it is checked."""

    name: str            # the CLI's NAME
    metric: str          # what uses it
    path: str            # relative to weights_dir
    url: str             # official public location
    sha256: str | None   # None: the authors publish no digest, and none is invented
    size: int | None     # bytes, when known
    license: str
    pin_source: str      # where the digest comes from (or why there is none)
    needs: str           # what else the backend needs
    revision: str | None = None  # a fixed commit of the source repository `url` names (no digest)


# nvidia/RE-USE on the Hugging Face hub: the commit whose model.safetensors the public ports of the
# model (appautomaton/mlx-speech, onnxruntime/mobius) load; `resolve/main` could change under a user.
REUSE_REVISION = "761905064ea1ea882e015e20a64e2e9d28458890"

REGISTRY: dict[str, WeightFile] = {w.name: w for w in (
    WeightFile(
        "nisqa", "NISQA", "nisqa/nisqa.tar",
        "https://github.com/gabrielmittag/NISQA/raw/master/weights/nisqa.tar",
        NISQA_SHA256, 1051663,
        "CC BY-NC-SA 4.0 (NISQA model weights)",
        "the file of the official repository (commit fe84f0f), weights/nisqa.tar",
        "model code: pip install --no-deps nisqa==2.0.post2 (the Makefile installs it)"),
    WeightFile(
        "utmos", "UTMOS", "utmos/utmos22_strong_step7459_v1.pt",
        "https://github.com/tarepan/SpeechMOS/releases/download/v1.0.0/utmos22_strong_step7459_v1.pt",
        "38aa51ab79e2a4e09a1449758a4b37e9cbb2e8235a49662a732d33a9ba1e9bff", 411179119,
        "SpeechMOS (MIT); UTMOS22 strong learner weights by SaruLab (UTokyo)",
        "SpeechMOS publishes no digest; this one (and the size) is the one several independent public "
        "projects pin for that release asset",
        "nothing else: the model is re-implemented in use_repro/metrics/utmos.py"),
    WeightFile(
        "vqscore", "VQScore", "vqscore/checkpoint-dnsmos_ovr_CC=0.835.pkl",
        "https://github.com/JasonSWFu/VQscore/raw/main/exp/"
        "QE_cbook_size_2048_1_32_IN_input_encoder_z_Librispeech_clean_github/checkpoint-dnsmos_ovr_CC%3D0.835.pkl",
        None, None,
        "see the JasonSWFu/VQscore repository",
        "the authors publish no digest and none was verifiable from here: installed only with "
        "--accept-unpinned, its sha256 recorded (not pinned) in weights.json",
        "read by `use-repro vqscore train` when the profile's vqscore.released_checkpoint names it "
        "(the urgent2025 profile does)"),
    WeightFile(
        "reuse", "USEMamba (authors' release)", "reuse/model.safetensors",
        f"https://huggingface.co/nvidia/RE-USE/resolve/{REUSE_REVISION}/model.safetensors",
        None, None,
        "see the nvidia/RE-USE model card on the Hugging Face hub",
        f"NVIDIA publishes no sha256; `fetch` takes the file from a fixed commit of nvidia/RE-USE "
        f"({REUSE_REVISION}, the revision the public ports of the model load) and records the sha256 of "
        f"what it fetched (weights.json, and model.safetensors.sha256 beside it); `add` of a file from "
        f"elsewhere needs --accept-unpinned. Either way the file must load strictly as the released "
        f"USEMamba (use_repro.models.released)",
        "`use-repro enhance --checkpoint reuse` runs it; a profile's experiment {stage: pretrained, "
        "checkpoint: reuse/model.safetensors} scores it beside the retrained runs",
        revision=REUSE_REVISION),
)}

# Models run by name: `use-repro enhance --checkpoint reuse` is <weights_dir>/reuse/model.safetensors.
CHECKPOINTS = ("reuse",)


class WeightsError(RuntimeError):
    """A fetch or add that did not install anything; the message says why and what to do,
    `reason` only why (for one-line summaries)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def _check_content(w: WeightFile, path: Path, shown: str | os.PathLike) -> None:
    """Refuse a file that is not what `w` names, where a digest cannot say so: a model file
    without a pinned sha256 must at least load as its model (the release: strictly, every key)."""
    if w.name != "reuse":
        return
    from use_repro.models import released

    if Path(path).suffix not in (".safetensors", ".part"):
        raise WeightsError(f"{shown}: `reuse` is installed as {w.path}, the release's safetensors file; "
                           f"a .pth release file needs no installing: name it in the experiment's "
                           f"`checkpoint` (absolute, or relative to weights_dir); nothing installed")
    try:
        # a download's `.part` is read as the safetensors file it will be renamed to
        released.model_from_state_dict(released._read_safetensors(Path(path)), shown)
    except Exception as e:  # any reason it does not load is a reason not to install it
        raise WeightsError(f"{shown}: not the released USEMamba ({e}); nothing installed") from e


def entry(name: str) -> WeightFile:
    key = name.lower()
    if key not in REGISTRY:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[key]


def target(w: WeightFile, weights_dir: str | os.PathLike) -> Path:
    return Path(weights_dir) / w.path


def resolve_checkpoint(value: str, weights_dir: str | os.PathLike = DEFAULT_DIR) -> str:
    """`value` as given, unless it is the name of a released model (CHECKPOINTS: `reuse`) and no
    file of that name exists: then its file under `weights_dir` (./weights, where `weights fetch`
    puts it without options). A named model that is not installed raises WeightsError saying how
    to install it."""
    if value not in CHECKPOINTS or Path(value).is_file():
        return value
    p = target(REGISTRY[value], weights_dir)
    if not p.is_file():
        raise WeightsError(f"--checkpoint {value}: {p} not found; `use-repro weights fetch {value}` installs "
                           f"the {REGISTRY[value].metric} there (or give the model file's path)")
    return str(p)


# ---------------------------------------------------------------- manifest
def read_manifest(weights_dir) -> dict:
    p = Path(weights_dir) / MANIFEST
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise WeightsError(f"{p}: unreadable manifest ({e}); delete it and re-add the files") from e


def digest_file(w: WeightFile, weights_dir) -> Path:
    """`<file>.sha256` beside a file without a published digest: what was installed, in
    `sha256sum -c` format."""
    dst = target(w, weights_dir)
    return dst.with_name(dst.name + ".sha256")


def _record(weights_dir, w: WeightFile, digest: str, origin: str, revision: str | None = None) -> None:
    from use_repro.fs import write_text_atomic

    m = read_manifest(weights_dir)
    m[w.name] = {"path": w.path, "sha256": digest, "pinned": w.sha256 is not None, "origin": origin,
                 "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if revision:
        m[w.name]["revision"] = revision
    write_text_atomic(Path(weights_dir) / MANIFEST, json.dumps(m, indent=2, sort_keys=True) + "\n")
    side = digest_file(w, weights_dir)
    if w.sha256 is None:  # no published digest: the one of what was installed, beside it
        write_text_atomic(side, f"{digest}  {Path(w.path).name}\n")
    else:
        side.unlink(missing_ok=True)


def _check_unpinned(w: WeightFile, accept_unpinned: bool, fetching: bool = False) -> None:
    if fetching and w.revision is not None and w.sha256 is None:
        return  # a fixed commit of the source: the same file for everyone, its digest recorded
    if w.sha256 is None and not accept_unpinned:
        raise WeightsError(f"{w.name}: {w.pin_source}. Pass --accept-unpinned to install it anyway.")


# ---------------------------------------------------------------- add
def add(name: str, src: str | os.PathLike, weights_dir, accept_unpinned: bool = False) -> Path:
    """Check `src` against the pinned sha256 and copy it (atomically) to its place in weights_dir."""
    w = entry(name)
    src = Path(src)
    if not src.is_file():
        raise WeightsError(f"{src}: no such file")
    _check_unpinned(w, accept_unpinned)
    digest = sha256_file(src)
    if w.sha256 is not None and digest != w.sha256:
        raise WeightsError(f"{src}: sha256 {digest} is not the official {w.name} file's {w.sha256} "
                           f"({w.url}); nothing installed")
    _check_content(w, src, src)
    dst = target(w, weights_dir)
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".adding")
    try:
        with open(src, "rb") as fi, open(part, "wb") as fo:
            shutil.copyfileobj(fi, fo, CHUNK)
            fo.flush()
            os.fsync(fo.fileno())
        if sha256_file(part) != digest:  # the copy itself went wrong (disk full, ...)
            raise WeightsError(f"{dst}: the copy of {src} does not match its source; nothing installed")
        os.replace(part, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    _record(weights_dir, w, digest, f"added from {src.resolve()}")
    return dst


# ---------------------------------------------------------------- fetch
def _open(url: str, start: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "use-repro-weights",
                                               **({"Range": f"bytes={start}-"} if start else {})})
    return urllib.request.urlopen(req, timeout=timeout)


def fetch(name: str, weights_dir, url: str | None = None, accept_unpinned: bool = False,
          timeout: float = 60.0, progress=None) -> Path:
    """Download `name` from its official location (or `url`, a mirror of the same file) into
    weights_dir. Resumes `<file>.part` with a Range request; renames onto the final name only
    after size and sha256 match. Raises WeightsError (nothing installed) otherwise."""
    w = entry(name)
    # the registered location only: a mirror of a file without a digest is not that commit's file
    _check_unpinned(w, accept_unpinned, fetching=url in (None, w.url))
    url = url or w.url
    dst = target(w, weights_dir)
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, have, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part is already whole (or longer than the file)
            resp = None
        else:
            raise WeightsError(f"{w.name}: {url} answered HTTP {e.code} {e.reason}; nothing installed") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise WeightsError(f"{w.name}: cannot reach {url} ({reason}); offline? {w.metric} stays n/a until "
                           f"{dst} exists: copy the file here by other means and run "
                           f"`use-repro weights add {w.name} FILE`", f"cannot reach {url}: {reason}") from e
    total = None
    if resp is not None:
        with resp:
            status = getattr(resp, "status", 200)
            crange = resp.headers.get("Content-Range", "")
            length = resp.headers.get("Content-Length")
            if have and status == 206 and crange.startswith(f"bytes {have}-"):
                mode = "ab"
                total = int(crange.rsplit("/", 1)[1]) if "/" in crange and not crange.endswith("*") else None
            elif status == 206:  # a range we did not ask for: its bytes cannot be placed
                part.unlink(missing_ok=True)
                raise WeightsError(f"{w.name}: {url} answered with range {crange!r} to a request for bytes "
                                   f"{have}-; {part} deleted, run the same command to start over")
            else:  # the server sent the whole file: start over
                mode, have = "wb", 0
                total = int(length) if length is not None else None
            got = have
            with open(part, mode) as f:
                try:
                    for block in iter(lambda: resp.read(CHUNK), b""):
                        f.write(block)
                        got += len(block)
                        if progress:
                            progress(got, total)
                except (OSError, http.client.HTTPException) as e:  # connection dropped mid-transfer
                    f.flush()
                    raise WeightsError(f"{w.name}: transfer interrupted at {got} of {total or '?'} bytes "
                                       f"({e}); {part} kept: run the same command to resume") from e
                f.flush()
                os.fsync(f.fileno())
    size = part.stat().st_size
    expected = w.size if w.size is not None else total
    if total is not None and w.size is not None and total != w.size:
        part.unlink()
        raise WeightsError(f"{w.name}: {url} serves {total} bytes, the official file has {w.size}; nothing installed")
    if expected is not None and size < expected:
        raise WeightsError(f"{w.name}: transfer ended at {size} of {expected} bytes; {part} kept: "
                           f"run the same command to resume")
    digest = sha256_file(part)
    if w.sha256 is not None and digest != w.sha256:
        part.unlink()
        raise WeightsError(f"{w.name}: downloaded file has sha256 {digest}, not the official {w.sha256}; "
                           f"deleted, nothing installed")
    try:
        _check_content(w, part, f"{w.name} from {url}")
    except WeightsError:
        part.unlink()
        raise
    os.replace(part, dst)
    _record(weights_dir, w, digest, f"fetched from {url}", w.revision if url == w.url else None)
    return dst


# ---------------------------------------------------------------- ensure
def ensure(name: str, weights_dir, url: str | None = None, fetch_missing: bool = True,
           timeout: float = 30.0, fix: str | None = None) -> tuple[bool, str]:
    """For a build step: install `name` (a metric's sha256-pinned file) if it is absent (and
    `fetch_missing`); raises nothing once `name` is known.
    Returns (the official file is in place, one line saying so or why not and how to add it;
    `fix` is that command, by default `use-repro weights --weights-dir DIR fetch NAME`)."""
    w = entry(name)
    if w.sha256 is None:
        raise WeightsError(f"{name}: `ensure` installs only files with a pinned sha256; use `fetch`")
    dst = target(w, weights_dir)
    fix = fix or f"use-repro weights --weights-dir {weights_dir} fetch {w.name}"
    if dst.is_file():
        digest = sha256_file_cached(dst)
        if w.sha256 is None or digest == w.sha256:
            return True, f"{w.metric}: the official weights are in place ({dst})"
        return False, (f"{w.metric}: {dst} is not the official file (sha256 {digest[:16]}...), so {w.metric} "
                       f"is not the paper's backend in this run; replace it: {fix}")
    why = f"{dst} is missing"
    if fetch_missing:
        try:
            fetch(name, weights_dir, url, timeout=timeout)
            return True, f"{w.metric}: installed the official weights ({dst}, sha256 {sha256_file_cached(dst)})"
        except WeightsError as e:
            why = e.reason
        except Exception as e:  # a build step goes on whatever went wrong; the line says what
            why = f"{type(e).__name__}: {e}"
    why = " ".join(str(why).split())  # one line, whatever the reason held
    return False, (f"{w.metric}: the official weights are NOT installed ({why}); {w.metric} is n/a in this "
                   f"run's tables. Add them: {fix}")


# ---------------------------------------------------------------- status
OWN_CODE = "none beyond use-repro's own dependencies (torch)"

# The Python packages each paper-faithful backend runs on, beside its file: (distribution, how to
# install it). Checked by distribution metadata, without importing anything.
PAPER_PACKAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "NISQA": (("nisqa", "pip install --no-deps nisqa==2.0.post2"), ("librosa", "pip install librosa")),
    "UTMOS": (),            # re-implemented in use_repro/metrics/utmos.py
    "VQScore": (),          # use_repro/quality/vqscore.py
    REGISTRY["reuse"].metric: (),  # use_repro/models/released.py
    "DNSMOS": (("onnxruntime", "pip install onnxruntime"), ("speechmos", "pip install speechmos (ships the ONNX file)")),
    "SBERT": (("transformers", "pip install transformers"),),
    "LPS": (("transformers", "pip install transformers"),),
    "SpkSim": (("speechbrain", "pip install speechbrain -c constraints-cpu.txt (it also pulls torchaudio)"),),
    "CAcc": (("faster-whisper", "pip install faster-whisper"),),
}
# A paper file some package ships: DNSMOS's ONNX is in the speechmos wheel, byte for byte the
# challenge's, so it is not missing when that package is installed (a file in weights_dir wins).
SHIPPED_BY = {"DNSMOS": "speechmos"}


def _installed(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def packages(metric: str) -> list[dict]:
    """The packages `metric`'s paper backend needs: name, installed version (None: not
    installed) and the command that installs it."""
    return [{"name": d, "version": _installed(d), "install": how} for d, how in PAPER_PACKAGES.get(metric, ())]


def _packages_line(rows: list[dict]) -> str:
    if not rows:
        return OWN_CODE
    return "; ".join(f"{r['name']} {r['version']}" if r["version"] else
                     f"{r['name']} NOT installed: {r['install']}" for r in rows)


def status(weights_dir) -> list[dict]:
    """One dict per known file: metric, needs, path, present, sha256, pinned/official, backend."""
    from use_repro.metrics import registry

    manifest = read_manifest(weights_dir)
    out = []
    for w in REGISTRY.values():
        p = target(w, weights_dir)
        row = {"name": w.name, "metric": w.metric, "path": str(p), "url": w.url, "license": w.license,
               "needs": w.needs, "present": p.is_file(), "sha256": None, "state": "missing",
               "official_sha256": w.sha256, "pin": w.pin_source, "packages": packages(w.metric)}
        part = p.with_name(p.name + ".part")
        if part.exists():
            row["partial_download"] = f"{part} ({part.stat().st_size} bytes; `fetch` resumes it)"
        if row["present"]:
            digest = sha256_file(p)
            row["sha256"] = digest
            if w.sha256 is None:
                rec = manifest.get(w.name, {})
                row["state"] = ("present, not pinned and not recorded (use `add --accept-unpinned`)"
                                if rec.get("sha256") != digest else
                                f"fetched from revision {rec['revision']}, sha256 recorded (none is published)"
                                if rec.get("revision") else "recorded, not pinned")
            else:
                row["state"] = "official" if digest == w.sha256 else "present but NOT the official file"
        if w.metric in registry.GROUPS:
            b = registry.resolve(w.metric, weights_dir)
            row["backend"] = b.describe()
        out.append(row)
    # The other paper-faithful backends' files and folders: no pinned single-file download is
    # registered for them (Hugging Face / SpeechBrain / CTranslate2 folders, or shipped in a
    # wheel), so `fetch` and `add` do not handle them; status still says where they are looked for.
    covered = {w.metric for w in REGISTRY.values()}
    for group, rel in registry.PAPER_FILES.items():
        if group in covered:
            continue
        p = Path(weights_dir) / rel
        shipper = SHIPPED_BY.get(group)
        shipped = shipper is not None and _installed(shipper) is not None
        state = ("present" + (" (folder)" if p.is_dir() else "")) if p.exists() else (
            f"provided by {shipper}" if shipped else "missing")
        needs = "place the file or folder there yourself (no fetch: no pinned single-file release)"
        if shipper:
            needs = (f"nothing: the {shipper} package ships the file (one placed here is used instead)" if shipped
                     else f"pip install {shipper} (it ships the file), or place the file there yourself")
        row = {"name": group.lower(), "metric": group, "path": str(p), "url": None, "license": None,
               "needs": needs, "present": p.exists(), "sha256": sha256_file(p) if p.is_file() else None,
               "state": state, "official_sha256": None, "pin": "not registered", "packages": packages(group)}
        row["backend"] = registry.resolve(group, weights_dir).describe()
        out.append(row)
    return out


def _print_status(rows: list[dict], weights_dir) -> None:
    print(f"weights_dir: {Path(weights_dir).resolve()}")
    for r in rows:
        print(f"\n{r['name']} ({r['metric']})")
        print(f"  looks for : {r['path']}")
        print(f"  state     : {r['state']}" + (f", sha256 {r['sha256']}" if r["sha256"] else ""))
        if r["url"]:
            print(f"  official  : {r['official_sha256'] or 'no published digest'} ({r['pin']})")
            print(f"  from      : {r['url']}  [{r['license']}]")
        print(f"  packages  : {_packages_line(r['packages'])}")
        print(f"  also needs: {r['needs']}")
        if "partial_download" in r:
            print(f"  partial   : {r['partial_download']}")
        b = r.get("backend")
        if b:
            print("  backend   : " + (f"{b['backend']} (paper's: {b['paper_backend']})" if b["backend"] != "n/a"
                                       else f"n/a: {b['reason']}"))


# ---------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights-dir", default=None,
                   help="folder of the weights (default: the profile's weights_dir, or ./weights)")
    p.add_argument("--config", help="profile name or YAML, for weights_dir")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("status", help="what each paper-faithful backend needs and what is present")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    f = sub.add_parser("fetch", help="download a file from its official location (pinned by sha256)")
    f.add_argument("name", choices=sorted(REGISTRY))
    f.add_argument("--url", default=None, help="a mirror of the same file (the sha256 check still applies)")
    f.add_argument("--accept-unpinned", action="store_true",
                   help="install a file whose authors publish no sha256 (its digest is recorded)")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up")
    e = sub.add_parser("ensure", help="for build steps: fetch a file if it is absent; one line says whether "
                                      "it is in place, and if not why and how to add it; never fails")
    e.add_argument("name", choices=sorted(n for n, w in REGISTRY.items() if w.sha256),
                   help="a metric's weights with a pinned sha256")
    e.add_argument("--url", default=None, help="a mirror of the same file (the sha256 check still applies)")
    e.add_argument("--timeout", type=float, default=30.0, help="seconds without data before giving up")
    e.add_argument("--no-fetch", action="store_true", help="only say whether the file is in place")
    e.add_argument("--quiet", action="store_true", help="print nothing when the file is in place")
    e.add_argument("--fix", default=None,
                   help="the command the line names to add the file (default: `use-repro weights "
                        "--weights-dir DIR fetch NAME`)")
    a = sub.add_parser("add", help="check and install a file you already have")
    a.add_argument("name", choices=sorted(REGISTRY))
    a.add_argument("file")
    a.add_argument("--accept-unpinned", action="store_true",
                   help="install a file whose authors publish no sha256 (its digest is recorded)")


def resolve_weights_dir(args: argparse.Namespace) -> str:
    if args.weights_dir:
        return args.weights_dir
    if args.config:
        from use_repro.config import load_config

        return load_config(args.config)["weights_dir"]
    return DEFAULT_DIR


def run(args: argparse.Namespace) -> int:
    wd = resolve_weights_dir(args)
    try:
        if args.action == "status":
            rows = status(wd)
            if args.json:
                print(json.dumps({"weights_dir": str(Path(wd).resolve()), "files": rows}, indent=2))
            else:
                _print_status(rows, wd)
            return 0
        if args.action == "ensure":
            ok, line = ensure(args.name, wd, args.url, not args.no_fetch, args.timeout, args.fix)
            if not (ok and args.quiet):
                print(f"use-repro weights: {line}", flush=True)
            return 0
        if args.action == "fetch":
            def show(got, total):
                if sys.stderr.isatty():
                    print(f"\r{got / 1e6:8.1f} / {'?' if total is None else f'{total / 1e6:.1f}'} MB",
                          end="", file=sys.stderr)
            dst = fetch(args.name, wd, args.url, args.accept_unpinned, args.timeout, show)
        else:
            dst = add(args.name, args.file, wd, args.accept_unpinned)
    except WeightsError as e:
        print(f"use-repro weights {args.action}: {e}", file=sys.stderr)
        return 1
    w = entry(args.name)
    print(f"installed {dst} (sha256 {sha256_file(dst)})")
    if w.sha256 is None:
        rec = read_manifest(wd).get(w.name, {})
        source = f"revision {rec['revision']} of its repository" if rec.get("revision") else "where it came from"
        print(f"{w.name}: its authors publish no sha256; this is the digest of the file installed from {source}, "
              f"recorded in {digest_file(w, wd)} and {Path(wd) / MANIFEST} (compare it to know two machines "
              f"run the same file)")
    if w.name in CHECKPOINTS:
        name = w.name if Path(wd) == Path(DEFAULT_DIR) else dst  # the name resolves under ./weights
        print(f"run it: use-repro enhance --checkpoint {name} --in IN --out OUT")
    else:
        # The DAG's evaluation jobs carry each metric's backend in their identity (common.smk).
        print("the next `snakemake tables` reruns the evaluations (and learning curves) this file changes")
    return 0
