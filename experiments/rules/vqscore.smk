# Stage 3: VQScore quality estimation and the training-data filtering sweep (paper Sections 2.3
# and 3.4, Figures 2 and 7): train the estimator on the corpus's clean speech (or import the
# released checkpoint) -> score every training speech file -> one filtered speech list per
# threshold (read by training through filtered_speech_list(name)) + datasize.csv -> histograms.
# Layout: results/<profile>/vqscore/{estimator.pt,vqscore.tsv,datasize.csv,filtered/,auc.json}
# and figures/<profile>/fig2.*, fig7.*. Library: src/use_repro/quality/.

# The released checkpoint is an input only when the user has put it in place, so adding it
# later re-runs the import and everything downstream.
_VQ_RELEASED_NAME = config["vqscore"]["released_checkpoint"]
_VQ_RELEASED = [p for p in ([_VQ_RELEASED_NAME, os.path.join(config["weights_dir"], _VQ_RELEASED_NAME)]
                            if _VQ_RELEASED_NAME else []) if os.path.isfile(p)][:1]


rule vqscore_train:
    input:
        scp=f"{CORPUS}/speech_train.scp",
        info=f"{CORPUS}/speech_info.tsv",
        released=_VQ_RELEASED,
        settings=stage_settings("vqscore_train", _S.VQScoreModelSettings),
    output:
        estimator=f"{VQSCORE}/estimator.pt",
    log:
        f"{RESULTS}/logs/vqscore/train.log",
    threads: ALL_CORES
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
    shell:
        "use-repro vqscore train --config {params.cfg} --scp {input.scp} --info {input.info}"
        " --out {output.estimator} --threads {threads} > {log} 2>&1"


# sharding.vqscore: K > 1 -> K scoring jobs (entries [k*n/K, (k+1)*n/K) of the speech list) and
# a gather under this rule's name that joins their lists into vqscore.tsv, byte for byte.
if SHARDS["vqscore"] == 1:

    rule vqscore_score:
        input:
            estimator=f"{VQSCORE}/estimator.pt",
            scp=f"{CORPUS}/speech_train.scp",
            info=f"{CORPUS}/speech_info.tsv",
            settings=stage_settings("vqscore_score", _S.VQScoreModelSettings),
        output:
            scores=f"{VQSCORE}/vqscore.tsv",
        log:
            f"{RESULTS}/logs/vqscore/score.log",
        threads: ALL_CORES
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        shell:
            "use-repro vqscore score --config {params.cfg} --estimator {input.estimator} --scp {input.scp}"
            " --info {input.info} --out {output.scores} --threads {threads} > {log} 2>&1"

else:

    rule vqscore_score_shard:
        input:
            estimator=f"{VQSCORE}/estimator.pt",
            scp=f"{CORPUS}/speech_train.scp",
            info=f"{CORPUS}/speech_info.tsv",
            settings=stage_settings("vqscore_score", _S.VQScoreModelSettings),
        output:
            scores=f"{VQSCORE}/shards/{{shard}}.tsv",
        log:
            f"{RESULTS}/logs/vqscore/score.{{shard}}.log",
        threads: ALL_CORES
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        shell:
            "use-repro vqscore score --config {params.cfg} --estimator {input.estimator} --scp {input.scp}"
            " --info {input.info} --out {output.scores} --shard {wildcards.shard} --threads {threads} > {log} 2>&1"

    rule vqscore_score:
        input:
            shards=shard_files("vqscore", f"{VQSCORE}/shards/{{shard}}.tsv"),
        output:
            scores=f"{VQSCORE}/vqscore.tsv",
        log:
            f"{RESULTS}/logs/vqscore/score.log",
        conda:
            ENV
        shell:
            "use-repro gather vqscore --shards {input.shards} --out {output.scores} > {log} 2>&1"

    localrules:
        vqscore_score,

# datasize.csv (every threshold's cut and kept hours) in one job; each threshold's filtered list
# in its own job whose settings are that threshold's entry, so editing one threshold rewrites its
# list and the table, and reruns only the training runs that read that list.
rule vqscore_filter:
    input:
        scores=f"{VQSCORE}/vqscore.tsv",
        scp=f"{CORPUS}/speech_train.scp",
        estimator=f"{VQSCORE}/estimator.pt",
        settings=stage_settings("vqscore_filter", _S.VQScoreSweepSettings),
    output:
        datasize=VQ_DATASIZE,
    log:
        f"{RESULTS}/logs/vqscore/filter.log",
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        out=lambda wc, output: os.path.dirname(output.datasize),
    shell:
        "use-repro vqscore filter --config {params.cfg} --scores {input.scores} --scp {input.scp}"
        " --estimator {input.estimator} --out-dir {params.out} --only-datasize > {log} 2>&1"


rule vqscore_filter_list:
    wildcard_constraints:
        threshold=one_of(t["name"] for t in config["vqscore"]["thresholds"]),
    input:
        scores=f"{VQSCORE}/vqscore.tsv",
        scp=f"{CORPUS}/speech_train.scp",
        estimator=f"{VQSCORE}/estimator.pt",
        settings=threshold_settings,
    output:
        scp=filtered_speech_list("{threshold}"),
    log:
        f"{RESULTS}/logs/vqscore/filter.{{threshold}}.log",
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        out=lambda wc, output: os.path.dirname(os.path.dirname(output.scp)),  # <vqscore>/filtered/<list>
    shell:
        "use-repro vqscore filter --config {params.cfg} --scores {input.scores} --scp {input.scp}"
        " --estimator {input.estimator} --out-dir {params.out} --only-list {wildcards.threshold} > {log} 2>&1"


rule vqscore_histogram:
    input:
        scores=f"{VQSCORE}/vqscore.tsv",
        estimator=f"{VQSCORE}/estimator.pt",
        datasize=VQ_DATASIZE,  # the thresholds' score cuts, drawn as lines
        settings=stage_settings("vqscore_histogram", _S.VQScoreHistogramSettings, with_thresholds=False),
    output:
        fig2=f"{FIGURES}/fig2.png",
        fig2_pdf=f"{FIGURES}/fig2.pdf",
        fig7=f"{FIGURES}/fig7.png",
        fig7_pdf=f"{FIGURES}/fig7.pdf",
    log:
        f"{RESULTS}/logs/vqscore/histogram.log",
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
    shell:
        "use-repro vqscore histogram --config {params.cfg} --scores {input.scores} --estimator {input.estimator}"
        " --datasize {input.datasize} --fig2 {output.fig2} --fig7 {output.fig7} > {log} 2>&1"


# The estimator against the corpus's ground truth of deliberately dirty utterances (the
# embedded corpus only: the official data has no such file). The log holds the printed AUCs.
rule vqscore_auc:
    input:
        scores=f"{VQSCORE}/vqscore.tsv",
        truth=f"{CORPUS}/crowd_dirty.tsv",
        estimator=f"{VQSCORE}/estimator.pt",
    output:
        auc=f"{VQSCORE}/auc.json",
    log:
        f"{RESULTS}/logs/vqscore/auc.log",
    conda:
        ENV
    shell:
        "use-repro vqscore auc --scores {input.scores} --truth {input.truth} --estimator {input.estimator}"
        " --out {output.auc} > {log} 2>&1"


TABLE_TARGETS.append(VQ_DATASIZE)
FIGURE_TARGETS.extend(f"{FIGURES}/{f}.{ext}" for f in ("fig2", "fig7") for ext in ("png", "pdf"))
if config["corpus"]["kind"] == "embedded":
    TABLE_TARGETS.append(f"{VQSCORE}/auc.json")
