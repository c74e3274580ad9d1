"""use-repro: reproduce "Rethinking Training Targets, Architectures and Data Quality for
Universal Speech Enhancement" end to end, from raw audio to the paper's tables."""

__version__ = "0.1.0"
