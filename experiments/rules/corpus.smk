# Stage 1: the embedded corpus (or the official URGENT 2025 manifests) -> URGENT-format manifests.

rule corpus:
    output:
        summary=f"{RESULTS}/corpus/summary.csv",
    log:
        f"{RESULTS}/logs/corpus.log",
    threads: workflow.cores
    shell:
        "{USE_REPRO} corpus --config {CONFIG_FILE} --out {RESULTS}/corpus --threads {threads} > {log} 2>&1"


TABLE_TARGETS.append(f"{RESULTS}/corpus/summary.csv")
