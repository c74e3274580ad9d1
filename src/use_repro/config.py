"""Profile configuration: load a YAML profile, fill defaults from the schema, validate.

Every profile (`experiments/config/{tiny,mini,gpu,urgent2025}.yaml`) is checked against
`experiments/config/schema.yaml` before any job runs. The schema is JSON Schema written in YAML;
every property carries a `description` and a `default`, and every object forbids unknown keys,
so a typo stops the run with the key's dotted path and the keys that are allowed.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "experiments" / "config"
SCHEMA_PATH = CONFIG_DIR / "schema.yaml"
PROFILES = ("tiny", "mini", "gpu", "urgent2025")


class ConfigError(ValueError):
    """A profile key is unknown, missing or has a value outside what the schema allows."""


def load_schema(path: Path | str = SCHEMA_PATH) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def resolve_profile_path(profile_or_path: str | Path) -> Path:
    """`mini` -> experiments/config/mini.yaml; an existing path is returned as is."""
    p = Path(profile_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: no such config file")
        return p
    candidate = CONFIG_DIR / f"{profile_or_path}.yaml"
    if not candidate.exists():
        known = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml") if x.stem != "schema")
        raise ConfigError(f"unknown profile {profile_or_path!r}; known profiles: {', '.join(known)}")
    return candidate


def fill_defaults(cfg: dict, schema: dict) -> dict:
    """Return a copy of `cfg` with every missing key that has a schema `default` filled in."""
    out = copy.deepcopy(cfg) if cfg is not None else {}
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if sub.get("type") == "object" and isinstance(out.get(key), dict):
            out[key] = fill_defaults(out[key], sub)
    return out


def _format_error(err) -> str:
    path = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    schema = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        where = f"{path}." if path != "<top level>" else ""
        return (f"config key {', '.join(where + e for e in extra)}: unknown key; "
                f"allowed here: {', '.join(allowed)}")
    allowed = ""
    if "enum" in schema:
        allowed = f"; allowed: {', '.join(map(str, schema['enum']))}"
    elif "minimum" in schema or "maximum" in schema:
        allowed = f"; allowed range: [{schema.get('minimum', '-inf')}, {schema.get('maximum', 'inf')}]"
    elif "type" in schema:
        allowed = f"; expected type: {schema['type']}"
    return f"config key {path}: {err.message}{allowed}"


def validate_config(cfg: dict, schema: dict | None = None) -> dict:
    """Fill defaults and validate; raise ConfigError naming every offending key.

    Returns the completed config (the input is not modified).
    """
    import jsonschema

    schema = schema if schema is not None else load_schema()
    full = fill_defaults(cfg or {}, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(full), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_format_error(e) for e in errors))
    return full


def load_config(profile_or_path: str | Path, overrides: dict | None = None) -> dict:
    """Load a profile by name or path, apply `overrides` (nested dict), fill defaults, validate."""
    path = resolve_profile_path(profile_or_path)
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if overrides:
        raw = deep_update(raw, overrides)
    raw.setdefault("profile", path.stem)
    try:
        return validate_config(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def deep_update(base: dict, upd: dict) -> dict:
    """Recursively merge `upd` into a copy of `base`."""
    out = copy.deepcopy(base)
    for k, v in upd.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def results_dir(cfg: dict) -> Path:
    """`results/<profile>` (relative to the working directory, as the DAG uses it)."""
    return Path(cfg.get("results_root", "results")) / cfg["profile"]


def figures_dir(cfg: dict) -> Path:
    return Path(cfg.get("figures_root", "figures")) / cfg["profile"]


def get(cfg: dict, dotted: str) -> Any:
    """`get(cfg, "train.steps")` with an error naming the key when it is absent."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"config key {dotted}: missing")
        node = node[part]
    return node
