"""Every Python block in docs/*.md runs, in order, one namespace per page: the docs cannot rot."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from any2seq import registry

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_docs_have_code_to_run():
    assert sum(len(blocks(p)) for p in PAGES) >= 3


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_code_block_runs(page, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)  # pages use the repository's configs/ and data/
    monkeypatch.setenv("ANY2SEQ_DOCS_TMP", str(tmp_path))
    # what a page registers (the recipes' own encoder and task) is forgotten after it
    registry.parts("encoder")
    monkeypatch.setattr(registry, "_table", {slot: dict(table) for slot, table in registry._table.items()})
    # the page runs as a module of its own, so that a dataclass defined on it can resolve its annotations
    module = types.ModuleType(f"docs.{page.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for i, code in enumerate(blocks(page), 1):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as e:  # name the block that broke
            raise AssertionError(f"{page.name}, python block {i} failed: {e!r}") from e
