import subprocess
import sys

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
