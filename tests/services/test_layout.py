"""How the services package is laid out: the public verbs apart from the ledger, one call policy."""

from __future__ import annotations

import ast
from pathlib import Path

from django_paygate import services
from django_paygate.services import ledger

PACKAGE = Path(services.__file__).parent


def _functions(module: str) -> list[ast.FunctionDef]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


def test_the_ledger_is_not_public() -> None:
    ledger_names = {name for name in vars(ledger) if not name.startswith("_")}
    exported = set(services.__all__)
    assert {"lock_payment", "change", "apply_event", "payment_lookup"} <= ledger_names
    assert not (exported & {"lock_payment", "change", "apply_event", "payment_lookup", "Origin"})
    assert all(callable(getattr(services, name)) for name in exported)


def test_only_call_provider_decides_what_a_provider_failure_means() -> None:
    policy = {"ProviderError", "ProviderIdempotencyError", "ProviderRequestInProgress"}
    caught = {
        (function.name, ast.unparse(handler.type))
        for module in ("payments", "refunds", "recovery")
        for function in _functions(module)
        for handler in ast.walk(function)
        if isinstance(handler, ast.ExceptHandler) and handler.type is not None
    }
    assert {name for _, name in caught} & policy == set()
    # The one read that may come back empty: the front end's data of a payment.
    assert {fn for fn, name in caught if "ProviderUnavailable" in name} == {"payment_client_data"}
    assert any(f.name == "call_provider" for f in _functions("calls"))


def test_no_function_is_longer_than_sixty_lines_of_code() -> None:
    long = []
    for path in PACKAGE.glob("*.py"):
        for function in _functions(path.stem):
            first = function.body[0]
            documented = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            code = function.end_lineno - (first.end_lineno if documented else function.lineno)
            if code > 60:
                long.append(f"{path.stem}.{function.name}: {code}")
    assert long == []
