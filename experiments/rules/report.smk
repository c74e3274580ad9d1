# Stage: the paper's tables, figures and the comparison with the reported numbers (use-repro report).
#   results/<profile>/tables/<table>.{md,csv,tex}   table1 table6 table7 table2 table4 datasize
#   results/<profile>/tables/compare.{md,csv}       reproduced vs reported, Δ, and the paper's claims
#   figures/<profile>/<figure>.{png,pdf}             fig3a fig3b fig9 fig5 fig6 fig8 residual_correlation
#   results/<profile>/provenance.{md,json}          commit, date, machine, wall time per stage, backends
# Each table and each figure is its own job, so asking for one file runs only what it needs.


# The Table 4 analogue's input: the corpus's test recordings in the held-out languages.
rule report_unseen_list:
    input:
        scp=CORPUS_TEST_SPEECH,
        lang=CORPUS_UTT2LANG,
        settings=stage_settings("report_unseen_list", _S.UnseenListSettings),
    output:
        scp=UNSEEN_SCP,
        lang=UNSEEN_LANG,
    log:
        f"{RESULTS}/logs/report/unseen_list.log",
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
    shell:
        "use-repro report unseen-list --config {params.cfg} --speech-scp {input.scp} --utt2lang {input.lang}"
        " --out-scp {output.scp} --out-lang {output.lang} > {log} 2>&1"


rule report_table:
    input:
        lambda wc: TABLE_INPUTS[wc.table],
        settings=report_table_settings,
    output:
        md=f"{TABLES_DIR}/{{table}}.md",
        csv=f"{TABLES_DIR}/{{table}}.csv",
        tex=f"{TABLES_DIR}/{{table}}.tex",
    log:
        f"{RESULTS}/logs/report/{{table}}.log",
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        options=lambda wc: TABLE_OPTIONS.get(wc.table, ""),
        out=lambda wc, output: parent(output.md),
    shell:
        "use-repro report tables --config {params.cfg} --table {wildcards.table}"
        " {params.options} --out-dir {params.out} > {log} 2>&1"


rule report_figure:
    input:
        lambda wc: FIGURE_INPUTS[wc.figure][0],
        settings=report_figure_settings,
    output:
        png=f"{FIGURES}/{{figure}}.png",
        pdf=f"{FIGURES}/{{figure}}.pdf",
    log:
        f"{RESULTS}/logs/report/{{figure}}.log",
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        meta=SIM_META["test"],
    shell:
        "use-repro report figure {wildcards.figure} --config {params.cfg}"
        " --test-meta {params.meta} --out {output.png} > {log} 2>&1"


rule report_compare:
    input:
        tables=[f"{TABLES_DIR}/{t}.csv" for t in L.TABLES],
        curves=curves(TRAINED),  # a pretrained model has no learning curve
        valid_scores=valid_scores(TRAINED),
        # the per-utterance scores the claims' paired intervals are drawn from
        evals=sorted(set(TABLE_INPUTS["table1"] + TABLE_INPUTS["table6"] + TABLE_INPUTS["table4"])),
        test_meta=SIM_META["test"],
        unseen_lang=UNSEEN_LANG,
        residual=[str(L.residual_correlation(RESULTS, n)) for n in RESIDUAL_SYSTEMS],
        settings=stage_settings("report_compare", _S.CompareSettings, pretrained=any(not e.trained for e in _DECLARED.values())),
    output:
        md=f"{TABLES_DIR}/compare.md",
        csv=f"{TABLES_DIR}/compare.csv",
        headline=f"{TABLES_DIR}/headline.md",
    log:
        f"{RESULTS}/logs/report/compare.log",
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
        out=lambda wc, output: parent(output.md),
    shell:
        "use-repro report compare --config {params.cfg} --test-meta {input.test_meta}"
        " --unseen-lang {input.unseen_lang} --out-dir {params.out} > {log} 2>&1"


# Last job of a run: it reads Snakemake's record of every other job, so it depends on all of them
# (the other stages' targets were appended to the lists by the .smk files included before this one).
rule report_provenance:
    input:
        list(TABLE_TARGETS),
        list(FIGURE_TARGETS),
        TABLE_FILES,
        FIGURE_FILES,
        rules.report_compare.output,
        settings=stage_settings("report_provenance", _S.ProvenanceSettings),
    output:
        md=f"{RESULTS}/provenance.md",
        json=f"{RESULTS}/provenance.json",
    log:
        f"{RESULTS}/logs/report/provenance.log",
    conda:
        ENV
    params:
        cfg=lambda wc, input: input.settings,  # the settings file is an input (committed.py)
    shell:
        "use-repro report provenance --config {params.cfg}"
        " --out {output.md} > {log} 2>&1"


TABLE_TARGETS.extend(TABLE_FILES)
FIGURE_TARGETS.extend(FIGURE_FILES)
COMPARE_TARGETS.extend(rules.report_compare.output)
PROVENANCE_TARGETS.extend(rules.report_provenance.output)
