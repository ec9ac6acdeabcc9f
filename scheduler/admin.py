"""Admin: schedules are edited here; runs are a read-only history.

"Run now" only queues a ``manual`` run for a daemon to start: the web request never runs
a command, so a slow command cannot hold a web worker and runs are recorded one way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import admin_backfill
from .admin_queries import (
    CappedPaginator,
    OutputSearchFilter,
    SuccessRateChangeList,
    runs_matching,
    search_output,
)
from .admin_steer import SteerAdmin
from .conf import conf
from .describe import (
    STATUS_COLOURS,
    UNKNOWN_COLOUR,
    command_line,
    describe_timing,
    relative,
    status_label,
)
from .models import (
    Alert,
    DatabaseOutage,
    Executor,
    Heartbeat,
    HeartbeatQuerySet,
    Run,
    Schedule,
    ScheduleQuerySet,
    Status,
)
from .steer import resume_at
from .timeline import timeline_url, timeline_view
from .timing import TimingError

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups, _FieldsetSpec
    from django_stubs_ext import WithAnnotations

    from .models import Age, LastRun

    class ScheduleRow(LastRun):
        """A schedule as ``ScheduleAdmin.get_queryset`` gives it."""

        recent_finished: list[Run]

    class HeartbeatRow(Age):
        """A heartbeat as ``HeartbeatAdmin.get_queryset`` gives it."""

        running_count: int

    # django-stubs' ModelAdmin is generic, Django's is not (without django_stubs_ext).
    ScheduleAdminBase = admin.ModelAdmin[Schedule]
    RunAdminBase = admin.ModelAdmin[Run]
    HeartbeatAdminBase = admin.ModelAdmin[Heartbeat]
    AlertAdminBase = admin.ModelAdmin[Alert]
    OutageAdminBase = admin.ModelAdmin[DatabaseOutage]
else:
    ScheduleAdminBase = RunAdminBase = HeartbeatAdminBase = admin.ModelAdmin
    AlertAdminBase = OutageAdminBase = admin.ModelAdmin

# The job store is the daemon's internal state; the history lives in Run. Without
# django_apscheduler installed its models cannot be imported: the system check says so.
if apps.is_installed("django_apscheduler"):
    from django_apscheduler.models import DjangoJob, DjangoJobExecution

    for model in (DjangoJob, DjangoJobExecution):
        if admin.site.is_registered(model):
            admin.site.unregister(model)


def moment(value: datetime | None) -> str:
    """Seconds and zone matter when telling a fire time from a start: show both."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {local:%Z}"


def list_moment(value: datetime, since: datetime | None = None) -> str:
    """A time for the run list: to the second, its date left out when it is ``since``'s."""
    local = timezone.localtime(value)
    clock = format_html('<span class="time">{}</span>', f"{local:%H:%M:%S}")
    if since is not None and timezone.localtime(since).date() == local.date():
        return clock
    return format_html('<span class="date">{}</span> {}', f"{local:%Y-%m-%d}", clock)


def sent_to_task_backend(run: Run) -> bool:
    """Whether ``run`` went (or was meant to go) to a Django Tasks backend."""
    return run.executor == Executor.TASKS or bool(run.task_id) or run.enqueued_at is not None


def status_badge(status: str | None) -> str:
    if not status:
        return "—"
    return format_html(
        '<span class="run-status run-status-{}" style="color:#fff;background:{};'
        'padding:1px 6px;border-radius:8px;white-space:nowrap">{}</span>',
        status,
        STATUS_COLOURS.get(status, UNKNOWN_COLOUR),
        status_label(status),
    )


def runs_url(schedule_id: int) -> str:
    return reverse("admin:scheduler_run_changelist") + f"?schedule__id__exact={schedule_id}"


RECENT_RUNS = 20
RECENT_ALERTS = 5


class LastStatusFilter(admin.SimpleListFilter):
    title = "last run"
    parameter_name = "last_status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [("never", "Never ran"), *Status.choices]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[WithAnnotations[Schedule, LastRun]]
    ) -> QuerySet[WithAnnotations[Schedule, LastRun]]:
        value = self.value()  # the queryset comes from get_queryset, with the last run
        if value is None:
            return queryset
        if value == "never":
            # The plugin checks every lookup on an annotation against its type, isnull too.
            return queryset.filter(last_status__isnull=True)  # type: ignore[misc]
        return queryset.filter(last_status=value)


@admin.register(Schedule)
class ScheduleAdmin(SteerAdmin):
    list_display = (
        "name",
        "command_display",
        "when_display",
        "enabled",
        "next_run_display",
        "last_run_display",
        "success_rate_display",
        "pause_display",
    )
    list_filter = ("enabled", "command", LastStatusFilter, "defined_in_code")
    search_fields = ("name", "command")
    actions = (
        "enable",
        "disable",
        "run_now",
        "pause_hour",
        "pause_tomorrow",
        "pause_indefinitely",
        "resume",
    )
    formfield_overrides = {
        models.JSONField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 60})},
        models.URLField: {"assume_scheme": "https"},
    }
    readonly_fields = (
        "alerts_display",
        "next_runs_display",
        "recent_runs_display",
        "backfill_display",
        "defined_in_code",
        "created_at",
        "updated_at",
        "pause_display",
        "edit_history_display",
        "why_display",
    )
    fieldsets = (
        (None, {"fields": ("name", "command", "args", "enabled")}),
        ("When", {"fields": ("cron", "interval", "timezone", "next_runs_display")}),
        (
            "How",
            {
                "fields": (
                    "executor",
                    "timeout",
                    "overlap",
                    "jitter",
                    "catch_up",
                    "catch_up_window",
                    "catch_up_runs",
                )
            },
        ),
        (
            "Monitoring",
            {
                "fields": (
                    "notify",
                    "ping_url",
                    "late_after",
                    "long_after",
                    "expect_success_within",
                    "alerts_display",
                )
            },
        ),
        ("Retries", {"fields": ("retries", "retry_delay")}),
        ("Pause", {"fields": ("pause_display",)}),
        (
            "History",
            {
                "fields": (
                    "recent_runs_display",
                    "backfill_display",
                    "keep_runs",
                    "keep_days",
                    "defined_in_code",
                    "created_at",
                    "updated_at",
                    "why_display",
                    "edit_history_display",
                )
            },
        ),
    )

    @admin.display(description="Alerts")
    def alerts_display(self, obj: Schedule | None) -> str:
        """Show the schedule's open alerts and the latest cleared ones."""
        if obj is None or obj.pk is None:
            return "—"
        recent = list(obj.alerts.all()[:RECENT_ALERTS])
        if not recent:
            return "None raised."
        link = reverse("admin:scheduler_alert_changelist") + f"?schedule__id__exact={obj.pk}"
        rows = format_html_join(
            "",
            "<li>{}: {} — {}</li>",
            (
                (
                    "open" if alert.is_open else f"cleared {alert.cleared_at:%Y-%m-%d %H:%M:%S}",
                    f"{alert.raised_at:%Y-%m-%d %H:%M:%S}",
                    alert.message if alert.is_open else f"{alert.message} ({alert.note})",
                )
                for alert in recent
            ),
        )
        return format_html('<ul>{}</ul><a href="{}">All alerts</a>', rows, link)

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> _FieldsetSpec:
        if obj is None:  # nothing to show in History before the first save
            return [fieldset for fieldset in self.fieldsets if fieldset[0] != "History"]
        return self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> list[str]:
        """Fields that ``SCHEDULER["SCHEDULES"]`` sets are owned by code, not by admin."""
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.defined_in_code:
            owned = conf.SCHEDULES.get(obj.name, {}) if isinstance(conf.SCHEDULES, dict) else {}
            readonly += ["name", *(field for field in owned if field not in readonly)]
        return readonly

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        # The admin's queryset is the default manager's, whose class the stubs do not know.
        return cast(ScheduleQuerySet, super().get_queryset(request)).with_last_run()

    def get_changelist(self, request: HttpRequest, **kwargs: object) -> type[SuccessRateChangeList]:
        """The list's success rates come per page, from the latest runs' index."""
        return SuccessRateChangeList

    @admin.display(description="Command")
    def command_display(self, obj: Schedule) -> str:
        return format_html("<code>{}</code>", command_line(obj.command, obj.args))

    @admin.display(description="When")
    def when_display(self, obj: Schedule) -> str:
        return describe_timing(obj)

    @admin.display(description="Next run")
    def next_run_display(self, obj: Schedule) -> str:
        if not obj.enabled or obj.paused_indefinitely:
            return "—"
        try:
            fires = obj.next_fire_times(resume_at(obj, timezone.now()), 1)
        except TimingError as exc:
            return format_html('<span style="color:#dc3545">{}</span>', exc)
        if not fires:
            return "never"
        return format_html(
            "{}<br><small>in {}</small>",
            fires[0].strftime("%Y-%m-%d %H:%M:%S %Z"),
            relative((fires[0] - timezone.now()).total_seconds()),
        )

    @admin.display(description="Last run", ordering="last_run_at")
    def last_run_display(self, obj: WithAnnotations[Schedule, ScheduleRow]) -> str:
        status = getattr(obj, "last_status", None)
        if not status:
            return "never ran"
        assert obj.last_run_at is not None  # a run's fire time is never empty
        return format_html(
            '<a href="{}">{}</a><br><small>{}</small>',
            runs_url(obj.pk),
            status_badge(status),
            obj.last_run_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
        )

    @admin.display(description=f"Success (last {RECENT_RUNS})")
    def success_rate_display(self, obj: Schedule) -> str:
        succeeded, finished = getattr(obj, "recent_success", (0, 0))
        if not finished:
            return "—"
        return f"{100 * succeeded // finished} % of {finished}"

    @admin.display(description="Next five fire times")
    def next_runs_display(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "Shown after saving."
        try:
            fires = obj.next_fire_times(timezone.now(), 5)
        except TimingError as exc:
            return str(exc)
        items = format_html_join(
            "", "<li>{}</li>", ((fire.strftime("%a %Y-%m-%d %H:%M:%S %Z"),) for fire in fires)
        )
        return format_html("<p>{}</p><ul>{}</ul>", describe_timing(obj), items)

    @admin.display(description="Recent runs")
    def recent_runs_display(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "—"
        runs = list(obj.runs.all()[:10])
        if not runs:
            return format_html(
                'No runs yet. <a href="{}">Timeline of this schedule</a>', timeline_url(obj)
            )
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:scheduler_run_change", args=[run.pk]),
                    run.pk,
                    status_badge(run.status),
                    run.get_reason_display(),
                    run.scheduled_for.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "—" if run.exit_code is None else run.exit_code,
                )
                for run in runs
            ),
        )
        return format_html(
            "<table><thead><tr><th>Run</th><th>Status</th><th>Reason</th>"
            "<th>Scheduled for</th><th>Exit code</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All runs of this schedule</a> · '
            '<a href="{}">Timeline of this schedule</a></p>',
            rows,
            runs_url(obj.pk),
            timeline_url(obj),
        )

    @admin.display(description="Backfill")
    def backfill_display(self, obj: Schedule) -> str:
        return admin_backfill.backfill_display(obj) if obj.pk else "—"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(partial(admin_backfill.backfill_view, model_admin=self))
        url = path("<path:object_id>/backfill/", view, name="scheduler_schedule_backfill")
        return [url, *super().get_urls()]

    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Schedule], value: bool) -> None:
        # save() rather than update(): updated_at is what a running daemon watches.
        changed = 0
        for schedule in queryset.exclude(enabled=value):
            schedule.enabled = value
            schedule.save(update_fields=["enabled", "updated_at"])
            changed += 1
        state = "Enabled" if value else "Disabled"
        self.message_user(request, f"{state} {changed} schedule(s).", messages.SUCCESS)

    @admin.action(description="Run selected schedules now", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            run = Run.claim_manual(schedule)
            self.message_user(
                request,
                format_html(
                    'Queued <a href="{}">run #{}</a> of {}; a running scheduler starts it '
                    "within seconds.",
                    reverse("admin:scheduler_run_change", args=[run.pk]),
                    run.pk,
                    schedule.name,
                ),
                messages.SUCCESS,
            )

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("scheduler.run_schedule")


@admin.register(Run)
class RunAdmin(RunAdminBase):
    # Six narrow columns, so the list fits a 1280 px window beside admin's sidebars: the
    # command goes under its schedule, the exit code by the status, the reason under the
    # fire time and the host under the start.
    list_display = (
        "id",
        "schedule_list_display",
        "status_list_display",
        "scheduled_for_list_display",
        "started_at_list_display",
        "duration_display",
    )
    list_filter = (
        "status",
        "reason",
        "schedule",
        ("scheduled_for", admin.DateFieldListFilter),
        OutputSearchFilter,
    )
    show_full_result_count = False  # a second COUNT(*) over a long history per page
    paginator = CappedPaginator  # and the first one counts at most COUNT_CAP rows
    search_fields = ("command", "stdout", "stderr")  # only with "search in: output too"
    list_select_related = ("schedule",)
    fields = (
        "schedule_link",
        "command_display",
        "reason",
        "status_display",
        "attempts_display",
        "scheduled_for_display",
        "created_at_display",
        "started_at_display",
        "finished_at_display",
        "duration_display",
        "exit_code",
        "executor",
        "enqueued_at_display",
        "task_id",
        "host",
        "pid",
        "stdout_display",
        "stderr_display",
    )
    readonly_fields = fields
    task_fields = ("enqueued_at_display", "task_id")

    def get_fields(self, request: HttpRequest, obj: Run | None = None) -> _FieldGroups:
        """Leave out the task backend's fields for a run that never went to one."""
        fields = super().get_fields(request, obj)
        if obj is not None and not sent_to_task_backend(obj):
            return [field for field in fields if field not in self.task_fields]
        return fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Run], search_term: str
    ) -> tuple[QuerySet[Run], bool]:
        """Search schedules' names and commands (and run ids); output only on request."""
        if search_output(request):
            return super().get_search_results(request, queryset, search_term)
        return runs_matching(queryset, search_term), False

    def get_urls(self) -> list[URLPattern]:
        # Before the default patterns, whose "<path:object_id>/" would catch "timeline/".
        view = self.admin_site.admin_view(partial(timeline_view, model_admin=self))
        return [path("timeline/", view, name="scheduler_run_timeline"), *super().get_urls()]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "timeline_url": reverse("admin:scheduler_run_timeline"),
        }
        return super().changelist_view(request, extra_context)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Run | None = None,
    ) -> HttpResponse:
        """A run still going reloads itself, showing its output as the daemon stores it."""
        live = obj is not None and obj.status in (Status.RUNNING, Status.QUEUED)
        context["refresh_seconds"] = 2 if live else None
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="Attempts")
    def attempts_display(self, obj: Run) -> str:
        return admin_backfill.attempts_display(obj)

    @admin.display(description="Scheduled for")
    def scheduled_for_display(self, obj: Run) -> str:
        return moment(obj.scheduled_for)

    @admin.display(description="Claimed")
    def created_at_display(self, obj: Run) -> str:
        return moment(obj.created_at)

    @admin.display(description="Handed to the task backend")
    def enqueued_at_display(self, obj: Run) -> str:
        return moment(obj.enqueued_at)

    @admin.display(description="Started")
    def started_at_display(self, obj: Run) -> str:
        return moment(obj.started_at)

    @admin.display(description="Finished")
    def finished_at_display(self, obj: Run) -> str:
        return moment(obj.finished_at)

    @admin.display(description="Schedule", ordering="schedule__name")
    def schedule_link(self, obj: Run) -> str:
        if obj.schedule_id is None:
            return "(deleted schedule)"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:scheduler_schedule_change", args=[obj.schedule_id]),
            obj.schedule,
        )

    @admin.display(description="Command")
    def command_display(self, obj: Run) -> str:
        return format_html("<code>{}</code>", command_line(obj.command, obj.args))

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: Run) -> str:
        """A queued run says for how long: one no worker picks up stands out."""
        if obj.status == Status.QUEUED:
            waited = relative((timezone.now() - obj.created_at).total_seconds())
            return format_html(
                '{} <span class="queued-for">for {}</span>', status_badge(obj.status), waited
            )
        return status_badge(obj.status)

    @admin.display(description="Duration")
    def duration_display(self, obj: Run) -> str:
        duration = obj.duration
        if duration is None:
            if obj.status == Status.RUNNING and obj.started_at:
                return f"{(timezone.now() - obj.started_at).total_seconds():.1f} s so far"
            return "—"
        return f"{duration.total_seconds():.3f} s"

    @admin.display(description="Schedule", ordering="schedule__name")
    def schedule_list_display(self, obj: Run) -> str:
        return format_html(
            "{}<br><small><code>{}</code></small>",
            self.schedule_link(obj),
            command_line(obj.command, obj.args),
        )

    @admin.display(description="Status", ordering="status")
    def status_list_display(self, obj: Run) -> str:
        if not obj.exit_code:  # none yet, or 0: the status says it all
            return self.status_display(obj)
        return format_html(
            '{}<br><small class="exit-code">exit code {}</small>',
            self.status_display(obj),
            obj.exit_code,
        )

    @admin.display(description="Scheduled for", ordering="scheduled_for")
    def scheduled_for_list_display(self, obj: Run) -> str:
        return format_html(
            "{}<br><small>{}</small>", list_moment(obj.scheduled_for), obj.get_reason_display()
        )

    @admin.display(description="Started", ordering="started_at")
    def started_at_list_display(self, obj: Run) -> str:
        if obj.started_at is None:
            return "—"
        started = list_moment(obj.started_at, since=obj.scheduled_for)
        if not obj.host:
            return started
        return format_html(
            '{}<br><small class="host" title="{}">on {}</small>',
            started,
            obj.host,
            obj.host.split(".", 1)[0],  # the full name is in the tooltip and on the run's page
        )

    @admin.display(description="Standard output")
    def stdout_display(self, obj: Run) -> str:
        return _preformatted(obj.stdout)

    @admin.display(description="Standard error")
    def stderr_display(self, obj: Run) -> str:
        return _preformatted(obj.stderr)


def _preformatted(text: str) -> str:
    if not text:
        return "(empty)"
    return format_html(
        '<pre style="white-space:pre-wrap;max-height:40em;overflow:auto;margin:0">{}</pre>', text
    )


@admin.register(Heartbeat)
class HeartbeatAdmin(HeartbeatAdminBase):
    """The scheduler processes that share this database, and whether they are alive."""

    list_display = (
        "__str__",
        "kind",
        "state",
        "started_at",
        "last_beat",
        "stopped_at",
        "running_runs",
    )
    list_filter = ("host",)
    readonly_fields = (
        "host",
        "pid",
        "pid_namespace",
        "kind",
        "started_at",
        "last_beat",
        "firing_since",
        "stopped_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Heartbeat | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Heartbeat | None = None) -> bool:
        return False  # a live daemon's claims refer to its row; old rows are pruned

    @admin.display(description="State")
    def state(self, obj: WithAnnotations[Heartbeat, HeartbeatRow]) -> str:
        if obj.stopped_at:
            return "stopped"
        stale_after = timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
        if obj.is_fresh(stale_after):
            idle = obj.kind == "daemon" and obj.firing_since is None
            alive = "alive, not firing (starting up or shutting down)" if idle else "alive"
            return format_html('<span style="color:{}">{}</span>', "#198754", alive)
        return format_html('<span style="color:{}">{}</span>', "#dc3545", "not heard from")

    @admin.display(description="Running runs")
    def running_runs(self, obj: WithAnnotations[Heartbeat, HeartbeatRow]) -> int:
        return obj.running_count

    def get_queryset(self, request: HttpRequest) -> QuerySet[Heartbeat]:
        running = Count("runs", filter=Q(runs__status=Status.RUNNING))
        heartbeats = cast(HeartbeatQuerySet, super().get_queryset(request))  # as for schedules
        return heartbeats.with_age().annotate(running_count=running)


@admin.register(Alert)
class AlertAdmin(AlertAdminBase):
    """Alerts the scheduler raised (read-only: they clear themselves)."""

    list_display = ("schedule", "kind", "state", "raised_at", "cleared_at", "message")
    list_filter = ("kind", ("cleared_at", admin.EmptyFieldListFilter), "schedule")
    list_select_related = ("schedule",)
    fields = ("schedule", "kind", "message", "run", "raised_at", "cleared_at", "note")
    readonly_fields = fields

    @admin.display(description="State")
    def state(self, obj: Alert) -> str:
        return "open" if obj.is_open else "cleared"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Alert | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Alert | None = None) -> bool:
        return False


@admin.register(DatabaseOutage)
class DatabaseOutageAdmin(OutageAdminBase):
    """Database outages the daemons rode out (read-only)."""

    list_display = ("host", "pid", "started_at", "ended_at", "duration")
    fields = ("host", "pid", "started_at", "ended_at", "duration")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: DatabaseOutage | None = None
    ) -> bool:
        return False
