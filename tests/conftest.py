"""Shared test setup: caches (tokenizers, token stores) go to a temporary directory."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # tests must not write into, or read stale stores from, the user's ~/.cache/memsinks
    monkeypatch.setenv("MEMSINKS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
