# Stage: enhancement (use-repro enhance) of the test set by every experiment with `test: true`
# and of the held-out-language recordings by every experiment with `unseen: true`. Outputs are
# results/<profile>/<experiment>/enhanced/{test,unseen}/ with an enhanced.scp listing every file.
# The model is the run's final.pt, or for a `pretrained` experiment the file it names (the
# authors' released USEMamba loads through the same `--checkpoint`; common.smk model_checkpoint).


# sharding.enhance: K > 1 -> K jobs per system and set (the files whose uids fall in shard k of
# the sorted uids, each into its own folder under enhanced/shards/, resumable as enhance is) and
# a gather under this rule's name that links their outputs into enhanced/<split>/ and writes its
# lists, byte for byte the unsharded job's.
if SHARDS["enhance"] == 1:

    rule enhance:
        input:
            checkpoint=model_checkpoint,
            data=lambda wc: SIM_META["test"] if wc.split == "test" else UNSEEN_SCP,
        output:
            scp=f"{RESULTS}/{{exp}}/enhanced/{{split}}/enhanced.scp",
        log:
            f"{RESULTS}/logs/enhance/{{exp}}.{{split}}.log",
        threads: JOB_THREADS
        conda:
            ENV
        params:
            # the noisy test mixtures are the folder `simulate render` writes beside meta.tsv
            inputs=lambda wc, input: TEST_NOISY if wc.split == "test" else input.data,
            out=lambda wc, output: parent(output.scp),
            device=config["device"],
        shell:
            "use-repro enhance --checkpoint {input.checkpoint} --in {params.inputs} --out {params.out}"
            " --threads {threads} --device {params.device} > {log} 2>&1"

else:

    rule enhance_shard:
        input:
            checkpoint=model_checkpoint,
            data=lambda wc: SIM_META["test"] if wc.split == "test" else UNSEEN_SCP,
        output:
            scp=f"{RESULTS}/{{exp}}/enhanced/shards/{{split}}/{{shard}}/enhanced.scp",
        log:
            f"{RESULTS}/logs/enhance/{{exp}}.{{split}}.{{shard}}.log",
        threads: JOB_THREADS
        conda:
            ENV
        params:
            # the noisy test mixtures are the folder `simulate render` writes beside meta.tsv
            inputs=lambda wc, input: TEST_NOISY if wc.split == "test" else input.data,
            out=lambda wc, output: parent(output.scp),
            device=config["device"],
        shell:
            "use-repro enhance --checkpoint {input.checkpoint} --in {params.inputs} --out {params.out}"
            " --shard {wildcards.shard} --threads {threads} --device {params.device} > {log} 2>&1"

    rule enhance:
        input:
            shards=enhance_shard_lists,
        output:
            scp=f"{RESULTS}/{{exp}}/enhanced/{{split}}/enhanced.scp",
        log:
            f"{RESULTS}/logs/enhance/{{exp}}.{{split}}.log",
        conda:
            ENV
        params:
            out=lambda wc, output: parent(output.scp),
        shell:
            "use-repro gather enhance --shards {input.shards} --out {params.out} > {log} 2>&1"

    localrules:
        enhance,

