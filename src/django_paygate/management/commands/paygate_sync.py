"""Repair payments left between steps: ``manage.py paygate_sync``."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_paygate import services


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


class Command(BaseCommand):
    help = (
        "Pull the truth from the provider for payments stuck in flight or authorized (or with "
        "unanswered refunds) for longer than a threshold, and apply it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=_at_least(0),
            default=None,
            metavar="SECONDS",
            help="Only payments untouched for this long (default: PAYGATE['SYNC_STUCK_AFTER']).",
        )
        parser.add_argument("--provider", help="Only this provider alias.")
        parser.add_argument(
            "--limit", type=_at_least(1), default=None, help="At most this many payments."
        )
        parser.add_argument("--dry-run", action="store_true", help="List them; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        stuck = services.find_stuck_payments(options["older_than"])
        if options["provider"]:
            stuck = stuck.filter(provider=options["provider"])
        limit = options["limit"]
        total = stuck.count() if limit is None else min(stuck.count(), limit)
        if options["dry_run"]:
            for payment in stuck[:limit]:
                self.stdout.write(
                    f"{payment.pk}  {payment.provider}  {payment.status}  "
                    f"updated {payment.updated_at:%Y-%m-%d %H:%M}"
                )
            self.stdout.write(f"{total} stuck payment(s); nothing changed (dry run).")
            return
        tally: Counter[str] = Counter()
        outcomes = services.sync_stuck_payments(
            options["older_than"], provider=options["provider"], limit=options["limit"]
        )
        for done, outcome in enumerate(outcomes, start=1):
            if outcome.error:
                tally["errors"] += 1
                self.stderr.write(f"\n{outcome.payment_id}: {outcome.error}")
            elif outcome.changed:
                tally["repaired"] += 1
            else:
                tally["unchanged"] += 1
            tally["flagged for review"] += outcome.flagged
            self._progress(done, total)
        if total:
            self.stdout.write("")
        labels = ("repaired", "unchanged", "errors", "flagged for review")
        summary = ", ".join(f"{tally[label]} {label}" for label in labels if tally[label])
        self.stdout.write(
            self.style.SUCCESS(f"Synced {total} payment(s): {summary or 'nothing to do'}.")
        )

    def _progress(self, done: int, total: int, width: int = 30) -> None:
        filled = width * done // max(total, 1)
        self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
        self.stdout.flush()
