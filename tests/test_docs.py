"""The documentation says what the code does: every setting with its type and default,
the reference covering the public services and signals, hints naming pages that exist.

The Markdown sources are read here; the tools section of ``.ci/run`` also builds the docs
and sets ``PAYGATE_DOCS_BUILD`` so the built inventory (``objects.inv``) is checked too.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

import pytest
from django.dispatch import Signal

from django_paygate import checks, services, signals
from django_paygate.conf import DEFAULTS
from django_paygate.testing import _EXPORTS as TEST_KIT

DOCS = Path(__file__).resolve().parent.parent / "docs"
TYPES = {"int": int, "str": str, "bool": bool, "dict": dict, "list": list, "None": type(None)}


def _settings_rows() -> dict[str, tuple[str, str]]:
    """``key -> (type, default)`` from the first table of docs/settings.md."""
    rows = {}
    for line in (DOCS / "settings.md").read_text().splitlines():
        match = re.match(r"\| `([A-Z0-9_]+)` \| ([^|]+) \| `([^`]*)` \|", line)
        if match:
            rows[match[1]] = (match[2].strip(), match[3])
    return rows


def _literal(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def test_the_settings_table_lists_every_key_with_its_type_and_default():
    rows = _settings_rows()
    assert sorted(rows) == sorted(DEFAULTS)
    for key, (kind, default) in rows.items():
        assert default == _literal(DEFAULTS[key]), key
        allowed = tuple(
            TYPES[word] for word in re.findall(r"\b(int|str|bool|dict|list|None)\b", kind)
        )
        assert allowed, f"{key}: no type in {kind!r}"
        assert isinstance(DEFAULTS[key], allowed), key


def test_the_reference_covers_the_public_modules():
    text = (DOCS / "reference.md").read_text()
    documented = set(re.findall(r"\.\. automodule:: ([\w.]+)", text))
    kit = {f"django_paygate.testing.{module}" for module in TEST_KIT.values()}
    expected = {"django_paygate.services", "django_paygate.payables", "django_paygate.signals"}
    assert expected | {"django_paygate.exceptions"} | kit <= documented


def test_every_public_service_and_signal_has_a_docstring_for_the_reference():
    undocumented = [name for name in services.__all__ if not getattr(services, name).__doc__]
    assert undocumented == []
    source = Path(signals.__file__).read_text()
    names = [name for name, value in vars(signals).items() if isinstance(value, Signal)]
    assert names
    for name in names:  # autodoc takes a module attribute's doc from its "#:" comment
        assert re.search(rf"#:.*\n(#:.*\n)*{name} = Signal\(", source), name


def test_check_hints_name_pages_that_exist():
    source = Path(checks.__file__).read_text()
    pages = set(re.findall(r'see\("([\w/]+)"\)', source))
    assert pages
    for page in pages:
        assert (DOCS / f"{page}.md").exists(), page
    assert checks.DOCS_URL.startswith("https://")


def test_the_changelog_and_the_provider_guide_are_in_the_docs():
    assert "../CHANGELOG.md" in (DOCS / "changelog.md").read_text()
    assert "../ADDING_PROVIDERS.md" in (DOCS / "adding_providers.md").read_text()
    toctree = (DOCS / "index.md").read_text()
    for page in ("changelog", "adding_providers", "reference", "deployment", "performance"):
        assert f"\n{page}\n" in toctree, page


def _inventory(build: Path) -> dict[str, set[str]]:
    """``role -> names`` of a Sphinx ``objects.inv`` (four header lines, then zlib)."""
    raw = (build / "objects.inv").read_bytes()
    body = raw.split(b"\n", 4)[4]
    names: dict[str, set[str]] = {}
    for line in zlib.decompress(body).decode().splitlines():
        name, role = line.split(" ", 2)[:2]
        names.setdefault(role, set()).add(name)
    return names


@pytest.mark.skipif(
    not os.environ.get("PAYGATE_DOCS_BUILD"), reason="set PAYGATE_DOCS_BUILD to a built html"
)
def test_the_built_reference_lists_the_services_signals_and_test_kit():
    inventory = _inventory(Path(os.environ["PAYGATE_DOCS_BUILD"]))
    functions = inventory.get("py:function", set())
    assert {f"django_paygate.services.{name}" for name in services.__all__} - {
        f"django_paygate.services.{n}"
        for n in services.__all__
        if isinstance(getattr(services, n), type)
    } <= functions
    data = inventory.get("py:data", set())
    for name, value in vars(signals).items():
        if isinstance(value, Signal):
            assert f"django_paygate.signals.{name}" in data, name
    every = set().union(*inventory.values())
    for name, module in TEST_KIT.items():
        assert f"django_paygate.testing.{module}.{name}" in every, name
