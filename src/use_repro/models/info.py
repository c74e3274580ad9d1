"""Print the parameter counts and tensor shapes of the paper's models for a profile.

`use-repro model-info --config mini` builds the regression model, the residual generator and the
multi-band discriminator with the profile's `model` sizes and prints, for each, the parameters per
part and the shapes at every supported sampling rate (for 1 s of audio by default). `--paper`
uses the paper's sizes instead (30-block / 64-channel USEMamba, 6-block generator) and compares
the regression model's count with the ~9.6 M the paper quotes and the 9,607,747 of the authors'
released checkpoint (:mod:`use_repro.models.released`). With one model named (`--model
regression` / `generator`) it also lists every parameter tensor, name and shape — for the paper's
regression model exactly the release's state-dict keys. It names the selective scan the Mamba
layers run on this machine's CPU (and GPU, when there is one).
"""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads when a model is built, not for `use-repro model-info --help`
    import torch.nn as nn

PAPER_REGRESSION_PARAMS = 9.6e6
MODELS = ("regression", "generator", "discriminator", "all")
PAPER_MODEL_SECTION = {
    "regression": {"num_blocks": 30, "channels": 64, "d_state": 16, "d_conv": 4, "expand": 4, "dense_depth": 4},
    "generator": {"num_blocks": 6, "channels": 64, "d_state": 16, "d_conv": 4, "expand": 4, "dense_depth": 4},
    "discriminator": {"channels": 32, "band_hz": 4000.0},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="mini", help="profile name or YAML path (default: mini)")
    parser.add_argument("--model", choices=MODELS, default="all", help="which model to describe")
    parser.add_argument("--paper", action="store_true",
                        help="use the paper's sizes instead of the profile's `model` section")
    parser.add_argument("--seconds", type=float, default=1.0, help="audio length for the shape table")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def scan_backends(model: nn.Module) -> dict[str, str]:
    """The selective scan the model's Mamba layers run on this machine, per device it has
    (``cpu``, and ``cuda`` when a GPU is present): e.g. ``{"cpu": "cpp (compiled CPU scan)"}``."""
    import torch

    from use_repro.models.mamba import backend_label, model_scan_backends

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = {}
    for dev in devices:
        try:
            out[dev] = ", ".join(backend_label(n) for n in model_scan_backends(model, dev))
        except RuntimeError as err:  # a backend named in the config that cannot run there
            out[dev] = f"unavailable: {err}"
    return out


def describe(model_section: dict, which: str = "all", seconds: float = 1.0) -> dict:
    """Parameter counts and shapes as a JSON-able dict."""
    from use_repro.audio.stft import RATES, band_bins, num_bins, num_frames, stft_config
    from use_repro.models import build
    from use_repro.models.usemamba import INPUT_PAD

    cfg = {"model": model_section}
    out: dict = {}
    nets = []
    if which in ("regression", "all"):
        nets.append(("regression", build.build_regression(cfg)))
    if which in ("generator", "all"):
        nets.append(("generator", build.build_generator(cfg)))
    for name, model in nets:
        net = model.net if hasattr(model, "net") else model
        c = net.config
        parts = {"encoder": _count(net.dense_encoder), "tf_mamba_blocks": _count(net.TSMamba),
                 "magnitude_decoder": _count(net.mask_decoder), "phase_decoder": _count(net.phase_decoder)}
        shapes = {}
        for fs in RATES:
            n_fft, hop, _ = stft_config(fs)
            f, n = num_bins(fs), num_frames(int(round(seconds * fs)), fs)
            # spectrum [B, F, N]; latent (between encoder and decoders) [B, C, N', F']
            shapes[fs] = {"n_fft": n_fft, "hop": hop, "spectrum": [1, f, n],
                          "latent": [1, c.channels, (n + INPUT_PAD - 1) // c.time_stride + 1,
                                     (f + INPUT_PAD - 3) // c.freq_stride + 1]}
        out[name] = {"class": type(model).__name__, "config": c.to_dict(), "parameters": _count(model),
                     "scan_backend": scan_backends(model),
                     "parts": parts, "per_block": parts["tf_mamba_blocks"] // max(c.num_blocks, 1),
                     "shapes": shapes,
                     "tensors": {k: list(v.shape) for k, v in model.state_dict().items()}}
    if which in ("discriminator", "all"):
        disc = build.build_discriminator(cfg)
        out["discriminator"] = {
            "class": type(disc).__name__, "config": disc.init_args, "parameters": _count(disc),
            "parts": {f"band_{i}": _count(b) for i, b in enumerate(disc.bands)} | {"post": _count(disc.post)},
            "bands": {fs: [[lo * 25.0, hi * 25.0 if hi < num_bins(fs) else fs / 2]
                           for lo, hi in band_bins(fs, disc.band_hz)] for fs in RATES},
        }
    return out


def _print_text(info: dict, paper: bool, profile: str, tensors: bool = False) -> None:
    from use_repro.models.released import RELEASE_PARAMETERS

    print(f"model sizes: {'the paper' if paper else 'profile ' + profile}")
    for name, d in info.items():
        print(f"\n{name}: {d['class']}  {d['parameters']:,} parameters ({d['parameters'] / 1e6:.3g} M)")
        if name != "discriminator":
            c = d["config"]
            print(f"  blocks {c['num_blocks']}, channels {c['channels']}, d_state {c['d_state']}, "
                  f"d_conv {c['d_conv']}, expand {c['expand']}, dense depth {c['dense_depth']}, "
                  f"input maps {c['in_channels']}, strides time /{c['time_stride']} freq /{c['freq_stride']}")
        for dev, label in d.get("scan_backend", {}).items():
            print(f"  selective scan on {dev}: {label}")
        for part, n in d["parts"].items():
            print(f"  {part:<20} {n:>12,}")
        if name == "regression" and paper:
            rel = d["parameters"] / PAPER_REGRESSION_PARAMS - 1
            verdict = "within" if abs(rel) <= 0.10 else "OUTSIDE"
            print(f"  paper: ~9.6 M -> {rel:+.1%} ({verdict} 10%)")
            same = "equal to" if d["parameters"] == RELEASE_PARAMETERS else "DIFFERENT from"
            print(f"  released checkpoint (RE-USE): {RELEASE_PARAMETERS:,} -> {same} it")
        if "shapes" in d:
            print("  fs      n_fft  hop   spectrum [B,F,N]   latent [B,C,N',F']")
            for fs, s in d["shapes"].items():
                print(f"  {fs:<7} {s['n_fft']:<6} {s['hop']:<5} {str(s['spectrum']):<18} {s['latent']}")
        if tensors and "tensors" in d:
            print(f"  parameter tensors ({len(d['tensors'])}): name shape")
            for key, shape in d["tensors"].items():
                print(f"    {key} {tuple(shape)}")
        if "bands" in d:
            for fs, bands in d["bands"].items():
                text = ", ".join(f"{lo / 1000:g}-{hi / 1000:g}" for lo, hi in bands)
                print(f"  {fs:<7} {len(bands)} band(s): {text} kHz")


def run(args: argparse.Namespace) -> int:
    from use_repro.config import load_config

    if args.paper:
        section, profile = PAPER_MODEL_SECTION, "paper"
    else:
        cfg = load_config(args.config)
        section, profile = cfg.get("model", {}), cfg["profile"]
    info = describe(section, args.model, args.seconds)
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        _print_text(info, args.paper, profile, tensors=args.model in ("regression", "generator"))
    return 0
