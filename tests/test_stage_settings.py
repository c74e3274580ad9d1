"""The per-stage settings types (src/use_repro/stage_settings.py): their fields are the schema's
keys with the schema's types and defaults, their digests leave out execution keys, and a
command refuses a settings file whose digest does not cover what it reads."""
from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from use_repro import stage_settings as S
from use_repro.config import SCHEMA_PATH, flatten, load_config, validate_config, write_settings_file
from use_repro.errors import UsageError

SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())

# an example job of every type (the values of its `given` fields)
JOBS = {
    S.CorpusSettings: {},
    S.SimulationSettings: {"split": "train"},
    S.VQScoreModelSettings: {},
    S.VQScoreSweepSettings: {},
    S.VQScoreListSettings: {"threshold": "vq050"},
    S.VQScoreHistogramSettings: {"with_thresholds": True},
    S.TrainSettings: {"stage": "gan", "size": "", "simulate": True},
    S.EvaluateSettings: {"profile_metrics": True},
    S.UnseenListSettings: {},
    S.CompareSettings: {"pretrained": True},
    S.TableSettings: {"table": "table7", "shown": ("early",), "pretrained": True},
    S.FigureSettings: {"figure": "fig3a", "shown": ("vq050",), "thresholds_shown": ("vq050",)},
    S.ProvenanceSettings: {},
}


def schema_at(dotted: str) -> dict:
    """The schema of a dotted key (`{name}` parts: any key of a mapping)."""
    node = SCHEMA
    for part in dotted.split("."):
        props = node.get("properties") or {}
        if part in props:
            node = props[part]
        elif part.startswith("{") or isinstance(node.get("additionalProperties"), dict):
            node = node.get("additionalProperties") if isinstance(node.get("additionalProperties"), dict) \
                else props.get(part, {})
        else:
            raise KeyError(f"{dotted}: no schema key {part}")
    return node


def schema_kind(node: dict) -> set[str]:
    """What the schema allows at a key, as JSON kinds."""
    if "enum" in node:
        return {type(v).__name__ for v in node["enum"]} | ({"NoneType"} if None in node["enum"] else set())
    kinds = node.get("type")
    if kinds is None and "oneOf" in node:
        return set().union(*(schema_kind(n) for n in node["oneOf"]))
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    names = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "array": "list",
             "object": "dict", "null": "NoneType"}
    return {names[k] for k in kinds}


def annotation_kind(hint) -> set[str]:
    """The JSON kinds a field's annotation admits (None is left to `when`/`optional` fields)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, __import__("types").UnionType):
        return set().union(*(annotation_kind(a) for a in typing.get_args(hint) if a is not type(None)))
    origin = origin or hint
    if origin in (list, tuple):
        return {"list"}
    if origin in (dict, typing.Mapping, __import__("collections.abc").abc.Mapping):
        return {"dict"}
    return {origin.__name__}


def key_fields(cls):
    return [f for f in dataclasses.fields(cls) if "key" in f.metadata]


def test_every_stage_has_a_type_and_an_example_job():
    assert set(JOBS) == set(S.STAGE_TYPES)


@pytest.mark.parametrize("cls", S.STAGE_TYPES, ids=lambda c: c.__name__)
def test_each_field_is_a_schema_key_with_the_schema_s_type(cls):
    hints = typing.get_type_hints(cls)
    for f in key_fields(cls):
        node = schema_at(f.metadata["key"])
        want = schema_kind(node)
        have = annotation_kind(hints[f.name])
        if f.metadata["entries"] is not None:  # a list of named entries, held as a tuple of them
            assert want == {"list"}, (cls.__name__, f.name)
            continue
        if not want:  # a key the schema leaves open (no type): any annotation will do
            continue
        # an integer key may be held as a float field (JSON numbers), never the other way
        assert have & want or (have == {"float"} and "int" in want), (cls.__name__, f.name, have, want)
        # a field that can be absent or not read says so in its annotation
        if f.metadata["when"] is not None or f.metadata["optional"]:
            assert type(None) in typing.get_args(hints[f.name]), (cls.__name__, f.name)


@pytest.mark.parametrize("cls", S.STAGE_TYPES, ids=lambda c: c.__name__)
def test_values_are_the_schema_s_defaults_where_the_profile_is_silent(cls):
    run = {"stage": "regression", "target": "early", "steps": 2}
    defaults = validate_config({"experiments": {"early": {**run, "test": True}, "vq050": {**run, "filter": "vq050"}},
                                "simulation": {"splits": {"train": {}}}})
    settings = cls.from_config(defaults, **JOBS[cls])
    checked = 0
    for f in key_fields(cls):
        value = getattr(settings, f.name)
        if value is None or f.metadata["entries"] is not None or f.metadata["completed"]:
            continue  # not read in this job, or entries the test wrote
        key = f.metadata["key"].format(**JOBS[cls])
        leaves = flatten(value) if isinstance(value, dict) else {"": value}
        for sub, leaf in leaves.items():
            try:
                node = schema_at(f"{key}.{sub}" if sub else key)
            except KeyError:
                continue  # below an open mapping (a noise kind's parameters, a size's name)
            if "default" in node and not (isinstance(node["default"], dict) and not node["default"]):
                assert (list(leaf) if isinstance(leaf, tuple) else leaf) == node["default"], (cls.__name__, key, sub)
                checked += 1
    assert checked, cls.__name__


def test_experiment_entry_defaults_are_the_schema_s():
    entry = SCHEMA["properties"]["experiments"]["additionalProperties"]["properties"]
    assert set(S.ENTRY_DEFAULTS) == set(entry)
    for k, v in S.ENTRY_DEFAULTS.items():  # `stage`, `target` and `steps` are required there
        assert entry[k].get("default", v) == v, k
    assert sum("default" in entry[k] for k in entry) >= len(entry) - 3


def test_a_digest_covers_what_the_type_holds_except_execution_keys():
    cfg = load_config("tiny")
    corpus = S.CorpusSettings.from_config(cfg)
    keys = set(corpus.selection())
    assert "seed" in keys and any(k.startswith("corpus.") for k in keys)
    assert "threads" not in keys and "cache_dir" not in keys      # execution keys: held, not digested
    assert corpus.threads == cfg["threads"] and corpus.cache_dir == cfg["cache_dir"]
    # an edit of an execution key keeps the digest; of a read key changes it
    assert S.CorpusSettings.from_config({**cfg, "threads": 7}).digest() == corpus.digest()
    assert S.CorpusSettings.from_config({**cfg, "seed": 7}).digest() != corpus.digest()
    # a split reads its own entry, not the others'
    sims = {s: S.SimulationSettings.from_config(cfg, split=s) for s in ("train", "valid", "test")}
    assert not any(k.startswith("simulation.splits.valid") for k in sims["train"].selection())
    edited = {**cfg, "simulation": {**cfg["simulation"], "splits": {**cfg["simulation"]["splits"],
                                                                     "valid": {"rows": 99}}}}
    assert S.SimulationSettings.from_config(edited, split="train").digest() == sims["train"].digest()
    assert S.SimulationSettings.from_config(edited, split="valid").digest() != sims["valid"].digest()


def test_one_threshold_s_list_holds_that_threshold_alone():
    cfg = load_config("tiny")
    names = [t["name"] for t in cfg["vqscore"]["thresholds"]]
    one = S.VQScoreListSettings.from_config(cfg, threshold=names[0])
    assert [t["name"] for t in one.thresholds] == [names[0]]
    other = [dict(t, keep=0.123) if t["name"] == names[1] else t for t in cfg["vqscore"]["thresholds"]]
    edited = {**cfg, "vqscore": {**cfg["vqscore"], "thresholds": other}}
    assert S.VQScoreListSettings.from_config(edited, threshold=names[0]).digest() == one.digest()
    assert S.VQScoreListSettings.from_config(edited, threshold=names[1]).digest() != \
        S.VQScoreListSettings.from_config(cfg, threshold=names[1]).digest()


def test_a_missing_key_or_wrong_job_values_are_named():
    cfg = load_config("tiny")
    with pytest.raises(UsageError, match="model.sizes.huge"):
        S.TrainSettings.from_config(cfg, stage="regression", size="huge", simulate=False)
    with pytest.raises(TypeError, match="split"):
        S.SimulationSettings.from_config(cfg)


def test_a_command_refuses_a_settings_file_that_does_not_cover_what_it_reads(tmp_path):
    cfg = load_config("tiny")
    settings = S.EvaluateSettings.from_config(cfg, profile_metrics=True)
    keys = list(settings.selection())
    good = write_settings_file(tmp_path / "evaluate.a.yaml", cfg, keys)
    assert S.load(S.EvaluateSettings, str(good), profile_metrics=True) == settings
    # the DAG digested the evaluation without the metric list, but this command reads it
    short = write_settings_file(tmp_path / "evaluate.b.yaml", cfg, [k for k in keys if k != "evaluate.metrics"])
    with pytest.raises(UsageError, match="evaluate.metrics"):
        S.load(S.EvaluateSettings, str(short), profile_metrics=True)
    # given its metrics on the command line it does not read them: the same file is fine
    S.load(S.EvaluateSettings, str(short), profile_metrics=False)
    # a profile (no list of digested keys) is not checked
    S.load(S.EvaluateSettings, "tiny", profile_metrics=True)


def test_the_trainer_s_identity_and_the_dag_digest_are_one_selection():
    """train_settings in common.smk digests TrainSettings' selection plus the experiment entry;
    the trainer's resume identity is that selection (train/setup.py)."""
    from pathlib import Path

    common = (Path(S.__file__).parents[2] / "experiments" / "rules" / "common.smk").read_text()
    setup = (Path(S.__file__).parent / "train" / "setup.py").read_text()
    assert "_S.TrainSettings.from_config(CFG" in common and '"settings": self.profile.selection()' in setup
    assert "SETTINGS = {" not in common  # the hand-kept list is gone


def test_a_key_no_type_reads_is_in_no_digest_and_a_read_one_in_its_stage_s_only():
    """A new `evaluate` key, which no type declares, changes no digest; `train.threads` (what a
    run computes with) changes every training run's digest and no other stage's."""
    cfg = load_config("tiny")
    jobs = {cls: cls.from_config(cfg, **JOBS[cls]).digest() for cls in S.STAGE_TYPES}
    added = {**cfg, "evaluate": {**cfg["evaluate"], "frame_hop_ms": 10.0}}
    assert {cls: cls.from_config(added, **JOBS[cls]).digest() for cls in S.STAGE_TYPES} == jobs
    threads = {**cfg, "train": {**cfg["train"], "threads": 2}}
    changed = {cls for cls in S.STAGE_TYPES if cls.from_config(threads, **JOBS[cls]).digest() != jobs[cls]}
    assert changed == {S.TrainSettings}
    # at its default it is left out, so the runs made before the key arrived stay current
    assert "train.threads" not in S.TrainSettings.from_config(cfg, **JOBS[S.TrainSettings]).selection()
