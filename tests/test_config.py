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
