"""tests/shared.py: files the repository cannot ship come from $USE_REPRO_SHARED or `shared/`
beside the clone, and a test that needs one skips, saying where it looked."""
from __future__ import annotations

import pytest

from tests import shared


def test_the_environment_variable_first_then_beside_the_clone_else_a_skip_naming_both(tmp_path, monkeypatch):
    clone = tmp_path / "clone"
    beside, env = tmp_path / "shared", tmp_path / "elsewhere"
    monkeypatch.setattr(shared, "REPO_ROOT", clone)
    monkeypatch.setenv(shared.ENV, str(env))
    assert shared.shared_dirs() == [env, beside] and shared.shared_file("paper/paper.md") is None
    with pytest.raises(pytest.skip.Exception, match=r"USE_REPRO_SHARED/paper/paper.md .*elsewhere.*shared"):
        shared.require_shared("paper/paper.md", "the paper's text")
    (beside / "paper").mkdir(parents=True)
    (beside / "paper" / "paper.md").write_text("beside")
    assert shared.require_shared("paper/paper.md", "x") == beside / "paper" / "paper.md"
    (env / "paper").mkdir(parents=True)
    (env / "paper" / "paper.md").write_text("env")
    assert shared.shared_file("paper/paper.md") == env / "paper" / "paper.md"
    monkeypatch.delenv(shared.ENV)
    assert shared.shared_dirs() == [beside]
