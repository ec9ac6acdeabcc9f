"""Store one row of usage figures per calendar day.

Dashboards read ``DailyStat`` instead of aggregating users and tokens on every page view.
Days are local days in the current Django timezone, so a row matches what staff call
"yesterday". Rerunning for a date overwrites its row, which makes backfills and retries safe.
"""

from argparse import ArgumentTypeError
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from jobs.models import AuthToken, DailyStat


def parse_day(value: str | date) -> date:
    if isinstance(value, date):
        return value
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise CommandError(
            f"Invalid --date {value!r}: expected a valid date as YYYY-MM-DD."
        ) from None


def day_argument(value: str) -> date:
    """Parse ``--date`` in the parser, so a schedule with a bad date is refused at save."""
    try:
        return parse_day(value)
    except CommandError as exc:
        raise ArgumentTypeError(str(exc)) from None


def local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class Command(BaseCommand):
    help = "Compute and store user and token statistics for one day (default: yesterday)."
    requires_migrations_checks = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--date",
            dest="day",
            type=day_argument,
            help="Day to compute, as YYYY-MM-DD, in the current timezone.",
        )

    def handle(self, *args: Any, day: str | date | None, **options: Any) -> None:
        target = parse_day(day) if day is not None else timezone.localdate() - timedelta(days=1)
        start, end = local_midnight(target), local_midnight(target + timedelta(days=1))
        User = get_user_model()
        with transaction.atomic():
            counts = {
                "new_users": User.objects.filter(
                    date_joined__gte=start, date_joined__lt=end
                ).count(),
                "tokens_created": AuthToken.objects.filter(
                    created_at__gte=start, created_at__lt=end
                ).count(),
                "active_tokens": AuthToken.objects.filter(created_at__lt=end).count(),
            }
            DailyStat.objects.update_or_create(date=target, defaults=counts)
        self.stdout.write(
            f"Stats for {target:%Y-%m-%d}: {counts['new_users']} new users, "
            f"{counts['tokens_created']} tokens created, {counts['active_tokens']} active tokens."
        )
