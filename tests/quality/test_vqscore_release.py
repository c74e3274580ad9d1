"""The released VQScore checkpoint format (JasonSWFu/VQscore, quality estimator
`exp/QE_cbook_size_2048_1_32_IN_input_encoder_z_Librispeech_clean_github/checkpoint-dnsmos_ovr_CC=0.835.pkl`).

`Release` below rebuilds the original's module tree (models/VQVAE_models.py `VQVAE_QE`, with
lucidrains' VectorQuantize inside) so that its state-dict key names and shapes come from the
module structure, not from our RELEASED_KEY_MAP; `release_inference_score` is the original
inference.py's Quality_Estimation branch written out: |STFT| (Hann 512, hop 256, floor 1e-7
on the power), encoder, l2-normalised z against the codebook by dot product, nearest code, and
VQScore = mean frame cosine between z and its code with 1e-5 added to both norms.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.quality.conftest import add_white_noise, babble_voice
from use_repro.quality import vqscore as V


class _Encoder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        w = [257, 128, 128, 64, 64, dim, dim]
        for i in range(8):  # enc_In0..7: InstanceNorm1d without affine weights: no state
            setattr(self, f"enc_In{i}", nn.InstanceNorm1d(w[min(i, 6)]))
        for i in range(1, 7):
            setattr(self, f"conv_enc{i}", nn.Conv1d(w[i - 1], w[i], 7, padding=3))

    def forward(self, x):  # [B, T, 257] -> z [B, dim, T]
        a = lambda h: F.leaky_relu(h, 0.3)  # noqa: E731
        x = self.enc_In0(x.transpose(2, 1))
        e1 = self.enc_In1(a(self.conv_enc1(x)))
        e2 = self.enc_In2(a(self.conv_enc2(e1)))
        e3 = self.enc_In3(a(self.conv_enc3(e1 + e2)))
        e4 = self.enc_In4(a(self.conv_enc4(e3)))
        e5 = self.enc_In5(a(self.conv_enc5(e3 + e4)))
        return self.enc_In6(self.conv_enc6(e5))


class _Decoder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        w = [dim, dim, 64, 64, 128, 128, 257]
        for i in range(1, 7):
            setattr(self, f"conv_dec{i}", nn.Conv1d(w[i - 1], w[i], 7, padding=3))


class _Codebook(nn.Module):  # CosineSimCodebook with num_codebooks=1, kmeans_init=True, buffers only
    def __init__(self, size, dim):
        super().__init__()
        self.register_buffer("initted", torch.Tensor([False]))
        self.register_buffer("cluster_size", torch.zeros(1, size))
        self.register_buffer("embed_avg", torch.zeros(1, size, dim))
        self.register_buffer("embed", torch.zeros(1, size, dim))


class _VQ(nn.Module):  # VectorQuantize: project_in/out are Identity when dim == codebook_dim
    def __init__(self, size, dim):
        super().__init__()
        self.project_in, self.project_out = nn.Identity(), nn.Identity()
        self._codebook = _Codebook(size, dim)


class _Quantizer(nn.Module):
    def __init__(self, size, dim):
        super().__init__()
        self.quantizer = _VQ(size, dim)


class Release(nn.Module):
    def __init__(self, size=2048, dim=32):
        super().__init__()
        self.CNN_1D_encoder = _Encoder(dim)
        self.quantizer = _Quantizer(size, dim)
        self.CNN_1D_decoder = _Decoder(dim)


@torch.no_grad()
def release_inference_score(m: Release, wav: torch.Tensor) -> float:
    """inference.py, task Quality_Estimation, input_transform None: wav [1, T] at 16 kHz."""
    st = torch.view_as_real(torch.stft(wav, 512, 256, 512, window=torch.hann_window(512), return_complex=True))
    sp = torch.sqrt(torch.clamp(st[..., 0] ** 2 + st[..., 1] ** 2, min=1e-7)).transpose(2, 1)  # [1, T, 257]
    z = m.CNN_1D_encoder(sp)                                       # [1, 32, T]
    x = F.normalize(z.transpose(2, 1), p=2, dim=-1)[None]          # [h=1, 1, T, 32]
    embed = m.quantizer.quantizer._codebook.embed                  # [1, K, 32]
    dist = torch.einsum("hbnd,hcd->hbnc", x, embed)
    zq = embed[0][dist.argmax(-1)[0]]                              # [1, T, 32]
    a, b = z.transpose(2, 1), zq
    cos = ((a / (a.norm(dim=-1, keepdim=True) + 1e-5)) * (b / (b.norm(dim=-1, keepdim=True) + 1e-5))).sum(-1)
    return float(cos.mean())


def _release_checkpoint(m: Release) -> dict:
    """The trainer's container (trainer/trainerAE.py save_checkpoint), with real optimizer and
    scheduler states as the original's Adam(lr 1e-5, betas (0.5, 0.9)) and StepLR hold them."""
    opt = torch.optim.Adam(m.parameters(), lr=1e-5, betas=(0.5, 0.9))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=200000, gamma=1.0)
    return {"optimizer": {"VQVAE": opt.state_dict()}, "scheduler": {"VQVAE": sched.state_dict()},
            "steps": 800000, "epochs": 37, "model": {"VQVAE": m.state_dict()}}


def _random_release(size=2048, dim=32, seed=0) -> Release:
    torch.manual_seed(seed)
    m = Release(size, dim).eval()
    cb = m.quantizer.quantizer._codebook
    cb.embed.copy_(F.normalize(torch.randn(1, size, dim), dim=-1))
    cb.embed_avg.copy_(cb.embed * 3.0)
    cb.cluster_size.fill_(3.0)
    cb.initted.fill_(1.0)
    return m


def test_release_key_names_and_shapes_are_what_we_map():
    state = Release().state_dict()
    assert set(state) == set(V.RELEASED_KEY_MAP)
    assert state["quantizer.quantizer._codebook.embed"].shape == (1, 2048, 32)
    assert state["quantizer.quantizer._codebook.cluster_size"].shape == (1, 2048)
    assert state["CNN_1D_encoder.conv_enc1.weight"].shape == (128, 257, 7)


def test_released_checkpoint_loads_strictly_and_scores_as_inference_py(tmp_path):
    rel = _random_release()
    path = tmp_path / "checkpoint-dnsmos_ovr_CC=0.835.pkl"
    torch.save(_release_checkpoint(rel), path)
    model, info = V.load_estimator(path)
    assert info["origin"] == "released" and info["steps"] == 800000 and len(info["sha256"]) == 64
    assert model.args.codebook_size == 2048 and model.args.codebook_dim == 32
    assert model.args.channels == (128, 64) and model.args.input_transform == "none"
    clean = babble_voice(3.0, seed=1)
    for x in (clean, add_white_noise(clean, 5.0)):
        ref = release_inference_score(rel, torch.from_numpy(x)[None])
        assert V.score_waveform(model, x, 16000) == pytest.approx(ref, abs=1e-5)
    # and imported into our format, the same scores
    ours, ck = V.load_estimator(V.import_released(path, tmp_path / "estimator.pt"))
    assert ck["origin"] == "released" and ck["sha256"] == info["sha256"]
    assert V.score_waveform(ours, clean, 16000) == pytest.approx(release_inference_score(
        rel, torch.from_numpy(clean)[None]), abs=1e-5)


def test_our_model_in_the_release_layout_round_trips(tmp_path):
    torch.manual_seed(3)
    ours = V.VQScoreModel(V.VQScoreArgs(codebook_size=2048, codebook_dim=32)).eval()
    ours.codebook.embed.copy_(V.l2norm(torch.randn(2048, 32)))
    rel = Release()
    mine = ours.state_dict()
    rel.load_state_dict({k: (mine[v][None] if k.startswith("quantizer.") and not k.endswith("initted")
                             else mine[v]) for k, v in V.RELEASED_KEY_MAP.items()}, strict=True)
    torch.save(_release_checkpoint(rel), tmp_path / "r.pkl")
    loaded, _ = V.load_estimator(tmp_path / "r.pkl")
    x = babble_voice(2.0, seed=4)
    assert V.score_waveform(loaded, x) == pytest.approx(V.score_waveform(ours, x), abs=1e-6)
    assert V.score_waveform(loaded, x) == pytest.approx(release_inference_score(rel, torch.from_numpy(x)[None]),
                                                        abs=1e-5)


def test_mismatches_name_the_keys(tmp_path):
    ck = _release_checkpoint(_random_release(size=16))
    st = ck["model"]["VQVAE"]
    st["CNN_1D_encoder.transformer_encoder.layers.0.linear1.weight"] = torch.zeros(32, 32)  # an SE model
    del st["CNN_1D_decoder.conv_dec4.bias"]
    torch.save(ck, tmp_path / "a.pkl")
    with pytest.raises(ValueError, match=r"missing keys: CNN_1D_decoder\.conv_dec4\.bias.*"
                                         r"unexpected keys: CNN_1D_encoder\.transformer_encoder"):
        V.load_estimator(tmp_path / "a.pkl")
    ck = _release_checkpoint(_random_release(size=16))
    ck["model"]["VQVAE"]["quantizer.quantizer._codebook.embed"] = torch.zeros(2, 16, 32)  # two heads
    torch.save(ck, tmp_path / "b.pkl")
    with pytest.raises(ValueError, match=r"_codebook\.embed has shape \(2, 16, 32\).*head axis of 1"):
        V.load_estimator(tmp_path / "b.pkl")
    ck = _release_checkpoint(_random_release(size=16))
    ck["model"]["VQVAE"]["CNN_1D_decoder.conv_dec6.weight"] = torch.zeros(200, 128, 7)
    torch.save(ck, tmp_path / "c.pkl")
    with pytest.raises(ValueError, match=r"CNN_1D_decoder\.conv_dec6\.weight \(200, 128, 7\) \(expected \(257, 128, 7\)\)"):
        V.load_estimator(tmp_path / "c.pkl")


def test_cli_import_released(tmp_path):
    from use_repro.cli import main

    rel = _random_release(size=32)
    torch.save(_release_checkpoint(rel), tmp_path / "r.pkl")
    assert main(["vqscore", "import-released", str(tmp_path / "r.pkl"), "--out", str(tmp_path / "e.pt")]) == 0
    model, ck = V.load_estimator(tmp_path / "e.pt")
    assert ck["origin"] == "released" and ck["steps"] == 800000
    x = babble_voice(2.0, seed=5)
    assert V.score_waveform(model, x) == pytest.approx(release_inference_score(rel, torch.from_numpy(x)[None]),
                                                       abs=1e-5)
    # our own format is not a release: refused, nothing written
    assert main(["vqscore", "import-released", str(tmp_path / "e.pt"), "--out", str(tmp_path / "f.pt")]) == 1
    assert not (tmp_path / "f.pt").exists()
