"""Help text for ``tensordb --help`` from the docstrings the code already carries, without their RST markup.

The docstrings are written for Sphinx (````--uri````, ``:func:`~pkg.run_worker```); a terminal
should read ``--uri`` and ``run_worker``.  A subcommand's description is the first paragraph of its
program module's docstring, read from the source file so that ``--help`` imports none of them.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from importlib.metadata import PackageNotFoundError, version

_ROLE = re.compile(r":[\w:.-]+:`(~?)([^`]*?)`")
_TITLED = re.compile(r"^(.*?)\s*<[^>]*>$")


def _role(match: re.Match[str]) -> str:
    tilde, text = match.groups()
    titled = _TITLED.match(text)
    if titled:
        return titled.group(1)
    return text.rsplit(".", 1)[-1] if tilde else text


def plain(text: str) -> str:
    """``text`` without RST inline markup: roles, ````literals````, `interpreted`, *emphasis*, ``::``."""
    text = _ROLE.sub(_role, text)
    text = re.sub(r"``(.+?)``", r"\1", text, flags=re.DOTALL)
    text = re.sub(r"(?<![\w`])`([^`\n]+)`(?![\w`])", r"\1", text)
    text = re.sub(r"(?<![\w*])\*\*?([^*\s][^*\n]*?)\*\*?(?![\w*])", r"\1", text)
    return re.sub(r"(\S)::$", r"\1:", text, flags=re.MULTILINE)


def summary(module: str) -> str:
    """The first paragraph of ``module``'s docstring in plain text, read without importing the module."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return ""
    with open(spec.origin, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    return plain(doc.split("\n\n", 1)[0]).strip()


def package_version() -> str:
    """The installed distribution's version (``unknown`` when run from a tree that was never installed)."""
    try:
        return version("tensordb")
    except PackageNotFoundError:
        return "unknown"
