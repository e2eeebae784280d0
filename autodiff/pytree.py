"""Pytrees: nested tuples, lists, dicts (and registered containers) of array leaves.

>>> leaves, tree = tree_flatten({"a": 1, "b": (2, 3)})
>>> leaves
[1, 2, 3]
>>> tree_unflatten(tree, [4, 5, 6])
{'a': 4, 'b': (5, 6)}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_NODES: dict[type, tuple[Callable, Callable]] = {}


def register_pytree_node(cls: type, flatten: Callable, unflatten: Callable) -> None:
    """``flatten(x) -> (children, aux)``; ``unflatten(aux, children) -> x``."""
    _NODES[cls] = (flatten, unflatten)


@dataclass(frozen=True)
class TreeDef:
    kind: Any  # None for a leaf, a type for containers
    aux: Any
    children: tuple

    @property
    def num_leaves(self) -> int:
        if self.kind is None:
            return 1
        return sum(c.num_leaves for c in self.children)

    def __repr__(self):
        if self.kind is None:
            return "*"
        name = getattr(self.kind, "__name__", str(self.kind))
        return f"{name}({', '.join(map(repr, self.children))})"


LEAF = TreeDef(None, None, ())


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _children(x):
    t = type(x)
    if t in _NODES:
        children, aux = _NODES[t][0](x)
        return t, aux, list(children)
    if _is_namedtuple(x):
        return t, None, list(x)
    if t in (tuple, list):
        return t, None, list(x)
    if isinstance(x, dict):
        keys = sorted(x, key=repr)
        return dict, tuple(keys), [x[k] for k in keys]
    if x is None:
        return type(None), None, []
    return None, None, None


def tree_flatten(x, is_leaf: Callable | None = None) -> tuple[list, TreeDef]:
    leaves: list = []
    tree = _flatten(x, leaves, is_leaf)
    return leaves, tree


def _flatten(x, leaves, is_leaf) -> TreeDef:
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return LEAF
    kind, aux, children = _children(x)
    if kind is None:
        leaves.append(x)
        return LEAF
    return TreeDef(kind, aux, tuple(_flatten(c, leaves, is_leaf) for c in children))


def tree_unflatten(tree: TreeDef, leaves) -> Any:
    it = iter(leaves)
    out = _unflatten(tree, it)
    return out


def _unflatten(tree: TreeDef, it):
    if tree.kind is None:
        return next(it)
    children = [_unflatten(c, it) for c in tree.children]
    k = tree.kind
    if k in _NODES:
        return _NODES[k][1](tree.aux, children)
    if k is type(None):
        return None
    if k is dict:
        return dict(zip(tree.aux, children))
    if k in (tuple, list):
        return k(children)
    return k(*children)  # namedtuple


def tree_leaves(x) -> list:
    return tree_flatten(x)[0]


def tree_structure(x) -> TreeDef:
    return tree_flatten(x)[1]


def tree_map(f: Callable, x, *rest) -> Any:
    leaves, tree = tree_flatten(x)
    others = [tree_flatten(r)[0] for r in rest]
    for o in others:
        if len(o) != len(leaves):
            raise ValueError("tree_map: trees have different structures")
    return tree_unflatten(tree, [f(*xs) for xs in zip(leaves, *others)])
