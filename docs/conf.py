"""Sphinx configuration for the pytest-isolate documentation.

Plain Sphinx, no extensions and no network access: the build reads only this folder and
pyproject.toml.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

_pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
with _pyproject.open("rb") as _file:
    _metadata = tomllib.load(_file)["project"]

project = "pytest-isolate"
author = "pytest-isolate contributors"
copyright = "pytest-isolate contributors"
release = _metadata["version"]
version = ".".join(release.split(".")[:2])

extensions: list[str] = []
exclude_patterns = ["_build"]
root_doc = "index"
highlight_language = "python"
pygments_style = "sphinx"

html_theme = "alabaster"
html_theme_options = {
    "description": _metadata["description"],
    "fixed_sidebar": True,
}
html_static_path: list[str] = []
html_title = f"pytest-isolate {release}"
