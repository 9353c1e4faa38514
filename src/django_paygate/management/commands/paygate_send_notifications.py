"""``manage.py paygate_send_notifications``: deliver what the outbox still owes.

Sends the post-commit signals and emails of notifications that are due: new
rows whose task never ran (no worker, a crash), failed sends whose backoff has
passed, and rows whose worker died while sending (lease expired). Each row is
claimed by one conditional update, so several copies of this command, or a
command and the task workers, never send a message twice.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_paygate import notifications

BATCH_SIZE = 200


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
        if options["now"] or options["retry_failed"]:
            requeued = notifications.requeue(waiting=options["now"], failed=options["retry_failed"])
            self.stdout.write(f"Requeued {requeued} notification(s).")
        try:
            while True:
                totals = self.drain(limit)
                self.report(totals)
                if not options["loop"]:
                    break
                time.sleep(options["interval"])
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")

    def drain(self, limit: int | None) -> dict[str, int]:
        """One pass over the rows due now, oldest first; each row at most once."""
        totals = {"sent": 0, "failed": 0, "skipped": 0}
        last: int | None = None
        while limit is None or sum(totals.values()) < limit:
            size = BATCH_SIZE if limit is None else min(BATCH_SIZE, limit - sum(totals.values()))
            ids = notifications.due_ids(size, after=last)
            if not ids:
                break
            for key, value in notifications.deliver(ids).items():
                totals[key] += value
            last = ids[-1]
        return totals

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
