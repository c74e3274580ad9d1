"""The released RE-USE checkpoint's tensors: names and shapes, transcribed from the public ports.

Facts, not code: ``appautomaton/mlx-speech`` (``models/reuse/loader.py`` regexes over the torch
keys, ``mamba/block.py`` module names, and its slice-1 notes: "1416 keys, 9,607,747 params;
prefixes TSMamba 1320, phase_decoder 34, mask_decoder 32, dense_encoder 30", the Mamba key/shape
table) and ``onnxruntime/mobius`` ``models/reuse.py`` (``nn.Sequential`` indices .0/.1/.2 kept
as the parameter names, ``Conv2d(hid, hid, (1, 3), stride=(4, 2))``, ``SPConvTranspose2d``
(1, 3) to ``out * r`` channels, ``phase_conv_r`` / ``phase_conv_i``, ``output_proj``
``Linear(2 * 64, 64)``, ``norm`` ``LayerNorm(64)``). Config: hid_feature 64, num_tfmamba 30,
d_state 16, d_conv 4, expand 4 (d_inner 256, dt_rank 4), input_channel 2, output_channel 1.

``RELEASE_KEYS`` lists every (name, shape) of the checkpoint; the 44 tensors of one TF-Mamba
block are written once (``TSMAMBA_BLOCK``) and repeated for blocks 0-29.
"""
from __future__ import annotations


def _cna(prefix: str, conv_shape: tuple, channels: int = 64) -> list[tuple[str, tuple]]:
    """Sequential(Conv2d, InstanceNorm2d(affine), PReLU): .0.weight/.bias, .1.weight/.bias, .2.weight."""
    return [(f"{prefix}.0.weight", conv_shape), (f"{prefix}.0.bias", (conv_shape[0],)),
            (f"{prefix}.1.weight", (channels,)), (f"{prefix}.1.bias", (channels,)),
            (f"{prefix}.2.weight", (channels,))]


def _dense_block(prefix: str) -> list[tuple[str, tuple]]:
    # conv i reads 64 * (i + 1) channels, kernel 3x3
    out = []
    for i, cin in enumerate((64, 128, 192, 256)):
        out += _cna(f"{prefix}.dense_block.dense_block.{i}", (64, cin, 3, 3))
    return out


def _up_conv(prefix: str, r: int) -> list[tuple[str, tuple]]:
    # Sequential(SPConvTranspose2d (its conv: 64 -> 64 * r, kernel (1, 3)), IN, PReLU)
    return [(f"{prefix}.0.conv.weight", (64 * r, 64, 1, 3)), (f"{prefix}.0.conv.bias", (64 * r,)),
            (f"{prefix}.1.weight", (64,)), (f"{prefix}.1.bias", (64,)), (f"{prefix}.2.weight", (64,))]


DENSE_ENCODER = (_cna("dense_encoder.dense_conv_1", (64, 2, 1, 1))
                 + _dense_block("dense_encoder")
                 + _cna("dense_encoder.dense_conv_2", (64, 64, 1, 3)))

MAMBA = [  # one direction: mamba_ssm.Mamba(d_model 64, d_state 16, d_conv 4, expand 4)
    ("in_proj.weight", (512, 64)),
    ("conv1d.weight", (256, 1, 4)), ("conv1d.bias", (256,)),
    ("x_proj.weight", (36, 256)),
    ("dt_proj.weight", (256, 4)), ("dt_proj.bias", (256,)),
    ("A_log", (256, 16)), ("D", (256,)),
    ("out_proj.weight", (64, 256)),
]

TSMAMBA_BLOCK = [(f"{axis}.{d}.{name}", shape)
                 for axis in ("time_mamba", "freq_mamba")
                 for d in ("forward_blocks", "backward_blocks")
                 for name, shape in MAMBA]
TSMAMBA_BLOCK += [(f"{axis}.{name}", shape)
                  for axis in ("time_mamba", "freq_mamba")
                  for name, shape in (("output_proj.weight", (64, 128)), ("output_proj.bias", (64,)),
                                      ("norm.weight", (64,)), ("norm.bias", (64,)))]

MASK_DECODER = (_dense_block("mask_decoder") + _up_conv("mask_decoder.up_conv1", 2)
                + _up_conv("mask_decoder.up_conv2", 4)
                + [("mask_decoder.final_conv.weight", (1, 64, 1, 1)), ("mask_decoder.final_conv.bias", (1,))])

PHASE_DECODER = (_dense_block("phase_decoder") + _up_conv("phase_decoder.up_conv1", 2)
                 + _up_conv("phase_decoder.up_conv2", 4)
                 + [("phase_decoder.phase_conv_r.weight", (1, 64, 1, 1)), ("phase_decoder.phase_conv_r.bias", (1,)),
                    ("phase_decoder.phase_conv_i.weight", (1, 64, 1, 1)), ("phase_decoder.phase_conv_i.bias", (1,))])

RELEASE_KEYS = dict(DENSE_ENCODER
                    + [(f"TSMamba.{b}.{name}", shape) for b in range(30) for name, shape in TSMAMBA_BLOCK]
                    + MASK_DECODER + PHASE_DECODER)

# the ports' own summary of the checkpoint
RELEASE_TENSORS = 1416
RELEASE_PARAMETERS = 9_607_747
RELEASE_PREFIX_COUNTS = {"TSMamba": 1320, "phase_decoder": 34, "mask_decoder": 32, "dense_encoder": 30}
