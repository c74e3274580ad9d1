import subprocess
import sys
from pathlib import Path

import pytest

from use_repro.cli import STAGES, main


def test_top_help_lists_every_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in STAGES:
        assert name in out


def test_unknown_stage_is_an_error(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown stage 'frobnicate'" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "use_repro", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "stages:" in r.stdout


# --- help: every stage and subcommand, quick, with defaults -------------------------------------

HEAVY = ("torch", "pandas", "scipy", "matplotlib", "use_repro.data.render")


def _help_paths():
    """[stage, sub, ...] for every stage and every subcommand below it."""
    from use_repro.cli import stage_parser

    def walk(parser, path):
        yield path
        for action in parser._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name in action.choices:
                    yield from walk(action.choices[name], path + [name])

    for stage in STAGES:
        yield from walk(stage_parser(stage)[0], [stage])


def test_every_stage_and_subcommand_help_exits_zero(capsys):
    paths = list(_help_paths())
    assert len(paths) > len(STAGES)  # the subcommands are walked too
    for path in paths:
        with pytest.raises(SystemExit) as e:
            main(path + ["--help"])
        out = capsys.readouterr().out
        assert e.value.code == 0 and out.startswith(f"usage: use-repro {' '.join(path)}"), path


def _imported(stage: str) -> set[str]:
    """Modules `python -X importtime -m use_repro STAGE --help` imports."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "use_repro", stage, "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _torch_at_module_level(module: str) -> bool:
    """Whether `module`'s source imports torch at its top level (not in a function or under
    TYPE_CHECKING)."""
    import ast
    import importlib.util

    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text(encoding="utf-8"))
    return any(isinstance(n, (ast.Import, ast.ImportFrom)) and
               any((getattr(n, "module", None) or a.name).split(".")[0] == "torch" for a in n.names)
               for n in tree.body)


# enhance.py is another change's to make light: until it is, its case is an expected failure
ENHANCE_HEAVY = pytest.mark.xfail(
    _torch_at_module_level("use_repro.enhance"), strict=True,
    reason="enhance.py imports torch, audio.stft (torch) and the renderer (scipy.signal) at module level")


@pytest.mark.parametrize("stage", [pytest.param(s, marks=ENHANCE_HEAVY) if s == "enhance" else s
                                   for s in ["--help", *STAGES]])
def test_help_imports_no_heavy_module(stage):
    mods = _imported(stage)
    assert "use_repro.cli" in mods  # the parse worked
    heavy = sorted(m for m in mods if m in HEAVY or m.split(".")[0] in HEAVY)
    assert not heavy, f"use-repro {stage} --help imports {heavy[:8]}"


def test_help_shows_defaults_once(capsys):
    with pytest.raises(SystemExit):
        main(["train", "regression", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # unwrap argparse's line breaks
    assert "training steps (optimizer updates) (default: 1000)" in out
    assert "profile name or YAML path (default: mini)" in out
    # a help text that already names its default is left as it is; None and flags show none
    assert out.count("(default: shifted)") == 1
    assert "(default: None)" not in out and "(default: False)" not in out
    with pytest.raises(SystemExit):
        main(["weights", "fetch", "--help"])
    assert "(default: 60.0)" in " ".join(capsys.readouterr().out.split())
