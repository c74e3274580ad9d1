# Stage 1: the embedded corpus (or the official URGENT 2025 manifests) -> URGENT-format manifests.
# Outputs are the manifests later stages read (layout: src/use_repro/data/corpus/layout.py); the
# audio they point to lives under {RESULTS}/corpus/audio/.
from use_repro.data.corpus.layout import manifest_files as _corpus_manifests

CORPUS = f"{RESULTS}/corpus"


rule corpus:
    output:
        [f"{CORPUS}/{name}" for name in _corpus_manifests()],
    log:
        f"{RESULTS}/logs/corpus.log",
    threads: workflow.cores
    shell:
        "{USE_REPRO} corpus --config {CONFIG_FILE} --out {CORPUS} --threads {threads} > {log} 2>&1"


TABLE_TARGETS.append(f"{CORPUS}/summary.csv")
