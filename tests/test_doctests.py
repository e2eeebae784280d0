"""Every docstring example in the packages runs (STYLE.md: docs that run)."""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ["autodiff", "kernels", "solvers", "sciml"]
SKIP = {"sciml.__main__"}


def _modules():
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        yield pkg
        for info in pkgutil.walk_packages(mod.__path__, prefix=pkg + "."):
            if info.name not in SKIP:
                yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} failing docstring example(s) in {name}"
