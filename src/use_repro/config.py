"""Profile configuration: load a YAML profile, fill defaults from the schema, validate.

Every profile (`experiments/config/{tiny,mini,gpu,urgent2025}.yaml`) is checked against
`experiments/config/schema.yaml` before any job runs. The schema is JSON Schema written in YAML;
every property carries a `description` and a `default`, and every object forbids unknown keys,
so a typo stops the run with the key's dotted path and the keys that are allowed.
"""
from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "experiments" / "config"
SCHEMA_PATH = CONFIG_DIR / "schema.yaml"
PROFILES = ("tiny", "mini", "small", "gpu", "urgent2025")


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


def load_config(profile_or_path: str | Path, overrides: dict | None = None,
                schema_path: Path | str = SCHEMA_PATH) -> dict:
    """Load a profile by name or path, apply `overrides` (nested dict), fill defaults, validate
    against the schema at `schema_path` (default: the package's)."""
    path = resolve_profile_path(profile_or_path)
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if overrides:
        raw = deep_update(raw, overrides)
    raw.setdefault("profile", path.stem)
    try:
        cfg = validate_config(raw, load_schema(schema_path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return _traced(cfg, path) if os.environ.get(TRACE_ENV) else cfg


# --- which keys a job reads (a check of the digests, not a mechanism) ---------------------------
# With USE_REPRO_TRACE_KEYS=<folder>, every configuration load_config returns records the dotted
# keys the process reads through [] and get() and writes them, at exit, to
# <folder>/<pid>.<n>.json ({"config": file, "read": [keys]}). The DAG tests run the tiny profile
# so and compare each job's reads with the keys its settings file says its digest covers
# (settings_file_keys): a key read but not digested would leave results stale when it changes.
TRACE_ENV = "USE_REPRO_TRACE_KEYS"


class _Recorder(dict):
    """A configuration mapping that records the dotted paths of the leaves read through `[]` and
    `get`. Nested mappings are recorders too (made once, so changes to them persist). Pickles,
    copies and YAML dumps see a plain dict (`plain`)."""

    def __init__(self, data: dict, path: str, read: set):
        super().__init__({k: _Recorder(v, f"{path}.{k}" if path else str(k), read) if isinstance(v, dict) else v
                          for k, v in data.items()})
        self._path, self._read = path, read

    def _note(self, key, value):
        if not isinstance(value, _Recorder):
            self._read.add(f"{self._path}.{key}" if self._path else str(key))
        return value

    def __getitem__(self, key):
        return self._note(key, super().__getitem__(key))

    def get(self, key, default=None):
        return self._note(key, super().get(key, default)) if key in self else default

    def __reduce__(self):
        return plain, (plain(self),)

    def __deepcopy__(self, memo):
        return plain(self)


def plain(cfg: Any) -> Any:
    """A copy of `cfg` made of plain dicts and lists (what a checkpoint stores)."""
    if isinstance(cfg, dict):
        return {k: plain(dict.__getitem__(cfg, k)) for k in dict.keys(cfg)}
    if isinstance(cfg, list):
        return [plain(v) for v in cfg]
    return cfg


_TRACES: list[tuple[str, set]] = []


def _traced(cfg: dict, path: Path) -> dict:
    read: set = set()
    if not _TRACES:
        import atexit

        atexit.register(_write_traces)
    _TRACES.append((str(path), read))
    return _Recorder(cfg, "", read)


def _write_traces() -> None:
    folder = Path(os.environ[TRACE_ENV])
    folder.mkdir(parents=True, exist_ok=True)
    for n, (config, read) in enumerate(_TRACES):
        (folder / f"{os.getpid()}.{n}.json").write_text(json.dumps({"config": config, "read": sorted(read)}))


def load_profile(profile_or_path: str | Path, overrides: dict | None = None,
                 schema_path: Path | str = SCHEMA_PATH) -> dict:
    """The DAG's loader: `load_config` plus the checks a whole run needs.

    - The profile's name (which names results/<profile>/) is its file name; a file whose
      `profile:` key says otherwise is refused naming both, so a copy of tiny.yaml cannot write
      into (and overwrite) results/tiny.
    - Every key of `overrides` (Snakemake's `--config KEY=VALUE`, `profile` excluded) must be a
      key of the schema: an unknown one is refused by name, and a value given as text (nested
      overrides reach Snakemake as YAML strings) is read as the type the schema wants.
    """
    path = resolve_profile_path(profile_or_path)
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a profile is a YAML mapping of keys to values")
    name = raw.get("profile", path.stem)
    if name != path.stem:
        raise ConfigError(f"{path}: its `profile: {name}` differs from its file name {path.stem!r}; "
                          f"results go to results/<profile>/, so rename the file to {name}.yaml or set "
                          f"`profile: {path.stem}`")
    schema = load_schema(schema_path)
    overrides = {k: v for k, v in (overrides or {}).items() if k != "profile"}
    for key in sorted(overrides):
        if key not in schema.get("properties", {}):
            raise ConfigError(f"--config {key}: unknown key; allowed: profile, "
                              f"{', '.join(sorted(schema['properties']))}")
    overrides = _coerce(overrides, schema, "")
    return load_config(path, overrides, schema_path)


def _coerce(value: Any, schema: dict, path: str) -> Any:
    """`value` (an override) checked against `schema`: unknown keys raise ConfigError naming the
    dotted key; strings are parsed as YAML where the schema does not want a string."""
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            sub_path = f"{path}.{k}" if path else str(k)
            if props is not None and k in props:
                out[k] = _coerce(v, props[k], sub_path)
            elif isinstance(extra, dict):
                out[k] = _coerce(v, extra, sub_path)
            else:
                allowed = ", ".join(sorted(props or {})) or "none"
                raise ConfigError(f"--config {sub_path}: unknown key; allowed here: {allowed}")
        return out
    if isinstance(value, list):
        return [_coerce(v, schema.get("items", {}), path) for v in value]
    if isinstance(value, str):
        wants = schema.get("type")
        enum = schema.get("enum")
        wants_text = wants == "string" or (enum is not None and value in enum) or (wants is None and enum is None)
        if not wants_text:
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise ConfigError(f"--config {path}: cannot read {value!r} ({e})") from None
            return _coerce(parsed, schema, path) if isinstance(parsed, (dict, list)) else parsed
    return value


# --- settings digests: a job's identity -------------------------------------------------------

# What a key is to a job's identity is a property of the key, declared where the key is: its
# `x-digest` mark in schema.yaml (`execution`: in no digest; `omitted-at-default`: out of every
# digest while at its schema default). digest_marks() reads them; nothing else lists keys.

def _marked(schema: dict, prefix: str = "") -> Iterable[tuple[str, dict]]:
    """(dotted pattern, property schema) of every property below `schema`; an object's
    `additionalProperties` schema stands for any key (`*`)."""
    for key, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        yield path, sub
        yield from _marked(sub, path)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _marked(extra, f"{prefix}.*" if prefix else "*")


class DigestMarks:
    """The keys left out of settings digests, from the schema's `x-digest` marks.

    execution: dotted patterns (fnmatch, `*` spans dots) in no digest.
    omitted_at_default: dotted key -> the schema default at which it is left out."""

    def __init__(self, schema: dict):
        self.execution: tuple[str, ...] = ()
        self.omitted_at_default: dict[str, Any] = {}
        for path, sub in _marked(schema):
            mark = sub.get("x-digest")
            if mark == "execution":
                self.execution += (path,)
            elif mark == "omitted-at-default":
                if "default" not in sub:
                    raise ConfigError(f"schema key {path}: `x-digest: omitted-at-default` needs a default")
                self.omitted_at_default[path] = sub["default"]
            elif mark is not None:
                raise ConfigError(f"schema key {path}: unknown x-digest mark {mark!r}; "
                                  "allowed: execution, omitted-at-default")

    def is_execution(self, key: str) -> bool:
        """Whether the dotted `key` is (under) an execution-only key."""
        return _matches(key, self.execution)


_MARKS: dict[str, DigestMarks] = {}


def digest_marks(schema_path: Path | str = SCHEMA_PATH) -> DigestMarks:
    """The schema's digest marks (read once per process)."""
    key = str(schema_path)
    if key not in _MARKS:
        _MARKS[key] = DigestMarks(load_schema(schema_path))
    return _MARKS[key]


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted leaf paths of a nested mapping (lists are leaves; an empty mapping has none, so
    `sizes: {}` and a first entry added to it differ only by that entry's keys)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: node}


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, p + ".*") for p in patterns)


def select_settings(cfg: dict, include: Iterable[str], exclude: Iterable[str] = (),
                    marks: DigestMarks | None = None) -> dict[str, Any]:
    """The leaves of `cfg` under the dotted `include` patterns (fnmatch, `*` spans dots), minus
    `exclude`, the schema's execution keys, and its omitted-at-default keys at their defaults
    (`marks`, default: the project schema's), as {dotted path: value}."""
    marks = marks or digest_marks()
    include, exclude = list(include), list(exclude) + list(marks.execution)
    omitted = marks.omitted_at_default
    return {k: v for k, v in sorted(flatten(cfg).items())
            if _matches(k, include) and not _matches(k, exclude)
            and not (k in omitted and v == omitted[k])}


def settings_digest(cfg: dict, include: Iterable[str], exclude: Iterable[str] = (),
                    marks: DigestMarks | None = None) -> str:
    """sha256 of the selected settings (canonical JSON): equal iff every selected value is."""
    return selection_digest(select_settings(cfg, include, exclude, marks))


def selection_digest(selection: dict[str, Any]) -> str:
    """sha256 of a select_settings result (canonical JSON), for a caller that also needs the
    selection itself (the DAG lists its keys in the settings file)."""
    text = json.dumps(selection, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def settings_diff(old: dict | None, new: dict | None) -> list[str]:
    """`key: old -> new` for every dotted leaf that differs between two settings mappings."""
    a, b = flatten(old or {}), flatten(new or {})
    missing = object()
    lines = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k, missing), b.get(k, missing)
        if x != y:
            fmt = lambda v: "(absent)" if v is missing else repr(v)  # noqa: E731
            lines.append(f"{k or '<all>'}: {fmt(x)} -> {fmt(y)}")
    return lines


SETTINGS_KEYS_HEADER = "# The digest (the file's name) covers these keys; the job reads only them, `profile` and execution keys:"


def write_settings_file(path: str | Path, cfg: dict, digested: Iterable[str] | None = None) -> Path:
    """Write the resolved `cfg` as YAML at `path` (atomically, and only when it differs), with
    `digested` (the dotted keys its digest covers, when given) listed in a comment at the top.

    The DAG names these files by the digest of the settings a job reads, so files of one name
    differ only in keys outside the digest (execution-only ones such as threads or cache_dir,
    and the keys other stages read); those take the values of the latest invocation, as the user
    would expect. A rewritten file keeps its modification time: the file is an input of its
    jobs, and what they read has not changed, so it must not look newer than their outputs (a
    new digest is a new file, which does)."""
    import os

    import textwrap

    from use_repro.fs import write_text_atomic

    path = Path(path)
    keys = ""
    if digested is not None:
        lines = textwrap.wrap(", ".join(digested) or "(none)", 96, break_long_words=False, break_on_hyphens=False)
        keys = SETTINGS_KEYS_HEADER + "\n" + "".join(f"#   {line}\n" for line in lines)
    text = ("# Resolved settings (profile + --config overrides + schema defaults);\n"
            "# written by the Snakefile, named by the digest of what the job reads.\n"
            + keys + yaml.safe_dump(plain(cfg), sort_keys=False))
    try:
        old, stamp = path.read_text(), path.stat()
    except OSError:
        old, stamp = None, None
    if old != text:
        write_text_atomic(path, text)
        if stamp is not None:
            os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    return path


def settings_file_keys(path: str | Path) -> list[str] | None:
    """The keys a settings file says its digest covers (None for a file without the list)."""
    lines = Path(path).read_text().splitlines()
    if SETTINGS_KEYS_HEADER not in lines:
        return None
    out: list[str] = []
    for line in lines[lines.index(SETTINGS_KEYS_HEADER) + 1:]:
        if not line.startswith("#   "):
            break
        out += [k.strip() for k in line[4:].split(",") if k.strip() and k.strip() != "(none)"]
    return out


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
