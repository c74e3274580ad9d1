"""VQScore: self-supervised speech quality from the quantisation error of a VQ-VAE trained on
clean speech only (Fu et al., ICLR 2024; the quality estimator of the public `VQscore` code).

Pipeline, as the original quality estimator:

    16 kHz waveform [B, T]
      -> |STFT| (512-point Hann window, hop 256, linear magnitude)          [B, N, 257]
      -> encoder: instance-normalised input, six 1-D convs 257-128-128-64-64-32-32
         (kernel 7, LeakyReLU 0.3, instance norm after each, two skip sums)  z  [B, N, 32]
      -> cosine codebook 2048 x 32: inputs and codes l2-normalised, nearest code by dot
         product, EMA updates (decay 0.8), k-means initialisation on the first batch,
         straight-through gradient                                          q  [B, N, 32]
      -> decoder: the mirror convs 32-32-64-64-128-128-257, ReLU output      [B, N, 257]

Training loss = commitment (MSE between the normalised z and its detached code, weight 1)
+ 45 x the negative mean frame cosine between the input magnitude and its reconstruction.

Score = mean over frames of cos(z_t, q(z_t)): clean speech lands close to a code learnt from
clean speech; noise, hum, codec artefacts push z away from every code and the score falls.

Using the released checkpoint of the original code (the scale of the paper's thresholds):
`use-repro weights fetch vqscore --accept-unpinned` (or `weights add vqscore FILE`) puts
`exp/QE_cbook_size_2048_1_32_IN_input_encoder_z_Librispeech_clean_github/
checkpoint-dnsmos_ovr_CC=0.835.pkl` of the public VQscore repository where the profile's
`vqscore.released_checkpoint` names it (under `weights_dir`; the urgent2025 profile expects
`weights/vqscore/checkpoint-dnsmos_ovr_CC=0.835.pkl`), or pass it as
`use-repro vqscore train --released PATH` / `use-repro vqscore import-released PATH --out E`.
`load_estimator` recognises the file by the original trainer's container
(`{'model': {'VQVAE': state_dict}, 'optimizer', 'scheduler', 'steps', 'epochs'}`), loads
strictly (every key of VQVAE_QE and no other; shapes checked, mismatches named by the original's
key), renames its parameters with `RELEASED_KEY_MAP`
(`CNN_1D_encoder.conv_enc{i}` -> `encoder.convs.{i-1}`, `CNN_1D_decoder.conv_dec{i}` ->
`decoder.convs.{i-1}`, `quantizer.quantizer._codebook.{embed,embed_avg,cluster_size,initted}` ->
`codebook.*` with the leading head axis dropped; its instance norms have no weights) and
infers the sizes from the tensors; `import_released` writes it in this project's format with
origin `released`, which makes the threshold sweep use the paper's absolute scores.

Notes on sensitivity (measured on the mini corpus, 1000 steps of 16 x 3 s, ~150 CPU-seconds).
With the original's linear magnitudes the estimator separates the crowd source's dirty
utterances (stationary noise, hum, hiss 18-38 dB below the speech, low-bitrate MP3) from its
clean ones with a ROC AUC of only 0.66: after the per-bin instance norm, noise that low is a
few per cent of each bin's range and lives in the pauses, which the magnitude cosine of the
loss barely weighs; AUC grew ~0.04 per doubling of training (0.62 at 500 steps, 0.66 at 1000,
0.65-0.66 at 2000-4000), far from the original's 800k steps. `input_transform: log` (an option,
not the paper's estimator) makes the pauses' noise floor visible: AUC 0.93 after the same
training. Both fall monotonically as white noise is added at 30, 20, 10, 0 dB SNR.
"""
from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from use_repro.fs import atomic_path

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_BINS = N_FFT // 2 + 1
# The original adds this to both norms of a frame cosine (loss and score alike).
COS_EPS = 1e-5


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------

def magnitude(wav: torch.Tensor) -> torch.Tensor:
    """Linear STFT magnitude of 16 kHz audio: [B, T] or [T] -> [B, N, 257].

    Hann window 512, hop 256, centred frames with reflect padding (torch.stft's defaults, as
    the original); the magnitude is floored at sqrt(1e-7) like the original so silence never
    gives a zero vector. Inputs shorter than one window are zero-padded to it first.
    """
    if wav.dim() == 1:
        wav = wav[None]
    if wav.shape[-1] < N_FFT:
        wav = F.pad(wav, (0, N_FFT - wav.shape[-1]))
    spec = torch.stft(wav, N_FFT, HOP, N_FFT, window=torch.hann_window(N_FFT, device=wav.device),
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()
    return power.clamp_min(1e-7).sqrt().transpose(1, 2)


def frame_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine between matching frames, the original's way (eps added to each norm).

    a, b: [B, N, D] -> [B, N].
    """
    na = a.norm(dim=-1, keepdim=True) + COS_EPS
    nb = b.norm(dim=-1, keepdim=True) + COS_EPS
    return ((a / na) * (b / nb)).sum(-1)


# ---------------------------------------------------------------------------------------------
# Encoder and decoder
# ---------------------------------------------------------------------------------------------

def _conv(cin: int, cout: int, kernel: int) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, kernel, padding=kernel // 2)


class Encoder(nn.Module):
    """[B, N, 257] magnitude -> z [B, N, dim].

    Every stage is conv -> LeakyReLU(0.3) -> instance norm over time (no affine), except the
    last, which has no activation. Stages 3 and 5 see the sum of the two stages before them.
    Instance-normalising the input makes the score largely independent of the recording level.
    """

    def __init__(self, dim: int = 32, channels: Sequence[int] = (128, 64), kernel: int = 7):
        super().__init__()
        c1, c2 = channels
        widths = [N_BINS, c1, c1, c2, c2, dim, dim]
        self.convs = nn.ModuleList(_conv(widths[i], widths[i + 1], kernel) for i in range(6))

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        act = lambda h: F.leaky_relu(h, 0.3)  # noqa: E731
        norm = F.instance_norm
        c = self.convs
        x = norm(mag.transpose(1, 2))
        h1 = norm(act(c[0](x)))
        h2 = norm(act(c[1](h1)))
        h3 = norm(act(c[2](h1 + h2)))
        h4 = norm(act(c[3](h3)))
        h5 = norm(act(c[4](h3 + h4)))
        z = norm(c[5](h5))
        return z.transpose(1, 2)


class Decoder(nn.Module):
    """q [B, N, dim] -> reconstructed magnitude [B, N, 257] (the encoder's mirror, no norms;
    ReLU on the output because a magnitude is non-negative)."""

    def __init__(self, dim: int = 32, channels: Sequence[int] = (128, 64), kernel: int = 7):
        super().__init__()
        c1, c2 = channels
        widths = [dim, dim, c2, c2, c1, c1, N_BINS]
        self.convs = nn.ModuleList(_conv(widths[i], widths[i + 1], kernel) for i in range(6))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        act = lambda h: F.leaky_relu(h, 0.3)  # noqa: E731
        c = self.convs
        d1 = act(c[0](q.transpose(1, 2)))
        d2 = act(c[1](d1))
        d3 = act(c[2](d2))
        d4 = act(c[3](d3 + d2))
        d5 = act(c[4](d4))
        return F.relu(c[5](d5 + d4)).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# Cosine codebook
# ---------------------------------------------------------------------------------------------

def l2norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, p=2, dim=-1)


class CosineCodebook(nn.Module):
    """A codebook of unit vectors searched by cosine similarity and learnt by EMA, not by
    gradients.

    Buffers: `embed` [K, D] (unit rows), `embed_avg` [K, D] (EMA of the sum of the inputs
    assigned to each code), `cluster_size` [K] (EMA of assignment counts), `initted` [1].

    EMA step with decay d, for a batch of unit inputs x_n assigned to codes k_n:
        cluster_size <- d * cluster_size + (1 - d) * count_k
        embed_avg    <- d * embed_avg    + (1 - d) * sum_{n: k_n = k} x_n
        embed        <- l2norm(embed_avg / smoothed(cluster_size))
    where smoothed(c)_k = (c_k + eps) / (sum(c) + K eps) * sum(c) (Laplace smoothing).

    Dead codes: a code whose cluster_size falls below `dead_code_threshold` is replaced by a
    random input of the batch. The released quality estimator disables this (its threshold is
    -1000); 0 disables it here too.
    """

    def __init__(self, size: int = 2048, dim: int = 32, decay: float = 0.8, eps: float = 1e-5,
                 kmeans_iters: int = 10, dead_code_threshold: float = 0.0):
        super().__init__()
        self.size, self.dim, self.decay, self.eps = size, dim, decay, eps
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.register_buffer("initted", torch.zeros(1))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed_avg", torch.zeros(size, dim))
        self.register_buffer("embed", torch.zeros(size, dim))

    def lookup(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest code by cosine for unit inputs: xn [..., D] -> (codes [..., D], index [...])."""
        sim = xn @ self.embed.t()
        idx = sim.argmax(dim=-1)
        return F.embedding(idx, self.embed), idx

    @torch.no_grad()
    def kmeans_init_(self, xn: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Spherical k-means on unit vectors xn [M, D]: the codes start as K random inputs
        (with repeats when M < K); each iteration assigns by dot product and moves every
        non-empty code to the l2-normalised mean of its members. The EMA state starts from the
        final counts, so the first EMA step does not wipe the initialisation out."""
        m = xn.shape[0]
        g = generator
        if m >= self.size:
            pick = torch.randperm(m, generator=g, device="cpu")[: self.size]
        else:
            pick = torch.randint(0, m, (self.size,), generator=g, device="cpu")
        means = xn[pick.to(xn.device)].clone()
        counts = torch.zeros(self.size, device=xn.device)
        for _ in range(self.kmeans_iters):
            assign = (xn @ means.t()).argmax(dim=-1)
            counts = torch.bincount(assign, minlength=self.size).to(xn.dtype)
            sums = torch.zeros_like(means).index_add_(0, assign, xn)
            new = l2norm(sums / counts.clamp_min(1)[:, None])
            means = torch.where((counts == 0)[:, None], means, new)
        self.embed.copy_(means)
        self.embed_avg.copy_(means * counts[:, None])
        self.cluster_size.copy_(counts)
        self.initted.fill_(1)

    @torch.no_grad()
    def ema_update_(self, xn: torch.Tensor, idx: torch.Tensor) -> None:
        """One EMA step from unit inputs xn [M, D] and their code indices idx [M]."""
        d = self.decay
        counts = torch.bincount(idx, minlength=self.size).to(xn.dtype)
        sums = torch.zeros_like(self.embed_avg).index_add_(0, idx, xn)
        self.cluster_size.mul_(d).add_(counts, alpha=1 - d)
        self.embed_avg.mul_(d).add_(sums, alpha=1 - d)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.size * self.eps) * total
        self.embed.copy_(l2norm(self.embed_avg / smoothed[:, None]))

    @torch.no_grad()
    def expire_dead_codes_(self, xn: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Replace codes used less than `dead_code_threshold` by random inputs; returns how many."""
        if self.dead_code_threshold <= 0:
            return 0
        dead = self.cluster_size < self.dead_code_threshold
        n = int(dead.sum())
        if n == 0:
            return 0
        pick = torch.randint(0, xn.shape[0], (n,), generator=generator, device="cpu").to(xn.device)
        fresh = xn[pick]
        self.embed[dead] = fresh
        self.embed_avg[dead] = fresh * self.dead_code_threshold
        self.cluster_size[dead] = self.dead_code_threshold
        return n

    def forward(self, z: torch.Tensor, update: bool = False,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Quantise z [B, N, D].

        Returns `zn` (l2-normalised z), `q` (the codes; in training, straight-through:
        zn + (codes - zn).detach()), `codes` (the codes themselves), `index` [B, N] and
        `commit` (MSE between zn and the detached codes). With `update`, runs the k-means
        initialisation on the first call and one EMA step (and dead-code expiry) per call.
        """
        zn = l2norm(z.float())
        flat = zn.reshape(-1, zn.shape[-1])
        if update and not bool(self.initted):
            self.kmeans_init_(flat.detach(), generator)
        codes, idx = self.lookup(flat)
        if update:
            self.ema_update_(flat.detach(), idx)
            self.expire_dead_codes_(flat.detach(), generator)
        codes = codes.view_as(zn)
        commit = F.mse_loss(zn, codes.detach())
        q = zn + (codes - zn).detach()
        return {"zn": zn, "q": q, "codes": codes, "index": idx.view(zn.shape[:-1]), "commit": commit}


# ---------------------------------------------------------------------------------------------
# The whole estimator
# ---------------------------------------------------------------------------------------------

@dataclass
class VQScoreArgs:
    """Constructor arguments of `VQScoreModel` (stored in every checkpoint)."""

    codebook_size: int = 2048
    codebook_dim: int = 32
    channels: tuple[int, int] = (128, 64)
    kernel: int = 7
    decay: float = 0.8
    kmeans_iters: int = 10
    dead_code_threshold: float = 0.0
    # What the encoder sees and the decoder rebuilds: `none`, the linear magnitude (the
    # released quality estimator); `log1p`, the original code's other option (its enhancement
    # model's); `log`, log(magnitude / floor), this project's variant, far more sensitive to
    # low-level noise in pauses (see the schema's vqscore.model.input_transform).
    input_transform: str = "none"


INPUT_TRANSFORMS = ("none", "log1p", "log")
_FLOOR = 1e-7 ** 0.5  # the magnitude floor of `magnitude`


def transform_input(mag: torch.Tensor, kind: str) -> torch.Tensor:
    """Linear magnitude [B, N, 257] -> the estimator's input features (same shape)."""
    if kind == "none":
        return mag
    if kind == "log1p":
        return torch.log1p(mag)
    if kind == "log":
        return torch.log(mag / _FLOOR)  # >= 0, as the ReLU output of the decoder must be
    raise ValueError(f"input_transform must be one of {', '.join(INPUT_TRANSFORMS)}, not {kind!r}")


class VQScoreModel(nn.Module):
    def __init__(self, args: VQScoreArgs | None = None):
        super().__init__()
        self.args = args = args or VQScoreArgs()
        self.encoder = Encoder(args.codebook_dim, args.channels, args.kernel)
        self.codebook = CosineCodebook(args.codebook_size, args.codebook_dim, args.decay,
                                       kmeans_iters=args.kmeans_iters,
                                       dead_code_threshold=args.dead_code_threshold)
        self.decoder = Decoder(args.codebook_dim, args.channels, args.kernel)

    def forward(self, mag: torch.Tensor, update: bool = False,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Linear magnitude [B, N, 257] -> dict with `input` (the features after
        `input_transform`, the reconstruction target) [B, N, 257], `z` [B, N, D], the
        codebook's outputs and `recon` [B, N, 257]."""
        x = transform_input(mag, self.args.input_transform)
        z = self.encoder(x)
        out = self.codebook(z, update=update, generator=generator)
        out["input"] = x
        out["z"] = z
        out["recon"] = self.decoder(out["q"])
        return out

    @torch.no_grad()
    def score_magnitude(self, mag: torch.Tensor) -> torch.Tensor:
        """VQScore of each item: linear magnitude [B, N, 257] -> [B] (no decoder needed)."""
        z = self.encoder(transform_input(mag, self.args.input_transform))
        codes, _ = self.codebook.lookup(l2norm(z))
        return frame_cosine(z, codes).mean(dim=-1)


def losses(out: dict[str, torch.Tensor], lambda_vq: float = 1.0,
           lambda_cos: float = 45.0) -> dict[str, torch.Tensor]:
    """The training objective from the model's outputs. Keys are the names logged and
    configured: `vq` (commitment), `cos` (negative mean frame cosine between the input
    features and their reconstruction) and `loss` = lambda_vq * vq + lambda_cos * cos."""
    vq = out["commit"]
    cos = -frame_cosine(out["input"], out["recon"]).mean()
    return {"loss": lambda_vq * vq + lambda_cos * cos, "vq": vq, "cos": cos}


# ---------------------------------------------------------------------------------------------
# Waveforms in, scores out
# ---------------------------------------------------------------------------------------------

def to_16k(wav: np.ndarray, fs: int) -> np.ndarray:
    """Any rate -> 16 kHz float32 [T] (soxr); the estimator only knows 16 kHz."""
    from use_repro.audio.resample import resample

    return resample(np.asarray(wav, dtype=np.float32), int(fs), SAMPLE_RATE)


@torch.no_grad()
def score_waveform(model: VQScoreModel, wav: np.ndarray, fs: int = SAMPLE_RATE,
                   device: str | torch.device = "cpu") -> float:
    """VQScore of one utterance (any rate; resampled to 16 kHz). wav: [T] float."""
    x = torch.from_numpy(to_16k(wav, fs)).to(device)
    return float(model.score_magnitude(magnitude(x))[0])


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

@dataclass
class TrainSettings:
    """Training hyper-parameters. The original: batch 64 x 3 s, Adam lr 1e-5, betas (0.5, 0.9),
    800k steps, random gain 0.05-2 (capped at full scale), lambda_vq 1, lambda_cos 45."""

    steps: int = 400
    batch_size: int = 16
    segment_seconds: float = 3.0
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    lambda_vq: float = 1.0
    lambda_cos: float = 45.0
    gain_range: tuple[float, float] = (0.05, 2.0)
    log_every: int = 50
    seed: int = 0
    # torch's intra-op threads while training: the weights depend on it (a reduction split over
    # another number of threads sums in another order), so it is a setting, not the machine's
    # core count (profile key vqscore.train.threads)
    threads: int = 2


class SegmentSampler:
    """Random fixed-length crops of 16 kHz clips, as the original's loader: a file chosen with
    probability proportional to its length (every second of speech is equally likely), a
    random crop of it, zero-padded when the file is shorter. Each crop gets a random gain (as
    the original) so the model sees many levels."""

    def __init__(self, clips: Sequence[np.ndarray], segment: int, gain_range: tuple[float, float],
                 rng: np.random.Generator):
        if not clips:
            raise ValueError("no training audio")
        self.clips, self.segment, self.gain_range, self.rng = clips, segment, gain_range, rng
        lengths = np.array([len(c) for c in clips], dtype=np.float64)
        self.p = lengths / lengths.sum()

    def batch(self, n: int) -> torch.Tensor:
        out = np.zeros((n, self.segment), dtype=np.float32)
        for i, k in enumerate(self.rng.choice(len(self.clips), size=n, p=self.p)):
            clip = self.clips[k]
            if len(clip) > self.segment:
                start = int(self.rng.integers(0, len(clip) - self.segment + 1))
                clip = clip[start:start + self.segment]
            peak = float(np.abs(clip).max()) or 1.0
            out[i, :len(clip)] = clip * min(self.rng.uniform(*self.gain_range), 1.0 / peak)
        return torch.from_numpy(out)


def train(clips: Sequence[np.ndarray], settings: TrainSettings, args: VQScoreArgs | None = None,
          device: str | torch.device = "cpu",
          on_log: Callable[[dict], None] | None = None) -> tuple[VQScoreModel, dict]:
    """Train an estimator on clean 16 kHz clips ([T] float32 each).

    Returns the model (in eval mode) and a state dict for the checkpoint: `optimizer`, `step`,
    `history` (one row per `log_every` steps: step, loss, vq, cos, codes_used, seconds).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _train(clips, settings, args, device, on_log)
    finally:
        torch.set_num_threads(previous)


def _train(clips, settings: TrainSettings, args, device, on_log) -> tuple[VQScoreModel, dict]:
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    sampler = SegmentSampler(clips, int(settings.segment_seconds * SAMPLE_RATE), settings.gain_range,
                             np.random.default_rng(settings.seed))
    model = VQScoreModel(args).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=settings.betas)
    history, acc, t0 = [], {"loss": 0.0, "vq": 0.0, "cos": 0.0}, time.time()
    used = torch.zeros(model.args.codebook_size, dtype=torch.bool, device=device)
    for step in range(1, settings.steps + 1):
        mag = magnitude(sampler.batch(settings.batch_size).to(device))
        out = model(mag, update=True, generator=gen)
        terms = losses(out, settings.lambda_vq, settings.lambda_cos)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        for k in acc:
            acc[k] += terms[k].item()
        used[out["index"].flatten()] = True
        if step % settings.log_every == 0 or step == settings.steps:
            n = settings.log_every if step % settings.log_every == 0 else step % settings.log_every
            row = {"step": step, **{k: v / n for k, v in acc.items()},
                   "codes_used": int(used.sum()), "seconds": round(time.time() - t0, 2)}
            history.append(row)
            if on_log:
                on_log(row)
            acc = {k: 0.0 for k in acc}
            used.zero_()
    model.eval()
    return model, {"optimizer": opt.state_dict(), "step": settings.steps, "history": history}


# ---------------------------------------------------------------------------------------------
# Checkpoints: ours, and the released one of the original code
# ---------------------------------------------------------------------------------------------

def save_estimator(path: str | Path, model: VQScoreModel, origin: str, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically: class, constructor args, weights, `origin`
    (`trained` or `released`) and whatever `extra` holds (optimizer, step, RNG, config...)."""
    ckpt = {"class": "VQScoreModel", "args": dataclasses.asdict(model.args),
            "state_dict": model.state_dict(), "origin": origin,
            "rng": torch.get_rng_state(), **(extra or {})}
    # a file object, not the temp path: the archive's inner folder would be named after it
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(ckpt, f)
    return Path(path)


def estimator_label(ckpt: dict) -> str:
    """How tables and figures name an estimator's scores: `VQScore`, or the variant it is."""
    transform = (ckpt.get("args") or {}).get("input_transform", "none")
    return "VQScore" if transform == "none" else f"VQScore ({transform}-magnitude variant)"


def load_estimator(path: str | Path, device: str | torch.device = "cpu") -> tuple[VQScoreModel, dict]:
    """Load a checkpoint written by `save_estimator` or, recognised by its layout, the released
    checkpoint of the original code. Returns (model in eval mode, checkpoint dict)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such VQScore checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # The original trainer pickled its checkpoints with whatever objects it held; a file
        # the user copied in by hand may need the full unpickler.
        log.warning("%s: not loadable as plain tensors (%s); loading it with the full unpickler", path,
                    str(e).splitlines()[0])
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict) and "VQVAE" in ckpt["model"]:
        # The original trainer's container (trainer/trainerAE.py save_checkpoint):
        # {"optimizer": {"VQVAE": ...}, "scheduler": {"VQVAE": ...}, "steps", "epochs",
        #  "model": {"VQVAE": VQVAE_QE.state_dict()}}; inference.py reads only model.VQVAE.
        model = model_from_released_state(ckpt["model"]["VQVAE"], f"{path} model.VQVAE")
        from use_repro.fs import sha256_file

        return model.to(device).eval(), {"origin": "released", "format": "original release", "source": str(path),
                                         "sha256": sha256_file(path),
                                         "steps": ckpt.get("steps"), "epochs": ckpt.get("epochs")}
    if not isinstance(ckpt, dict) or ckpt.get("class") != "VQScoreModel":
        raise ValueError(f"{path}: not a VQScore checkpoint (expected keys class=VQScoreModel, "
                         f"or the original code's model.VQVAE)")
    return model_from_state(ckpt["args"], ckpt["state_dict"]).to(device), ckpt


def model_from_state(args: dict, state: dict[str, torch.Tensor]) -> VQScoreModel:
    """A model in eval mode from its constructor arguments (as a dict) and weights."""
    model = VQScoreModel(VQScoreArgs(**{**args, "channels": tuple(args["channels"])}))
    model.load_state_dict(state)
    return model.eval()


# The original code's names (VQVAE_QE in models/VQVAE_models.py, lucidrains' VectorQuantize
# inside) -> ours. Its InstanceNorm layers have no affine parameters, so they hold no weights.
# Codebook buffers carry a leading head axis of 1 ([1, 2048, 32], [1, 2048]) that we drop.
RELEASED_KEY_MAP: dict[str, str] = {
    **{f"CNN_1D_encoder.conv_enc{i}.{p}": f"encoder.convs.{i - 1}.{p}"
       for i in range(1, 7) for p in ("weight", "bias")},
    **{f"CNN_1D_decoder.conv_dec{i}.{p}": f"decoder.convs.{i - 1}.{p}"
       for i in range(1, 7) for p in ("weight", "bias")},
    "quantizer.quantizer._codebook.initted": "codebook.initted",
    "quantizer.quantizer._codebook.cluster_size": "codebook.cluster_size",
    "quantizer.quantizer._codebook.embed_avg": "codebook.embed_avg",
    "quantizer.quantizer._codebook.embed": "codebook.embed",
}


def map_released_state(state: dict[str, torch.Tensor], where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename the original's state dict (VQVAE_QE) into ours (see RELEASED_KEY_MAP), strictly:
    every key the original model has must be there and no other (an enhancement VQVAE_SE, with
    its transformer layers, or a multi-head codebook is refused, naming the keys). The codebook
    buffers lose their leading head axis, which must be 1 (the release's codebook_num 1)."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{where}: model.VQVAE is not a state dict of tensors")
    missing = sorted(set(RELEASED_KEY_MAP) - set(state))
    unexpected = sorted(set(state) - set(RELEASED_KEY_MAP))
    if missing or unexpected:
        def some(keys):
            return ", ".join(keys[:6]) + (f" ... ({len(keys)} in all)" if len(keys) > 6 else "")
        raise ValueError(f"{where}: not the original VQScore quality estimator (VQVAE_QE)"
                         + (f"; missing keys: {some(missing)}" if missing else "")
                         + (f"; unexpected keys: {some(unexpected)}" if unexpected else ""))
    out = {}
    for key, value in state.items():
        if key.startswith("quantizer."):
            if key.endswith("initted"):
                if value.numel() != 1:
                    raise ValueError(f"{where}: {key} has shape {tuple(value.shape)}, expected one flag")
                value = value.reshape(1).float()
            else:
                if value.dim() < 2 or value.shape[0] != 1:
                    raise ValueError(f"{where}: {key} has shape {tuple(value.shape)}; expected a leading "
                                     f"head axis of 1 (one codebook, as the release's codebook_num: 1)")
                value = value[0]
        out[RELEASED_KEY_MAP[key]] = value
    return out


def model_from_released_state(state: dict[str, torch.Tensor], where: str = "checkpoint") -> VQScoreModel:
    """Our model from the original's weights; sizes are read from the tensors and every shape is
    checked against the model they imply, a mismatch naming the original's key."""
    mapped = map_released_state(state, where)
    if mapped["codebook.embed"].dim() != 2:
        raise ValueError(f"{where}: quantizer.quantizer._codebook.embed must be [1, size, dim], "
                         f"not {tuple(state['quantizer.quantizer._codebook.embed'].shape)}")
    size, dim = mapped["codebook.embed"].shape
    c1 = mapped["encoder.convs.0.weight"].shape[0]
    c2 = mapped["encoder.convs.2.weight"].shape[0]
    kernel = mapped["encoder.convs.0.weight"].shape[-1]
    model = VQScoreModel(VQScoreArgs(codebook_size=size, codebook_dim=dim, channels=(c1, c2), kernel=kernel))
    theirs = {v: k for k, v in RELEASED_KEY_MAP.items()}
    expected = model.state_dict()
    bad = [f"{theirs[k]} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
           for k, v in mapped.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        raise ValueError(f"{where}: shapes do not fit the quality estimator: {'; '.join(bad[:6])}")
    model.load_state_dict(mapped, strict=True)
    return model


def import_released(src: str | Path, dst: str | Path) -> Path:
    """Convert the original's `checkpoint-*.pkl` (torch.save of {'model': {'VQVAE': ...}})
    into our checkpoint format at `dst`."""
    model, info = load_estimator(src)
    if info.get("format") != "original release":
        raise ValueError(f"{src}: not the original code's checkpoint (no model.VQVAE); nothing imported")
    return save_estimator(dst, model, origin="released",
                          extra={k: info[k] for k in ("source", "sha256", "steps", "epochs")})
