"""Prints the run it executes for, as ``scheduler.context.current_run()`` tells it."""

from datetime import date

from django.core.management.base import BaseCommand

from scheduler.context import current_run


class Command(BaseCommand):
    help = "Print current_run() and the arguments it was given."

    def add_arguments(self, parser):
        parser.add_argument("words", nargs="*")
        parser.add_argument("--day", type=date.fromisoformat)

    def handle(self, *args, words, day, **options):
        run = current_run()
        if run is None:
            self.stdout.write("run: none")
        else:
            self.stdout.write(
                f"run: {run.id} {run.scheduled_for.isoformat()} {run.reason} {run.schedule}"
            )
        self.stdout.write(f"args: {' '.join(words)} day={day}")
