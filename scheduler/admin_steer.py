"""Admin for steering schedules: pause actions with a reason, resume, the edit history,
and why each fire time of the last 24 hours did or did not run.

``ScheduleAdmin`` mixes :class:`SteerAdmin` in; every edit made through admin is recorded
in the history as the signed-in user's (:mod:`scheduler.history`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import history, steer, why_query
from .models import Schedule


class PauseForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="Shown in lists and in `schedules why`.")


def _user(request: HttpRequest) -> str:
    return str(request.user.get_username()) if request.user.is_authenticated else ""


class SteerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Pause, resume, history and `why` for ``ScheduleAdmin``."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        with history.changed_by(_user(request), "admin"):
            return super().changeform_view(request, object_id, form_url, extra_context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        with history.changed_by(_user(request), "admin"):
            return super().changelist_view(request, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        with history.changed_by(_user(request), "admin"):
            return super().delete_view(request, object_id, extra_context)

    # -- pause ------------------------------------------------------------------------------

    def _pause(
        self,
        request: HttpRequest,
        queryset: QuerySet[Schedule],
        action: str,
        title: str,
        until: Callable[[datetime], datetime | None],
    ) -> HttpResponse | None:
        form = PauseForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            now = timezone.now()
            who = _user(request)
            for schedule in queryset:
                schedule.pause(until=until(now), reason=form.cleaned_data["reason"], by=who)
            self.message_user(
                request, f"Paused {len(queryset)} schedule(s) {title}.", messages.SUCCESS
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Pause {title}",
            "queryset": queryset,
            "form": form,
            "action": action,
        }
        return TemplateResponse(request, "admin/scheduler/schedule/pause.html", context)

    @admin.action(description="Pause for an hour (with a reason)", permissions=["change"])
    def pause_hour(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> Any:
        return self._pause(
            request, queryset, "pause_hour", "for an hour", lambda now: now + timedelta(hours=1)
        )

    @admin.action(description="Pause until tomorrow (with a reason)", permissions=["change"])
    def pause_tomorrow(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> Any:
        return self._pause(request, queryset, "pause_tomorrow", "until tomorrow", steer.tomorrow)

    @admin.action(description="Pause indefinitely (with a reason)", permissions=["change"])
    def pause_indefinitely(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> Any:
        return self._pause(
            request, queryset, "pause_indefinitely", "indefinitely", lambda now: None
        )

    @admin.action(description="Resume selected schedules", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        now = timezone.now()
        resumed = 0
        for schedule in queryset:
            if schedule.is_paused(now):
                schedule.resume(now)
                resumed += 1
        self.message_user(request, f"Resumed {resumed} schedule(s).", messages.SUCCESS)

    # -- display ------------------------------------------------------------------------------

    @admin.display(description="Paused")
    def pause_display(self, obj: Schedule) -> str:
        return steer.pause_state(obj, timezone.now()) or "—"

    @admin.display(description="History of edits")
    def edit_history_display(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "—"
        rows = [
            (
                timezone.localtime(change.changed_at).strftime("%Y-%m-%d %H:%M:%S"),
                change.changed_by or "—",
                change.source,
                change.action,
                "; ".join(f"{name}: {old!r} → {new!r}" for name, (old, new) in changes.items()),
            )
            for change in obj.changes.all()[:50]
            for changes in [change.changes]
        ]
        if not rows:
            return "—"
        return format_html(
            '<table class="schedule-history"><tr><th>When</th><th>Who</th><th>From</th>'
            "<th>What</th><th>Changes</th></tr>{}</table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
            ),
        )

    @admin.display(description="Why (last 24 hours)")
    def why_display(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "—"
        now = timezone.now()
        verdicts = why_query.why(obj, now - timedelta(days=1), now, now)
        if not verdicts:
            return "No fire times in the last 24 hours."
        shown = verdicts[-200:]
        rows = [
            (
                timezone.localtime(v.fire_time).strftime("%Y-%m-%d %H:%M:%S"),
                v.outcome.value,
                v.detail,
            )
            for v in reversed(shown)
        ]
        more = len(verdicts) - len(shown)
        return format_html(
            '<table class="schedule-why"><tr><th>Fire time</th><th>Outcome</th><th>Why</th>'
            "</tr>{}</table>{}",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
            f"(and {more} earlier)" if more else "",
        )
