"""Reference NISQA predictions from the official NISQA code, for tests/metrics/test_nisqa.py.

    python tests/metrics/nisqa_official.py NISQA_TAR WAV_FOLDER  ->  JSON {file name: mos_pred}

Runs the official `nisqaModel(args).predict()` in `predict_dir` mode, with the arguments the
official `run_predict.py` passes (tr_parallel, tr_bs_val, tr_num_workers, ms_channel); every
feature setting comes from the checkpoint, as in the official code. The `nisqa` package is
loaded from the installed distribution's own files (its NISQA_model imports NISQA_lib
relatively), so a `nisqa` folder elsewhere on sys.path cannot stand in for it. Run in a
subprocess so nothing of it is shared with the implementation under test.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import sys
import types


def load_official_package():
    """Register the installed distribution's `nisqa` folder as the package `nisqa` (some builds
    ship no nisqa/__init__.py; the folder is then made a package here)."""
    dist = importlib.metadata.distribution("nisqa")
    lib = next(f for f in dist.files if str(f).replace("\\", "/").endswith("nisqa/NISQA_lib.py"))
    pkg_dir = os.path.dirname(str(dist.locate_file(lib)))
    init = os.path.join(pkg_dir, "__init__.py")
    if os.path.exists(init):
        spec = importlib.util.spec_from_file_location("nisqa", init, submodule_search_locations=[pkg_dir])
        mod = importlib.util.module_from_spec(spec)
        sys.modules["nisqa"] = mod
        spec.loader.exec_module(mod)
    else:
        mod = types.ModuleType("nisqa")
        mod.__path__ = [pkg_dir]
        sys.modules["nisqa"] = mod
    return pkg_dir


def main(checkpoint: str, folder: str) -> dict[str, float]:
    os.environ.setdefault("MPLBACKEND", "Agg")
    load_official_package()
    from nisqa.NISQA_model import nisqaModel

    args = {"mode": "predict_dir", "pretrained_model": os.path.abspath(checkpoint), "data_dir": folder,
            "deg": None, "output_dir": None, "csv_file": None, "csv_deg": None, "ms_channel": None,
            "tr_parallel": True, "tr_bs_val": 1, "tr_num_workers": 0}
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its args and the result table
        df = nisqaModel(args).predict()
    return {str(r["deg"]): float(r["mos_pred"]) for _, r in df.iterrows()}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
