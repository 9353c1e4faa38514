"""Delete old webhook events from the inbox: ``manage.py paygate_prune_webhooks``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_paygate import webhooks
from django_paygate.conf import paygate_settings

#: Providers retry for up to about three days; a pruned event delivered again is processed again.
SAFE_DAYS = 7


class Command(BaseCommand):
    help = (
        "Delete processed and ignored webhook events received more than --older-than days ago "
        "(default: PAYGATE['WEBHOOK_RETENTION_DAYS']). Failed events are kept unless "
        "--include-failed is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            metavar="DAYS",
            help="Age in days (default: PAYGATE['WEBHOOK_RETENTION_DAYS'], 30).",
        )
        parser.add_argument(
            "--include-failed", action="store_true", help="Delete old failed events too."
        )
        parser.add_argument("--dry-run", action="store_true", help="Count them; delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than"]
        if days is None:
            days = paygate_settings.WEBHOOK_RETENTION_DAYS
        if not isinstance(days, int) or days < 0:
            raise CommandError(f"--older-than must be a number of days >= 0, not {days!r}.")
        if days < SAFE_DAYS:
            self.stderr.write(
                self.style.WARNING(
                    f"Keeping only {days} day(s): providers retry for days, and an event pruned "
                    "before its last retry is processed again when it arrives."
                )
            )
        count = webhooks.prune_events(
            older_than_days=days,
            include_failed=options["include_failed"],
            dry_run=options["dry_run"],
        )
        kinds = (
            "processed, ignored and failed"
            if options["include_failed"]
            else "processed and ignored"
        )
        if options["dry_run"]:
            self.stdout.write(
                f"{count} {kinds} webhook event(s) older than {days} day(s) would be deleted "
                "(dry run)."
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Deleted {count} {kinds} webhook event(s) older than {days} day(s)."
                )
            )
