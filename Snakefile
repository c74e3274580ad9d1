# use-repro: the paper's tables and figures from raw audio, as one DAG.
#
#   snakemake --cores all tables                       # default profile: mini (everything below)
#   snakemake --cores all tables --config profile=tiny
#   snakemake --cores all figures/mini/fig3b.png       # one figure
#   snakemake --cores all figures                      # every figure
#   snakemake --cores all compare                      # reproduced vs reported
#   snakemake --cores all paper_core                   # Table 1 only: its four systems (`make paper-core`)
#   snakemake --profile experiments/profiles/slurm --config profile=urgent2025 tables   # a cluster
#
# The profile's YAML (experiments/config/<profile>.yaml) is validated against
# experiments/config/schema.yaml before any job runs, and its `experiments` entries generate the
# training, enhancement and evaluation jobs. A custom profile file (its `profile:` key, if any,
# must equal its file name, which names results/<profile>/):
#   snakemake --cores all tables --config profile=path/to/my.yaml
# Any other `--config KEY=VALUE` overrides that key of the profile and is validated like it (an
# unknown key is refused by name); nested keys take YAML: --config 'train={lr: 1.0e-3}'.
# Each job reads its settings from results/<profile>/settings/<job>.<digest>.yaml, named by the
# digest of the keys its stage reads (experiments/rules/common.smk), so editing a setting reruns
# exactly the jobs that read it and their descendants.
#
# Conventions of the rule files (kept by `snakemake --lint`): a rule is thin — named inputs and
# outputs, a log, threads, `conda: ENV`, one `use-repro <stage>` call whose values all come from
# input/output/params; functions live in experiments/rules/common.smk.
from use_repro.config import ConfigError, load_profile
from use_repro.report import layout as L
from use_repro.report.experiments import experiments as _experiments

_profile = config.get("profile", "mini")
try:
    # every other --config key overrides the profile (validated; an unknown key stops the run)
    # this checkout's schema: its types, defaults and digest marks (x-digest) decide every job's identity
    SCHEMA = f"{workflow.basedir}/experiments/config/schema.yaml"
    _cfg = load_profile(_profile, {k: v for k, v in config.items() if k != "profile"}, SCHEMA)
    EXPS = _experiments(_cfg)  # name -> Experiment, each after the one it starts from
except ConfigError as _e:
    raise WorkflowError(str(_e))
config.clear()
config.update(_cfg)
CFG = _cfg  # the resolved settings the jobs' settings files hold (experiments/rules/common.smk)

PROFILE = config["profile"]
RESULTS = f"{config['results_root']}/{PROFILE}"
FIGURES = f"{config['figures_root']}/{PROFILE}"
USE_REPRO = "use-repro"
# Threads of one CPU job (training, enhancement, metrics): the top-level `threads` key, 1 if 0.
JOB_THREADS = int(config.get("threads") or 1)
# Threads of a job that uses the whole machine (corpus, simulation, VQScore). Snakemake caps a
# job's threads at --cores, so this is "every core given"; `workflow.cores` would say the same
# but stops commands given no --cores (`snakemake --unlock`, `--dag`, `--summary`) at parse time.
ALL_CORES = os.cpu_count() or 1

# A fresh clone: the committed results of this profile, and the reported numbers the report
# reads, get one time stamp before anything is planned, so the report re-makes the tables from
# them instead of retraining (committed.py).
from use_repro.committed import settle as _settle

_settle(workflow.basedir, RESULTS, [RESULTS, FIGURES, f"{workflow.basedir}/experiments/reported"])

# Each stage's .smk appends the files it contributes to these target lists.
TABLE_TARGETS = []
FIGURE_TARGETS = []
COMPARE_TARGETS = []
PROVENANCE_TARGETS = []


include: "experiments/rules/common.smk"
include: "experiments/rules/corpus.smk"
include: "experiments/rules/simulate.smk"
include: "experiments/rules/vqscore.smk"
include: "experiments/rules/train.smk"
include: "experiments/rules/enhance.smk"
include: "experiments/rules/evaluate.smk"
include: "experiments/rules/report.smk"


# `tables` is what `make tables` runs: every table, the comparison, every figure and the
# provenance file (the tables are only half a result without the curves they summarise).
rule all:
    default_target: True
    input:
        TABLE_TARGETS,
        FIGURE_TARGETS,
        COMPARE_TARGETS,
        PROVENANCE_TARGETS,


rule tables:
    input:
        TABLE_TARGETS,
        FIGURE_TARGETS,
        COMPARE_TARGETS,
        PROVENANCE_TARGETS,


rule figures:
    input:
        FIGURE_TARGETS,


rule compare:
    input:
        COMPARE_TARGETS,


# `paper_core` (`make paper-core`): Table 1 alone, so only its systems (report.table1, else the
# `test: true` experiments: early, shifted and their two-stage GAN corrections) and the runs they
# start from are trained, enhanced and scored (docs/compute-plan.md).
rule paper_core:
    input:
        [f"{TABLES_DIR}/table1.{ext}" for ext in ("md", "csv", "tex")],
