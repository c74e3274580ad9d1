"""What each stage reads of the profile: one declared, typed settings type per stage.

A stage's settings type is a frozen dataclass. Each of its fields reads one key of the resolved
profile (``reads("dotted.key")``); a key may name a value of the job (``"simulation.splits.{split}"``,
the job's `given` fields), leave out the sub-keys other stages read (``without=``), hold only some
entries of a list or mapping (``entries=``, ``only=``) or be read only in some jobs (``when=``).
The field's annotation is the schema's type of its key and its value the resolved profile's, so
the schema's default where the profile is silent (tests/test_stage_settings.py checks both
against experiments/config/schema.yaml).

The type is the only list of the keys a stage reads:

- the stage's command builds it (``load(Type, args.config, **job)``) and hands it to the library
  code, which reads its fields, not the profile;
- the DAG (experiments/rules/common.smk) names each job's settings file by the digest of the same
  type built from the same profile (``Type.from_config(cfg, **job).selection(marks)``), and lists
  the digested keys in the file's header; the command refuses a settings file whose header lists
  other keys than its type holds, so the two cannot drift apart;
- the trainer's resume check compares the training type's selection (train/setup.py).

Keys that only steer execution (threads, cache_dir, checkpoint cadence) are fields like any
other, since the stage reads them; their ``x-digest: execution`` mark in schema.yaml, a property
of the key, keeps them out of every digest (``selection``), as ``omitted-at-default`` keeps a
key at its default out.

Light on purpose (no torch, no numpy): the Snakefile imports it while it builds the DAG.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, TypeVar

from use_repro.config import ConfigError, DigestMarks, flatten, get, plain, select_settings, selection_digest
from use_repro.errors import UsageError

Job = Mapping[str, Any]  # the job's `given` values (split, threshold, stage, shown runs, ...)
S = TypeVar("S", bound="StageSettings")


def reads(key: str, *, without: tuple[str, ...] | Callable[[Job], tuple[str, ...]] = (),
          when: Callable[[Job], bool] | None = None, entries: Callable[[Job], list[str] | None] | None = None,
          only: Callable[[Job], list[str]] | None = None, entries_completed: bool = False,
          optional: bool = False) -> Any:
    """A field that holds the profile's `key` (dotted; ``{name}`` is replaced by the job's value
    `name`).

    without: dotted sub-keys of `key` the stage does not read (or a function of the job giving them).
    when: read only in the jobs for which it is true (else the field is None and in no digest).
    entries: for a list of named entries (``vqscore.thresholds``), the names held (None: all).
    only: for a mapping (``experiments``), the keys held, in this order.
    entries_completed: the experiment entries, held completed by their defaults (completed_entries).
    optional: a key the profile may leave out (no schema default): None then, and in no digest."""
    return field(metadata={"key": key, "without": without, "when": when, "entries": entries, "only": only,
                           "completed": entries_completed, "optional": optional})


def given(*, digested: bool = False) -> Any:
    """A field that is a value of the job, not a profile key (a split, a threshold's name, the
    runs a table shows). `digested`: part of the job's identity (the runs a table shows are; a
    split is already in the job's name and its keys)."""
    return field(metadata={"given": True, "digested": digested})


def _key_of(f: dataclasses.Field, job: Job) -> str:
    return f.metadata["key"].format(**job)


def _read_all(node: Any) -> None:
    """Read every leaf of `node` through [] (a traced configuration records them as read)."""
    if isinstance(node, Mapping):
        for k in list(node.keys()):
            _read_all(node[k])
    elif isinstance(node, list):
        for v in node:
            _read_all(v)


def _drop(node: dict, dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if head in node:
        if rest:
            if isinstance(node[head], dict):
                _drop(node[head], rest)
        else:
            del node[head]


def _put(nested: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        nested = nested.setdefault(p, {})
    nested[parts[-1]] = value


@dataclass(frozen=True)
class StageSettings:
    """Base of the stage settings types (a frozen dataclass of `reads` and `given` fields)."""

    STAGE: ClassVar[str] = ""

    @classmethod
    def from_config(cls: type[S], cfg: Mapping, **job: Any) -> S:
        """The settings of one job of this stage: `cfg` is the resolved profile (load_config),
        `job` the values of the `given` fields. Raises UsageError naming a missing key."""
        names = {f.name for f in dataclasses.fields(cls) if f.metadata.get("given")}
        if set(job) != names:
            raise TypeError(f"{cls.__name__}: the job's values are {sorted(names)}, given {sorted(job)}")
        values: dict[str, Any] = dict(job)
        for f in dataclasses.fields(cls):
            if f.metadata.get("given"):
                continue
            when = f.metadata["when"]
            if when is not None and not when(job):
                values[f.name] = None
                continue
            key = _key_of(f, job)
            try:
                node = get(cfg, key)  # through the mapping's [] (a traced configuration records it)
            except ConfigError:
                if f.metadata["optional"]:
                    values[f.name] = None
                    continue
                raise UsageError(f"{cls.STAGE or cls.__name__}: the configuration has no key {key} "
                                 "(is it a resolved profile? load it with use_repro.config.load_config)") from None
            value = _select(f, node, job)
            values[f.name] = value
        return cls(**values)

    def held(self) -> dict[str, Any]:
        """What this holds as a nested mapping of the profile's keys (and the digested job values
        under their field names): what the job's settings digest and the trainer's identity read."""
        nested: dict[str, Any] = {}
        job = self._job()  # the values the keys name
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("given"):
                if f.metadata["digested"]:
                    nested[f.name] = plain(value)
                continue
            if value is None and (f.metadata["when"] is not None or f.metadata["optional"]):
                continue
            if f.metadata["entries"] is not None:
                value = list(value)  # a list of entries is one leaf, as in the profile
            _put(nested, _key_of(f, job), plain(value))
        return nested

    def selection(self, marks: DigestMarks | None = None) -> dict[str, Any]:
        """{dotted key: value} of every leaf the digest covers: what this holds, minus the keys
        the schema marks `execution`, and those marked `omitted-at-default` at their default
        (`marks`: default, the package's schema)."""
        return select_settings(self.held(), ["*"], (), marks)

    def digest(self, marks: DigestMarks | None = None) -> str:
        """sha256 of the selection (the DAG names the job's settings file by its first 16 digits)."""
        return selection_digest(self.selection(marks))

    def _job(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("given")}


def _select(f: dataclasses.Field, node: Any, job: Job) -> Any:
    """The part of the profile's `node` that field `f` holds (a plain copy; reads it through the
    configuration so a traced one records exactly that)."""
    entries, only, without = f.metadata["entries"], f.metadata["only"], f.metadata["without"]
    if entries is not None:
        names = entries(job)
        picked = [e for e in node if names is None or e["name"] in names]
        _read_all(picked)
        return tuple(plain(e) for e in picked)
    if only is not None:
        picked = {k: node[k] for k in only(job) if k in node}
        _read_all(picked)
        return completed_entries(picked) if f.metadata["completed"] else plain(picked)
    if f.metadata["completed"]:
        _read_all(node)
        return completed_entries(node)
    without = without(job) if callable(without) else without
    value = plain(node)
    for sub in without:
        if isinstance(value, dict):
            _drop(value, sub)
    # record the reads of what is held, not of what is left out
    if isinstance(node, Mapping):
        kept = flatten(value)
        for k in kept:
            try:
                get(node, k)
            except ConfigError:  # a key with a dot in its name: not recorded, still held
                pass
    else:
        _read_all(node)
    return value


# --- the stages -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CorpusSettings(StageSettings):
    """`use-repro corpus`: the corpus section and the master seed."""

    STAGE: ClassVar[str] = "corpus"
    seed: int = reads("seed")
    corpus: Mapping[str, Any] = reads("corpus")
    cache_dir: str = reads("cache_dir")  # execution: where fetched packages are kept
    threads: int = reads("threads")      # execution


@dataclass(frozen=True)
class SimulationSettings(StageSettings):
    """`use-repro simulate params|render` of one split: the simulation section, of `splits` only
    the split's own entry."""

    STAGE: ClassVar[str] = "simulate"
    split: str = given()
    seed: int = reads("seed")
    simulation: Mapping[str, Any] = reads("simulation", without=("splits",))
    split_settings: Mapping[str, Any] | None = reads(
        "simulation.splits.{split}", when=lambda job: bool(job["split"]), optional=True)

    def section(self) -> dict:
        """The simulation section as it holds it (`splits`: this split's entry only), what
        data.params.SimConfig.from_config reads."""
        splits = {self.split: dict(self.split_settings)} if self.split_settings is not None else {}
        return {**plain(self.simulation), "splits": splits}


# the VQScore keys only the filter, or only the histograms, read
_VQ_FILTER_ONLY = ("thresholds", "threshold_mode", "keep_unit")
_VQ_HISTOGRAM_ONLY = ("histogram_bins", "source_order")


@dataclass(frozen=True)
class VQScoreModelSettings(StageSettings):
    """`use-repro vqscore train` and `vqscore score`: the estimator (released or trained), the
    sources, the device."""

    STAGE: ClassVar[str] = "vqscore"
    seed: int = reads("seed")
    device: str = reads("device")
    weights_dir: str = reads("weights_dir")
    vqscore: Mapping[str, Any] = reads("vqscore", without=_VQ_FILTER_ONLY + _VQ_HISTOGRAM_ONLY)


@dataclass(frozen=True)
class VQScoreSweepSettings(StageSettings):
    """`use-repro vqscore filter` of every threshold at once (the data-size table)."""

    STAGE: ClassVar[str] = "vqscore filter"
    seed: int = reads("seed")
    vqscore: Mapping[str, Any] = reads("vqscore", without=_VQ_HISTOGRAM_ONLY)


@dataclass(frozen=True)
class VQScoreListSettings(StageSettings):
    """`use-repro vqscore filter --only-list NAME`: one threshold's entry (not the others') and
    how thresholds apply."""

    STAGE: ClassVar[str] = "vqscore filter"
    threshold: str = given()
    seed: int = reads("seed")
    thresholds: tuple[Mapping[str, Any], ...] = reads("vqscore.thresholds", entries=lambda job: [job["threshold"]])
    threshold_mode: str = reads("vqscore.threshold_mode")
    keep_unit: str = reads("vqscore.keep_unit")


@dataclass(frozen=True)
class VQScoreHistogramSettings(StageSettings):
    """`use-repro vqscore histogram` (Figures 2 and 7). Without the filter's table it draws the
    profile's score thresholds, and then reads how thresholds apply (`with_thresholds`)."""

    STAGE: ClassVar[str] = "vqscore histogram"
    with_thresholds: bool = given()
    profile: str = reads("profile")
    vqscore: Mapping[str, Any] = reads("vqscore", without=("threshold_mode", "keep_unit"))
    threshold_mode: str | None = reads("vqscore.threshold_mode", when=lambda job: job["with_thresholds"])


def _train_model_sections(job: Job) -> tuple[str, ...]:
    """The model sections a training stage does not build, and the named sizes it does not use."""
    stage = job["stage"]
    return {"regression": ("generator", "discriminator"), "finetune": ("generator",)}.get(stage, ())


@dataclass(frozen=True)
class TrainSettings(StageSettings):
    """`use-repro train <stage>`: the model sections the stage builds (and the named size it
    uses, not the others), the trainer section without the other stages' losses, and with
    on-the-fly simulation the simulation section.

    stage: regression, gan or finetune; size: a name of model.sizes or ""."""

    STAGE: ClassVar[str] = "train"
    stage: str = given()
    size: str = given()
    simulate: bool = given()
    seed: int = reads("seed")
    device: str = reads("device")
    weights_dir: str = reads("weights_dir")
    model: Mapping[str, Any] = reads("model", without=lambda job: _train_model_sections(job) + ("sizes",))
    size_settings: Mapping[str, Any] | None = reads("model.sizes.{size}", when=lambda job: bool(job["size"]))
    train: Mapping[str, Any] = reads("train", without=lambda job: (
        ("gan_loss_weights", "gan_loss") if job["stage"] == "regression" else ("loss_weights",)))
    simulation: Mapping[str, Any] | None = reads("simulation", when=lambda job: job["simulate"])

    def model_config(self) -> dict:
        """The model sections as models.build reads them (`sizes`: the used one only)."""
        sizes = {self.size: dict(self.size_settings)} if self.size_settings is not None else {}
        return {"model": {**plain(self.model), "sizes": sizes}}


@dataclass(frozen=True)
class EvaluateSettings(StageSettings):
    """`use-repro evaluate`: the metric backends' device and weights, and the profile's metric
    list where the command is not given one (`profile_metrics`)."""

    STAGE: ClassVar[str] = "evaluate"
    profile_metrics: bool = given()
    seed: int = reads("seed")
    device: str = reads("device")
    weights_dir: str = reads("weights_dir")
    metrics: list[str] | None = reads("evaluate.metrics", when=lambda job: job["profile_metrics"])


@dataclass(frozen=True)
class UnseenListSettings(StageSettings):
    """`use-repro report unseen-list`: the held-out languages and how many recordings of each."""

    STAGE: ClassVar[str] = "report unseen-list"
    heldout_languages: list[str] = reads("corpus.heldout_languages")
    unseen_per_language: int = reads("report.unseen_per_language")


@dataclass(frozen=True)
class CompareSettings(StageSettings):
    """`use-repro report compare`: every run's entry and the model sizes it prints (not the unused
    named sizes), and the settings its notes name (learning rate and its decay, the thresholds
    and how they apply, the target level, the ranking's decimals)."""

    STAGE: ClassVar[str] = "report compare"
    pretrained: bool = given()  # whether a run is a `pretrained` model file
    profile: str = reads("profile")
    # where a pretrained run's file is (the comparison names it)
    weights_dir: str | None = reads("weights_dir", when=lambda job: job["pretrained"])
    report: Mapping[str, Any] = reads("report")
    experiments: Mapping[str, Any] = reads("experiments", entries_completed=True)
    model: Mapping[str, Any] = reads("model", without=("sizes",))
    lr: float = reads("train.lr")
    lr_decay: float = reads("train.lr_decay")
    thresholds: tuple[Mapping[str, Any], ...] = reads("vqscore.thresholds", entries=lambda job: None)
    threshold_mode: str = reads("vqscore.threshold_mode")
    target_gain: str = reads("simulation.target_gain")
    rank_decimals: int = reads("evaluate.rank_decimals")


# What a table prints of the profile besides its runs (report/tables.py)
_TABLE_READS = {"table7": ("rank_decimals",), "datasize": ("thresholds",)}


@dataclass(frozen=True)
class TableSettings(StageSettings):
    """`use-repro report table NAME`: the decimals, which runs are the paper's Table 1 and the
    proposed system, Table 7's ranking decimals, the data-size table's thresholds, and the
    entries of exactly the runs it shows (`shown`, in its order)."""

    STAGE: ClassVar[str] = "report table"
    table: str = given()
    shown: tuple[str, ...] = given(digested=True)
    pretrained: bool = given()  # whether a shown run is a `pretrained` model file
    profile: str = reads("profile")
    # where a pretrained run's file is (named in a note when it is missing)
    weights_dir: str | None = reads("weights_dir", when=lambda job: job["pretrained"])
    decimals: int = reads("report.decimals")
    table1: list[str] | None = reads("report.table1", when=lambda job: job["table"] != "datasize")
    proposed: str | None = reads("report.proposed", when=lambda job: job["table"] != "datasize")
    rank_decimals: int | None = reads("evaluate.rank_decimals", when=lambda job: job["table"] == "table7")
    thresholds: tuple[Mapping[str, Any], ...] | None = reads(
        "vqscore.thresholds", entries=lambda job: None, when=lambda job: job["table"] == "datasize")
    experiments: Mapping[str, Any] = reads("experiments", only=lambda job: list(job["shown"]), entries_completed=True)


@dataclass(frozen=True)
class FigureSettings(StageSettings):
    """`use-repro report figure NAME`: the report keys the figure reads, and the entries of
    exactly the runs it draws (`shown`); Figure 3(a) also the thresholds its runs were filtered
    with (`thresholds`: their names), by which it names its curves."""

    STAGE: ClassVar[str] = "report figure"
    figure: str = given()
    shown: tuple[str, ...] = given(digested=True)
    thresholds_shown: tuple[str, ...] = given()
    profile: str = reads("profile")
    fig3a: list[str] | None = reads("report.fig3a", when=lambda job: job["figure"] == "fig3a")
    fig3b: list[str] | None = reads("report.fig3b", when=lambda job: job["figure"] == "fig3b")
    mos_metric: str | None = reads("report.mos_metric", when=lambda job: job["figure"] in ("fig3a", "fig3b"))
    thresholds: tuple[Mapping[str, Any], ...] | None = reads(
        "vqscore.thresholds", entries=lambda job: list(job["thresholds_shown"]), when=lambda job: job["figure"] == "fig3a")
    fig9: Mapping[str, Any] | None = reads("report.fig9", when=lambda job: job["figure"] == "fig9")
    spectrograms: Mapping[str, Any] | None = reads(
        "report.spectrograms", when=lambda job: job["figure"] not in ("fig3a", "fig3b", "fig9"))
    experiments: Mapping[str, Any] = reads("experiments", only=lambda job: list(job["shown"]), entries_completed=True)


@dataclass(frozen=True)
class ProvenanceSettings(StageSettings):
    """`use-repro report provenance`: the profile's name."""

    STAGE: ClassVar[str] = "report provenance"
    profile: str = reads("profile")


STAGE_TYPES: tuple[type[StageSettings], ...] = (
    CorpusSettings, SimulationSettings, VQScoreModelSettings, VQScoreSweepSettings, VQScoreListSettings,
    VQScoreHistogramSettings, TrainSettings, EvaluateSettings, UnseenListSettings, CompareSettings,
    TableSettings, FigureSettings, ProvenanceSettings)


# --- experiment entries -------------------------------------------------------------------------

# Defaults of an entry (mirrors experiments.additionalProperties in schema.yaml, which the
# generic default-filler does not descend into; tests/test_stage_settings.py compares the two).
ENTRY_DEFAULTS = {"stage": "regression", "target": "shifted", "filter": "none", "init": "",
                  "size": "", "steps": 1000, "test": False, "unseen": False, "gpus": 0, "label": "",
                  "checkpoint": "", "seed": None, "validate_every": 0}


def completed_entries(node: Mapping) -> dict[str, dict]:
    """The profile's `experiments` entries completed by their defaults, as the stages that print
    runs hold them (so writing out a default changes no digest), without an empty `checkpoint`
    (every trained run's) or a `validate_every` of 0, so those keys' arrival changed no digest."""
    return {n: {k: v for k, v in {**ENTRY_DEFAULTS, **plain(entry or {})}.items()
                if k not in ("checkpoint", "validate_every") or v}
            for n, entry in node.items()}


def load(cls: type[S], config: str | Path, **job: Any) -> S:
    """The settings of one job, as its command builds them: the profile or settings file
    `config` (load_config), read by `cls` (from_profile)."""
    from use_repro.config import load_config

    return from_profile(cls, load_config(config), config, **job)


def from_profile(cls: type[S], cfg: Mapping, config: str | Path, **job: Any) -> S:
    """`cls.from_config(cfg, **job)` for a command that loaded `cfg` from `config` (a profile or
    settings file). A settings file written by the DAG lists the keys its digest covers; a key
    `cls` holds (and the schema does not mark execution-only) outside them is refused
    (UsageError naming it): the job would not rerun when that key changes. (A digest may cover
    more than a command reads: a split's render job shares the split's file with its params
    job, and only params reads the split's own entry.)"""
    from use_repro.config import settings_file_keys

    settings = cls.from_config(cfg, **job)
    path = Path(config)
    listed = settings_file_keys(path) if path.suffix in (".yaml", ".yml") and path.is_file() else None
    if listed is not None:
        unlisted = sorted(set(settings.selection()) - set(listed))
        if unlisted:
            raise UsageError(f"{config}: `{cls.STAGE}` reads keys this settings file's digest does not cover "
                             f"({', '.join(unlisted)}), so editing them would not rerun it; the Snakefile and "
                             "the package are from different checkouts?")
    return settings
