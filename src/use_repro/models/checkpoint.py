"""Model checkpoints that rebuild themselves: class, constructor arguments, weights, extras.

A checkpoint is one ``torch.save`` file holding a dict::

    {"format": "use-repro-checkpoint", "version": 1,
     "class": "use_repro.models.usemamba.USEMamba",   # importable "module.QualName"
     "args": {...},                                  # JSON-able constructor keywords
     "state_dict": {...},                            # weights, always stored on the CPU
     "extra": {...}}                                 # anything else: optimizer, step, RNG, config

Models expose their constructor keywords as ``model.init_args`` (every model in
:mod:`use_repro.models` does). Files are written to a temporary file beside the target and renamed
(:func:`use_repro.fs.atomic_path`), so an interrupted save never leaves a truncated checkpoint.
Weights are moved to the CPU before saving, and loading maps every tensor to ``map_location``
(default CPU), so a checkpoint written on a GPU machine loads on a CPU-only one.

:func:`load_model` / :func:`load_checkpoint` also take the authors' released USEMamba checkpoint
(``g_<step>.pth`` holding ``{"generator": state_dict}``, a flat state dict, or
``model.safetensors``; :mod:`use_repro.models.released`), so every consumer (``use-repro
enhance --checkpoint``, the DAG's ``pretrained`` entries) runs it like a model trained here.
"""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from use_repro.fs import atomic_path

FORMAT = "use-repro-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a use-repro checkpoint, or one whose class cannot be rebuilt."""


def _to_cpu(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return type(obj)((k, _to_cpu(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def class_path(model: nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def model_args(model: nn.Module) -> dict:
    args = getattr(model, "init_args", None)
    if not isinstance(args, dict):
        raise CheckpointError(f"{class_path(model)} has no `init_args` dict: cannot record how to rebuild it")
    return args


def checkpoint_dict(model: nn.Module, extra: dict | None = None) -> dict:
    """The dict :func:`save_checkpoint` writes (weights and extras moved to the CPU)."""
    return {"format": FORMAT, "version": VERSION, "class": class_path(model),
            "args": model_args(model), "state_dict": _to_cpu(model.state_dict()),
            "extra": _to_cpu(dict(extra or {}))}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, extra: dict | None = None) -> Path:
    """Atomically write ``model``'s class, arguments and weights (+ ``extra``) to ``path``."""
    path = Path(path)
    payload = checkpoint_dict(model, extra)
    # a file object, not the temp path: the archive's inner folder would be named after it
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)
    return path


# What a checkpoint argument may name: every "not a checkpoint" message ends with it.
EXPECTED = ("expected a use-repro checkpoint (the final.pt of `use-repro train`) or the authors' "
            "RE-USE release (g_<step>.pth or model.safetensors)")

_ZIP, _PICKLE = b"PK\x03\x04", b"\x80"  # torch.save's archive; a legacy (pre-1.6) torch.save pickle


def _looks_like(head: bytes, size: int) -> str:
    """A few words on what a file that is not a checkpoint seems to be."""
    if size == 0:
        return "an empty file"
    text = "\0"
    for cut in range(4):  # the 64 bytes read may end inside a multi-byte character
        try:
            text = head[:len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    if not all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return f"{size} bytes of an unknown format"
    first = text.strip().splitlines()[0][:40] if text.strip() else ""
    return f"a text file ({first!r}...)" if first else "a text file"


def _one_line(e: BaseException) -> str:
    """The useful part of a loader error in one line (torch's weights-only refusal is a
    paragraph that ends by asking the user to file an issue; what it refused is one name)."""
    text = str(e).replace("\x1b[1m", "").replace("\x1b[0m", "")
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused:
        return f"it holds a {refused.group(1)} object, which no checkpoint holds"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:160] if lines else type(e).__name__


def _load_file(path: Path, map_location: Any, weights_only: bool) -> Any:
    """What ``torch.load`` returns for ``path`` (a ``.safetensors`` file: its flat state dict).

    A file that is neither a torch file nor safetensors, or a torch file that does not load,
    raises CheckpointError in one line naming the file and what was expected.
    """
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
    if path.suffix == ".safetensors":
        from use_repro.models.released import ReleasedCheckpointError, read_release_state_dict

        try:
            return read_release_state_dict(path)
        except ReleasedCheckpointError as e:
            raise CheckpointError(f"{_one_line(e)}; {EXPECTED}") from e
    if not (head.startswith(_ZIP) or head.startswith(_PICKLE)):
        raise CheckpointError(f"{path}: not a checkpoint: {_looks_like(head, size)}; {EXPECTED}")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as e:
        raise CheckpointError(f"{path}: a torch file that does not load as a checkpoint "
                              f"({_one_line(e)}); {EXPECTED}") from e


def _validate(ckpt: Any, path: Path) -> dict:
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a torch file but not a checkpoint (no {FORMAT!r} format field, "
                              f"no release generator); {EXPECTED}")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')} is newer than "
                              f"this code understands ({VERSION})")
    for key in ("class", "args", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: checkpoint has no {key!r}")
    return ckpt


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu",
                    weights_only: bool = True) -> dict:
    """Load and validate a checkpoint dict (tensors mapped to ``map_location``).

    ``weights_only=True`` (default) refuses pickled code; pass False for trusted files whose
    ``extra`` holds objects other than tensors, numbers, strings, lists and dicts.
    """
    path = Path(path)
    return _validate(_load_file(path, map_location, weights_only), path)


def _import_class(name: str, path: Path) -> type:
    module_name, _, qualname = name.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot import model class {name!r}: {e}") from e
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise CheckpointError(f"{path}: {name!r} is not a torch.nn.Module class")
    return obj


def build_model(ckpt: dict, path: str | os.PathLike = "<checkpoint>", strict: bool = True) -> nn.Module:
    """Rebuild the module recorded in a checkpoint dict and load its weights."""
    path = Path(path)
    cls = _import_class(ckpt["class"], path)
    try:
        model = cls(**ckpt["args"])
    except TypeError as e:
        raise CheckpointError(f"{path}: cannot rebuild {ckpt['class']} from its arguments: {e}") from e
    result = model.load_state_dict(ckpt["state_dict"], strict=strict)
    if not strict and (result.missing_keys or result.unexpected_keys):
        import logging
        logging.getLogger(__name__).warning("%s: missing keys %s, unexpected keys %s", path,
                                            result.missing_keys, result.unexpected_keys)
    return model


def _load_any(path: str | os.PathLike, map_location: Any, strict: bool,
              weights_only: bool) -> tuple[nn.Module, dict]:
    """(model in eval mode on ``map_location``, extra) from a use-repro or a release file."""
    from use_repro.models import released

    path = Path(path)
    obj = _load_file(path, map_location, weights_only)
    if released.is_release_container(obj):     # the authors' model: always strict
        state = released.state_dict_from_container(obj, path)
        return released.model_from_state_dict(state, path, map_location), {}
    ckpt = _validate(obj, path)
    model = build_model(ckpt, path, strict)
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model.eval(), ckpt.get("extra", {})


def load_model(path: str | os.PathLike, map_location: Any = "cpu", strict: bool = True,
               weights_only: bool = True) -> nn.Module:
    """Rebuild a model from a checkpoint written by :func:`save_checkpoint` — or the authors'
    released USEMamba (:mod:`use_repro.models.released`, always strict) — in eval mode.

    The module is on ``map_location`` (CPU by default, whatever device it was saved from).
    """
    return _load_any(path, map_location, strict, weights_only)[0]


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", strict: bool = True,
                    weights_only: bool = True) -> tuple[nn.Module, dict]:
    """Like :func:`load_model` but also return the checkpoint's ``extra`` dict ({} for a release file)."""
    return _load_any(path, map_location, strict, weights_only)
