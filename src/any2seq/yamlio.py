"""YAML in, bounded: a config is parsed only if it stays small once its aliases are expanded.

PyYAML shares one object per anchor, so a 1.5 KB "billion laughs" document (nine levels of lists
of aliases to the level below) loads fast, but anything that walks it as a tree (a ``repr`` in an
error message, a JSON or YAML dump) meets billions of values. The composed node graph is measured
before anything is built from it: its size with every alias expanded, its depth, no alias that
contains itself.
"""
from __future__ import annotations

import yaml

from .errors import UserError, preview

MAX_VALUES = 100_000  # scalars, lists and mappings, counting each alias as the values it stands for
MAX_DEPTH = 100  # lists and mappings inside each other


class _TooBig(Exception):
    pass


def parse_yaml(text: str, source: str):
    """``yaml.safe_load(text)``, refused (a one-line UserError naming ``source``) when the document
    expands past MAX_VALUES values or MAX_DEPTH levels; YAML syntax errors are left to the caller."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise UserError(f"{source}: YAML nested too deeply (at most {MAX_DEPTH} levels)") from None
        if node is None:
            return None
        try:
            _expanded_size(node, {}, set(), 0)
        except _TooBig as e:
            raise UserError(f"{source}: {e} (YAML aliases expand to the values they name)") from None
        try:
            return loader.construct_document(node)
        except ValueError as e:  # an integer of more than 4,300 digits
            raise UserError(f"{source}: a value YAML cannot convert ({preview(str(e), 80)})") from None
    finally:
        loader.dispose()


def _expanded_size(node, sizes: dict, open_nodes: set, depth: int) -> int:
    """Values under ``node`` with aliases expanded; each node is measured once (``sizes``)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if isinstance(node, yaml.ScalarNode):
        return 1
    if id(node) in open_nodes:
        raise _TooBig("an alias refers to a value that contains it")
    if depth >= MAX_DEPTH:
        raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
    open_nodes.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes, depth + 1)
        if total > MAX_VALUES:
            raise _TooBig(f"more than {MAX_VALUES:,} values")
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total
