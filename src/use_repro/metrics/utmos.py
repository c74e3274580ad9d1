"""UTMOS22 strong learner (SaruLab, VoiceMOS Challenge 2022), a pure-PyTorch inference model.

The URGENT 2025 challenge's UTMOS column is this predictor: its evaluation script loads
`torch.hub.load("tarepan/SpeechMOS:v1.2.0", "utmos22_strong")`, reads each enhanced file at its
own sampling rate and calls `model(wave [1, T], sr)`, which resamples to 16 kHz and returns the
utterance MOS. This module rebuilds that network without fairseq, torchaudio or a hub.

What a user must download (nothing is fetched at run time):

    the state dict `utmos22_strong_step7459_v1.pt`, from the release page of the SpeechMOS
    repository (github.com/tarepan/SpeechMOS, release v1.0.0, asset
    `utmos22_strong_step7459_v1.pt`; the same file that `torch.hub` caches as
    `~/.cache/torch/hub/checkpoints/utmos22_strong_step7459_v1.pt`), put at
    `<weights_dir>/utmos/utmos22_strong_step7459_v1.pt`.

That file is SpeechMOS's conversion of the official UTMOS strong learner checkpoint
`epoch=3-step=7459.ckpt` (github.com/sarulab-speech/UTMOS22, Hugging Face space
`sarulab-speech/UTMOS-demo`; MIT licence) into a flat state dict: the fairseq wav2vec 2.0 base
SSL model without its pre-training heads, one row of the data-domain embedding and one row of
the listener (judge) embedding, the BLSTM and the projection head. The official demo scores with
domain 0 (the VoiceMOS main track) and judge id 288, presumably the rows SpeechMOS kept (its
conversion script lives in the author's UTMOS22 fork and was not checked here). Either way the
challenge scored with whatever rows the file holds, and so does this module. The original
Lightning checkpoint (keys `feature_extractors.*`, `output_layers.*`) is not this format and is
rejected with a message saying so.

The state dict's key names are the contract, and loading is strict: every key of the model must be
in the file with the same shape and the file may hold no other key (`load_utmos22_strong`).

Architecture (shapes for one utterance of T samples at 16 kHz; B is the batch):

    wave [B, T]
      -> wav2vec2.feature_extractor: 7 bias-free Conv1d (512 channels; kernels 10,3,3,3,3,2,2,
         strides 5,2,2,2,2,2,2), GroupNorm(512, 512) after the first, GELU after each
         -> [B, 512, N] with N = frames at 50 Hz (400-sample receptive field, 320-sample hop)
      -> transpose, LayerNorm(512), post_extract_proj Linear(512, 768)            -> [B, N, 768]
      -> wav2vec2.encoder: x + GELU(weight-normed Conv1d(768, 768, k=128, groups=16, pad 64),
         last frame dropped), LayerNorm(768), 12 post-LN transformer layers (12 heads, FFN 3072,
         GELU)                                                                     -> [B, N, 768]
      -> concat domain embedding [128] and listener embedding [128] on every frame -> [B, N, 1024]
      -> BLSTM (hidden 512 each way)                                              -> [B, N, 1024]
      -> projection Linear(1024, 2048), ReLU, Linear(2048, 1)                      -> [B, N, 1]
      -> mean over frames, * 2 + 3 (the training targets were (MOS - 3) / 2)      -> [B] MOS

Faithfulness notes:
- fairseq pads the frame sequence to an even length before the transformer and masks the padded
  key; a masked key changes no real frame's attention and the padded query is cut off again, so
  running on the unpadded frames gives the same result (this module does that).
- Dropout layers of the reference are inference no-ops and are left out.
- Checked once during development (not a test: transformers is not a dependency): with the same
  random weights, `Wav2Vec2Base` here and transformers' `Wav2Vec2Model` (base, group norm, post-LN)
  give the same frames to within 4e-6 for 49, 50 and 64 frames.
- Resampling: the challenge's SpeechMOS resamples with torchaudio's windowed-sinc resampler; this
  project resamples every non-intrusive backend to 16 kHz with soxr "HQ" (`nonintrusive.to_16k`),
  torchaudio being unavailable here. At 16 kHz input neither resamples and the input is identical;
  at other rates the two resamplers differ slightly (both are band-limited to 8 kHz).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLE_RATE = 16000
CHECKPOINT_NAME = "utmos22_strong_step7459_v1.pt"
RELEASE_URL = "https://github.com/tarepan/SpeechMOS/releases/download/v1.0.0/" + CHECKPOINT_NAME


@dataclass(frozen=True)
class UTMOS22Config:
    """Sizes of the network. `UTMOS22_STRONG` is the released checkpoint's; tests use small ones.

    `conv_layers` holds (kernel, stride) of each feature-extractor convolution.
    """

    conv_channels: int = 512
    conv_layers: tuple[tuple[int, int], ...] = ((10, 5),) + ((3, 2),) * 4 + ((2, 2),) * 2
    dim: int = 768
    n_layers: int = 12
    n_heads: int = 12
    ffn_dim: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    domain_dim: int = 128
    judge_dim: int = 128
    lstm_hidden: int = 512
    proj_hidden: int = 2048

    @property
    def receptive_field(self) -> int:
        """Fewest input samples that give one frame (400 for wav2vec 2.0)."""
        n = 1
        for k, s in reversed(self.conv_layers):
            n = (n - 1) * s + k
        return n


UTMOS22_STRONG = UTMOS22Config()


# ---------------------------------------------------------------- wav2vec 2.0 base (fairseq layout)
class ConvFeatureExtractor(nn.Module):
    """Waveform to 50 Hz features: `forward(wave [B, T]) -> [B, C, N]`.

    Each block is an `nn.Sequential` whose index 0 is the convolution and, in the first block,
    index 2 the GroupNorm (index 1 is where fairseq keeps a dropout), so the parameters are named
    `conv_layers.{i}.0.weight` and `conv_layers.0.2.{weight,bias}` as in the checkpoint.
    """

    def __init__(self, cfg: UTMOS22Config):
        super().__init__()
        c = cfg.conv_channels
        self.conv_layers = nn.ModuleList()
        n_in = 1
        for i, (k, s) in enumerate(cfg.conv_layers):
            norm = [nn.GroupNorm(c, c, affine=True)] if i == 0 else []
            self.conv_layers.append(nn.Sequential(nn.Conv1d(n_in, c, k, stride=s, bias=False),
                                                  nn.Identity(), *norm, nn.GELU()))
            n_in = c

    def forward(self, wave: Tensor) -> Tensor:
        x = wave.unsqueeze(1)  # [B, 1, T]
        for block in self.conv_layers:
            x = block(x)
        return x


class WeightNormConv1d(nn.Module):
    """Conv1d with weight normalisation over the kernel axis (fairseq's `weight_norm(dim=2)`).

    Parameters `weight_g` [1, 1, K], `weight_v` [C, C / groups, K] and `bias` [C]; the kernel is
    `weight_v * weight_g / ||weight_v||`, the norm taken over the first two axes for each tap.
    `forward(x [B, C, N]) -> [B, C, N + 1]` for an even K (padding K // 2 on each side).
    """

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.groups, self.padding = groups, kernel // 2
        self.weight_g = nn.Parameter(torch.empty(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.empty(channels))

    def weight(self) -> Tensor:
        norm = self.weight_v.norm(p=2, dim=(0, 1), keepdim=True)  # [1, 1, K]
        return self.weight_v * (self.weight_g / norm)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.weight(), self.bias, padding=self.padding, groups=self.groups)


class DropLastFrame(nn.Module):
    """fairseq's `SamePad` for an even kernel: `[B, C, N + 1] -> [B, C, N]`."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, :-1]


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections: `[B, N, D] -> [B, N, D]`."""

    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"attention width {dim} is not a multiple of {n_heads} heads")
        self.n_heads = n_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape

        def heads(t: Tensor) -> Tensor:  # [B, N, D] -> [B, H, N, D / H]
            return t.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(heads(self.q_proj(x)), heads(self.k_proj(x)),
                                           heads(self.v_proj(x)))  # softmax(q k^T / sqrt(d_h)) v
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (wav2vec 2.0 base, `layer_norm_first=False`): `[B, N, D] -> [B, N, D]`.

    x = LN(x + Attn(x)); x = LN(x + FC2(GELU(FC1(x)))).
    """

    def __init__(self, dim: int, n_heads: int, ffn_dim: int):
        super().__init__()
        self.self_attn = SelfAttention(dim, n_heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class ContextEncoder(nn.Module):
    """Convolutional positional embedding, LayerNorm, transformer: `[B, N, D] -> [B, N, D]`."""

    def __init__(self, cfg: UTMOS22Config):
        super().__init__()
        if cfg.pos_conv_kernel % 2:
            raise ValueError("the positional convolution's kernel must be even (as wav2vec 2.0's 128)")
        self.pos_conv = nn.Sequential(WeightNormConv1d(cfg.dim, cfg.pos_conv_kernel, cfg.pos_conv_groups),
                                      DropLastFrame(), nn.GELU())
        self.layer_norm = nn.LayerNorm(cfg.dim)
        self.layers = nn.ModuleList(EncoderLayer(cfg.dim, cfg.n_heads, cfg.ffn_dim) for _ in range(cfg.n_layers))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        x = self.layer_norm(x)
        for layer in self.layers:
            x = layer(x)
        return x


class Wav2Vec2Base(nn.Module):
    """wav2vec 2.0 (fairseq) as used with `features_only=True, mask=False`: `[B, T] -> [B, N, D]`.

    `mask_emb` [D] is a pre-training remnant kept so that the checkpoint loads strictly; unused.
    """

    def __init__(self, cfg: UTMOS22Config):
        super().__init__()
        self.feature_extractor = ConvFeatureExtractor(cfg)
        self.layer_norm = nn.LayerNorm(cfg.conv_channels)
        self.post_extract_proj = nn.Linear(cfg.conv_channels, cfg.dim)
        self.encoder = ContextEncoder(cfg)
        self.mask_emb = nn.Parameter(torch.empty(cfg.dim))

    def forward(self, wave: Tensor) -> Tensor:
        x = self.feature_extractor(wave).transpose(1, 2)  # [B, N, C]
        x = self.post_extract_proj(self.layer_norm(x))  # [B, N, D]
        return self.encoder(x)


# ---------------------------------------------------------------- UTMOS22 strong
class UTMOS22Strong(nn.Module):
    """UTMOS strong learner without the phoneme encoder: `forward(wave [B, T] at 16 kHz) -> [B]` MOS.

    `domain_emb` [1, 128] and `judge_emb` [1, 128] are the single domain / listener rows the
    released checkpoint keeps; they are appended to every SSL frame before the BLSTM.
    """

    def __init__(self, cfg: UTMOS22Config = UTMOS22_STRONG):
        super().__init__()
        self.cfg = cfg
        self.wav2vec2 = Wav2Vec2Base(cfg)
        self.domain_emb = nn.Parameter(torch.empty(1, cfg.domain_dim), requires_grad=False)
        self.judge_emb = nn.Parameter(torch.empty(1, cfg.judge_dim), requires_grad=False)
        self.blstm = nn.LSTM(cfg.dim + cfg.domain_dim + cfg.judge_dim, cfg.lstm_hidden,
                             batch_first=True, bidirectional=True)
        self.projection = nn.Sequential(nn.Linear(2 * cfg.lstm_hidden, cfg.proj_hidden), nn.ReLU(),
                                        nn.Linear(cfg.proj_hidden, 1))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise the parameters PyTorch leaves empty (wav2vec 2.0's own scheme for pos_conv);
        only useful for tests and for building a state dict of the right layout."""
        pc = self.wav2vec2.encoder.pos_conv[0]
        k, c = pc.weight_v.shape[2], pc.weight_v.shape[0]
        nn.init.normal_(pc.weight_v, mean=0.0, std=(4.0 / (k * c)) ** 0.5)
        pc.weight_g.copy_(pc.weight_v.norm(p=2, dim=(0, 1), keepdim=True))
        nn.init.zeros_(pc.bias)
        nn.init.uniform_(self.wav2vec2.mask_emb)
        nn.init.normal_(self.domain_emb)
        nn.init.normal_(self.judge_emb)

    def frame_scores(self, wave: Tensor) -> Tensor:
        """Per-frame scores on the training scale ((MOS - 3) / 2): `[B, T] -> [B, N]`."""
        ssl = self.wav2vec2(wave)  # [B, N, D]
        b, n, _ = ssl.shape
        cond = torch.cat([self.domain_emb, self.judge_emb], dim=1)  # [1, 256]
        x = torch.cat([ssl, cond.unsqueeze(1).expand(b, n, -1)], dim=2)  # [B, N, D + 256]
        return self.projection(self.blstm(x)[0]).squeeze(2)

    def forward(self, wave: Tensor) -> Tensor:
        return self.frame_scores(wave).mean(dim=1) * 2.0 + 3.0


# ---------------------------------------------------------------- loading
class UTMOSCheckpointError(ValueError):
    """The file is not a UTMOS22-strong state dict of the released layout."""


def _listing(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_state_dict(model: nn.Module, state: Mapping, path: str | os.PathLike) -> None:
    """Raise `UTMOSCheckpointError` naming `path` unless `state` has exactly `model`'s keys and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    bad_type = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    shapes = [f"{k} {got[k]} (expected {expected[k]})" for k in sorted(set(expected) & set(got))
              if got[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if bad_type:
        problems.append(f"not tensors: {_listing(bad_type)}")
    if shapes:
        problems.append(f"shape mismatches: {'; '.join(shapes[:8])}" + (" ..." if len(shapes) > 8 else ""))
    if problems:
        hint = ""
        if any(str(k).startswith(("feature_extractors.", "output_layers.")) for k in state):
            hint = (" (this looks like the original UTMOS22 Lightning checkpoint; provide SpeechMOS's "
                    f"converted state dict {CHECKPOINT_NAME})")
        raise UTMOSCheckpointError(f"{path}: not a UTMOS22-strong state dict of the released layout"
                                   f"{hint}: " + "; ".join(problems))


def load_utmos22_strong(path: str | os.PathLike, config: UTMOS22Config | None = None) -> UTMOS22Strong:
    """The model with the weights of `path` (a flat state dict, loaded strictly), in eval mode.

    `config` defaults to `UTMOS22_STRONG` (looked up at call time).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (download {RELEASE_URL})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UTMOSCheckpointError(f"{path}: cannot be read as a PyTorch state dict "
                                   f"({type(e).__name__}: {e})".replace("\n", " ")) from e
    if not isinstance(state, Mapping):
        raise UTMOSCheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict")
    model = UTMOS22Strong(config or UTMOS22_STRONG)
    check_state_dict(model, state, path)
    model.load_state_dict(state, strict=True)
    return model.eval()


# ---------------------------------------------------------------- metric backend
class UTMOS:
    """The challenge's UTMOS column: `__call__(x [T] at any rate, fs) -> {"UTMOS": float}`.

    The model loads once, here; the estimate is resampled to 16 kHz (soxr HQ, as every
    non-intrusive backend of this project) and scored as one batch of one.
    """

    columns = ("UTMOS",)

    def __init__(self, checkpoint: str | os.PathLike, threads: int = 1):
        self.model = load_utmos22_strong(checkpoint)
        self.min_samples = self.model.cfg.receptive_field

    def __call__(self, x: np.ndarray, fs: int) -> dict[str, float]:
        from use_repro.metrics.nonintrusive import to_16k

        audio = to_16k(np.asarray(x, dtype=np.float32).reshape(-1), fs)
        if len(audio) < self.min_samples:
            raise ValueError(f"too short for UTMOS: {len(audio)} samples at 16 kHz, "
                             f"at least {self.min_samples} needed")
        with torch.inference_mode():
            y = self.model(torch.from_numpy(np.ascontiguousarray(audio))[None])
        return {"UTMOS": float(y[0])}
