"""Corpus fixtures: one tiny corpus per session, built from the real Debian cache when a
previous `make tables` left it complete, otherwise from a fake cache of synthetic recordings
(no network needed either way). USE_REPRO_FAKE_DEBIAN=1 forces the fake cache."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from use_repro.config import REPO_ROOT, load_config
from use_repro.data.corpus import debian
from use_repro.data.corpus.build import build
from use_repro.stage_settings import CorpusSettings

from .fakes import make_fake_cache

REAL_CACHE = REPO_ROOT / ".cache" / "use-repro"


def tiny_config(cache: Path, **corpus) -> dict:
    return load_config("tiny", overrides={"cache_dir": str(cache), "corpus": {"offline": True, **corpus}})


@pytest.fixture(scope="session")
def fake_cache(tmp_path_factory) -> Path:
    """The fake package cache, made once per session (tests must not change it)."""
    return make_fake_cache(tmp_path_factory.mktemp("fake-cache-shared"))


@pytest.fixture(scope="session")
def tiny_cache(request):
    if os.environ.get("USE_REPRO_FAKE_DEBIAN") != "1" and all((REAL_CACHE / "debian" / p / ".complete").exists()
                                                            for p in debian.ALL_PACKAGES):
        return REAL_CACHE, "real"
    return request.getfixturevalue("fake_cache"), "fake"


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, tiny_cache):
    """(out folder, config, build seconds) of a tiny corpus built with 2 workers."""
    cache, _ = tiny_cache
    cfg = tiny_config(cache)
    out = tmp_path_factory.mktemp("tiny") / "corpus"
    t0 = time.time()
    build(CorpusSettings.from_config(cfg), out, threads=2)
    return out, cfg, time.time() - t0
