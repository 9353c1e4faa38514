"""Validate API responses against the shipped OpenAPI document."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema_rs

DRAFT = "https://json-schema.org/draft/2020-12/schema"


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    text = resources.files("django_paygate").joinpath("openapi.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        parts = node["$ref"].removeprefix("#/").split("/")
        target: Any = document()
        for part in parts:
            target = target[part]
        node = target
    return node


def response_spec(path: str, method: str, status: int) -> dict[str, Any]:
    operation = document()["paths"][path][method.lower()]
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path} does not document {status}"
    return _resolve(responses[str(status)])


def assert_conforms(response: Any, path: str, method: str) -> Any:
    """Assert ``response`` is documented for ``method path`` and matches its schema.

    Returns the decoded JSON body.
    """
    spec = response_spec(path, method, response.status_code)
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    schema = spec["content"]["application/json"]["schema"]
    root = {"$schema": DRAFT, "components": document()["components"], **schema}
    validator = jsonschema_rs.validator_for(root)
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{method} {path} {response.status_code}: {errors}\n{body}"
    for name, header in spec.get("headers", {}).items():
        if header.get("required"):
            assert response.has_header(name), f"missing header {name}"
    return body
