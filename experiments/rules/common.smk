# Shared by every stage's .smk (included first): the files one stage writes and another reads,
# the systems the report prints, and the helper functions the rules call. Rules themselves hold
# no functions and take every value their shell command uses from input/output/params, so
# `snakemake --lint` stays clean.
import json
import re
import sys
from pathlib import Path

# The software environment every rule runs in (`--use-conda` builds it; `make` builds .venv).
ENV = f"{workflow.basedir}/environment.yml"

# --- contracts between stages -----------------------------------------------------------------
CORPUS = f"{RESULTS}/corpus"
CORPUS_TEST_SPEECH = f"{CORPUS}/speech_test.scp"
CORPUS_UTT2LANG = f"{CORPUS}/utt2lang"
CORPUS_TEXT = f"{CORPUS}/text"
SIMULATION = f"{RESULTS}/simulation"
SIM_META = {split: f"{SIMULATION}/{split}/meta.tsv" for split in ("train", "valid", "test")}
# Folders `simulate render` writes beside a split's meta.tsv (targets: data/targets.py).
TEST_NOISY = f"{SIMULATION}/test/noisy"
TEST_REFERENCES = {"early": f"{SIMULATION}/test/clean", "anechoic": f"{SIMULATION}/test/clean_anechoic"}
VQSCORE = f"{RESULTS}/vqscore"
VQ_DATASIZE = f"{VQSCORE}/datasize.csv"
# The held-out-language test recordings the Table 4 analogue enhances (rule report_unseen_list).
UNSEEN_SCP = f"{RESULTS}/unseen/speech.scp"
UNSEEN_LANG = f"{RESULTS}/unseen/utt2lang"
# Relative to the working directory when it holds the checkout (the usual case), so the input
# paths Snakemake records do not change when the checkout moves.
REPORTED = os.path.relpath(f"{workflow.basedir}/experiments/reported")
TABLES_DIR = str(L.tables_dir(RESULTS))


def filtered_speech_list(name):
    """The VQScore-filtered training speech list of threshold `name`."""
    return f"{VQSCORE}/filtered/speech_train.{name}.scp"


# --- systems ----------------------------------------------------------------------------------
# A `pretrained` experiment (a model file trained elsewhere, e.g. the authors' released USEMamba)
# whose file is missing is left out of the run, with one line naming the file, so `make tables`
# works on a fresh machine; the report's tables say the row is absent and why.
from use_repro.report.experiments import (checkpoint_path as _checkpoint_path,
                                          missing_checkpoints as _missing_checkpoints,
                                          missing_message as _missing_message)

# Every declared entry, also one left out: the report's settings digest them, so adding an entry
# whose file is missing reruns the tables, whose notes then name that file.
_DECLARED = dict(EXPS)
for _name, _path in _missing_checkpoints(CFG, EXPS).items():
    print(f"use-repro: {_missing_message(EXPS[_name], _path, PROFILE)}", file=sys.stderr)
    del EXPS[_name]

# `noisy` and `original` are the unprocessed inputs the report prints beside the experiments.
NOISY_SYSTEM, ORIGINAL_SYSTEM = "noisy", "original"
# runs this DAG trains (final.pt, curves.csv); the others are scored from their own file
TRAINED = [n for n, e in EXPS.items() if e.trained]
TEST_SYSTEMS = [n for n, e in EXPS.items() if e.test]
TABLE_SYSTEMS = [n for n in config["report"]["table1"] if n in EXPS] or TEST_SYSTEMS
UNSEEN_SYSTEMS = [n for n, e in EXPS.items() if e.unseen]
RESIDUAL_SYSTEMS = [n for n in TEST_SYSTEMS if EXPS[n].stage == "gan"]


def one_of(names):
    """A wildcard pattern matching exactly these names (and nothing when there are none)."""
    names = list(names)
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


# --- simulation -------------------------------------------------------------------------------
def render_targets(split):
    """The targets the split's own render job writes beside the noisy audio: on test the
    evaluation references (TEST_REFERENCES), the targets of the GAN runs whose residual
    correlation is measured, and the regression target the Figure 5/6 spectrograms show as their
    clean panel; on train and valid none: each training target is its own job
    (simulate_render_target, train_meta), so a target only a new run needs re-renders nothing
    the other runs read."""
    if split != "test":
        return []
    else:
        names = set(TEST_REFERENCES) | {EXPS[n].target for n in RESIDUAL_SYSTEMS}
        if FIGURE_INPUTS["fig5"][1] or FIGURE_INPUTS["fig6"][1]:
            names.add(EXPS[_SPEC["regression"]].target)
    return sorted(names)


def train_meta(split, target):
    """The list a training run reads for `split` (train, valid): the rows with their noisy file
    and `target`'s, written by that target's render job."""
    return f"{SIMULATION}/{split}/meta.{target}.tsv"


def render_target_names():
    """Every target a render can make (the wildcard of simulate_render_target)."""
    from use_repro.data.targets import target_names as _target_names

    return _target_names(config["simulation"]["early_windows_ms"])


# --- shards (issue #22) ------------------------------------------------------------------------
# A stage whose `sharding` count K is above 1 runs as K `<rule>_shard` jobs (wildcard `shard`:
# `k-of-K`) and one gather job under the stage's own rule name and outputs, so nothing that
# reads the stage changes. The gathers only merge lists, so they run where Snakemake runs
# (localrules in each stage's .smk), never as cluster jobs. K = 1 keeps the stage's one rule
# exactly as before: same jobs, same commands, nothing to rerun. `sharding` is in no digest
# (`x-digest: execution` in schema.yaml): the gathered files are the unsharded job's, byte for byte.
from use_repro.shards import shard_name as _shard_name

SHARDS = {stage: int(config["sharding"][stage]) for stage in ("simulate", "vqscore", "enhance", "evaluate")}


def shard_files(stage, pattern, **wildcards):
    """The K shard files of `stage`: `pattern` with {shard} (and the other wildcards) filled in
    (`pattern` is a rule's output pattern, its braces doubled in an f-string)."""
    return [pattern.format(shard=_shard_name(k, SHARDS[stage]), **wildcards) for k in range(SHARDS[stage])]


def render_shard_lists(wc):
    name = f"meta.{wc.target}.tsv" if "target" in wc.keys() else "meta.tsv"
    return shard_files("simulate", f"{SIMULATION}/{{split}}/shards/{{shard}}/{name}", split=wc.split)


def enhance_shard_lists(wc):
    return shard_files("enhance", f"{RESULTS}/{{exp}}/enhanced/shards/{{split}}/{{shard}}/enhanced.scp",
                       exp=wc.exp, split=wc.split)


def evaluate_shard_files(wc):
    """evaluate_test's shards (wildcard ref) or evaluate_unseen's."""
    name = f"test_{wc.ref}" if "ref" in wc.keys() else "unseen"
    return shard_files("evaluate", f"{RESULTS}/{{system}}/eval/shards/{{name}}/{{shard}}.pkl", system=wc.system, name=name)


def parents(paths):
    return " ".join(parent(p) for p in paths)


# --- settings: a job's identity -----------------------------------------------------------------
# Each job that reads the profile passes `--config {params.cfg}`: a file of the resolved
# settings (profile + --config overrides + schema defaults) named by the digest of what its
# stage's settings type holds (src/use_repro/stage_settings.py: one declared type per stage,
# which its command also builds, and which refuses a file whose listed keys it does not hold).
# The name is a param, and Snakemake reruns a job whose params changed, so editing a setting
# reruns exactly the jobs that read it (and, through their outputs, everything downstream),
# editing another reruns nothing, and the relative name survives a moved checkout. Keys that
# only steer execution (threads, caches, checkpoint cadence: marked `x-digest: execution` in
# schema.yaml) are in no digest. Experiment entries are held completed with their defaults, so
# writing out a default changes nothing.
import use_repro.stage_settings as _S
from use_repro.config import digest_marks as _digest_marks, select_settings as _select_settings, \
    selection_digest as _selection_digest, write_settings_file as _write_settings
from use_repro.report.experiments import figure_job as _figure_job, table_job as _table_job


def settings_file(name, settings, extra=None):
    """The settings file of a job whose stage holds `settings` (a stage_settings type) and, for a
    training run, also digests `extra` (its experiment entry), written if missing."""
    selection = settings.selection(_digest_marks(SCHEMA))
    if extra:
        selection = dict(sorted({**selection, **extra}.items()))
    digest = _selection_digest(selection)[:16]
    return str(_write_settings(f"{RESULTS}/settings/{name}.{digest}.yaml", CFG, list(selection)))


def stage_settings(name, kind, **job):
    """settings_file of a job of settings type `kind` (a stage_settings class) and job values `job`."""
    return settings_file(name, kind.from_config(CFG, **job))


def simulate_settings(wc):
    """A split's simulation reads the simulation section, but of `splits` only its own entry."""
    return settings_file(f"simulate.{wc.split}", _S.SimulationSettings.from_config(CFG, split=wc.split))


def threshold_settings(wc):
    """One threshold's filtered list reads that threshold's entry (not the others'), how
    thresholds are applied, and the seed."""
    return settings_file(f"vqscore_filter.{wc.threshold}",
                         _S.VQScoreListSettings.from_config(CFG, threshold=wc.threshold))


def train_settings(wc):
    """A training run reads what its stage's TrainSettings holds (the trainer's resume check
    compares the same), and the DAG gives it its experiment entry as its command line (all of
    it but how the report labels and uses the run)."""
    e = EXPS[wc.exp]
    settings = _S.TrainSettings.from_config(CFG, stage=e.stage, size=e.size, simulate=False)
    entry = {"experiments": _S.completed_entries({wc.exp: config["experiments"][wc.exp]})}
    extra = _select_settings(entry, ["experiments"], [f"experiments.{wc.exp}.{k}" for k in ("label", "test", "unseen")],
                             _digest_marks(SCHEMA))
    return settings_file(f"train.{wc.exp}", settings, extra)


# --- training ---------------------------------------------------------------------------------
def train_inputs(wc):
    e = EXPS[wc.exp]
    inputs = {"train_meta": train_meta("train", e.target), "valid_meta": train_meta("valid", e.target)}
    if e.filter != "none":
        inputs["speech_list"] = filtered_speech_list(e.filter)
    if e.init:
        inputs["init"] = str(L.checkpoint(RESULTS, e.init))
    return inputs


def train_options(wc, input):
    """The experiment's options of `use-repro train` (steps, speech list, init, size, seed,
    validation cadence)."""
    e = EXPS[wc.exp]
    opts = [f"--steps {e.steps}"]
    if e.filter != "none":
        opts.append(f"--speech-list {input.speech_list}")
    if e.init:
        opts.append(f"--init {input.init}")
    if e.size:
        opts.append(f"--size {e.size}")
    if e.seed is not None:
        opts.append(f"--seed {e.seed}")
    if e.validate_every:
        opts.append(f"--validate-every {e.validate_every}")
    return " ".join(opts)


def launcher(gpus):
    """`use-repro` on a CPU; torchrun with one process per GPU when the job has GPUs."""
    gpus = int(gpus or 0)
    return f"torchrun --standalone --nproc_per_node={gpus} -m use_repro" if gpus > 0 else "use-repro"


def parent(path):
    return str(Path(path).parent)


# --- enhancement ------------------------------------------------------------------------------
def model_checkpoint(wc):
    """The model an experiment enhances with: its training run's final.pt, or the file a
    `pretrained` entry names (an input, so replacing that file reruns its enhancement)."""
    e = EXPS[wc.exp]
    return f"{RESULTS}/{wc.exp}/final.pt" if e.trained else str(_checkpoint_path(e, CFG))


# --- evaluation -------------------------------------------------------------------------------
def evaluate_settings(wc):
    """An evaluation's settings (EvaluateSettings). Only the challenge reference's evaluation
    reads the profile's `evaluate.metrics`; the others are given their metrics on the command
    line (TEST_METRICS, UNSEEN_METRICS), so editing the metric list reruns exactly the
    evaluations that compute the profile's list."""
    profile_metrics = "ref" in wc.keys() and not TEST_METRICS[wc.ref]
    return stage_settings("evaluate", _S.EvaluateSettings, profile_metrics=profile_metrics)


# Metric groups per evaluation: the challenge's reference gets the whole suite (the profile's
# evaluate.metrics); the anechoic reference the five metrics of the paper's Table 6; the held-out
# languages what Table 4 prints.
TEST_METRICS = {"early": "", "anechoic": "--metrics " + " ".join(L.TABLE6_METRICS)}
UNSEEN_METRICS = "--metrics DNSMOS SpkSim CAcc"


def _registry_available(group):
    from use_repro.metrics import registry as _registry

    return _registry.resolve(group, CFG["weights_dir"]).available


def _backend_identity(groups):
    """Which backend (name, version) computes each metric group in `groups`, and the size and
    time stamp of its paper-backend file where one is present: a param of the evaluation jobs,
    so adding, replacing or removing a weights file (`use-repro weights add`) reruns exactly the
    evaluations that use it and what reads them. Resolving loads no model (NISQA's file is hashed
    once per process)."""
    from use_repro.metrics import registry as _registry

    ident = {}
    for g in sorted(groups):
        d = _registry.resolve(g, CFG["weights_dir"]).describe()
        f = Path(CFG["weights_dir"]) / _registry.PAPER_FILES[g] if g in _registry.PAPER_FILES else None
        if f is not None and f.exists():
            st = f.stat()
            d["file"] = f"{st.st_size}:{st.st_mtime_ns}"
        ident[g] = d
    return json.dumps(ident, sort_keys=True)


# The trainer's validation MOS is the first of these with a backend (metrics.registry.validation_mos):
# adding UTMOS's weights changes every run's learning curves, so it is a param of training.
VALIDATION_MOS = next(_backend_identity([g]) for g in ("UTMOS", "DistillMOS", "DNSMOS")
                      if _registry_available(g))

METRIC_BACKENDS = {
    "early": _backend_identity(CFG["evaluate"]["metrics"]),
    "anechoic": _backend_identity(L.TABLE6_METRICS),
    "unseen": _backend_identity(UNSEEN_METRICS.split()[1:]),
}


def test_estimate(wc):
    """What evaluate_test scores: the noisy mixtures (their meta.tsv stands for the folder) or
    an experiment's enhanced test set."""
    if wc.system == NOISY_SYSTEM:
        return SIM_META["test"]
    return f"{RESULTS}/{wc.system}/enhanced/test/enhanced.scp"


def unseen_estimate(wc):
    if wc.system == ORIGINAL_SYSTEM:
        return UNSEEN_SCP
    return f"{RESULTS}/{wc.system}/enhanced/unseen/enhanced.scp"


# --- report -----------------------------------------------------------------------------------
def evals(systems, split, ref):
    return [str(L.eval_csv(RESULTS, s, split, ref)) for s in systems] + \
           [str(L.eval_json(RESULTS, s, split, ref)) for s in systems]


def curves(names):
    return [str(L.curves(RESULTS, n)) for n in names]


def valid_scores(names):
    """Each run's per-utterance validation scores (the report's paired intervals on curves)."""
    return [str(L.valid_scores(RESULTS, n)) for n in names]


def enhanced_test(names):
    return [f"{RESULTS}/{n}/enhanced/test/enhanced.scp" for n in names]


REPORT = config["report"]
_SPEC = REPORT["spectrograms"]
TABLE_INPUTS = {
    "table1": evals([NOISY_SYSTEM] + TABLE_SYSTEMS, "test", "early") + [f"{REPORTED}/table1.csv"],
    "table6": evals(TABLE_SYSTEMS, "test", "anechoic") + [f"{REPORTED}/table6.csv"],
    "table7": evals([NOISY_SYSTEM] + TABLE_SYSTEMS, "test", "early") + [f"{REPORTED}/table7.csv"],
    "table2": evals([NOISY_SYSTEM] + TABLE_SYSTEMS, "test", "early") + [f"{REPORTED}/table2.csv", SIM_META["test"]],
    "table4": evals([ORIGINAL_SYSTEM] + UNSEEN_SYSTEMS, "unseen", None) + [f"{REPORTED}/table4.csv", UNSEEN_LANG],
    "datasize": [VQ_DATASIZE],
}
TABLE_OPTIONS = {
    "table2": f"--test-meta {SIM_META['test']}",
    "table4": f"--unseen-lang {UNSEEN_LANG}",
    "datasize": f"--datasize {VQ_DATASIZE}",
}
from use_repro.report.experiments import curve_groups as _curve_groups


def curve_members(names):
    """The runs a learning-curve figure draws: the listed ones and their other seeds (drawn as
    one curve with a band)."""
    return [m for members in _curve_groups(EXPS, names).values() for m in members]


def curve_runs(names):
    """curve_members' curves.csv and per-utterance valid_scores.csv files."""
    runs = curve_members(names)
    return curves(runs) + valid_scores(runs)


# figure -> (inputs, whether this profile has the runs to draw it)
FIGURE_INPUTS = {
    "fig3a": (curve_runs(REPORT["fig3a"]), bool(REPORT["fig3a"])),
    "fig3b": (curve_runs(REPORT["fig3b"]), bool(REPORT["fig3b"])),
    "fig9": (curves([REPORT["fig9"]["two_stage"], REPORT["fig9"]["finetune"]])
             + valid_scores([REPORT["fig9"]["two_stage"], REPORT["fig9"]["finetune"]]),
             REPORT["fig9"]["two_stage"] in EXPS and REPORT["fig9"]["finetune"] in EXPS),
    "fig5": (enhanced_test([_SPEC["regression"], _SPEC["gan"]]) + [SIM_META["test"]],
             all(n in TEST_SYSTEMS for n in (_SPEC["regression"], _SPEC["gan"]))),
    "fig6": (enhanced_test([_SPEC["regression"], _SPEC["gan"]]) + [SIM_META["test"]],
             all(n in TEST_SYSTEMS for n in (_SPEC["regression"], _SPEC["gan"]))),
    "fig8": (enhanced_test([_SPEC["early"], _SPEC["shifted"]]) + [SIM_META["test"]],
             all(n in TEST_SYSTEMS for n in (_SPEC["early"], _SPEC["shifted"]))),
    "residual_correlation": ([str(L.residual_correlation(RESULTS, _SPEC["gan"]))],
                             _SPEC["gan"] in RESIDUAL_SYSTEMS),
}
DRAWN_FIGURES = [f for f, (_, ok) in FIGURE_INPUTS.items() if ok]
TABLE_FILES = [f"{TABLES_DIR}/{t}.{ext}" for t in L.TABLES for ext in ("md", "csv", "tex")]
FIGURE_FILES = [f"{FIGURES}/{f}.{ext}" for f in DRAWN_FIGURES for ext in ("png", "pdf")]


# A table's or figure's settings (TableSettings, FigureSettings): what it prints of the profile,
# and the entries of exactly the experiments it shows (in the order it shows them: `shown`), so
# adding, removing or relabelling an experiment redraws only the tables and figures that show it.
def report_table_settings(wc):
    """A table shows the declared entries (also a pretrained one whose file is missing: a note)."""
    job = _table_job({n: _DECLARED[n] for n in config["experiments"]}, REPORT["table1"], wc.table)
    return stage_settings(f"report_table.{wc.table}", _S.TableSettings, **job)


def report_figure_settings(wc):
    """A figure draws the runs of this DAG (EXPS: without a missing model file)."""
    return stage_settings(f"report_figure.{wc.figure}", _S.FigureSettings, **_figure_job(EXPS, REPORT, wc.figure))


wildcard_constraints:
    exp=one_of(EXPS),
    system=one_of(list(EXPS) + [NOISY_SYSTEM, ORIGINAL_SYSTEM]),
    split="test|unseen",
    ref="|".join(L.REFERENCES),
    table="|".join(L.TABLES),
    figure="|".join(L.FIGURES),
    shard=r"\d+-of-\d+",
