"""The transition table, walked pair by pair."""

from __future__ import annotations

import itertools

import pytest

from django_paygate.states import (
    FINAL_PAYMENT_STATUSES,
    LEDGER_TRANSITIONS,
    PAID_STATUSES,
    PAYMENT_RANK,
    PAYMENT_TRANSITIONS,
    REFUND_TRANSITIONS,
    PaymentStatus,
    RefundStatus,
    can_transition,
    can_transition_refund,
    is_stale,
    status_after_refund,
)

P = PaymentStatus

#: Every allowed move, written out by hand: the table must equal it exactly.
EXPECTED = {
    (P.PENDING, P.REQUIRES_ACTION),
    (P.PENDING, P.PROCESSING),
    (P.PENDING, P.AUTHORIZED),
    (P.PENDING, P.SUCCEEDED),
    (P.PENDING, P.FAILED),
    (P.PENDING, P.CANCELED),
    (P.REQUIRES_ACTION, P.PROCESSING),
    (P.REQUIRES_ACTION, P.AUTHORIZED),
    (P.REQUIRES_ACTION, P.SUCCEEDED),
    (P.REQUIRES_ACTION, P.FAILED),
    (P.REQUIRES_ACTION, P.CANCELED),
    (P.PROCESSING, P.AUTHORIZED),
    (P.PROCESSING, P.SUCCEEDED),
    (P.PROCESSING, P.FAILED),
    (P.PROCESSING, P.CANCELED),
    (P.AUTHORIZED, P.SUCCEEDED),
    (P.AUTHORIZED, P.CANCELED),
    (P.FAILED, P.REQUIRES_ACTION),
    (P.FAILED, P.PROCESSING),
    (P.FAILED, P.AUTHORIZED),
    (P.FAILED, P.SUCCEEDED),
    (P.FAILED, P.CANCELED),
    (P.SUCCEEDED, P.PARTIALLY_REFUNDED),
    (P.SUCCEEDED, P.REFUNDED),
    (P.PARTIALLY_REFUNDED, P.PARTIALLY_REFUNDED),
    (P.PARTIALLY_REFUNDED, P.REFUNDED),
}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(P, P)))
def test_every_pair(current: P, new: P) -> None:
    assert can_transition(current, new) is ((current, new) in EXPECTED)
    assert can_transition(current.value, new.value) is ((current, new) in EXPECTED)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(P, P)))
def test_every_ledger_pair(current: P, new: P) -> None:
    """The refund ledger moves between captured statuses only, backwards too."""
    ledger = current in PAID_STATUSES and new in PAID_STATUSES
    ledger = ledger and (current, new) not in {(P.SUCCEEDED, P.SUCCEEDED), (P.REFUNDED, P.REFUNDED)}
    expected = ledger or (current, new) in EXPECTED
    assert can_transition(current, new, ledger=True) is expected
    assert set(LEDGER_TRANSITIONS) == PAID_STATUSES


@pytest.mark.parametrize(("current", "new"), list(itertools.product(P, P)))
def test_an_allowed_move_is_never_stale(current: P, new: P) -> None:
    if can_transition(current, new):
        assert not is_stale(current, new)


def test_final_statuses() -> None:
    assert FINAL_PAYMENT_STATUSES == {P.CANCELED, P.REFUNDED}
    assert P.FAILED not in FINAL_PAYMENT_STATUSES
    for final in FINAL_PAYMENT_STATUSES:
        assert not PAYMENT_TRANSITIONS[final]


def test_stale_events() -> None:
    assert is_stale(P.SUCCEEDED, P.PROCESSING)
    assert is_stale(P.SUCCEEDED, P.AUTHORIZED)
    assert is_stale(P.AUTHORIZED, P.PENDING)
    assert is_stale(P.REFUNDED, P.SUCCEEDED)
    assert is_stale(P.CANCELED, P.SUCCEEDED)
    assert not is_stale(P.FAILED, P.SUCCEEDED)
    assert not is_stale(P.PENDING, P.SUCCEEDED)


def test_nothing_moves_backwards_but_failures_and_retries() -> None:
    for current, targets in PAYMENT_TRANSITIONS.items():
        for new in targets - {P.FAILED}:
            assert PAYMENT_RANK[new] >= PAYMENT_RANK[current], (current, new)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(RefundStatus, RefundStatus)))
def test_refund_pairs(current: RefundStatus, new: RefundStatus) -> None:
    allowed = {
        (RefundStatus.PENDING, RefundStatus.SUCCEEDED),
        (RefundStatus.PENDING, RefundStatus.FAILED),
        (RefundStatus.PENDING, RefundStatus.CANCELED),
        (RefundStatus.SUCCEEDED, RefundStatus.FAILED),
    }
    assert can_transition_refund(current, new) is ((current, new) in allowed)
    assert set(REFUND_TRANSITIONS) == set(RefundStatus)


@pytest.mark.parametrize(
    ("captured", "refunded", "expected"),
    [
        (1000, 0, P.SUCCEEDED),
        (1000, 1, P.PARTIALLY_REFUNDED),
        (1000, 999, P.PARTIALLY_REFUNDED),
        (1000, 1000, P.REFUNDED),
    ],
)
def test_status_after_refund(captured: int, refunded: int, expected: P) -> None:
    assert status_after_refund(captured, refunded) == expected
