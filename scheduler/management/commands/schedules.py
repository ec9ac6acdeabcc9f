import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TextIO, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from scheduler import backfill, cli, crontab, history, steer, why_query
from scheduler.commands import CommandNotAllowed, check_allowed
from scheduler.execution import execute_run
from scheduler.executor import execute
from scheduler.liveness import heartbeat_owner
from scheduler.models import Run, Status
from scheduler.timing import get_zone

_Data = TypeVar("_Data")


class Command(BaseCommand):
    help = (
        "List schedules, show their runs, run or test one now, backfill a range, "
        "preview an expression."
    )
    # call_command("schedules", "import-crontab", "-", stdin=...) reads that instead.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        listing = verbs.add_parser("list", help="Every schedule with its next and last run.")
        listing.add_argument("--json", action="store_true")
        runs = verbs.add_parser("runs", help="A schedule's recent runs.")
        runs.add_argument("name")
        runs.add_argument("--limit", type=int, default=20)
        runs.add_argument("--json", action="store_true")
        run = verbs.add_parser(
            "run", help="Run a schedule now, recorded as manual; exits with its exit code."
        )
        run.add_argument("name")
        test = verbs.add_parser(
            "test", help="Run a schedule's command now without recording a run."
        )
        test.add_argument("name")
        preview = verbs.add_parser("preview", help="Next fire times of a cron expression.")
        preview.add_argument("expression", help='e.g. "30 3 * * 1-5" or @daily')
        preview.add_argument("--timezone", dest="zone", default=settings.TIME_ZONE)
        preview.add_argument("--count", type=int, default=10)
        preview.add_argument("--json", action="store_true")
        pause = verbs.add_parser(
            "pause", help="Pause a schedule: its fire times until then neither run nor catch up."
        )
        pause.add_argument("name")
        pause.add_argument("--reason", required=True, help="Why (shown in lists and `why`).")
        end = pause.add_mutually_exclusive_group()
        end.add_argument("--for", dest="for_", metavar="DURATION", help="e.g. 30m, 2h, 1d")
        end.add_argument("--until", metavar="TIME", help="ISO 8601, e.g. 2026-03-01T14:00")
        resume = verbs.add_parser("resume", help="End a schedule's pause now.")
        resume.add_argument("name")
        why = verbs.add_parser(
            "why", help="Why each fire time of a schedule ran or did not (default: last 24 h)."
        )
        why.add_argument("name")
        why.add_argument("--at", metavar="TIME", help="Only the fire time at TIME (ISO 8601).")
        why.add_argument("--from", dest="from_", metavar="TIME")
        why.add_argument("--to", metavar="TIME")
        why.add_argument("--json", action="store_true")
        importing = verbs.add_parser(
            "import-crontab",
            help="Schedules for the manage.py lines of a crontab; --apply creates them.",
        )
        importing.add_argument("file", help="a user crontab or /etc/cron.d file; - for stdin")
        importing.add_argument(
            "--apply", action="store_true", help="Create the schedules (again: no change)."
        )
        layout = importing.add_mutually_exclusive_group()
        layout.add_argument(
            "--system",
            dest="system",
            action="store_const",
            const=True,
            help="An /etc/cron.d file: a user column before each command (default: detect).",
        )
        layout.add_argument(
            "--user", dest="system", action="store_const", const=False, help="A user crontab."
        )
        importing.add_argument("--json", action="store_true")
        filling = verbs.add_parser(
            "backfill",
            help="Queue runs for a schedule's fire times in a range, for a running daemon.",
        )
        filling.add_argument("name")
        filling.add_argument(
            "--from", dest="start", required=True, help="ISO date or date-time, schedule's zone"
        )
        filling.add_argument(
            "--to", dest="end", required=True, help="ISO date (the whole day) or date-time"
        )
        filling.add_argument("--dry-run", action="store_true", help="List them; queue nothing.")
        filling.add_argument(
            "--rerun-failed",
            action="store_true",
            help="Also queue a new run for fire times whose latest run failed.",
        )
        filling.add_argument(
            "--wait", action="store_true", help="Follow the queued runs until all have ended."
        )

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        getattr(self, f"do_{verb.replace('-', '_')}")(**options)

    def emit(self, data: _Data, as_json: bool, render: Callable[[_Data], str]) -> None:
        self.stdout.write(json.dumps(data, indent=2) if as_json else render(data))

    def do_list(self, json: bool, **options: Any) -> None:
        rows = cli.schedule_rows(timezone.now())
        columns = [
            ("name", "NAME"),
            ("when", "WHEN"),
            ("next_run_in", "NEXT IN"),
            ("last_status", "LAST"),
            ("enabled", "ON"),
            ("command", "COMMAND"),
            ("paused", "PAUSED"),
        ]
        self.emit(rows, json, lambda data: cli.table(data, columns))

    def do_runs(self, name: str, limit: int, json: bool, **options: Any) -> None:
        rows = cli.run_rows(cli.find_schedule(name), limit)
        columns = [
            ("id", "RUN"),
            ("scheduled_for", "SCHEDULED FOR"),
            ("reason", "REASON"),
            ("status", "STATUS"),
            ("exit_code", "EXIT"),
            ("duration", "SECONDS"),
            ("host", "HOST"),
        ]
        self.emit(rows, json, lambda data: cli.table(data, columns))

    def do_preview(
        self, expression: str, zone: str, count: int, json: bool, **options: Any
    ) -> None:
        data = cli.preview(expression, zone, timezone.now(), count)
        self.emit(
            data,
            json,
            lambda d: "\n".join(
                [f"{d['expression']}: {d['description']} ({d['timezone']})", *d["next"]]
            ),
        )

    def do_pause(
        self, name: str, reason: str, for_: str | None, until: str | None, **options: Any
    ) -> None:
        now = timezone.now()
        try:
            end = (
                now + steer.parse_duration(for_)
                if for_
                else steer.parse_moment(until)
                if until
                else None
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if end is not None and end <= now:
            raise CommandError("The pause must end in the future.")
        schedule = cli.find_schedule(name)
        who = history.terminal_user()
        with history.changed_by(who, "cli"):
            try:
                schedule.pause(until=end, reason=reason, by=who or "cli")
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"{schedule.name}: {steer.pause_state(schedule, now)}")

    def do_resume(self, name: str, **options: Any) -> None:
        schedule = cli.find_schedule(name)
        now = timezone.now()
        if not schedule.is_paused(now):
            self.stdout.write(f"{schedule.name} is not paused.")
            return
        with history.changed_by(history.terminal_user(), "cli"):
            schedule.resume(now)
        self.stdout.write(f"{schedule.name} resumed: it runs from its next fire time.")

    def do_why(
        self,
        name: str,
        at: str | None,
        from_: str | None,
        to: str | None,
        json: bool,
        **options: Any,
    ) -> None:
        schedule = cli.find_schedule(name)
        now = timezone.now()
        try:
            if at:
                moment = steer.parse_moment(at)
                # The fire time at TIME, or the latest one before it.
                fire = schedule.timing.previous_fire_time(moment + timedelta(microseconds=1))
                start = end = fire or moment
            else:
                end = steer.parse_moment(to) if to else now
                start = steer.parse_moment(from_) if from_ else end - timedelta(days=1)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        verdicts = [v.as_dict() for v in why_query.why(schedule, start, end, now)]
        columns = [("fire_time", "FIRE TIME"), ("outcome", "OUTCOME"), ("detail", "WHY")]
        self.emit(verdicts, json, lambda data: cli.table(data, columns))

    def do_import_crontab(
        self,
        file: str,
        apply: bool,
        system: bool | None,
        json: bool,
        stdin: TextIO | None = None,
        **options: Any,
    ) -> None:
        text = crontab.read_source(file, stdin or sys.stdin)
        parsed = crontab.parse_crontab(
            text,
            timezone=settings.TIME_ZONE,
            settings_module=settings.SETTINGS_MODULE,
            system=system,
        )
        reviewed = crontab.review(parsed, timezone.now())
        if apply:
            crontab.apply(reviewed)
        self.emit(crontab.report(file, parsed, reviewed), json, crontab.render)

    def do_backfill(
        self,
        name: str,
        start: str,
        end: str,
        dry_run: bool,
        rerun_failed: bool,
        wait: bool,
        **options: Any,
    ) -> None:
        schedule = cli.find_schedule(name)
        try:
            items = backfill.plan(
                schedule,
                backfill.parse_bound(start, schedule.timezone),
                backfill.parse_bound(end, schedule.timezone, end=True),
                rerun_failed=rerun_failed,
            )
        except backfill.BackfillError as exc:
            raise CommandError(str(exc)) from None
        if not dry_run:
            items = backfill.queue(schedule, items)
        zone = get_zone(schedule.timezone)
        for item in items:
            self.stdout.write(cli.backfill_line(item, zone, dry_run))
        queued = [item.run.pk for item in items if item.run is not None]
        verb = "Would queue" if dry_run else "Queued"
        count = sum(item.action != backfill.LEAVE for item in items)
        self.stdout.write(f"{verb} {count} of {len(items)} fire time(s) of {schedule}.")
        if wait and queued:
            self.follow(Run.objects.filter(pk__in=queued))

    def follow(self, runs: QuerySet[Run]) -> None:
        """Show the progress of ``runs`` until all have ended: a bar on a terminal."""
        tty = self.stdout.isatty()
        shown = None
        while True:
            progress = backfill.progress_of(runs)
            line = cli.progress_line(progress, bar=tty)
            if line != shown:
                self.stdout.write(f"\r{line}" if tty else line, ending="" if tty else "\n")
                self.stdout.flush()
                shown = line
            if progress.done >= progress.total:
                break
            time.sleep(0.5)
        if tty:
            self.stdout.write("")
        if progress.failed:
            raise CommandError(f"{progress.failed} backfill run(s) did not succeed.")

    def do_run(self, name: str, **options: Any) -> None:
        schedule = cli.find_schedule(name)
        with stop_on_ctrl_c() as stop, heartbeat_owner("cli") as owner:
            run = Run.claim_manual(schedule, owner=owner)
            if run.status == Status.SKIPPED:
                self.stderr.write(f"Run #{run.pk} skipped: {run.stderr}")
            else:
                run = execute_run(run, stop=stop, echo=self.echo)
        self.stderr.write(f"Run #{run.pk}: {run.get_status_display()} (exit code {run.exit_code})")
        sys.exit(cli.exit_status(run))

    def do_test(self, name: str, **options: Any) -> None:
        schedule = cli.find_schedule(name)
        try:
            check_allowed(schedule.command)
        except CommandNotAllowed as exc:
            raise CommandError(str(exc)) from None
        with stop_on_ctrl_c() as stop:
            result = execute(
                schedule.command,
                schedule.expanded_args(timezone.now()),
                schedule.effective_executor(),
                timeout=schedule.timeout,
                stop=stop,
                on_output=self.echo,
            )
        self.stderr.write(f"Not recorded: {result.status} (exit code {result.exit_code})")
        sys.exit(0 if result.status == Status.SUCCEEDED else (result.exit_code or 1))

    def echo(self, stream: str, text: str) -> None:
        if not text:
            return
        target = self.stdout if stream == "stdout" else self.stderr
        target.write(text, ending="")
        target.flush()


@contextmanager
def stop_on_ctrl_c() -> Iterator[threading.Event]:
    """Ctrl-C stops the command's process and still records the run as interrupted."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
