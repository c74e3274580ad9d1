"""Non-intrusive quality predictors: DNSMOS P.835 (OVRL, SIG, BAK), DistillMOS; NISQA and UTMOS
are the challenge's and need weights the registries do not ship (see registry.py).

Every scorer here takes the estimate [T] at any rate and resamples to 16 kHz with soxr "HQ" (the
challenge's `soxr.resample` default) before its model. NISQA (nisqa.py) does not: like the
official code it computes its features at the file's own rate.

DNSMOS follows the challenge (espnet's DNSMOS_local, itself Microsoft's dnsmos_local.py):
the non-personalised P.835 network `sig_bak_ovr.onnx` on 9.01 s windows hopped by 1 s (a clip
shorter than 9.01 s is tiled until it is long enough; windows whose float-computed end falls one
sample short are skipped, as in the reference code), each window's raw SIG/BAK/OVRL mapped by
the published polynomials, then averaged over windows. The P.808 head is not used by the
challenge and is not run.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from use_repro.audio.resample import resample

TARGET_FS = 16000
DNSMOS_INPUT_S = 9.01
# Non-personalised P.835 polynomials (DNS Challenge dnsmos_local.py).
_P_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_P_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_P_OVR = np.poly1d([-0.06766283, 1.11546468, 0.04602535])


def to_16k(x: np.ndarray, fs: int) -> np.ndarray:
    """Mono float32 [T] at 16 kHz (soxr HQ, as the challenge)."""
    return resample(np.asarray(x, dtype=np.float32), fs, TARGET_FS, quality="HQ")


def speechmos_dnsmos_onnx() -> Path:
    """The P.835 `sig_bak_ovr.onnx` shipped inside the `speechmos` wheel."""
    import speechmos

    return Path(speechmos.__file__).parent / "dnsmos_models" / "sig_bak_ovr.onnx"


class DNSMOS:
    """DNSMOS P.835 from an ONNX file; `__call__(x [T], fs) -> {DNSMOS, DNSMOS_SIG, DNSMOS_BAK}`."""

    columns = ("DNSMOS", "DNSMOS_SIG", "DNSMOS_BAK")

    def __init__(self, onnx_path: str | os.PathLike, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray, fs: int) -> dict[str, float]:
        audio = to_16k(x, fs)
        n = int(DNSMOS_INPUT_S * TARGET_FS)
        while len(audio) < n:  # tile short clips, as the reference implementation does
            audio = np.append(audio, audio)
        hops = int(np.floor(len(audio) / TARGET_FS) - DNSMOS_INPUT_S) + 1
        # Window ends are computed in floating point, as in every reference implementation
        # (Microsoft's, espnet's, speechmos'): int((i + 9.01) * 16000) is 144159 samples after
        # the start from i = 7 on, and such a short window is skipped. Reproduced on purpose.
        segs = [audio[int(i * TARGET_FS):int((i + DNSMOS_INPUT_S) * TARGET_FS)] for i in range(hops)]
        segs = [s for s in segs if len(s) >= n]
        raw = np.array([self.session.run(None, {self.input_name: s[None].astype(np.float32)})[0][0]
                        for s in segs])  # [hops, 3] = sig, bak, ovr
        return {"DNSMOS": float(np.mean(_P_OVR(raw[:, 2]))),
                "DNSMOS_SIG": float(np.mean(_P_SIG(raw[:, 0]))),
                "DNSMOS_BAK": float(np.mean(_P_BAK(raw[:, 1])))}


class DistillMOS:
    """DistillMOS (a MOS predictor distilled from XLS-R SQA; weights in the `distillmos` wheel).

    Not UTMOS: it gets its own column. `__call__(x [T], fs) -> {"DistillMOS": float}`.
    """

    columns = ("DistillMOS",)

    def __init__(self):
        import contextlib
        import io

        import torch

        from use_repro.metrics._compat import import_distillmos

        mod = import_distillmos()
        with contextlib.redirect_stdout(io.StringIO()):  # it prints where it loaded from
            self.model = mod.ConvTransformerSQAModel().eval()
        self.torch = torch

    def __call__(self, x: np.ndarray, fs: int) -> dict[str, float]:
        audio = to_16k(x, fs)
        with self.torch.inference_mode():
            y = self.model(self.torch.from_numpy(np.ascontiguousarray(audio))[None])
        return {"DistillMOS": float(y.reshape(-1)[0])}


# NISQA lives in nisqa.py (the official model code loaded from the installed distribution's
# own file, features at the file's rate as the official predict path); re-exported here.
from use_repro.metrics.nisqa import NISQA  # noqa: E402,F401
