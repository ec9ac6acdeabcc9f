import json as _json
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from scheduler.describe import relative
from scheduler.health import check_health

EXIT_CODES = {"ok": 0, "stale": 1, "none": 2}


class Command(BaseCommand):
    help = (
        "Exit 0 if a scheduler's heartbeat is fresh, 1 if all are stale, 2 if there is none "
        "(for Docker HEALTHCHECK and Kubernetes probes)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--this-host", action="store_true", help="Only count daemons on this host."
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, this_host: bool, json: bool, **options: Any) -> None:
        host = socket.gethostname() if this_host else None
        report = check_health(timezone.now(), host=host)
        if json:
            self.stdout.write(_json.dumps(report.as_dict(), indent=2))
        else:
            fresh = sum(daemon["fresh"] for daemon in report.daemons)
            oldest = report.oldest_queued_seconds
            self.stdout.write(
                f"{report.status}: {fresh} of {len(report.daemons)} daemon(s) fresh, "
                f"{report.queued} run(s) queued"
                + (f", the oldest for {relative(oldest)}" if oldest is not None else "")
            )
        if not report.ok:
            raise SystemExit(EXIT_CODES[report.status])
