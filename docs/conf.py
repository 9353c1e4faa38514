"""Sphinx configuration: the pages are Markdown read by MyST; the API reference is built
from the docstrings (autodoc, with napoleon for Google-style sections).

Build with ``sphinx-build -W -b html docs docs/_build`` (``pip install "django-paygate[docs]"``
and the package itself: autodoc imports it, with the test suite's settings).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

project = "django-paygate"
author = "django-paygate contributors"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
html_theme = "alabaster"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Cross-references to Django, the SDKs and the standard library are not resolved (no
# intersphinx: the build needs no network); links from included files to sources outside
# docs/ are fine on GitHub.
suppress_warnings = ["myst.xref_missing"]
nitpicky = False
