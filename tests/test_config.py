import pytest

from use_repro.config import PROFILES, ConfigError, load_config, validate_config


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_validates(profile):
    cfg = load_config(profile)
    assert cfg["profile"] == profile
    assert cfg["seed"] >= 0


def test_defaults_are_filled():
    cfg = validate_config({"profile": "x"})
    assert cfg["device"] == "auto"
    assert cfg["corpus"]["kind"] == "embedded"


def test_unknown_key_is_named_with_allowed_keys():
    with pytest.raises(ConfigError) as e:
        validate_config({"corpus": {"knd": "embedded"}})
    msg = str(e.value)
    assert "corpus.knd" in msg and "unknown key" in msg and "official_dir" in msg


def test_bad_enum_value_names_key_and_choices():
    with pytest.raises(ConfigError) as e:
        validate_config({"device": "tpu"})
    assert "config key device" in str(e.value) and "cuda" in str(e.value)


def test_unknown_profile():
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_config("nope")


def test_every_schema_property_documents_itself():
    from use_repro.config import load_schema

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key}: no description"
            assert "default" in sub, f"{path}{key}: no default"
            if sub.get("type") == "object":
                walk(sub, f"{path}{key}.")

    walk(load_schema(), "")


# --- the DAG's loader: profile name and --config overrides ------------------------------------

def _copy_tiny(path, **changes):
    import yaml

    from use_repro.config import CONFIG_DIR

    raw = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("profile", PROFILES)
def test_every_shipped_profile_is_named_after_its_file(profile):
    from use_repro.config import load_profile

    assert load_profile(profile) == load_config(profile)


def test_a_copied_profile_must_not_claim_another_profiles_results(tmp_path):
    from use_repro.config import load_profile

    with pytest.raises(ConfigError) as e:
        load_profile(_copy_tiny(tmp_path / "mine.yaml"))
    assert "profile: tiny" in str(e.value) and "'mine'" in str(e.value)
    # named after its file, or without the key, it is its own profile
    assert load_profile(_copy_tiny(tmp_path / "mine.yaml", profile="mine"))["profile"] == "mine"
    p = tmp_path / "other.yaml"
    p.write_text("seed: 1\n")
    assert load_profile(p)["profile"] == "other"


def test_config_overrides_apply_with_the_schemas_types():
    from use_repro.config import load_profile

    # nested overrides reach Snakemake as YAML read with strings only
    cfg = load_profile("tiny", {"profile": "tiny", "seed": 3, "train": {"lr": "0.002"},
                                "experiments": {"shifted": {"steps": "9"}}, "device": "cpu"})
    assert cfg["seed"] == 3 and cfg["train"]["lr"] == 0.002 and cfg["device"] == "cpu"
    assert cfg["experiments"]["shifted"]["steps"] == 9
    assert cfg["experiments"]["shifted"]["target"] == "shifted"  # the rest of the entry stays
    assert cfg["train"]["checkpoint_every"] == load_config("tiny")["train"]["checkpoint_every"]


@pytest.mark.parametrize("overrides,named", [
    ({"sead": 3}, "--config sead: unknown key"),
    ({"train": {"lrr": "1"}}, "--config train.lrr: unknown key"),
    ({"experiments": {"shifted": {"stepz": "3"}}}, "--config experiments.shifted.stepz: unknown key"),
    ({"seed": -1}, "config key seed"),
    ({"train": {"lr": "fast"}}, "config key train.lr"),
])
def test_bad_config_overrides_are_refused_by_name(overrides, named):
    from use_repro.config import load_profile

    with pytest.raises(ConfigError) as e:
        load_profile("tiny", overrides)
    assert named in str(e.value), str(e.value)


# --- settings digests -------------------------------------------------------------------------

def test_settings_digest_covers_the_selected_keys_only():
    from use_repro.config import select_settings, settings_digest

    cfg = load_config("tiny")
    d = settings_digest(cfg, ["seed", "train"])
    changed = lambda **kw: {**cfg, **kw}  # noqa: E731
    assert settings_digest(changed(seed=1), ["seed", "train"]) != d
    assert settings_digest(changed(train={**cfg["train"], "lr": 0.5}), ["seed", "train"]) != d
    # other sections and execution-only keys do not count
    assert settings_digest(changed(report={}), ["seed", "train"]) == d
    assert settings_digest(changed(threads=7, train={**cfg["train"], "checkpoint_every": 3}), ["seed", "train"]) == d
    # patterns span dots; excluded keys leave the digest
    sel = select_settings(cfg, ["model.*.channels"], ["model.generator"])
    assert sel == {"model.discriminator.channels": 4, "model.regression.channels": 4}
    assert settings_digest(cfg, ["train"], ["train.lr"]) == settings_digest(
        changed(train={**cfg["train"], "lr": 0.5}), ["train"], ["train.lr"])


def test_keys_that_arrived_at_a_noop_default_leave_the_digest_as_before():
    """A key added after results existed (schema mark `x-digest: omitted-at-default`) at its
    default digests as if it were absent, so results made before it arrived stay current; any
    other value counts."""
    from use_repro.config import digest_marks, get, settings_digest

    cfg = load_config("tiny")
    assert cfg["corpus"]["ktuberling_train_languages"] == [] and cfg["train"]["segment_max_rate"] == 0
    before = {**cfg, "corpus": {k: v for k, v in cfg["corpus"].items() if k != "ktuberling_train_languages"},
              "train": {k: v for k, v in cfg["train"].items() if k != "segment_max_rate"}}
    for keys in (["corpus"], ["train"]):
        assert settings_digest(cfg, keys) == settings_digest(before, keys)
    assert settings_digest({**cfg, "corpus": {**cfg["corpus"], "ktuberling_train_languages": ["de"]}},
                           ["corpus"]) != settings_digest(before, ["corpus"])
    assert settings_digest({**cfg, "train": {**cfg["train"], "segment_max_rate": 16000}},
                           ["train"]) != settings_digest(before, ["train"])
    omitted = digest_marks().omitted_at_default
    assert {"corpus.ktuberling_train_languages", "train.segment_max_rate"} <= set(omitted)
    for key, value in omitted.items():  # the no-op value is the schema default
        assert get(cfg, key) == value, key


def test_digest_marks_are_properties_of_the_schema_keys(tmp_path):
    """Execution-only keys and omitted-at-default keys come from the schema's `x-digest` marks:
    marking a key leaves it out of every digest, unmarking it puts it back; a bad mark is refused
    by name."""
    import yaml

    from use_repro.config import ConfigError, DigestMarks, load_schema, settings_digest

    schema = load_schema()
    marks = DigestMarks(schema)
    # what the shipped schema marks (the keys that steer execution, never results)
    for key in ("threads", "cache_dir", "sharding", "train.checkpoint_every", "train.num_workers",
                "model.regression.scan_backend", "model.sizes.*.mamba_checkpoint"):
        assert key in marks.execution, key
    assert "train.lr" not in marks.execution and "vqscore.train.log_every" not in marks.execution
    cfg = load_config("tiny")
    lr = {**cfg, "train": {**cfg["train"], "lr": 0.5}}
    assert settings_digest(cfg, ["train"], marks=marks) != settings_digest(lr, ["train"], marks=marks)
    # mark train.lr as execution-only: the edit no longer counts
    marked = yaml.safe_load(yaml.safe_dump(schema))
    marked["properties"]["train"]["properties"]["lr"]["x-digest"] = "execution"
    m2 = DigestMarks(marked)
    assert settings_digest(cfg, ["train"], marks=m2) == settings_digest(lr, ["train"], marks=m2)
    marked["properties"]["train"]["properties"]["lr"]["x-digest"] = "sometimes"
    with pytest.raises(ConfigError, match="train.lr"):
        DigestMarks(marked)


def test_settings_diff_names_every_changed_leaf():
    from use_repro.config import settings_diff

    old = {"target": "shifted", "settings": {"train.lr": 0.001}, "data": {"a": 1}}
    new = {"target": "early", "settings": {"train.lr": 0.001}, "data": {"a": 1, "b": 2}}
    assert settings_diff(old, new) == ["data.b: (absent) -> 2", "target: 'shifted' -> 'early'"]
    assert settings_diff(old, old) == []


def test_settings_files_hold_the_latest_resolved_config(tmp_path):
    import os

    from use_repro.config import write_settings_file

    cfg = load_config("tiny", {"seed": 4})
    p = write_settings_file(tmp_path / "s" / "train.x.yaml", cfg)
    assert load_config(p) == cfg
    os.utime(p, (1, 1))
    write_settings_file(p, cfg)  # unchanged: not rewritten
    assert p.stat().st_mtime == 1
    # an execution-only key changed (same digest, same name): the job must see the new value
    cfg2 = load_config("tiny", {"seed": 4, "cache_dir": "elsewhere"})
    write_settings_file(p, cfg2)
    assert load_config(p)["cache_dir"] == "elsewhere"


def test_settings_files_list_the_keys_their_digest_covers(tmp_path):
    from use_repro.config import settings_file_keys, write_settings_file

    cfg = load_config("tiny")
    keys = [f"model.regression.k{i:03d}" for i in range(40)] + ["seed"]
    path = write_settings_file(tmp_path / "job.0123.yaml", cfg, keys)
    assert settings_file_keys(path) == keys  # wrapped over several comment lines, read back whole
    assert load_config(path) == cfg  # the header is a comment: the settings read as before
    assert settings_file_keys(write_settings_file(tmp_path / "none.yaml", cfg, [])) == []
    assert settings_file_keys(write_settings_file(tmp_path / "old.yaml", cfg)) is None


def test_a_traced_configuration_records_the_leaves_read_and_stores_as_plain_dicts(tmp_path, monkeypatch):
    import copy
    import io
    import json

    import torch

    from use_repro import config as C

    monkeypatch.setenv(C.TRACE_ENV, str(tmp_path / "trace"))
    monkeypatch.setattr(C, "_TRACES", [])
    monkeypatch.setattr("atexit.register", lambda fn: None)
    cfg = C.load_config("tiny")
    assert cfg["train"]["lr"] == 1.0e-3 and cfg.get("seed") == 0 and cfg["model"]["regression"].get("nope") is None
    assert cfg.get("absent", 5) == 5
    section = cfg["vqscore"]  # a section is not a leaf: nothing recorded until a leaf is read
    assert isinstance(section, dict)
    C._write_traces()
    (trace,) = (tmp_path / "trace").glob("*.json")
    assert json.loads(trace.read_text())["read"] == ["seed", "train.lr"]
    # what a checkpoint stores is a plain dict, loadable with weights_only
    buf = io.BytesIO()
    torch.save({"config": C.plain(cfg)}, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["config"] == C.plain(cfg)
    assert type(copy.deepcopy(cfg)) is dict and C.plain(cfg) == cfg
