"""Compiled-kernel cache: in memory, and on disk keyed by a structural hash of each kernel.

The key of a kernel is a hash of its generated source plus the template version, numba's
version, the target name and the source of the modules the kernels import (``kernels.vmath``,
``kernels.cpu``), so a change in a template or the printer that changes the source, or in a
helper that numba inlines into the kernel, invalidates the entry by itself. Each kernel is
written as a real module ``sciml_kernels.k_<key>`` in a package directory under the cache
root and imported through ``sys.modules``: numba's ``cache=True`` needs a real file to index
its on-disk cache, and it then reuses the machine code in a second process.

The cache root is ``$SCIML_CACHE_DIR`` or ``~/.cache/sciml``.

>>> key = kernel_key("def k(x):\\n    pass\\n", "cpu")
>>> len(key)
20
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

from .templates import TEMPLATE_VERSION

PACKAGE = "sciml_kernels"
RUNTIME_MODULES = ("kernels.vmath", "kernels.cpu")  # what generated kernels import
_MEMORY: dict[str, object] = {}
_LOCK = threading.Lock()


def cache_root() -> Path:
    """Where compiled kernels live; created on first use."""
    root = os.environ.get("SCIML_CACHE_DIR") or os.path.join(Path.home(), ".cache", "sciml")
    return Path(root)


def kernel_key(source: str, target: str) -> str:
    """The structural hash of a kernel: its source, the templates, numba and the target."""
    import numba

    h = hashlib.sha256()
    for part in (target, str(TEMPLATE_VERSION), numba.__version__, runtime_digest(), source):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


@functools.cache
def runtime_digest() -> str:
    """Hash of the modules generated kernels import. numba's on-disk cache checks only the
    kernel's own file, so a changed helper it inlines (a vmath function) must change the key,
    or an old machine code would be loaded with the new helper's name."""
    h = hashlib.sha256()
    for name in RUNTIME_MODULES:
        h.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    return h.hexdigest()[:16]


def load(source: str, func_name: str, target: str = "cpu"):
    """The function ``func_name`` defined by ``source``, from memory, disk, or freshly written."""
    key = kernel_key(source, target)
    with _LOCK:
        fn = _MEMORY.get(key)
        if fn is None:
            fn = getattr(_import(key, source), func_name)
            _MEMORY[key] = fn
    return fn


def _import(key: str, source: str):
    pkg_dir = _package_dir()
    path = pkg_dir / f"k_{key}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: a concurrent process never imports half a file
    name = f"{PACKAGE}.k_{key}"
    if name in sys.modules:
        return sys.modules[name]
    return importlib.import_module(name)


def _package_dir() -> Path:
    root = cache_root()
    pkg_dir = root / PACKAGE
    pkg_dir.mkdir(parents=True, exist_ok=True)
    init = pkg_dir / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated sciml kernels (safe to delete)."""\n')
    if str(root) not in sys.path:
        sys.path.append(str(root))
    pkg = sys.modules.get(PACKAGE)
    if pkg is not None and str(pkg_dir) not in list(getattr(pkg, "__path__", [])):
        # The cache root changed in this process (tests): point the package at the new folder.
        pkg.__path__.insert(0, str(pkg_dir))
    importlib.invalidate_caches()
    return pkg_dir


def clear_memory():
    """Forget the in-memory kernels (the disk cache stays); used by tests."""
    with _LOCK:
        _MEMORY.clear()


def cache_stats(fn) -> tuple[int, int]:
    """(hits, misses) of numba's disk cache for one compiled kernel."""
    stats = fn.stats
    return sum(stats.cache_hits.values()), sum(stats.cache_misses.values())
