"""The authors' released USEMamba (RE-USE) checkpoint: read it, check it, run it as a USEMamba.

The release (NVIDIA "RE-USE", recipe ``USEMamba_30x1_lr_00002_norm_05_vq_065_nfft_320_hop_40_
NRIR_012_pha_0005_com_04_early_001``) ships the regression model's weights in two containers:

- ``g_<step>.pth``: ``torch.save({"generator": state_dict, ...})`` (SEMamba's trainer layout; the
  inference scripts call ``model.load_state_dict(ckpt["generator"])``);
- ``model.safetensors``: the flat state dict (``PyTorchModelHubMixin``).

Both hold the same 1416 tensors (9,607,747 parameters) whose names are exactly the state-dict
keys of :class:`use_repro.models.usemamba.USEMamba` — its modules carry the release's names, so no
rename table is needed in either direction. A flat state dict saved with ``torch.save`` is read
too. Loading is strict: a missing, unexpected or wrongly shaped tensor is an error that names the
file and every offending key.

The network's sizes are read off the tensors' shapes (blocks, channels, state size, ...), so a
release-format file of another size (a test's small model) loads too; the output modes are the
release's (``mag_mode`` and ``pha_mode`` ``mapping``: a release file has no field for them).

Front end: the release's STFT (n_fft 320, hop 40, win 320 at its base rate of 8 kHz, scaled to
the input rate ``fs`` as ``even(x * fs // 8000)``, centred, periodic Hann) is exactly
:func:`use_repro.audio.stft.stft_config` at the seven URGENT rates (40 ms window, hop n_fft // 8;
tested), and its ``relu_log1p`` compression is :func:`use_repro.audio.stft.compress` /
:func:`~use_repro.audio.stft.decompress`. So ``USEMamba.enhance_waveform`` runs the released model
as released, at any rate the SFI STFT supports.

Post-filter: the release's inference script silences every frame in which more than half of the
bins have a zero decompressed magnitude (``expm1(relu(mag_c)) == 0``, i.e. ``mag_c <= 0``), "to
remove strange sweep artifacts". A release file is therefore loaded as
:class:`ReleasedUSEMamba`, a USEMamba whose ``enhance_waveform`` applies that filter
(:func:`silence_sparse_frames`) between the model and the iSTFT; its ``forward`` is USEMamba's.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from use_repro.audio.stft import mag_pha_istft, mag_pha_stft
from use_repro.fs import atomic_path
from use_repro.models.usemamba import USEMamba, USEMambaConfig

RELEASE_CONTAINER_KEY = "generator"
RELEASE_PARAMETERS = 9_607_747
# the release's STFT at its base rate; scaled with the rate by use_repro.audio.stft.stft_config
RELEASE_STFT = {"sampling_rate": 8000, "n_fft": 320, "hop_size": 40, "win_size": 320,
                "compress_factor": "relu_log1p"}

_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                       "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32}


class ReleasedCheckpointError(ValueError):
    """A file that is not a release-format USEMamba checkpoint, or whose tensors do not fit it."""


# --------------------------------------------------------------------------------------------
# reading and writing the release's containers
# --------------------------------------------------------------------------------------------

def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (8-byte little-endian header size, JSON header, data)."""
    raw = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
    except (struct.error, ValueError) as e:
        raise ReleasedCheckpointError(f"{path}: not a safetensors file: {e}") from e
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ReleasedCheckpointError(f"{path}: tensor {name}: unsupported dtype {info.get('dtype')!r}")
        start, stop = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[start:stop]), dtype=dtype) if stop > start else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


def _write_safetensors(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Write ``state`` as a ``.safetensors`` file (the release's hub container)."""
    names = {v: k for k, v in _SAFETENSORS_DTYPES.items()}
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        b = t.detach().cpu().contiguous().numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8)     # the format aligns the data to 8 bytes
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def is_release_container(obj: Any) -> bool:
    """True for what ``torch.load`` returns from a release ``.pth``: ``{"generator": {...}}`` or a
    flat ``{name: tensor}`` dict (not a use-repro checkpoint, which has a ``format`` key)."""
    if not isinstance(obj, dict) or "format" in obj:
        return False
    if isinstance(obj.get(RELEASE_CONTAINER_KEY), dict):
        return True
    return bool(obj) and all(torch.is_tensor(v) for v in obj.values())


def state_dict_from_container(obj: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model's state dict inside a loaded release container (see :func:`is_release_container`)."""
    if not is_release_container(obj):
        keys = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
        raise ReleasedCheckpointError(
            f"{path}: not a released USEMamba checkpoint: expected {{'{RELEASE_CONTAINER_KEY}': state_dict}} "
            f"or a flat state dict, found {keys}")
    state = obj[RELEASE_CONTAINER_KEY] if isinstance(obj.get(RELEASE_CONTAINER_KEY), dict) else obj
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise ReleasedCheckpointError(f"{path}: entries that are not tensors: {', '.join(map(str, bad[:8]))}")
    return dict(state)


def read_release_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a release file: ``.safetensors``, or a ``.pth``/``.pt`` torch file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"released USEMamba checkpoint {path}: no such file (the authors' RE-USE "
                                f"weights: g_<step>.pth or model.safetensors)")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ReleasedCheckpointError(f"{path}: cannot read as a torch file: {e}") from e
    return state_dict_from_container(obj, path)


def save_released(path: str | os.PathLike, model: USEMamba, container: str = "pth") -> Path:
    """Write ``model`` in the release's layout: ``pth`` -> ``{"generator": state_dict}``,
    ``safetensors`` -> the flat state dict. Atomic (temp file + rename)."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if container == "safetensors":
        _write_safetensors(path, state)
    elif container == "pth":
        with atomic_path(path) as tmp:
            torch.save({RELEASE_CONTAINER_KEY: state}, tmp)
    else:
        raise ValueError(f"save_released: container {container!r}; choose pth or safetensors")
    return path


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------

def silence_sparse_frames(mag_c: torch.Tensor, max_zero_share: float = 0.5) -> torch.Tensor:
    """The release's post-filter: ``mag_c`` ``[B, F, N]`` with every frame in which more than
    ``max_zero_share`` of the F bins decompress to zero (``mag_c <= 0``) set to 0."""
    zero_share = (mag_c <= 0).float().mean(dim=1, keepdim=True)          # [B, 1, N]
    return torch.where(zero_share > max_zero_share, torch.zeros_like(mag_c), mag_c)


class ReleasedUSEMamba(USEMamba):
    """USEMamba run as the release's inference script runs it: forward unchanged,
    ``enhance_waveform`` with :func:`silence_sparse_frames` before the iSTFT."""

    def enhance_waveform(self, wav: torch.Tensor, fs: int) -> torch.Tensor:
        """Waveform ``[B, T]`` at ``fs`` -> enhanced waveform ``[B, T]``."""
        mag_c, pha, _ = mag_pha_stft(wav, fs)
        out_mag_c, out_pha, _ = self(mag_c, pha)
        return mag_pha_istft(silence_sparse_frames(out_mag_c), out_pha, fs, wav.shape[-1])


def _shape(state: dict, key: str, path) -> torch.Size:
    if key not in state:
        raise ReleasedCheckpointError(f"{path}: missing tensor {key} (needed to read the model's sizes)")
    return state[key].shape


def config_from_state_dict(state: dict[str, torch.Tensor], path: str | os.PathLike = "<state dict>",
                           **overrides) -> USEMambaConfig:
    """The USEMambaConfig whose tensors have the shapes found in a release state dict."""
    w_in = _shape(state, "dense_encoder.dense_conv_1.0.weight", path)          # [C, in, 1, 1]
    channels, in_channels = int(w_in[0]), int(w_in[1])
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("TSMamba.")}
    num_blocks = max(blocks) + 1 if blocks else 0
    depth = len({k.split(".")[3] for k in state if k.startswith("dense_encoder.dense_block.dense_block.")})
    sizes = dict(num_blocks=num_blocks, channels=channels, in_channels=in_channels, dense_depth=depth,
                 time_stride=int(_shape(state, "mask_decoder.up_conv2.0.conv.bias", path)[0]) // channels,
                 freq_stride=int(_shape(state, "mask_decoder.up_conv1.0.conv.bias", path)[0]) // channels)
    if num_blocks:
        a_log = _shape(state, "TSMamba.0.time_mamba.forward_blocks.A_log", path)   # [d_inner, d_state]
        sizes.update(d_state=int(a_log[1]), expand=int(a_log[0]) // channels,
                     d_conv=int(_shape(state, "TSMamba.0.time_mamba.forward_blocks.conv1d.weight", path)[2]))
    sizes.update(mag_mode="mapping", pha_mode="mapping")
    sizes.update(overrides)
    return USEMambaConfig.from_dict(sizes)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Raise ReleasedCheckpointError naming ``path`` and every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(f"{k} {tuple(state[k].shape)} (model: {tuple(own[k].shape)})"
                   for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{len(x)} {what}: {', '.join(x[:12])}{' ...' if len(x) > 12 else ''}"
                 for what, x in (("missing", missing), ("unexpected", unexpected), ("wrong-shape", wrong)) if x]
        raise ReleasedCheckpointError(f"{path}: does not fit USEMamba {model.config.to_dict()}: " + "; ".join(parts))


def model_from_state_dict(state: dict[str, torch.Tensor], path: str | os.PathLike = "<state dict>",
                          map_location: Any = "cpu", **overrides) -> ReleasedUSEMamba:
    """Build the :class:`ReleasedUSEMamba` the tensors describe, load them strictly, eval mode,
    on ``map_location``."""
    model = ReleasedUSEMamba(config_from_state_dict(state, path, **overrides))
    check_state_dict(model, state, path)
    model.load_state_dict(state, strict=True)
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model.eval()


def load_released(path: str | os.PathLike, map_location: Any = "cpu", **overrides) -> ReleasedUSEMamba:
    """The released USEMamba in ``path`` (``.pth`` or ``.safetensors``), strictly loaded, eval mode.

    ``overrides``: USEMambaConfig fields that do not change the tensors (``scan_backend``,
    ``mamba_checkpoint``).
    """
    return model_from_state_dict(read_release_state_dict(path), path, map_location, **overrides)
