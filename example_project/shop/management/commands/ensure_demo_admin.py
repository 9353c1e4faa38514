"""``manage.py ensure_demo_admin``: create the demo superuser if it does not exist.

For the demo only (``scripts/demo``): it refuses to run when ``DEBUG`` is off.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create the demo superuser (default admin/admin) unless it exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin")
        parser.add_argument("--email", default="admin@example.com")

    def handle(self, *args: Any, username: str, password: str, email: str, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("Refusing to create a demo superuser with DEBUG off.")
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Superuser {username!r} already exists.")
            return
        User.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(
            self.style.SUCCESS(f"Created superuser {username!r} (password {password!r}).")
        )
