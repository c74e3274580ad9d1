"""use_repro.Enhancer: the Python API, streamed in bounded memory, equal to the in-memory path and
to what `use-repro enhance` writes."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from use_repro.cli import main
from use_repro.enhancer import (Enhancer, chunk_spans, crossfade_weights, enhance_signal, enhance_stream,
                                span_weights, wave_fn)

from .conftest import tone
from .train.conftest import one_thread  # noqa: F401 (autouse: one torch thread)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """The tiny profile's regression model, weights moved off their start so it is no identity."""
    from use_repro.config import load_config
    from use_repro.models.build import build_regression
    from use_repro.models.checkpoint import save_checkpoint

    torch.manual_seed(3)
    model = build_regression(load_config("tiny"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return save_checkpoint(tmp_path_factory.mktemp("api") / "final.pt", model)


def old_enhance_file(fn, src, dst, chunk_seconds, overlap_seconds):
    """`enhance_file` as it was before streaming: the whole file in memory, channel by channel."""
    from use_repro.audio.io import read_audio, write_audio

    x, fs = read_audio(src, mono=False, always_2d=True)
    y = np.stack([enhance_signal(fn, x[:, c], fs, "cpu", chunk_seconds, overlap_seconds)
                  for c in range(x.shape[1])], axis=1)
    write_audio(dst, y[:, 0] if y.shape[1] == 1 else y, fs, subtype=sf.info(str(src)).subtype)


def test_weights_sum_to_one_even_where_three_chunks_overlap():
    # the last span is pulled back to end at n; it can then reach into the span before its
    # neighbour (e.g. n=3996, chunk 700, overlap 350): the ramps alone summed to 0.37..1.6 there
    worst = 0.0
    for n in range(1000, 4000, 7):
        for chunk, ov in ((1000, 500), (1000, 300), (700, 350), (960, 48)):
            spans = chunk_spans(n, chunk, ov)
            total = np.zeros(n)
            for (a, b), w in zip(spans, crossfade_weights(spans)):
                total[a:b] += w
            worst = max(worst, np.abs(total - 1).max())
    assert worst < 1e-12
    # where only neighbours overlap, the weights are the plain ramps, bit for bit (so today's
    # outputs do not move): sin^2 up, cos^2 down
    spans = chunk_spans(3900, 1000, 250)
    assert spans[-3][1] <= spans[-1][0]
    L = 250
    ramp = np.sin(0.5 * np.pi * (np.arange(L) + 0.5) / L) ** 2
    assert np.array_equal(span_weights(spans, 1)[:L], ramp)


def test_stream_reads_and_holds_one_chunk_at_a_time_and_writes_as_it_goes():
    n, chunk = 10_000, 1000
    x = tone(8000, n / 8000)[:, None]
    reads, writes, at = [], [], [0]

    def read(k):
        reads.append(k)
        at[0] += k
        return x[at[0] - k:at[0]]

    enhance_stream(lambda t, fs: t, read, n, 1, 8000, writes.append, chunk_seconds=chunk / 8000,
                   overlap_seconds=0.025)
    assert max(reads) <= chunk and sum(reads) == n          # every frame read once, in order
    assert len(writes) == len(chunk_spans(n, chunk, 200)) and max(len(w) for w in writes) <= chunk
    np.testing.assert_allclose(np.concatenate(writes), x, atol=1e-6)


@pytest.mark.parametrize("fs,seconds,channels", [(48000, 3.9, 1), (16000, 3.3, 2), (11025, 2.7, 1)])
def test_streamed_file_equals_the_in_memory_path(tmp_path, ckpt, fs, seconds, channels):
    # 3.9 s at 48 kHz: five chunks of 1 s, neighbours overlapping only; 3.3 s: three overlap at
    # the end (fixed weights), stereo; 11025 Hz: a rate the model runs at directly, odd lengths
    x = np.stack([tone(fs, seconds, freq=180.0 + 70 * c, seed=c) for c in range(channels)], axis=1)
    src = tmp_path / "in.wav"
    sf.write(src, x[:, 0] if channels == 1 else x, fs, subtype="FLOAT")
    enh = Enhancer.from_checkpoint(ckpt, chunk_seconds=1.0, overlap_seconds=0.25)
    enh.enhance_file(src, tmp_path / "new.wav")
    old_enhance_file(enh.fn, src, tmp_path / "old.wav", 1.0, 0.25)
    new, _ = sf.read(tmp_path / "new.wav", dtype="float32", always_2d=True)
    old, _ = sf.read(tmp_path / "old.wav", dtype="float32", always_2d=True)
    assert new.shape == old.shape == (x.shape[0], channels) and np.abs(old).max() > 0.01
    assert len(chunk_spans(x.shape[0], fs, fs // 4)) >= 3
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-5)
    if (fs, seconds) == (48000, 3.9):  # the same chunking and weights: the same samples
        assert np.array_equal(new, old)
    # the array API is the same computation
    np.testing.assert_array_equal(enh.enhance(x[:, 0] if channels == 1 else x, fs),
                                  new[:, 0] if channels == 1 else new)


def test_a_rate_the_model_cannot_run_is_resampled_and_keeps_its_length(tmp_path, ckpt):
    x = tone(11111, 0.7, freq=300)
    enh = Enhancer.from_checkpoint(ckpt)
    y = enh.enhance(x, 11111)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, enhance_signal(wave_fn(enh.model), x, 11111))
    sf.write(tmp_path / "odd.flac", x, 11111)
    assert enh.enhance_file(tmp_path / "odd.flac", tmp_path / "out.flac") == 11111
    assert sf.info(str(tmp_path / "out.flac")).frames == x.shape[0]


def test_api_output_equals_cli_output(tmp_path, ckpt):
    src = tmp_path / "in"
    src.mkdir()
    x = tone(24000, 2.5, freq=210)
    sf.write(src / "talk.flac", x, 24000, subtype="PCM_24")
    assert main(["enhance", "--checkpoint", str(ckpt), "--in", str(src), "--out", str(tmp_path / "cli"),
                 "--device", "cpu", "--chunk-seconds", "1", "--overlap-seconds", "0.2"]) == 0
    enh = Enhancer.from_checkpoint(ckpt, device="cpu", chunk_seconds=1.0, overlap_seconds=0.2)
    assert "chunk_seconds=1" in repr(enh) and str(ckpt) in repr(enh)
    assert enh.enhance_file(src / "talk.flac", tmp_path / "api.flac") == 24000
    cli, _ = sf.read(tmp_path / "cli" / "talk.flac", dtype="float32")
    api, _ = sf.read(tmp_path / "api.flac", dtype="float32")
    assert sf.info(str(tmp_path / "api.flac")).subtype == "PCM_24"
    np.testing.assert_array_equal(api, cli)
    # and on an array (no file quantisation between): within 1e-5 of the file's samples
    y = enh.enhance(sf.read(src / "talk.flac", dtype="float32")[0], 24000)
    np.testing.assert_allclose(y, cli, rtol=0, atol=2.0**-23 + 1e-5)


def test_top_level_import_and_progress_inside_a_long_file(tmp_path, ckpt, capfd):
    import use_repro
    from use_repro import Enhancer as E

    assert E is Enhancer and "Enhancer" in use_repro.__all__
    sf.write(tmp_path / "long.flac", tone(8000, 3.0), 8000)
    Enhancer.from_checkpoint(ckpt, chunk_seconds=1.0, overlap_seconds=0.1).enhance_file(
        tmp_path / "long.flac", tmp_path / "out.flac")
    err = capfd.readouterr().err
    assert "long.flac" in err and "4/4" in err  # a bar over the file's 4 chunks


def test_a_failed_file_leaves_no_output(tmp_path, ckpt):
    from use_repro.audio.io import AudioError

    (tmp_path / "bad.flac").write_bytes(b"fLaC broken")
    with pytest.raises(AudioError):
        Enhancer.from_checkpoint(ckpt).enhance_file(tmp_path / "bad.flac", tmp_path / "out.flac")
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.flac"]



HEAP_PROBE = r"""
import ctypes, sys
import numpy as np
from use_repro import enhancer

class MallInfo2(ctypes.Structure):  # glibc's mallinfo2(): hblkhd = bytes of blocks given their own mappings
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "bound":
    assert enhancer.bound_c_heap() is True
big = np.ones(3 << 20)  # 24 MB, mapped; freeing it raised glibc's default threshold to 24 MB
del big
before = libc.mallinfo2().hblkhd
block = np.ones(6 << 17)  # 6 MB, above MMAP_THRESHOLD
assert block.nbytes > enhancer.MMAP_THRESHOLD
print(libc.mallinfo2().hblkhd - before >= block.nbytes)
"""


def test_bound_c_heap_maps_the_blocks_that_fragmented_the_heap_chunk_after_chunk():
    # in a fresh process (this one's heap has free space from other tests, and glibc serves a
    # block from free heap space that fits it before mapping one)
    import os
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

    def mapped(mode):
        p = subprocess.run([sys.executable, "-c", HEAP_PROBE, mode], capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        return p.stdout.split()[-1] == "True"

    assert mapped("bound")        # fixed: the 6 MB block has its own mapping, given back when freed
    assert not mapped("default")  # glibc's default: it came from the heap


def test_enhancing_bounds_the_c_heap_once_per_process(ckpt, monkeypatch):
    import platform

    from use_repro import enhancer

    calls = []
    monkeypatch.setattr(enhancer, "_heap_bounded", None)
    real = enhancer.bound_c_heap
    monkeypatch.setattr(enhancer, "bound_c_heap", lambda: calls.append(1) or real())
    Enhancer.from_checkpoint(ckpt, chunk_seconds=0.5, overlap_seconds=0.1).enhance(tone(8000, 1.2), 8000)
    assert len(calls) == len(chunk_spans(int(1.2 * 8000), 4000, 800)) == 3  # before every model call
    assert enhancer._heap_bounded is (platform.libc_ver()[0] == "glibc")  # decided at the first


def test_bound_c_heap_is_a_no_op_where_the_c_library_is_not_glibc(monkeypatch):
    import ctypes

    from use_repro import enhancer

    def no_glibc(name):
        raise OSError("not here")

    monkeypatch.setattr(enhancer, "_heap_bounded", None)
    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    assert enhancer.bound_c_heap() is False
    assert enhancer.bound_c_heap() is False  # decided once


def test_enhancement_does_not_depend_on_the_thread_count():
    """The profile's `threads` stays an execution knob for enhancement (in no digest) because the
    enhanced audio is the same on 1 and 2 torch threads: the fused kernels split channels, never a
    sum (training is not so: it computes with train.threads). The mini model, large enough for
    torch to split its work."""
    from use_repro.config import load_config
    from use_repro.models.build import build_regression

    torch.manual_seed(0)
    model = build_regression(load_config("mini")).eval()
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    before, out = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out.append(Enhancer(model, progress=False).enhance(x, 16000))
    finally:
        torch.set_num_threads(before)
    assert np.abs(out[0]).max() > 0 and np.array_equal(out[0], out[1])
