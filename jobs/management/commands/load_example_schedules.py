"""Creates (or resets) the example schedules the README's first command runs."""

from django.core.management.base import BaseCommand
from django.db import transaction

from scheduler.models import Schedule

EXAMPLES = [
    {
        "name": "Preview token cleanup",
        "command": "cleanup_tokens",
        "args": ["--days", "7", "--dry-run"],
        "interval": 15,
    },
    {
        "name": "Preview email normalisation",
        "command": "normalize_emails",
        "args": ["--dry-run", "--batch-size", "200"],
        "interval": 60,
    },
    {"name": "Clean up expired tokens", "command": "cleanup_tokens", "cron": "@hourly"},
    {
        "name": "Daily stats",
        "command": "compute_daily_stats",
        # The day before the fire time at 00:10: the day that just ended.
        "args": ["--date", "{previous_fire:%Y-%m-%d}"],
        "cron": "10 0 * * *",
    },
    {"name": "Nightly batch", "command": "nightly_batch", "cron": "30 3 * * *"},
]


class Command(BaseCommand):
    help = "Create or update the example schedules (idempotent)."
    requires_migrations_checks = True

    @transaction.atomic
    def handle(self, *args, **options):
        for example in EXAMPLES:
            fields = {"args": [], "cron": "", "interval": None, **example}
            name = fields.pop("name")
            schedule = Schedule.objects.filter(name=name).first() or Schedule(name=name)
            for field, value in fields.items():
                setattr(schedule, field, value)
            schedule.full_clean()
            created = schedule.pk is None
            schedule.save()
            verb = "Created" if created else "Updated"
            self.stdout.write(f"{verb} schedule {name!r}: {schedule.command} {schedule.args}")
