# Stage: the URGENT 2025 metric suite (use-repro evaluate), per system and reference.
#   results/<profile>/<system>/eval/test_early.csv     Tables 1, 2, 7 (the challenge's reference)
#   results/<profile>/<system>/eval/test_anechoic.csv  Table 6 (anechoic clean speech)
#   results/<profile>/<system>/eval/unseen.csv         Table 4 analogue (held-out languages)
# each with a JSON beside it naming the backend of every metric column. <system> is an
# experiment, `noisy` (the unprocessed test mixtures) or `original` (the held-out recordings).


# sharding.evaluate: K > 1 -> K metric jobs per system and reference (ids [k*n/K, (k+1)*n/K) of
# the sorted ids; their rows unrounded, in a pickle) and a gather under the rule's own name that
# writes the CSV and JSON, byte for byte the unsharded job's.
if SHARDS["evaluate"] == 1:

    rule evaluate_test:
        input:
            est=test_estimate,
            meta=SIM_META["test"],
            settings=evaluate_settings,
        output:
            csv=f"{RESULTS}/{{system}}/eval/test_{{ref}}.csv",
            json=f"{RESULTS}/{{system}}/eval/test_{{ref}}.json",
        log:
            f"{RESULTS}/logs/evaluate/{{system}}.test_{{ref}}.log",
        threads: JOB_THREADS
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            # which backend computes each metric: a new or replaced weights file reruns the scores
            backends=lambda wc: METRIC_BACKENDS[wc.ref],
            # folders: evaluate names an utterance by its file name, as the references are named
            est=lambda wc, input: TEST_NOISY if wc.system == NOISY_SYSTEM else parent(input.est),
            ref=lambda wc: TEST_REFERENCES[wc.ref],
            metrics=lambda wc: TEST_METRICS[wc.ref],
        shell:
            "use-repro evaluate --config {params.cfg} --est {params.est} --ref {params.ref} --meta {input.meta}"
            " {params.metrics} --threads {threads} --out {output.csv} > {log} 2>&1"


    rule evaluate_unseen:
        input:
            est=unseen_estimate,
            ref=UNSEEN_SCP,
            lang=UNSEEN_LANG,
            text=CORPUS_TEXT,
            settings=evaluate_settings,
        output:
            csv=f"{RESULTS}/{{system}}/eval/unseen.csv",
            json=f"{RESULTS}/{{system}}/eval/unseen.json",
        log:
            f"{RESULTS}/logs/evaluate/{{system}}.unseen.log",
        threads: JOB_THREADS
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            # which backend computes each metric: a new or replaced weights file reruns the scores
            backends=METRIC_BACKENDS["unseen"],
            metrics=UNSEEN_METRICS,
        shell:
            "use-repro evaluate --config {params.cfg} --est {input.est} --ref {input.ref}"
            " --utt2lang {input.lang} --text {input.text} {params.metrics} --threads {threads}"
            " --out {output.csv} > {log} 2>&1"

else:

    rule evaluate_test_shard:
        input:
            est=test_estimate,
            meta=SIM_META["test"],
            settings=evaluate_settings,
        output:
            rows=f"{RESULTS}/{{system}}/eval/shards/test_{{ref}}/{{shard}}.pkl",
        log:
            f"{RESULTS}/logs/evaluate/{{system}}.test_{{ref}}.{{shard}}.log",
        threads: JOB_THREADS
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            # which backend computes each metric: a new or replaced weights file reruns the scores
            backends=lambda wc: METRIC_BACKENDS[wc.ref],
            # folders: evaluate names an utterance by its file name, as the references are named
            est=lambda wc, input: TEST_NOISY if wc.system == NOISY_SYSTEM else parent(input.est),
            ref=lambda wc: TEST_REFERENCES[wc.ref],
            metrics=lambda wc: TEST_METRICS[wc.ref],
        shell:
            "use-repro evaluate --config {params.cfg} --est {params.est} --ref {params.ref} --meta {input.meta}"
            " {params.metrics} --shard {wildcards.shard} --threads {threads} --out {output.rows} > {log} 2>&1"

    rule evaluate_unseen_shard:
        input:
            est=unseen_estimate,
            ref=UNSEEN_SCP,
            lang=UNSEEN_LANG,
            text=CORPUS_TEXT,
            settings=evaluate_settings,
        output:
            rows=f"{RESULTS}/{{system}}/eval/shards/unseen/{{shard}}.pkl",
        log:
            f"{RESULTS}/logs/evaluate/{{system}}.unseen.{{shard}}.log",
        threads: JOB_THREADS
        conda:
            ENV
        params:
            cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
            # which backend computes each metric: a new or replaced weights file reruns the scores
            backends=METRIC_BACKENDS["unseen"],
            metrics=UNSEEN_METRICS,
        shell:
            "use-repro evaluate --config {params.cfg} --est {input.est} --ref {input.ref}"
            " --utt2lang {input.lang} --text {input.text} {params.metrics} --shard {wildcards.shard}"
            " --threads {threads} --out {output.rows} > {log} 2>&1"

    rule evaluate_test:
        input:
            shards=evaluate_shard_files,
        output:
            csv=f"{RESULTS}/{{system}}/eval/test_{{ref}}.csv",
            json=f"{RESULTS}/{{system}}/eval/test_{{ref}}.json",
        log:
            f"{RESULTS}/logs/evaluate/{{system}}.test_{{ref}}.log",
        conda:
            ENV
        shell:
            "use-repro gather evaluate --shards {input.shards} --out {output.csv} > {log} 2>&1"

    rule evaluate_unseen:
        input:
            shards=evaluate_shard_files,
        output:
            csv=f"{RESULTS}/{{system}}/eval/unseen.csv",
            json=f"{RESULTS}/{{system}}/eval/unseen.json",
        log:
            f"{RESULTS}/logs/evaluate/{{system}}.unseen.log",
        conda:
            ENV
        shell:
            "use-repro gather evaluate --shards {input.shards} --out {output.csv} > {log} 2>&1"

    localrules:
        evaluate_test,
        evaluate_unseen,
