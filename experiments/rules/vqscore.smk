# Stage: VQScore quality estimation and the training-data filtering sweep (paper Section 2.3/3.4,
# Figures 2 and 7). train -> score -> filter (one speech list per threshold) -> histograms.
# Library: src/use_repro/quality/; every rule is one `use-repro vqscore <action>` call.
import os as _os

VQ = f"{RESULTS}/vqscore"
_VQ_THRESHOLDS = [t["name"] for t in config["vqscore"]["thresholds"]]


def _vq_released(wildcards):
    """The released checkpoint, as an input only when the user has put it there (so adding it
    later retrains, i.e. re-imports)."""
    name = config["vqscore"]["released_checkpoint"]
    if not name:
        return []
    path = name if _os.path.isabs(name) or _os.path.exists(name) else _os.path.join(config["weights_dir"], name)
    return [path] if _os.path.exists(path) else []


rule vqscore_train:
    input:
        scp=f"{CORPUS}/speech_train.scp",
        info=f"{CORPUS}/speech_info.tsv",
        released=_vq_released,
    output:
        f"{VQ}/estimator.pt",
    log:
        f"{RESULTS}/logs/vqscore_train.log",
    threads: workflow.cores
    shell:
        "{USE_REPRO} vqscore train --config {CONFIG_FILE} --scp {input.scp} --info {input.info} "
        "--out {output} --threads {threads} > {log} 2>&1"


rule vqscore_score:
    input:
        estimator=f"{VQ}/estimator.pt",
        scp=f"{CORPUS}/speech_train.scp",
        info=f"{CORPUS}/speech_info.tsv",
    output:
        f"{VQ}/vqscore.tsv",
    log:
        f"{RESULTS}/logs/vqscore_score.log",
    threads: workflow.cores
    shell:
        "{USE_REPRO} vqscore score --config {CONFIG_FILE} --estimator {input.estimator} --scp {input.scp} "
        "--info {input.info} --out {output} --threads {threads} > {log} 2>&1"


rule vqscore_filter:
    input:
        scores=f"{VQ}/vqscore.tsv",
        scp=f"{CORPUS}/speech_train.scp",
        estimator=f"{VQ}/estimator.pt",
    output:
        datasize=f"{VQ}/datasize.csv",
        lists=[f"{VQ}/filtered/speech_train.{name}.scp" for name in _VQ_THRESHOLDS],
    log:
        f"{RESULTS}/logs/vqscore_filter.log",
    threads: 1
    shell:
        "{USE_REPRO} vqscore filter --config {CONFIG_FILE} --scores {input.scores} --scp {input.scp} "
        "--estimator {input.estimator} --out-dir {VQ} > {log} 2>&1"


rule vqscore_histogram:
    input:
        scores=f"{VQ}/vqscore.tsv",
    output:
        fig2=f"{FIGURES}/fig2.png",
        fig2_pdf=f"{FIGURES}/fig2.pdf",
        fig7=f"{FIGURES}/fig7.png",
        fig7_pdf=f"{FIGURES}/fig7.pdf",
    log:
        f"{RESULTS}/logs/vqscore_histogram.log",
    threads: 1
    shell:
        "{USE_REPRO} vqscore histogram --config {CONFIG_FILE} --scores {input.scores} "
        "--fig2 {output.fig2} --fig7 {output.fig7} > {log} 2>&1"


# The estimator against the corpus's ground truth of deliberately dirty utterances (embedded
# corpus only: the official data has no such file).
rule vqscore_auc:
    input:
        scores=f"{VQ}/vqscore.tsv",
        truth=f"{CORPUS}/crowd_dirty.tsv",
    output:
        f"{VQ}/auc.json",
    log:
        f"{RESULTS}/logs/vqscore_auc.log",
    threads: 1
    shell:
        "{USE_REPRO} vqscore auc --scores {input.scores} --truth {input.truth} --out {output} > {log} 2>&1"


TABLE_TARGETS.append(f"{VQ}/datasize.csv")
FIGURE_TARGETS.extend([f"{FIGURES}/fig2.png", f"{FIGURES}/fig2.pdf", f"{FIGURES}/fig7.png", f"{FIGURES}/fig7.pdf"])
if config["corpus"]["kind"] == "embedded":
    TABLE_TARGETS.append(f"{VQ}/auc.json")
