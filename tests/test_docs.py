"""The documentation runs: every Python block of the site's pages and the README, every
docstring example of the package, and a reference page that names every public name.

A page's ``python`` blocks run in order in one namespace (a fresh one per page), in a
temporary working directory. A block preceded by a line ``<!-- no-test: why -->`` is not run
(GPU-only examples); every other block must run without error. Docstring examples run as
doctests (``NORMALIZE_WHITESPACE`` and ``ELLIPSIS``), module by module; the CUDA backend's
modules are left to the GPU tests.
"""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import fastcorr

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"<!--\s*no-test:.*?-->\s*$")


def python_blocks(text):
    """``(line, code)`` of every ``python`` block of a Markdown text not marked no-test."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if SKIP.search(before):
            continue
        blocks.append((text[:match.start()].count("\n") + 1, match.group(2)))
    return blocks


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for line, code in python_blocks(page.read_text()):
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.name}, the block at line {line}: {exc!r}") from exc


def package_modules():
    names = ["fastcorr"]
    for info in pkgutil.walk_packages(fastcorr.__path__, "fastcorr."):
        if info.name.startswith("fastcorr.cuda") or info.name == "fastcorr.__main__":
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", package_modules())
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    previous = fastcorr.get_num_threads()
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for test in finder.find(module, name, globs={}):
        runner.run(test)
    fastcorr.set_num_threads(previous)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def public_names():
    """Every public name: the package's own and each public submodule's ``__all__``."""
    names = []
    for name in list(fastcorr.__all__) + list(fastcorr._OPTIONAL):
        if name in fastcorr._SUBMODULES:
            module = importlib.import_module(f"fastcorr.{name}")
            names += [f"fastcorr.{name}.{n}" for n in module.__all__]
        else:
            names.append(f"fastcorr.{name}")
    return names


def test_reference_names_every_public_name():
    text = (ROOT / "docs" / "reference.md").read_text()
    documented = set(re.findall(r"^::: (\S+)", text, re.M))
    missing = [n for n in public_names() if n not in documented]
    assert not missing, f"docs/reference.md does not document {missing}"


def test_every_public_callable_has_an_example():
    lacking = []
    for dotted in public_names():
        module, _, attr = dotted.rpartition(".")
        obj = getattr(importlib.import_module(module), attr)
        if callable(obj) and ">>>" not in (obj.__doc__ or ""):
            lacking.append(dotted)
    assert not lacking, f"no Examples section: {lacking}"


def test_shared_parts_are_filled():
    from fastcorr import _docs

    for dotted in public_names():
        module, _, attr = dotted.rpartition(".")
        doc = getattr(importlib.import_module(module), attr).__doc__ or ""
        assert "{{" not in doc, f"{dotted}: an unfilled shared part"
    filled = _docs.fill_doc(type("X", (), {"__doc__": "a\n    {{backend}}\nb"}))
    assert filled.__doc__.splitlines()[1] == "    " + _docs.PARTS["backend"].strip().split(
        "\n")[0]
