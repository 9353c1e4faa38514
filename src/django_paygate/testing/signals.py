"""Record the signals django-paygate sends, to assert on them in tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class SignalCall:
    """One signal sent: its name, its sender, and its keyword arguments."""

    name: str
    sender: Any
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def payment(self) -> Any:
        return self.kwargs.get("payment")


class SignalRecorder:
    """Records every django-paygate signal while connected.

    ::

        with SignalRecorder() as signals:
            ...
        assert signals.count("payment_succeeded") == 1
        assert signals.last("payment_succeeded").payment == payment

    Names are the attribute names in :mod:`django_paygate.signals`
    (``payment_status_changed``, ``payment_succeeded``, ``refund_succeeded``…).
    Post-commit signals are recorded only when the transaction commits: use
    ``@pytest.mark.django_db(transaction=True)`` or
    ``django_capture_on_commit_callbacks(execute=True)``.
    """

    def __init__(self, names: Iterable[str] | None = None) -> None:
        from django_paygate import signals

        available = {"payment_status_changed": signals.payment_status_changed}
        available.update(signals.POST_COMMIT_SIGNALS)
        wanted = list(available) if names is None else list(names)
        unknown = sorted(set(wanted) - set(available))
        if unknown:
            raise ValueError(
                f"Unknown paygate signal {unknown[0]!r}. Known: {', '.join(sorted(available))}."
            )
        self._signals = {name: available[name] for name in wanted}
        self._receivers: dict[str, Any] = {}
        self.calls: list[SignalCall] = []

    # -- connection ---------------------------------------------------------

    def connect(self) -> SignalRecorder:
        for name, signal in self._signals.items():
            if name in self._receivers:
                continue

            def receiver(sender: Any, *, _name: str = name, **kwargs: Any) -> None:
                kwargs.pop("signal", None)
                self.calls.append(SignalCall(_name, sender, kwargs))

            signal.connect(receiver, weak=False, dispatch_uid=(id(self), name))
            self._receivers[name] = receiver
        return self

    def disconnect(self) -> None:
        for name in list(self._receivers):
            self._signals[name].disconnect(dispatch_uid=(id(self), name))
            del self._receivers[name]

    def __enter__(self) -> SignalRecorder:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- queries ------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of the signals sent, in order."""
        return [call.name for call in self.calls]

    def count(self, name: str) -> int:
        """How many times ``name`` was sent."""
        self._check(name)
        return sum(1 for call in self.calls if call.name == name)

    def of(self, name: str) -> list[SignalCall]:
        """Every call of ``name``, in order."""
        self._check(name)
        return [call for call in self.calls if call.name == name]

    def last(self, name: str) -> SignalCall:
        """The last call of ``name``; ``AssertionError`` if it was never sent."""
        calls = self.of(name)
        if not calls:
            raise AssertionError(f"{name} was not sent (sent: {self.names() or 'nothing'}).")
        return calls[-1]

    def clear(self) -> None:
        self.calls.clear()

    def _check(self, name: str) -> None:
        if name not in self._signals:
            raise ValueError(f"{name!r} is not recorded (recording: {', '.join(self._signals)}).")

    def __repr__(self) -> str:
        return f"<SignalRecorder {self.names()!r}>"


__all__ = ["SignalCall", "SignalRecorder"]
