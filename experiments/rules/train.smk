# Stage: training (use-repro train). One job per entry of config["experiments"]:
#   regression  USEMamba on the entry's target and VQScore-filtered speech list
#   gan         two-stage correction: the `init` regression model frozen, residual generator + discriminator
#   finetune    the conventional baseline of Figure 9: the `init` regression model fine-tuned adversarially
# Each run writes results/<profile>/<experiment>/{final.pt,curves.csv}. A job asks for the
# entry's `gpus` as the resource `gpu` (the name the SLURM executor plugin submits as --gpus);
# with GPUs it is launched by torchrun, one process per GPU. The job reruns when any setting the
# run reads changes (params.cfg, common.smk); the trainer then finds checkpoints of other
# settings in the run folder and, told --restart-if-changed, discards them and starts afresh,
# while a run interrupted under the same settings (or only given more steps) resumes.


rule train:
    # only runs this DAG trains: a `pretrained` experiment's model is a given file
    wildcard_constraints:
        exp=one_of(TRAINED),
    input:
        unpack(train_inputs),
        settings=train_settings,
    output:
        checkpoint=f"{RESULTS}/{{exp}}/final.pt",
        curves=f"{RESULTS}/{{exp}}/curves.csv",
        valid_scores=f"{RESULTS}/{{exp}}/valid_scores.csv",
    log:
        f"{RESULTS}/logs/train/{{exp}}.log",
    # what the run computes with (train.threads, in its digest): the weights depend on it
    threads: int(config["train"]["threads"])
    resources:
        gpu=lambda wc: EXPS[wc.exp].gpus,
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        # the validation curves' MOS predictor (UTMOS once its weights are added)
        mos=VALIDATION_MOS,
        stage=lambda wc: EXPS[wc.exp].stage,
        target=lambda wc: EXPS[wc.exp].target,
        options=train_options,
        launch=lambda wc, resources: launcher(resources.gpu),
        out=lambda wc, output: parent(output.checkpoint),
    shell:
        "{params.launch} train {params.stage} --config {params.cfg}"
        " --train-meta {input.train_meta} --valid-meta {input.valid_meta} --target {params.target}"
        " {params.options} --out {params.out} --restart-if-changed > {log} 2>&1"


# Section 3.6: correlation of the magnitude residuals (clean - regression) and (final - regression)
# over the test set, for every GAN run scored on the test set.
rule train_residual_correlation:
    input:
        checkpoint=f"{RESULTS}/{{exp}}/final.pt",
        meta=SIM_META["test"],
    output:
        json=f"{RESULTS}/{{exp}}/residual_correlation.json",
    log:
        f"{RESULTS}/logs/train/{{exp}}.residual_correlation.log",
    threads: JOB_THREADS
    conda:
        ENV
    params:
        target=lambda wc: EXPS[wc.exp].target,
    shell:
        "use-repro train residual-correlation --checkpoint {input.checkpoint} --test-meta {input.meta}"
        " --target {params.target} --threads {threads} --out {output.json} > {log} 2>&1"
