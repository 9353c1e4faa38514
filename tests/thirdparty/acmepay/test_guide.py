"""ADDING_PROVIDERS.md quotes AcmePay's code as it is."""

from __future__ import annotations

import re
from pathlib import Path

from . import provider

GUIDE = Path(__file__).resolve().parents[3] / "ADDING_PROVIDERS.md"


def test_the_quoted_code_is_the_providers_own() -> None:
    section = GUIDE.read_text().split("## A worked example: AcmePay", 1)[1]
    quoted = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    code = [block for block in quoted if "def " in block]
    assert code
    source = Path(provider.__file__).read_text()
    for block in code:
        assert block in source
