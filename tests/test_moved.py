"""Renamed modules stay importable under their old paths, with a warning naming the new one."""
import importlib
import subprocess
import sys

import pytest

from any2seq.moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_imports_the_new_module_and_says_so(old):
    code = (f"import warnings; warnings.simplefilter('error')\n"
            f"try:\n    import {old}\nexcept DeprecationWarning as e:\n    print(e)\n"
            f"warnings.simplefilter('ignore'); import {old} as a, {MOVED[old]} as b; print(a is b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == f"{old} is now {MOVED[old]}; import that instead"
    assert out[1] == "True"


def test_names_from_an_old_path_are_the_new_modules_objects():
    with pytest.warns(DeprecationWarning):
        from any2seq.decoding import decode_ids  # noqa: F401  (the point is the old path)
    assert decode_ids is importlib.import_module("any2seq.inference").decode_ids


def test_old_paths_have_no_files_left():
    from pathlib import Path

    import any2seq

    root = Path(any2seq.__path__[0])
    for old in MOVED:
        name = old.split(".", 1)[1]
        assert not (root / f"{name}.py").exists() and not (root / name).is_dir(), old
