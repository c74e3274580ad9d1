# Stage 2: URGENT 2025 simulation. For each split: sample parameters (params.tsv), then render the
# noisy audio (and, on test, the references some job reads: render_targets in common.smk) into
# meta.tsv and the FLAC folders noisy/, clean/, clean_shifted/, clean_anechoic/, clean_early<W>ms/;
# on train and valid each training target in its own job (meta.<target>.tsv, read by training); finally
# count rows per distortion, sampling rate and SNR bin. Layout: results/<profile>/simulation/{train,valid,test}/.
# <split>/rejects.tsv (rows that did not render, with the reason) is written by render but is not
# a declared output: when too many rows fail (simulation.max_reject_fraction) the job fails and
# Snakemake deletes its outputs, and the list naming the culprits must survive that.
# Reads the corpus manifests under CORPUS (speech_<split>.scp, noise_, rir_, wind_noise_).

SIM_SPLITS = ("train", "valid", "test")


rule simulate_params:
    input:
        corpus=f"{CORPUS}/summary.csv",
        settings=simulate_settings,
    output:
        params=f"{SIMULATION}/{{split}}/params.tsv",
    log:
        f"{RESULTS}/logs/simulate/params_{{split}}.log",
    wildcard_constraints:
        split="|".join(SIM_SPLITS),
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        corpus=lambda wc, input: os.path.dirname(input.corpus),
        out=lambda wc, output: os.path.dirname(output.params),
    shell:
        "use-repro simulate params --config {params.cfg} --corpus-dir {params.corpus} --split {wildcards.split}"
        " --out {params.out} > {log} 2>&1"


# sharding.simulate: 1 -> one render job per split; K > 1 -> K render shards per split
# (simulate_render_shard: rows [k*n/K, (k+1)*n/K) of params.tsv, each row's audio at the path the
# unsharded job writes, the shard's meta.tsv/rejects.tsv/counts.json under <split>/shards/k-of-K/)
# and a gather under this rule's name that writes the split's meta.tsv and rejects.tsv, byte for
# byte the unsharded job's, and applies simulation.max_reject_fraction to the whole split. A
# resubmitted shard keeps the rows whose files were written after its params.tsv.
if SHARDS["simulate"] == 1:

    rule simulate_render:
        input:
            params=f"{SIMULATION}/{{split}}/params.tsv",
            corpus=f"{CORPUS}/summary.csv",
            settings=simulate_settings,
        output:
            meta=f"{SIMULATION}/{{split}}/meta.tsv",
        log:
            f"{RESULTS}/logs/simulate/render_{{split}}.log",
        wildcard_constraints:
            split="|".join(SIM_SPLITS),
        threads: ALL_CORES
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            corpus=lambda wc, input: os.path.dirname(input.corpus),
            out=lambda wc, output: os.path.dirname(output.meta),
            targets=lambda wc: " ".join(render_targets(wc.split)),
        shell:
            "use-repro simulate render --config {params.cfg} --meta {input.params} --corpus-dir {params.corpus}"
            " --targets {params.targets} --out {params.out} --threads {threads} > {log} 2>&1"

else:

    rule simulate_render_shard:
        input:
            params=f"{SIMULATION}/{{split}}/params.tsv",
            corpus=f"{CORPUS}/summary.csv",
            settings=simulate_settings,
        output:
            meta=f"{SIMULATION}/{{split}}/shards/{{shard}}/meta.tsv",
            rejects=f"{SIMULATION}/{{split}}/shards/{{shard}}/rejects.tsv",
            counts=f"{SIMULATION}/{{split}}/shards/{{shard}}/counts.json",
        log:
            f"{RESULTS}/logs/simulate/render_{{split}}.{{shard}}.log",
        wildcard_constraints:
            split="|".join(SIM_SPLITS),
        threads: ALL_CORES
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            corpus=lambda wc, input: os.path.dirname(input.corpus),
            out=lambda wc, input: os.path.dirname(input.params),
            lists=lambda wc, output: os.path.dirname(output.meta),
            targets=lambda wc: " ".join(render_targets(wc.split)),
        shell:
            "use-repro simulate render --config {params.cfg} --meta {input.params} --corpus-dir {params.corpus}"
            " --targets {params.targets} --out {params.out} --lists {params.lists} --shard {wildcards.shard}"
            " --keep-newer-than {input.params} --threads {threads} > {log} 2>&1"

    rule simulate_render:
        input:
            shards=render_shard_lists,
            settings=simulate_settings,
        output:
            meta=f"{SIMULATION}/{{split}}/meta.tsv",
        log:
            f"{RESULTS}/logs/simulate/render_{{split}}.log",
        wildcard_constraints:
            split="|".join(SIM_SPLITS),
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            shards=lambda wc, input: parents(input.shards),
            out=lambda wc, output: os.path.dirname(output.meta),
        shell:
            "use-repro gather simulate --config {params.cfg} --shards {params.shards} --out {params.out} > {log} 2>&1"

    localrules:
        simulate_render,


# One job per training target of train and valid (train_meta in common.smk): it renders the
# split's rows again (the level rule needs each row's whole mixture) but writes only that target's
# files and its list meta.<target>.tsv, beside the noisy files the split's own job wrote (and
# lists). A run with a target no other run uses adds that target's jobs; nothing else re-renders.
if SHARDS["simulate"] == 1:

    rule simulate_render_target:
        input:
            params=f"{SIMULATION}/{{split}}/params.tsv",
            corpus=f"{CORPUS}/summary.csv",
            noisy=f"{SIMULATION}/{{split}}/meta.tsv",
            settings=simulate_settings,
        output:
            meta=f"{SIMULATION}/{{split}}/meta.{{target}}.tsv",
        log:
            f"{RESULTS}/logs/simulate/render_{{split}}.{{target}}.log",
        wildcard_constraints:
            split="train|valid",
            target=one_of(render_target_names()),
        threads: ALL_CORES
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            corpus=lambda wc, input: os.path.dirname(input.corpus),
            out=lambda wc, output: os.path.dirname(output.meta),
            name=lambda wc, output: os.path.basename(output.meta),
        shell:
            "use-repro simulate render --config {params.cfg} --meta {input.params} --corpus-dir {params.corpus}"
            " --targets {wildcards.target} --targets-only --list-name {params.name} --out {params.out}"
            " --threads {threads} > {log} 2>&1"

else:

    rule simulate_render_target_shard:
        input:
            params=f"{SIMULATION}/{{split}}/params.tsv",
            corpus=f"{CORPUS}/summary.csv",
            noisy=f"{SIMULATION}/{{split}}/meta.tsv",
            settings=simulate_settings,
        output:
            meta=f"{SIMULATION}/{{split}}/shards/{{shard}}/meta.{{target}}.tsv",
            rejects=f"{SIMULATION}/{{split}}/shards/{{shard}}/rejects.{{target}}.tsv",
            counts=f"{SIMULATION}/{{split}}/shards/{{shard}}/counts.{{target}}.json",
        log:
            f"{RESULTS}/logs/simulate/render_{{split}}.{{target}}.{{shard}}.log",
        wildcard_constraints:
            split="train|valid",
            target=one_of(render_target_names()),
        threads: ALL_CORES
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            corpus=lambda wc, input: os.path.dirname(input.corpus),
            out=lambda wc, input: os.path.dirname(input.params),
            lists=lambda wc, output: os.path.dirname(output.meta),
            name=lambda wc, output: os.path.basename(output.meta),
        shell:
            "use-repro simulate render --config {params.cfg} --meta {input.params} --corpus-dir {params.corpus}"
            " --targets {wildcards.target} --targets-only --list-name {params.name} --out {params.out}"
            " --lists {params.lists} --shard {wildcards.shard} --keep-newer-than {input.params}"
            " --threads {threads} > {log} 2>&1"

    rule simulate_render_target:
        input:
            shards=render_shard_lists,
            settings=simulate_settings,
        output:
            meta=f"{SIMULATION}/{{split}}/meta.{{target}}.tsv",
        log:
            f"{RESULTS}/logs/simulate/render_{{split}}.{{target}}.log",
        wildcard_constraints:
            split="train|valid",
            target=one_of(render_target_names()),
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            shards=lambda wc, input: parents(input.shards),
            out=lambda wc, output: os.path.dirname(output.meta),
            name=lambda wc, output: os.path.basename(output.meta),
        shell:
            "use-repro gather simulate --config {params.cfg} --shards {params.shards} --out {params.out}"
            " --list-name {params.name} > {log} 2>&1"

    localrules:
        simulate_render_target,


rule simulate:
    input:
        meta=[f"{SIMULATION}/{split}/meta.tsv" for split in SIM_SPLITS],
    output:
        summary=f"{SIMULATION}/summary.csv",
    log:
        f"{RESULTS}/logs/simulate/summary.log",
    conda:
        ENV
    shell:
        "use-repro simulate summary --meta {input.meta} --out {output.summary} > {log} 2>&1"


TABLE_TARGETS.append(f"{SIMULATION}/summary.csv")
