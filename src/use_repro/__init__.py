"""use-repro: reproduce "Rethinking Training Targets, Architectures and Data Quality for
Universal Speech Enhancement" end to end, from raw audio to the paper's tables.

Python API: ``from use_repro import Enhancer`` enhances arrays and files with a trained
checkpoint or the authors' released model (:mod:`use_repro.enhancer`)."""

__version__ = "0.1.0"

__all__ = ["Enhancer", "__version__"]


def __getattr__(name: str):
    # `from use_repro import Enhancer` (use_repro.enhancer), imported when first asked for, so
    # `import use_repro` (and the CLI's --help) stays free of torch
    if name == "Enhancer":
        from use_repro.enhancer import Enhancer

        return Enhancer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
