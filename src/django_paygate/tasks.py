"""Deferred work, on Django's Tasks framework.

``django.tasks`` from Django 6.0, the ``django-tasks`` backport below it. With
the default immediate backend the work runs right after commit, in-process;
point ``PAYGATE["TASK_BACKEND"]`` at a worker backend (database, RQ, Celery)
to move it off the request. Arguments are JSON-serialisable (notification ids).
"""

from __future__ import annotations

from functools import cache
from typing import Any

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # pragma: no cover - Django 5.2 with the backport
    from django_tasks import task  # type: ignore[no-redef]


@task()
def deliver_notifications(notification_ids: list[int], claimed: bool = False) -> dict[str, Any]:
    """Deliver outbox rows (post-commit signals, emails) by id; rows not due are skipped.

    ``claimed``: this process claimed them when it wrote them (immediate backend only).
    """
    from django_paygate.notifications import deliver

    return deliver(notification_ids, claimed=claimed)


@cache
def _immediate_backends() -> tuple[type[Any], ...]:
    try:
        from django.tasks.backends.immediate import ImmediateBackend
    except ImportError:  # pragma: no cover - Django 5.2 with the backport
        from django_tasks.backends.immediate import (  # type: ignore[assignment]
            ImmediateBackend,
        )
    return (ImmediateBackend,)


def runs_in_process(backend: str) -> bool:
    """Whether the task backend ``backend`` runs a task in the process that enqueues it."""
    try:
        from django.tasks import task_backends
    except ImportError:  # pragma: no cover - Django 5.2 with the backport
        from django_tasks import task_backends  # type: ignore[assignment]
    try:
        return isinstance(task_backends[backend], _immediate_backends())
    except Exception:  # an unknown alias: enqueueing reports it, the drain delivers
        return False


@cache
def deliver_notifications_on(backend: str) -> Any:
    """:func:`deliver_notifications` bound to the task backend ``backend``, built once."""
    return deliver_notifications.using(backend=backend)


@task()
def drain_notifications(limit: int | None = None) -> dict[str, Any]:
    """Deliver every row due now (at most ``limit``); schedule it on a worker as a safety net."""
    from django_paygate.notifications import drain

    return drain(limit)
