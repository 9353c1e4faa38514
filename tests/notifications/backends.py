"""Email backends for the notification tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.exceptions import AnymailAPIError


class FlakyBackend(AnymailTestBackend):
    """anymail's test backend that raises while ``FlakyBackend.failures`` is above zero."""

    failures: ClassVar[int] = 0
    calls: ClassVar[int] = 0
    _lock = threading.Lock()

    @classmethod
    def reset(cls, failures: int = 0) -> None:
        with cls._lock:
            cls.failures = failures
            cls.calls = 0

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        with FlakyBackend._lock:
            FlakyBackend.calls += 1
            fail = FlakyBackend.failures > 0
            if fail:
                FlakyBackend.failures -= 1
        if fail:
            raise AnymailAPIError("ESP answered 503 Service Unavailable")
        return int(super().send_messages(email_messages))
