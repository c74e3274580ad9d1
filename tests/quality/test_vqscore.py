import numpy as np
import pytest
import torch

from tests.quality.conftest import add_white_noise, babble_voice
from use_repro.quality import vqscore as V


def _codebook(vectors, **kw) -> V.CosineCodebook:
    e = torch.tensor(vectors, dtype=torch.float32)
    cb = V.CosineCodebook(size=e.shape[0], dim=e.shape[1], **kw)
    cb.embed.copy_(V.l2norm(e))
    cb.initted.fill_(1)
    return cb


def test_magnitude_shape_and_floor():
    mag = V.magnitude(torch.zeros(2, 16000))
    assert mag.shape == (2, 16000 // V.HOP + 1, 257)
    assert torch.allclose(mag, torch.full_like(mag, 1e-7 ** 0.5))
    # shorter than a window: padded, still one frame at least
    assert V.magnitude(torch.ones(100)).shape[-1] == 257


def test_codebook_lookup_is_by_cosine_not_distance():
    # code 0 is long and nearly parallel to x, code 1 is close in Euclidean terms only if
    # lengths mattered; the codebook stores unit vectors and compares directions.
    cb = _codebook([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    z = torch.tensor([[3.0, 4.0, 0.0], [0.1, 0.0, -5.0], [2.0, 1.0, 0.5]])
    codes, idx = cb.lookup(V.l2norm(z))
    assert idx.tolist() == [1, 0, 0]  # cos 0.8 > 0.6; -z axis is far from code 2, so x wins
    assert torch.allclose(codes[0], torch.tensor([0.0, 1.0, 0.0]))


def test_score_of_hand_made_latents():
    cb = _codebook([[1.0, 0.0], [0.0, 1.0]])
    z = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [-1.0, 1.0]]])  # [B=1, N=3, D=2]
    codes, _ = cb.lookup(V.l2norm(z))
    # frame cosines: 0.8 (3-4-5 triangle), 1.0 (exactly a code), 1/sqrt(2)
    expected = (0.8 + 1.0 + 2 ** -0.5) / 3
    score = V.frame_cosine(z, codes).mean()
    assert score.item() == pytest.approx(expected, abs=1e-4)


def test_model_score_equals_mean_frame_cosine():
    torch.manual_seed(0)
    model = V.VQScoreModel(V.VQScoreArgs(codebook_size=16, codebook_dim=4, channels=(8, 8))).eval()
    model.codebook.embed.copy_(V.l2norm(torch.randn(16, 4)))
    mag = V.magnitude(torch.randn(2, 8000))
    z = model.encoder(mag)
    e = model.codebook.embed
    best = (V.l2norm(z) @ e.t()).max(-1).values  # cosine to the nearest code, per frame
    assert torch.allclose(model.score_magnitude(mag), best.mean(-1), atol=1e-4)


def test_ema_update_arithmetic():
    cb = _codebook([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], decay=0.8)
    cb.cluster_size.copy_(torch.tensor([2.0, 1.0, 0.0]))
    cb.embed_avg.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    s = 2 ** -0.5
    x = torch.tensor([[1.0, 0.0], [s, s], [0.0, 1.0]])
    idx = torch.tensor([0, 0, 1])
    cb.ema_update_(x, idx)
    # cluster_size = 0.8 * [2, 1, 0] + 0.2 * [2, 1, 0]
    assert torch.allclose(cb.cluster_size, torch.tensor([2.0, 1.0, 0.0]))
    # embed_avg = 0.8 * old + 0.2 * per-code sums ([1+s, s], [0, 1], [0, 0])
    avg = torch.tensor([[1.6 + 0.2 * (1 + s), 0.2 * s], [0.0, 1.0], [0.0, 0.0]])
    assert torch.allclose(cb.embed_avg, avg, atol=1e-6)
    # Laplace-smoothed sizes, then unit rows
    n, k, eps = 3.0, 3, 1e-5
    smoothed = (torch.tensor([2.0, 1.0, 0.0]) + eps) / (n + k * eps) * n
    assert torch.allclose(cb.embed, V.l2norm(avg / smoothed[:, None]), atol=1e-6)
    assert torch.allclose(cb.embed.norm(dim=-1)[:2], torch.ones(2))


def test_ema_moves_a_code_towards_its_inputs():
    cb = _codebook([[1.0, 0.0], [0.0, 1.0]], decay=0.5)
    cb.cluster_size.fill_(1.0)
    cb.embed_avg.copy_(cb.embed)
    target = V.l2norm(torch.tensor([[1.0, 1.0]]))
    before = float(cb.embed[0] @ target[0])
    cb.ema_update_(target, torch.tensor([0]))
    assert float(cb.embed[0] @ target[0]) > before


def test_kmeans_init_finds_the_clusters():
    g = torch.Generator().manual_seed(0)
    centres = V.l2norm(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    pts = V.l2norm(centres.repeat(50, 1) + 0.05 * torch.randn(150, 3, generator=g))
    cb = V.CosineCodebook(size=3, dim=3, kmeans_iters=10)
    cb.kmeans_init_(pts, torch.Generator().manual_seed(1))
    assert bool(cb.initted)
    # every true centre has a code within a few degrees, and the counts add up
    assert ((centres @ cb.embed.t()).max(dim=1).values > 0.99).all()
    assert cb.cluster_size.sum().item() == 150
    assert torch.allclose(cb.embed_avg, cb.embed * cb.cluster_size[:, None])


def test_dead_codes_are_replaced_only_when_enabled():
    x = V.l2norm(torch.randn(20, 4))
    cb = _codebook(torch.eye(4).tolist())
    cb.cluster_size.copy_(torch.tensor([5.0, 0.1, 5.0, 0.0]))
    assert cb.expire_dead_codes_(x) == 0  # threshold 0: off, as the released estimator
    cb.dead_code_threshold = 1.0
    assert cb.expire_dead_codes_(x, torch.Generator().manual_seed(0)) == 2
    assert cb.cluster_size.tolist() == [5.0, 1.0, 5.0, 1.0]
    rows = {tuple(np.round(r, 5)) for r in x.numpy()}
    assert tuple(np.round(cb.embed[1].numpy(), 5)) in rows


def test_straight_through_passes_gradient_to_the_encoder():
    model = V.VQScoreModel(V.VQScoreArgs(codebook_size=32, codebook_dim=8, channels=(16, 8))).train()
    mag = V.magnitude(torch.randn(2, 8000) * 0.1)
    out = model(mag, update=True, generator=torch.Generator().manual_seed(0))
    # the decoder sees the code values ...
    assert torch.allclose(out["q"], out["codes"], atol=1e-6)
    terms = V.losses(out)
    assert terms["loss"].item() == pytest.approx(terms["vq"].item() + 45 * terms["cos"].item(), rel=1e-5)
    terms["loss"].backward()
    # ... and the encoder still gets a gradient through them
    assert model.encoder.convs[0].weight.grad.abs().sum() > 0


def test_checkpoint_round_trip(tmp_path):
    model = V.VQScoreModel(V.VQScoreArgs(codebook_size=32, codebook_dim=8, channels=(16, 8)))
    model.codebook.embed.copy_(V.l2norm(torch.randn(32, 8)))
    path = V.save_estimator(tmp_path / "e.pt", model, origin="trained", extra={"step": 3})
    loaded, ckpt = V.load_estimator(path)
    assert ckpt["origin"] == "trained" and ckpt["step"] == 3
    x = V.magnitude(torch.randn(1, 8000))
    assert torch.allclose(loaded.score_magnitude(x), model.eval().score_magnitude(x))


def _released_layout(model: V.VQScoreModel) -> dict:
    """The state dict of our model written in the original code's names and shapes."""
    ours = model.state_dict()
    state = {}
    for theirs, mine in V.RELEASED_KEY_MAP.items():
        v = ours[mine]
        state[theirs] = v[None] if theirs.startswith("quantizer.") and not theirs.endswith("initted") else v
    state["quantizer.quantizer._codebook.initted"] = torch.tensor([True])
    return {"model": {"VQVAE": state}, "steps": 800000, "optimizer": {}}


def test_released_checkpoint_is_recognised_and_mapped(tmp_path):
    torch.manual_seed(1)
    model = V.VQScoreModel(V.VQScoreArgs(codebook_size=64, codebook_dim=32))
    model.codebook.embed.copy_(V.l2norm(torch.randn(64, 32)))
    src = tmp_path / "checkpoint-dnsmos_ovr_CC=0.835.pkl"
    torch.save(_released_layout(model), src)
    dst = V.import_released(src, tmp_path / "estimator.pt")
    loaded, ckpt = V.load_estimator(dst)
    assert ckpt["origin"] == "released"
    assert loaded.args.codebook_size == 64 and loaded.args.channels == (128, 64)
    x = V.magnitude(torch.randn(1, 16000))
    assert torch.allclose(loaded.score_magnitude(x), model.eval().score_magnitude(x), atol=1e-6)


def test_released_checkpoint_missing_a_layer_is_named(tmp_path):
    model = V.VQScoreModel(V.VQScoreArgs(codebook_size=8, codebook_dim=32))
    ck = _released_layout(model)
    del ck["model"]["VQVAE"]["CNN_1D_encoder.conv_enc3.weight"]
    torch.save(ck, tmp_path / "bad.pkl")
    with pytest.raises(ValueError, match="conv_enc3.weight"):
        V.load_estimator(tmp_path / "bad.pkl")


@pytest.fixture(scope="module")
def tiny_estimator():
    """An estimator trained for a few seconds on speech-like audio."""
    clips = [babble_voice(4.0, seed=i) for i in range(12)]
    settings = V.TrainSettings(steps=40, batch_size=8, segment_seconds=1.0, lr=1e-3, log_every=20)
    model, state = V.train(clips, settings, V.VQScoreArgs(codebook_size=256))
    return model, state


def test_training_logs_and_lowers_the_loss(tiny_estimator):
    _, state = tiny_estimator
    h = state["history"]
    assert [r["step"] for r in h] == [20, 40]
    assert h[-1]["cos"] < -0.5  # reconstruction cosine well above chance
    assert h[-1]["loss"] <= h[0]["loss"]


def test_score_falls_monotonically_with_white_noise(tiny_estimator):
    model, _ = tiny_estimator
    means = []
    for snr in (None, 30, 20, 10, 0):
        scores = []
        for i in range(4):
            x = babble_voice(3.0, seed=100 + i)
            if snr is not None:
                x = add_white_noise(x, snr, seed=i)
            scores.append(V.score_waveform(model, x))
        means.append(np.mean(scores))
    assert all(a > b for a, b in zip(means, means[1:])), means


def test_other_rates_are_resampled_to_16k(tiny_estimator):
    from use_repro.audio.resample import resample

    model, _ = tiny_estimator
    x = babble_voice(2.0, seed=7)
    s = V.score_waveform(model, x)

    assert V.score_waveform(model, resample(x, 16000, 48000), 48000) == pytest.approx(s, abs=5e-3)


def test_input_transforms():
    mag = V.magnitude(torch.cat([torch.zeros(4000), 0.1 * torch.randn(4000)]))
    assert torch.equal(V.transform_input(mag, "none"), mag)
    assert torch.allclose(V.transform_input(mag, "log1p"), torch.log1p(mag))
    logm = V.transform_input(mag, "log")
    assert logm.min().item() == pytest.approx(0.0, abs=1e-5)  # the silence floor maps to 0
    with pytest.raises(ValueError, match="input_transform"):
        V.transform_input(mag, "db")


def test_log_variant_is_stored_and_used_when_scoring(tmp_path):
    torch.manual_seed(0)
    model = V.VQScoreModel(V.VQScoreArgs(codebook_size=32, codebook_dim=8, channels=(16, 8), input_transform="log"))
    model.codebook.embed.copy_(V.l2norm(torch.randn(32, 8)))
    out = model(V.magnitude(torch.randn(1, 8000)))
    assert (out["input"] >= 0).all() and out["recon"].shape == out["input"].shape
    loaded, _ = V.load_estimator(V.save_estimator(tmp_path / "e.pt", model, origin="trained"))
    assert loaded.args.input_transform == "log"
    mag = V.magnitude(torch.randn(1, 8000))
    assert torch.allclose(loaded.score_magnitude(mag), model.eval().score_magnitude(mag))


def test_training_gives_the_same_weights_whatever_the_process_s_thread_count():
    """The estimator's weights depend on the intra-op threads it trains with (reductions split
    differently), so training uses the setting's count (vqscore.train.threads), never the
    machine's or the caller's, and restores the caller's afterwards."""
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(16000 * 2).astype(np.float32) * 0.1 for _ in range(4)]
    args = V.VQScoreArgs(channels=(16, 8), codebook_size=16, codebook_dim=8)
    settings = V.TrainSettings(steps=6, batch_size=4, segment_seconds=1.0, log_every=3, seed=1, threads=2)
    weights = []
    before = torch.get_num_threads()
    try:
        for caller in (1, 2):
            torch.set_num_threads(caller)
            model, _ = V.train(clips, settings, args)
            assert torch.get_num_threads() == caller  # the caller's count is back
            weights.append(model.state_dict())
    finally:
        torch.set_num_threads(before)
    for k, v in weights[0].items():
        assert torch.equal(v, weights[1][k]), k
