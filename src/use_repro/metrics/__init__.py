"""The URGENT 2025 metric suite and ranking.

- registry.py: metric names, categories, directions, and the backend of each metric (the
  challenge's when its weights are under weights_dir, else an embedded one a registry package
  ships, else n/a naming the file); `validation_mos` for the trainer.
- intrusive.py (PESQ, ESTOI, SDR, LSD, MCD), nonintrusive.py (DNSMOS, NISQA, DistillMOS),
  semantic.py (SpeechBERTScore, LPS), task.py (SpkSim, CAcc): the metrics themselves.
- evaluate.py: `use-repro evaluate`, per-utterance CSV + JSON of backends and averages.
- ranking.py: `use-repro rank`, the challenge's overall ranking (checked against Table 7).
"""
