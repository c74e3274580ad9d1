"""The renderer's output, pinned: rows covering every path of `render_row` and `simulate render`
(each rate, reverberant or dry, noise cropped or wrapped or resampled, wind with and without a
RIR, every codec, every bandwidth method, clipping, packet loss, extra targets and links) are
rendered from a corpus made here, and every written file and every rendered array must hash as
recorded before the renderer was made cheaper (bench/simulate.py). A speed-up may change how
the samples are computed, never one sample.

The hashes hold for the library versions they were recorded with (libsndfile's encoders and
FLAC, soxr, NumPy's and SciPy's FFTs): with others the test is skipped, naming the difference.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from use_repro.cli import main
from use_repro.data.manifest import read_meta, write_scp
from use_repro.data.render import RenderSettings, Sources, render_row

from .sim_fixtures import write_corpus

WIND = ("wind_noise(threshold={t},ratio=7.5,attack=20.0,release=15.0,sc_gain=1.05,clipping={c},"
        "clipping_threshold=0.95)")
# (fs, speech, noise, snr, rir, augmentation); uids from sim_fixtures.write_corpus's test split,
# long_noise_* written here (longer than the speech: the segment is read alone)
ROWS = [
    (8000, "test_sp_8000_0", "test_noise_8000_0", 5.0, "none", "none"),
    (8000, "test_sp_8000_1", "long_noise_8000", 0.0, "test_rir_0",
     "bandwidth_limitation-none->8000/packet_loss(packet_loss_indices=[3, 4, 5, 20],packet_duration_ms=20)"),
    (16000, "test_sp_16000_0", "long_noise_16000", 10.0, "test_rir_0", "clipping(min=0.05,max=0.95)"),
    (16000, "test_sp_16000_1", "test_noise_48000_0", -3.0, "none", "codec(format=mp3,encoder=None,qscale=5)"),
    (22050, "test_sp_22050_0", "test_noise_44100_0", 2.5, "test_rir_1",
     "bandwidth_limitation-kaiser_best->8000/codec(format=mp3,encoder=None,qscale=2)"),
    (24000, "test_sp_24000_0", "test_noise_16000_1", 7.0, "test_rir_2",
     "bandwidth_limitation-kaiser_fast->16000/codec(format=ogg,encoder=vorbis,qscale=3)"),
    (32000, "test_sp_32000_0", "test_noise_48000_1", 12.0, "test_rir_1",
     "bandwidth_limitation-scipy->16000/codec(format=ogg,encoder=opus,qscale=2)"
     "/packet_loss(packet_loss_indices=[10, 11],packet_duration_ms=20)"),
    (44100, "test_sp_44100_0", "long_noise_48000", 15.0, "test_rir_2",
     "bandwidth_limitation-polyphase->22050/clipping(min=0.1,max=0.9)"),
    (48000, "test_sp_48000_0", "wind_noise_test_48000hz_0", 3.0, "none", WIND.format(t=0.2, c=False)),
    (48000, "test_sp_48000_1", "wind_noise_test_8000hz_0", -2.0, "test_rir_0",
     WIND.format(t=0.1, c=True) + "/codec(format=ogg,encoder=opus,qscale=6)"),
    (44100, "test_sp_44100_1", "test_noise_8000_2", 20.0, "test_rir_1", "codec(format=ogg,encoder=vorbis,qscale=-1)"),
]
HEADER = ["id", "noisy_path", "speech_uid", "speech_sid", "clean_path", "noise_uid", "snr_dB", "rir_uid",
          "augmentation", "fs", "length", "text"]


def versions() -> dict:
    import scipy
    import soundfile
    import soxr

    return {"libsndfile": soundfile.__libsndfile_version__, "soxr": soxr.__version__,
            "numpy": np.__version__.rsplit(".", 1)[0], "scipy": scipy.__version__.rsplit(".", 1)[0]}


# recorded at commit 6e09f8d (the renderer before bench/simulate.py's cuts)
RECORDED_WITH = {'libsndfile': '1.2.2', 'soxr': '1.1.0', 'numpy': '2.4', 'scipy': '1.17'}
# sha256 (first 16 hex digits) of every file `simulate render` wrote, by path under --out
FILES = {
    'clean/0/fileid_1.flac': '28d9885be47e422a',
    'clean/0/fileid_10.flac': '74c255ad9811f768',
    'clean/0/fileid_11.flac': '7ec4d7ffa24869ab',
    'clean/0/fileid_2.flac': '169eb24e4a55c9d1',
    'clean/0/fileid_3.flac': '759bc5570cdb4342',
    'clean/0/fileid_4.flac': 'b480099566b01138',
    'clean/0/fileid_5.flac': '8f051df09399547b',
    'clean/0/fileid_6.flac': '18fb399f1e6db63b',
    'clean/0/fileid_7.flac': '9968b14ed823152a',
    'clean/0/fileid_8.flac': '4b64413f342fa817',
    'clean/0/fileid_9.flac': 'a12bf58283a331b5',
    'clean_anechoic/0/fileid_1.flac': '28d9885be47e422a',
    'clean_anechoic/0/fileid_10.flac': 'e0ee1b01f0a89048',
    'clean_anechoic/0/fileid_11.flac': 'f43700815b2def70',
    'clean_anechoic/0/fileid_2.flac': '32b77ac5ee88cb7e',
    'clean_anechoic/0/fileid_3.flac': '840ff85394944ab5',
    'clean_anechoic/0/fileid_4.flac': 'b480099566b01138',
    'clean_anechoic/0/fileid_5.flac': '950c7758fadcf280',
    'clean_anechoic/0/fileid_6.flac': '174b65ea333100cc',
    'clean_anechoic/0/fileid_7.flac': '8e492a289ff14cb4',
    'clean_anechoic/0/fileid_8.flac': '4e12373ffa758c85',
    'clean_anechoic/0/fileid_9.flac': 'a12bf58283a331b5',
    'clean_early0ms/0/fileid_1.flac': '28d9885be47e422a',
    'clean_early0ms/0/fileid_10.flac': '6bd054f553ad734f',
    'clean_early0ms/0/fileid_11.flac': '4efce4b1a6e7853b',
    'clean_early0ms/0/fileid_2.flac': '35ab280bedc3d572',
    'clean_early0ms/0/fileid_3.flac': '94d0880eaad14e07',
    'clean_early0ms/0/fileid_4.flac': 'b480099566b01138',
    'clean_early0ms/0/fileid_5.flac': '87011042d2d25dc9',
    'clean_early0ms/0/fileid_6.flac': 'faca79a5ab875a21',
    'clean_early0ms/0/fileid_7.flac': '2a452aaf09e23a92',
    'clean_early0ms/0/fileid_8.flac': 'c65aef9b4b744f17',
    'clean_early0ms/0/fileid_9.flac': 'a12bf58283a331b5',
    'clean_early10ms/0/fileid_1.flac': '28d9885be47e422a',
    'clean_early10ms/0/fileid_10.flac': '17613e9164412fbd',
    'clean_early10ms/0/fileid_11.flac': 'cefa4d37d716a631',
    'clean_early10ms/0/fileid_2.flac': 'cdf25dbd6d88f9e2',
    'clean_early10ms/0/fileid_3.flac': '476ef4cc45bff4a7',
    'clean_early10ms/0/fileid_4.flac': 'b480099566b01138',
    'clean_early10ms/0/fileid_5.flac': '341465c12e68b6e3',
    'clean_early10ms/0/fileid_6.flac': '6799542861f29d7f',
    'clean_early10ms/0/fileid_7.flac': 'dd8bbdd9a7fddd0a',
    'clean_early10ms/0/fileid_8.flac': '9310da234fb65e82',
    'clean_early10ms/0/fileid_9.flac': 'a12bf58283a331b5',
    'clean_early25ms/0/fileid_1.flac': '28d9885be47e422a',
    'clean_early25ms/0/fileid_10.flac': '29000e803c77137e',
    'clean_early25ms/0/fileid_11.flac': 'aed4b3541aea7e69',
    'clean_early25ms/0/fileid_2.flac': '89f6572621010c33',
    'clean_early25ms/0/fileid_3.flac': '2a9d1421f64d46ab',
    'clean_early25ms/0/fileid_4.flac': 'b480099566b01138',
    'clean_early25ms/0/fileid_5.flac': '55d08453c8a57ddb',
    'clean_early25ms/0/fileid_6.flac': '007bc4546703d17e',
    'clean_early25ms/0/fileid_7.flac': 'a7872be38c0fc51a',
    'clean_early25ms/0/fileid_8.flac': 'c7de3117ad8715bc',
    'clean_early25ms/0/fileid_9.flac': 'a12bf58283a331b5',
    'clean_early50ms/0/fileid_1.flac': '28d9885be47e422a',
    'clean_early50ms/0/fileid_10.flac': '74c255ad9811f768',
    'clean_early50ms/0/fileid_11.flac': '242a9d654a504b03',
    'clean_early50ms/0/fileid_2.flac': '5a8edb205b7b08cd',
    'clean_early50ms/0/fileid_3.flac': '8c30b37fdab993cf',
    'clean_early50ms/0/fileid_4.flac': 'b480099566b01138',
    'clean_early50ms/0/fileid_5.flac': 'ad90b2901845da41',
    'clean_early50ms/0/fileid_6.flac': '806d87b11fa73514',
    'clean_early50ms/0/fileid_7.flac': '77b08cf8733728f4',
    'clean_early50ms/0/fileid_8.flac': '9506503b875aac19',
    'clean_early50ms/0/fileid_9.flac': 'a12bf58283a331b5',
    'clean_shifted/0/fileid_1.flac': '28d9885be47e422a',
    'clean_shifted/0/fileid_10.flac': '6bd054f553ad734f',
    'clean_shifted/0/fileid_11.flac': '4efce4b1a6e7853b',
    'clean_shifted/0/fileid_2.flac': '35ab280bedc3d572',
    'clean_shifted/0/fileid_3.flac': '94d0880eaad14e07',
    'clean_shifted/0/fileid_4.flac': 'b480099566b01138',
    'clean_shifted/0/fileid_5.flac': '87011042d2d25dc9',
    'clean_shifted/0/fileid_6.flac': 'faca79a5ab875a21',
    'clean_shifted/0/fileid_7.flac': '2a452aaf09e23a92',
    'clean_shifted/0/fileid_8.flac': 'c65aef9b4b744f17',
    'clean_shifted/0/fileid_9.flac': 'a12bf58283a331b5',
    'noisy/0/fileid_1.flac': 'f7f6e385c4dfde83',
    'noisy/0/fileid_10.flac': '79bd3d6167c459bd',
    'noisy/0/fileid_11.flac': '331de06fe76854d8',
    'noisy/0/fileid_2.flac': 'f35b037f0d1f0286',
    'noisy/0/fileid_3.flac': 'ff2dbf942d7d175c',
    'noisy/0/fileid_4.flac': '31dc717abade391c',
    'noisy/0/fileid_5.flac': 'ea3f9800ba8c37aa',
    'noisy/0/fileid_6.flac': '9ecc3156c5d1b821',
    'noisy/0/fileid_7.flac': 'fa0aadef49e42496',
    'noisy/0/fileid_8.flac': '5e2b8244e1692871',
    'noisy/0/fileid_9.flac': 'f847445b499c05be',
}
# sha256 of render_row's float64 arrays, by row id / signal
ARRAYS = {
    'fileid_1/anechoic': '8476b21f10d7ce12',
    'fileid_1/early': '8476b21f10d7ce12',
    'fileid_1/early0ms': '8476b21f10d7ce12',
    'fileid_1/early10ms': '8476b21f10d7ce12',
    'fileid_1/early25ms': '8476b21f10d7ce12',
    'fileid_1/early50ms': '8476b21f10d7ce12',
    'fileid_1/noise': 'b539c149d899bbba',
    'fileid_1/noisy': '24e00f9935b58e7e',
    'fileid_1/shifted': '8476b21f10d7ce12',
    'fileid_2/anechoic': '2406635c9d7b0886',
    'fileid_2/early': 'ecc0174db368ff08',
    'fileid_2/early0ms': '774cb23852d30700',
    'fileid_2/early10ms': '917521ce191a4192',
    'fileid_2/early25ms': '7f95879d719a44e0',
    'fileid_2/early50ms': 'fe5a575beadeb804',
    'fileid_2/noise': 'bc4f5521485d6573',
    'fileid_2/noisy': '041daabc8576bf6b',
    'fileid_2/shifted': '774cb23852d30700',
    'fileid_3/anechoic': 'fd5fd9265b2c85fd',
    'fileid_3/early': 'de8127cc4a79fb3d',
    'fileid_3/early0ms': '008e66fd2670beae',
    'fileid_3/early10ms': 'b60aa98826acc993',
    'fileid_3/early25ms': '00fc4f60907ae200',
    'fileid_3/early50ms': '14d3ed6ba43a611f',
    'fileid_3/noise': '14f3fe8db73650bc',
    'fileid_3/noisy': '907c3e84c4de2a11',
    'fileid_3/shifted': '008e66fd2670beae',
    'fileid_4/anechoic': 'f53f3f14bc2b6956',
    'fileid_4/early': 'f53f3f14bc2b6956',
    'fileid_4/early0ms': 'f53f3f14bc2b6956',
    'fileid_4/early10ms': 'f53f3f14bc2b6956',
    'fileid_4/early25ms': 'f53f3f14bc2b6956',
    'fileid_4/early50ms': 'f53f3f14bc2b6956',
    'fileid_4/noise': 'ffd17031e49d9125',
    'fileid_4/noisy': 'e512251500530d3b',
    'fileid_4/shifted': 'f53f3f14bc2b6956',
    'fileid_5/anechoic': '4209f4a1bc182bf3',
    'fileid_5/early': 'ac73367fa669103e',
    'fileid_5/early0ms': 'ac8accb775f3db89',
    'fileid_5/early10ms': '2b9cdfcfc52cfd72',
    'fileid_5/early25ms': '04740a8d5daf9e0d',
    'fileid_5/early50ms': 'ee0b5b735a6b6375',
    'fileid_5/noise': '81ee4dfabd35055e',
    'fileid_5/noisy': 'cd8a9f3a2c0afd68',
    'fileid_5/shifted': 'ac8accb775f3db89',
    'fileid_6/anechoic': '4db3fb4fe2a67890',
    'fileid_6/early': '3511f108d9fd2a66',
    'fileid_6/early0ms': 'e47a3f602cd91f31',
    'fileid_6/early10ms': '4451c10be24ac8c7',
    'fileid_6/early25ms': '2c7675f52bb9e843',
    'fileid_6/early50ms': '98fa2e198292c854',
    'fileid_6/noise': '85cf02e258bb1ec0',
    'fileid_6/noisy': '922da0ed227f695a',
    'fileid_6/shifted': 'e47a3f602cd91f31',
    'fileid_7/anechoic': '89e9a479be01c62f',
    'fileid_7/early': '1d93f26f38fa6219',
    'fileid_7/early0ms': '8eed7967aaa61199',
    'fileid_7/early10ms': '7167c8bae1b9faff',
    'fileid_7/early25ms': 'a06901932bbd3e52',
    'fileid_7/early50ms': '79848d6513c48ffc',
    'fileid_7/noise': 'c48846e79471e4c2',
    'fileid_7/noisy': '7238fd4e6938ae7a',
    'fileid_7/shifted': '8eed7967aaa61199',
    'fileid_8/anechoic': '530417b2d33c1ca6',
    'fileid_8/early': '67315e72a00b221d',
    'fileid_8/early0ms': 'cedd189e215d999a',
    'fileid_8/early10ms': 'b919599e1a54e06d',
    'fileid_8/early25ms': '2b9ea3084594bc7a',
    'fileid_8/early50ms': '6390a1069c5b8bae',
    'fileid_8/noise': 'af2fa6f65b04fb31',
    'fileid_8/noisy': '6ba68fa334fa67ca',
    'fileid_8/shifted': 'cedd189e215d999a',
    'fileid_9/anechoic': '5148fef6e64ecab8',
    'fileid_9/early': '5148fef6e64ecab8',
    'fileid_9/early0ms': '5148fef6e64ecab8',
    'fileid_9/early10ms': '5148fef6e64ecab8',
    'fileid_9/early25ms': '5148fef6e64ecab8',
    'fileid_9/early50ms': '5148fef6e64ecab8',
    'fileid_9/noise': '85bb2852f4bdf2d0',
    'fileid_9/noisy': '8e849a1828b09eb5',
    'fileid_9/shifted': '5148fef6e64ecab8',
    'fileid_10/anechoic': 'dd696bfaf52ccc1e',
    'fileid_10/early': '10cab5a425348495',
    'fileid_10/early0ms': 'de826bc781cab15a',
    'fileid_10/early10ms': '408da4b3f44238b3',
    'fileid_10/early25ms': 'fb57f882a8fe1477',
    'fileid_10/early50ms': '10cab5a425348495',
    'fileid_10/noise': '7b17742697ffe1f3',
    'fileid_10/noisy': '3714332aa007acea',
    'fileid_10/shifted': 'de826bc781cab15a',
    'fileid_11/anechoic': '01553d6a442e0904',
    'fileid_11/early': '49e1afffd1a9ecdf',
    'fileid_11/early0ms': '139d433db6422c2e',
    'fileid_11/early10ms': '6eea52ce80fc0b43',
    'fileid_11/early25ms': 'be15bfc93678dfe2',
    'fileid_11/early50ms': '93ab7016eba9d209',
    'fileid_11/noise': '2e7bd1344fbc70e7',
    'fileid_11/noisy': '3a51cc431c25c3c3',
    'fileid_11/shifted': '139d433db6422c2e',
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from use_repro.audio.io import write_audio

    root = write_corpus(tmp_path_factory.mktemp("golden"), seconds=1.2, n_noise=3)
    test = root / "test"
    rng = np.random.default_rng(7)
    longs = []
    for fs in (8000, 16000, 48000):
        p = test / "noise" / f"long_noise_{fs}.flac"
        write_audio(p, 0.1 * rng.standard_normal(3 * fs), fs)
        longs.append((f"long_noise_{fs}", fs, str(p)))
    write_scp(test / "noise_long.scp", longs)
    rows = [dict(zip(HEADER, [f"fileid_{i + 1}", "n", sp, "s", "c", nz, snr, rir, aug, fs, "none", "t"]))
            for i, (fs, sp, nz, snr, rir, aug) in enumerate(ROWS)]
    meta = root / "meta.tsv"
    meta.write_text("\t".join(HEADER) + "\n" + "".join("\t".join(str(r[c]) for c in HEADER) + "\n" for r in rows))
    out = root / "out"
    scps = ["--speech-scp", str(test / "speech.scp"), "--noise-scp", str(test / "noise.scp"),
            str(test / "noise_long.scp"), "--wind-scp", str(test / "wind_noise.scp"), "--rir-scp", str(test / "rir.scp")]
    assert main(["simulate", "render", "--meta", str(meta), "--out", str(out), "--threads", "1",
                 "--max-reject-fraction", "0", *scps]) == 0
    sources = Sources({**{u: p for u, _, p in _scp(test / "speech.scp")}},
                      {u: p for f in ("noise.scp", "noise_long.scp", "wind_noise.scp") for u, _, p in _scp(test / f)},
                      {u: p for u, _, p in _scp(test / "rir.scp")})
    return rows, out, sources


def _scp(path: Path):
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _check_versions():
    if versions() != RECORDED_WITH:
        pytest.skip(f"hashes recorded with {RECORDED_WITH}, this environment has {versions()}")


def test_rendered_files_are_bit_identical_to_the_recorded_ones(rendered):
    rows, out, _ = rendered
    _check_versions()
    written = read_meta(out / "meta.tsv")
    assert [r["id"] for r in written] == [r["id"] for r in rows]
    got = {str(p.relative_to(out)): _sha(p.read_bytes()) for p in sorted(out.rglob("*"))
           if p.is_file() and p.name not in ("meta.tsv", "rejects.tsv")}
    assert got == FILES


def test_rendered_arrays_are_bit_identical_to_the_recorded_ones(rendered):
    """Before the 16-bit rounding too: every float64 sample of every signal render_row returns."""
    rows, _, sources = rendered
    _check_versions()
    got = {}
    for r in rows:
        audio = render_row(r, sources, RenderSettings())
        for name in sorted(audio):
            got[f"{r['id']}/{name}"] = _sha(np.ascontiguousarray(audio[name], dtype="<f8").tobytes())
    assert got == ARRAYS
