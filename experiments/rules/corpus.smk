# Stage 1: the embedded corpus (or the official URGENT 2025 manifests) -> URGENT-format manifests.
# Outputs are the manifests later stages read (layout: src/use_repro/data/corpus/layout.py); the
# audio they point to lives under {CORPUS}/audio/ (CORPUS: experiments/rules/common.smk).
from use_repro.data.corpus.layout import manifest_files as _corpus_manifests


rule corpus:
    input:
        settings=stage_settings("corpus", _S.CorpusSettings),
    output:
        manifests=[f"{CORPUS}/{name}" for name in _corpus_manifests() if name != "summary.csv"],
        summary=f"{CORPUS}/summary.csv",
    log:
        f"{RESULTS}/logs/corpus.log",
    threads: ALL_CORES
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        out=lambda wc, output: os.path.dirname(output.summary),
    shell:
        "use-repro corpus --config {params.cfg} --out {params.out} --threads {threads} > {log} 2>&1"


TABLE_TARGETS.append(f"{CORPUS}/summary.csv")
