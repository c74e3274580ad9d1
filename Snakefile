# use-repro: the paper's tables and figures from raw audio, as one DAG.
#
#   snakemake --cores all tables                       # default profile: mini
#   snakemake --cores all tables --config profile=tiny
#   snakemake --cores all figures/mini/fig3b.png       # one figure
#   snakemake --cores all compare                      # reproduced vs reported
#
# The profile's YAML (experiments/config/<profile>.yaml) is validated against
# experiments/config/schema.yaml before any job runs. A custom profile file:
#   snakemake --cores all tables --config profile=path/to/my.yaml
from use_repro.config import ConfigError, load_config

_profile = config.get("profile", "mini")
try:
    _cfg = load_config(_profile)
except ConfigError as _e:
    raise WorkflowError(str(_e))
config.clear()
config.update(_cfg)

PROFILE = config["profile"]
CONFIG_FILE = str(__import__("use_repro.config", fromlist=["resolve_profile_path"]).resolve_profile_path(_profile))
RESULTS = f"{config['results_root']}/{PROFILE}"
FIGURES = f"{config['figures_root']}/{PROFILE}"
USE_REPRO = "use-repro"

# Each stage's .smk appends the files it contributes to these target lists.
TABLE_TARGETS = []
FIGURE_TARGETS = []
COMPARE_TARGETS = []


include: "experiments/rules/corpus.smk"
include: "experiments/rules/simulate.smk"
include: "experiments/rules/vqscore.smk"
include: "experiments/rules/train.smk"
include: "experiments/rules/enhance.smk"
include: "experiments/rules/evaluate.smk"
include: "experiments/rules/report.smk"


rule all:
    input:
        TABLE_TARGETS,
        FIGURE_TARGETS,
        COMPARE_TARGETS,


rule tables:
    input:
        TABLE_TARGETS,


rule figures:
    input:
        FIGURE_TARGETS,


rule compare:
    input:
        COMPARE_TARGETS,
