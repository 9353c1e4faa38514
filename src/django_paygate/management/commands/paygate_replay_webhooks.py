"""Replay stored webhook events through the pipeline: ``manage.py paygate_replay_webhooks``."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_paygate import webhooks
from django_paygate.models import WebhookEvent


def parse_moment(value: str, *, end_of_day: bool = False) -> datetime:
    """``2024-05-01`` or ``2024-05-01T12:30[:00][+02:00]``; naive means the current time zone.

    With ``end_of_day``, a bare date means the start of the next day (so
    ``--until 2024-05-01`` includes all of May 1st).
    """
    try:
        day = parse_date(value)
        moment = None if day else parse_datetime(value)
    except ValueError:  # well formed but impossible, like 2024-02-30
        day = moment = None
    if day is not None:
        moment = datetime.combine(day + timedelta(days=1) if end_of_day else day, time.min)
    if moment is None:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = (
        "Apply stored webhook events again through the same pipeline (no new signature check). "
        "By default every failed event; narrow with --id, --provider, --since and --until."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--id",
            action="append",
            default=[],
            dest="ids",
            metavar="ID",
            help="A provider event id or an inbox row id (repeatable).",
        )
        parser.add_argument("--provider", help="Only events of this provider alias.")
        parser.add_argument(
            "--since", help="Only events received at or after this date (YYYY-MM-DD) or date-time."
        )
        parser.add_argument(
            "--until", help="Only events received before this date-time, or on or before this date."
        )
        parser.add_argument(
            "--all-statuses",
            action="store_true",
            help="Also replay processed and ignored events (default: failed ones only).",
        )
        parser.add_argument("--limit", type=int, default=None, help="At most this many events.")
        parser.add_argument(
            "--dry-run", action="store_true", help="List the events; replay nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        since = parse_moment(options["since"]) if options["since"] else None
        until = parse_moment(options["until"], end_of_day=True) if options["until"] else None
        if since and until and since >= until:
            raise CommandError("--since must be before --until.")
        events = webhooks.select_events(
            ids=options["ids"],
            provider=options["provider"],
            since=since,
            until=until,
            statuses=None if options["all_statuses"] else [WebhookEvent.Status.FAILED],
        )
        if options["limit"] is not None:
            events = events[: max(options["limit"], 0)]
        selected = list(events)
        if not selected:
            hint = "" if options["all_statuses"] else " (only failed events; see --all-statuses)"
            self.stdout.write(f"No matching webhook events{hint}.")
            return
        if options["dry_run"]:
            for event in selected:
                self.stdout.write(self._describe(event))
            self.stdout.write(f"{len(selected)} event(s) would be replayed (dry run).")
            return
        summary = webhooks.ReplaySummary()
        for event in selected:
            result = webhooks.replay_event(event)
            summary.add(result)
            if options["verbosity"] >= 2 or result.outcome in webhooks.NOT_DONE:
                self.stdout.write(f"{self._describe(event)}  -> {result.outcome}: {result.message}")
        style = self.style.SUCCESS if not summary.still_failing else self.style.WARNING
        self.stdout.write(style(f"{summary}."))
        if summary.still_failing:
            raise CommandError(f"{summary.still_failing} event(s) are still not processed.")

    @staticmethod
    def _describe(event: WebhookEvent) -> str:
        return (
            f"#{event.pk}  {event.provider}  {event.event_id}  {event.type or '?'}  "
            f"{event.status}  received {event.received_at:%Y-%m-%d %H:%M:%S}"
        )
