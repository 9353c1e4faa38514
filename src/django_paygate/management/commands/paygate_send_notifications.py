"""``manage.py paygate_send_notifications``: deliver what the outbox still owes.

Sends the post-commit signals and emails of notifications that are due: new
rows whose task never ran (no worker, a crash), failed sends whose backoff has
passed, and rows whose worker died while sending (lease expired). Rows are
claimed in batches (``PAYGATE["NOTIFICATION_BATCH_SIZE"]``, ``--batch-size``): one
statement takes the next due rows that no other worker holds, each only while it
is due, so several copies of this command, or a command and the task workers,
never send a message twice. Each row is marked sent right after its own email.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_paygate import notifications
from django_paygate.conf import INTEGER_MAXIMUMS


class Command(BaseCommand):
    help = "Deliver pending payment notifications (post-commit signals and emails)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="Deliver at most this many notifications per pass (default: all that are due).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Rows claimed at once (default: PAYGATE['NOTIFICATION_BATCH_SIZE'], 50).",
        )
        parser.add_argument(
            "--loop",
            action="store_true",
            help="Keep running: drain, sleep --interval seconds, repeat (stop with Ctrl-C).",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=10.0,
            help="Seconds between passes with --loop (default 10).",
        )
        parser.add_argument(
            "--now",
            action="store_true",
            help="Also send notifications still waiting for their retry backoff.",
        )
        parser.add_argument(
            "--retry-failed",
            action="store_true",
            help="Give notifications that were given up a fresh round of attempts.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit: int | None = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        if options["interval"] <= 0:
            raise CommandError("--interval must be positive.")
        size: int | None = options["batch_size"]
        most = INTEGER_MAXIMUMS["NOTIFICATION_BATCH_SIZE"]
        if size is not None and not 1 <= size <= most:
            raise CommandError(f"--batch-size must be from 1 to {most}.")
        if options["now"] or options["retry_failed"]:
            requeued = notifications.requeue(waiting=options["now"], failed=options["retry_failed"])
            self.stdout.write(f"Requeued {requeued} notification(s).")
        try:
            while True:
                totals = self.drain(limit, size)
                self.report(totals)
                if not options["loop"]:
                    break
                time.sleep(options["interval"])
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")

    def drain(self, limit: int | None, size: int | None = None) -> dict[str, int]:
        """One pass over the rows due now, oldest first, in batches; each row at most once."""
        return notifications.drain(limit, size=size)

    def report(self, totals: dict[str, int]) -> None:
        counts = notifications.outbox_counts()
        line = (
            f"Sent {totals['sent']}, failed {totals['failed']}, "
            f"skipped {totals['skipped']} (taken by another worker). "
            f"Outbox: {counts['pending']} pending, {counts['sending']} sending, "
            f"{counts['failed']} given up."
        )
        style = self.style.WARNING if totals["failed"] else self.style.SUCCESS
        self.stdout.write(style(line))
