"""Admin's backfill form, a schedule's backfill progress, and a run's other attempts.

The form only queues runs (``scheduler.backfill``); a running daemon starts them. It
needs the ``scheduler.run_schedule`` permission, like "Run now".
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from . import backfill
from .describe import status_label
from .models import Run, Schedule


class BackfillForm(forms.Form):
    start = forms.CharField(
        label="From", help_text="ISO date or date-time in the schedule's timezone."
    )
    end = forms.CharField(
        label="To", help_text="ISO date (the whole day) or date-time, in the schedule's timezone."
    )
    dry_run = forms.BooleanField(
        label="Dry run", required=False, initial=True, help_text="List the fire times only."
    )
    rerun_failed = forms.BooleanField(
        label="Rerun failed",
        required=False,
        help_text="Also queue a new run for fire times whose latest run failed.",
    )

    def __init__(self, *args: Any, schedule: Schedule, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schedule = schedule

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            data["start"] = backfill.parse_bound(data["start"], self.schedule.timezone)
            data["end"] = backfill.parse_bound(data["end"], self.schedule.timezone, end=True)
            data["items"] = backfill.plan(
                self.schedule, data["start"], data["end"], rerun_failed=data["rerun_failed"]
            )
        except backfill.BackfillError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


def backfill_view(
    request: HttpRequest, object_id: str, *, model_admin: admin.ModelAdmin[Schedule]
) -> HttpResponse:
    """Show the form; on submit list (dry run) or queue the runs of the range."""
    if not request.user.has_perm("scheduler.run_schedule"):
        raise PermissionDenied
    schedule = Schedule.objects.filter(pk=object_id).first()
    if schedule is None:
        raise Http404("No such schedule.")
    form = BackfillForm(request.POST or None, schedule=schedule)
    items: list[backfill.Item] = []
    if request.method == "POST" and form.is_valid():
        items = form.cleaned_data["items"]
        if not form.cleaned_data["dry_run"]:
            items = backfill.queue(schedule, items)
            count = sum(item.run is not None for item in items)
            model_admin.message_user(
                request,
                f"Queued {count} backfill run(s) of {schedule}; a running scheduler starts "
                "them oldest first.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(
                reverse("admin:scheduler_schedule_change", args=[schedule.pk])
            )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": schedule,
        "title": f"Backfill {schedule}",
        "form": form,
        "items": items,
        "would_queue": sum(item.action != backfill.LEAVE for item in items),
    }
    return render(request, "admin/scheduler/schedule/backfill.html", context)


def backfill_display(schedule: Schedule) -> str:
    """The schedule's backfill going on (N of M done) and a link to the form."""
    link = reverse("admin:scheduler_schedule_backfill", args=[schedule.pk])
    progress = backfill.progress(schedule)
    if progress is None:
        state = "No backfill going on."
    else:
        state = f"Backfill: {progress.done} of {progress.total} done"
        if progress.failed:
            state += f", {progress.failed} did not succeed"
        state += "."
    return format_html('{} <a href="{}">Backfill a range…</a>', state, link)


def attempts_display(run: Run) -> str:
    """Every attempt of the run's first attempt, and the reruns of this run, with links."""
    first_id = run.first_attempt_id or run.pk
    attempts = list(Run.objects.filter(pk=first_id) | Run.objects.filter(first_attempt_id=first_id))
    attempts.sort(key=lambda attempt: attempt.attempt)
    parts = []
    if len(attempts) > 1:
        last = attempts[-1]
        summary = f"Retried: attempt {last.attempt} {status_label(last.status).lower()}"
        items = format_html_join(
            ", ",
            '<a href="{}">attempt {} (#{}, {})</a>',
            (
                (
                    reverse("admin:scheduler_run_change", args=[attempt.pk]),
                    attempt.attempt,
                    attempt.pk,
                    status_label(attempt.status).lower(),
                )
                for attempt in attempts
            ),
        )
        parts.append(format_html("<p>{}: {}</p>", summary, items))
    else:
        parts.append(format_html("<p>Attempt {}</p>", run.attempt))
    links = [("Rerun of", run.rerun_of)] if run.rerun_of is not None else []
    links += [("Rerun as", rerun) for rerun in run.reruns.all()]
    for label, other in links:
        parts.append(
            format_html(
                '<p>{} <a href="{}">#{}</a> ({})</p>',
                label,
                reverse("admin:scheduler_run_change", args=[other.pk]),
                other.pk,
                status_label(other.status).lower(),
            )
        )
    return format_html_join("", "{}", ((part,) for part in parts))
