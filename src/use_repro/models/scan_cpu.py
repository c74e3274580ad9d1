"""Compiled CPU selective scan: a C++ extension (``csrc/selective_scan_cpu.cpp``) with its
backward pass, wrapped as an autograd function.

Same arguments, shapes and result as :func:`use_repro.models.mamba.selective_scan_ref`
(mamba_ssm's ``selective_scan_ref``): u, delta, z ``[B, D, L]``; A ``[D, N]``; B, C
``[B, N, L]``; D, delta_bias ``[D]``; returns ``[B, D, L]`` in u's dtype. Computes in float32
(float64 when any input is float64, for gradcheck).

The kernel runs every (batch row, channel) pair's recurrence as one sequential pass over time
with its N states in registers, parallel over the pairs on torch's intra-op threads. Its
backward recomputes a pair's states (``[L, N]``, in cache) and makes one reverse pass over them,
so, like mamba_ssm's CUDA kernel, it stores only its inputs for the backward pass (and the
elementwise steps around it store theirs, a few ``[B, D, L]`` tensors).

Building. The extension is compiled with ``torch.utils.cpp_extension.load`` (ninja and a C++
compiler) into a persistent folder tied to this interpreter and torch version
(:func:`build_dir`); the module's name carries a hash of the source and flags, so an edited
source is rebuilt and a built one is imported directly (no compiler, no lock) by every later
process. ``make env`` builds it (``python -m use_repro.models.scan_cpu --build``); a process
that finds it unbuilt builds it once on first use. When it cannot be built or loaded,
:func:`available` is False, the reason is logged once, and ``selective_scan``'s ``auto`` backend
uses the pure-PyTorch scan.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import platform
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "selective_scan_cpu.cpp"
# The inference-only kernels of a Mamba layer (use_repro.models.mamba_infer): a second extension
# built and loaded by the same machinery (its own module name, so either source's edit rebuilds
# only that one).
INFER_SOURCE = Path(__file__).resolve().parent / "csrc" / "mamba_infer_cpu.cpp"
# module-name prefix of each source's extension
PREFIXES = {SOURCE: "use_repro_scan_cpu", INFER_SOURCE: "use_repro_mamba_infer"}
# -O3 -march=native -fopenmp-simd: the per-state loops (N = 16 floats) vectorise to this CPU's
# widest registers, reductions included (`omp simd`). A build is for the CPU it was made on: the
# module name hashes the CPU's identity (cpu_identity), so another CPU sharing the folder builds
# its own instead of loading one with instructions it may lack.
#
# -fopenmp: at::parallel_for is a header template that runs its tasks on torch's OpenMP threads
# only when the extension itself is compiled with OpenMP; without it (the scan's flags until
# this was found) every call ran on one thread whatever torch.set_num_threads said. The
# extension then links libgomp.so.1, which resolves to the copy torch has already loaded, so
# there is one OpenMP runtime and one thread count. The kernels' results do not depend on it:
# a row is one task's, and the backward's shared sums use a fixed split of the rows.
CFLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fopenmp"]
LDFLAGS = ["-fopenmp"]


def compiler() -> str | None:
    """Path of the C++ compiler torch.utils.cpp_extension would use ($CXX, else c++), or None."""
    return shutil.which(os.environ.get("CXX", "c++"))


def cpu_identity() -> str:
    """The CPU's model and instruction-set flags (Linux: /proc/cpuinfo), else its platform name."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
        return "".join(sorted(set(lines)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def module_name(source: Path = SOURCE) -> str:
    """Extension module name of `source`: a hash of the source, flags, CPU, torch and Python versions."""
    key = hashlib.sha256()
    key.update(source.read_bytes())
    key.update(repr((CFLAGS, LDFLAGS, cpu_identity(), torch.__version__, sys.version_info[:2])).encode())
    return f"{PREFIXES[source]}_{key.hexdigest()[:12]}"


def build_dir() -> Path:
    """Where the extension is built: $USE_REPRO_EXT_DIR, else inside the active environment
    (``<sys.prefix>/share/use_repro/extensions``, so a fresh venv gets a fresh build), else
    the user's cache (~/.cache/use_repro/extensions) when the environment is read-only."""
    override = os.environ.get("USE_REPRO_EXT_DIR")
    if override:
        return Path(override)
    prefix = Path(sys.prefix)
    if os.access(prefix, os.W_OK):
        return prefix / "share" / "use_repro" / "extensions"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "use_repro" / "extensions"


def _built_library(name: str, where: Path) -> Path:
    # the file name torch.utils.cpp_extension.load gives the library it links
    return where / name / f"{name}{'.pyd' if sys.platform == 'win32' else '.so'}"


def load_extension(build: bool = True, verbose: bool = False, source: Path = SOURCE):
    """Import the compiled extension of `source` (default: the scan's), building it first when
    it is missing and ``build``.

    Raises (ImportError, RuntimeError, OSError, ...) when it cannot be built or imported.
    """
    name = module_name(source)
    lib = _built_library(name, build_dir())
    if not lib.exists():
        if not build:
            raise ImportError(f"compiled CPU scan not built ({lib} missing)")
        if compiler() is None:
            raise RuntimeError(f"no C++ compiler ({os.environ.get('CXX', 'c++')}) on PATH")
        from torch.utils.cpp_extension import load

        # ninja comes with this environment (a dependency); find it even when the environment's
        # bin folder is not on PATH (e.g. .venv/bin/use-repro run without activating the venv)
        env_bin = os.path.dirname(sys.executable)
        if shutil.which("ninja") is None and shutil.which("ninja", path=env_bin):
            os.environ["PATH"] = env_bin + os.pathsep + os.environ.get("PATH", "")
        lib.parent.mkdir(parents=True, exist_ok=True)
        log.info("building the compiled CPU extension %s in %s (once)", source.name, lib.parent)
        # the build folder holds a lock file, so concurrent first uses build it once
        # copies: torch's build appends its own flags to the lists it is given, and CFLAGS and
        # LDFLAGS are hashed into every later module_name of this process
        load(name=name, sources=[str(source)], extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS),
             build_directory=str(lib.parent), verbose=verbose)
        if not lib.exists():
            raise ImportError(f"the build left no {lib}")
    spec = importlib.util.spec_from_file_location(name, lib)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def _extension():
    """The extension module, or None (the reason logged once per process)."""
    try:
        return load_extension()
    except Exception as err:  # a missing compiler, a failed build, an unloadable library
        log.warning("compiled CPU selective scan unavailable (%s: %s); using the pure-PyTorch scan",
                    type(err).__name__, err)
        return None


def available() -> bool:
    """True when the compiled scan is built (or can be built now) and imports."""
    return _extension() is not None


@lru_cache(maxsize=1)
def infer_extension():
    """The inference kernels' extension module (mamba_infer_cpu.cpp), or None (reason logged once)."""
    try:
        return load_extension(source=INFER_SOURCE)
    except Exception as err:
        log.warning("compiled CPU inference kernels unavailable (%s: %s); inference uses the training "
                    "forward", type(err).__name__, err)
        return None


class _ScanCPU(torch.autograd.Function):
    """The recurrence alone: (u, dt [B, D, L], A [D, N], B, C [B, L, N]) -> y [B, D, L]."""

    @staticmethod
    def forward(ctx, u, dt, A, Bt, Ct):
        ctx.save_for_backward(u, dt, A, Bt, Ct)
        return _extension().fwd(u, dt, A, Bt, Ct)

    @staticmethod
    def backward(ctx, dy):
        du, ddt, dA_rows, dB_tasks, dC_tasks = _extension().bwd(*ctx.saved_tensors, dy)
        return du, ddt, dA_rows.sum(0), dB_tasks.sum(0), dC_tasks.sum(0)


def selective_scan_cpu(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                       C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                       delta_bias: torch.Tensor | None = None,
                       delta_softplus: bool = False) -> torch.Tensor:
    """Compiled CPU selective scan (arguments and result as ``selective_scan_ref``).

    u, delta, z: ``[B, D, L]``; A: ``[D, N]``; B, C: ``[B, N, L]``; D, delta_bias: ``[D]``.
    Returns ``[B, D, L]`` in u's dtype. The recurrence over the states is the compiled kernel;
    the elementwise steps around it (delta + delta_bias, softplus, + D u, * silu(z)) are torch
    ops, vectorised and differentiated by autograd: done per time step inside the kernel they
    were scalar libm calls that cost more than the N-state update itself. Raises RuntimeError
    when the extension is unavailable.
    """
    if _extension() is None:
        raise RuntimeError("the compiled CPU selective scan is unavailable (see the log)")
    dtype = u.dtype
    work = torch.float64 if any(t is not None and t.dtype == torch.float64
                                for t in (u, delta, A, B, C, D, z, delta_bias)) else torch.float32
    u = u.to(work)
    dt = delta.to(work)
    if delta_bias is not None:
        dt = dt + delta_bias.to(work)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    # B and C as [B, L, N]: the kernel's inner loop over the states then reads contiguous memory
    y = _ScanCPU.apply(u.contiguous(), dt.contiguous(), A.to(work).contiguous(),
                       B.to(work).transpose(1, 2).contiguous(), C.to(work).transpose(1, 2).contiguous())
    if D is not None:
        y = y + u * D.to(work)[:, None]
    if z is not None:
        y = y * F.silu(z.to(work))
    return y.to(dtype)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Build (or check) the compiled CPU extensions: the selective "
                                "scan (training and inference) and the inference-only Mamba kernels.")
    p.add_argument("--build", action="store_true", help="build them now if they are not built")
    p.add_argument("--verbose", action="store_true", help="show the compiler's output")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    labels = {SOURCE: "compiled CPU scan", INFER_SOURCE: "compiled CPU inference kernels"}
    status = 0
    for source, label in labels.items():
        where = _built_library(module_name(source), build_dir())
        if not args.build:
            print(f"{label}: {'built' if where.exists() else 'not built'} ({where})")
            status |= 0 if where.exists() else 1
            continue
        if compiler() is None:
            # not an install failure: the pure-PyTorch paths are the fallback
            print(f"{label} not built: no C++ compiler ({os.environ.get('CXX', 'c++')}) on PATH; "
                  "the pure-PyTorch path will be used")
            continue
        try:
            load_extension(build=True, verbose=args.verbose, source=source)
        except Exception as err:
            print(f"{label}: build FAILED ({type(err).__name__}: {err})", file=sys.stderr)
            status = 1
            continue
        print(f"{label}: built ({where})")
    return status


if __name__ == "__main__":
    sys.exit(main())
