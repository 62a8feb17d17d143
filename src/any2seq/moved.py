"""Module paths that were renamed, still importable: users' scripts and older docs import
``any2seq.decoding`` and ``any2seq.models``. Importing an old path warns once and hands back the
module that replaced it (the very same module object, so patching either patches both)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "any2seq.decoding": "any2seq.inference",  # beside decoders/, the name said the wrong thing
    "any2seq.models": "any2seq.seq2seq",  # beside modeldir.py; it holds Seq2Seq and build_model
}


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path in ``MOVED`` and loads it as its new module."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return None  # a placeholder that exec_module replaces

    def exec_module(self, module):
        name = module.__spec__.name
        warnings.warn(f"{name} is now {MOVED[name]}; import that instead", DeprecationWarning, stacklevel=2)
        # the import system returns whatever sys.modules holds for the name once this returns
        sys.modules[name] = importlib.import_module(MOVED[name])


def install() -> None:
    if not any(isinstance(finder, MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedFinder())
