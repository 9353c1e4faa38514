"""Sphinx configuration: the docs are Markdown pages read by MyST.

Build with ``sphinx-build -W -b html docs docs/_build`` (``pip install "django-paygate[docs]"``).
"""

project = "django-paygate"
author = "django-paygate contributors"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
html_theme = "alabaster"
# Links to files outside docs/ (ADDING_PROVIDERS.md, the changelog) are fine on GitHub.
suppress_warnings = ["myst.xref_missing"]
