"""The measurements. Each returns plain data (milliseconds, counts) that :mod:`bench.report`
turns into table rows; nothing here judges a figure.

In-process figures (overhead, statements per run) call the product's functions in this
process. Everything that depends on scheduling (lateness, bursts, pick-up, idle cost,
catch-up) runs the real daemon, ``manage.py runscheduler``, as a subprocess on the same
database, and the peer, django-apscheduler's ``runapscheduler`` pattern, the same way.
Each starts from empty tables, so no measurement sees another's rows or jobs.
"""

from __future__ import annotations

import bisect
import json
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from math import ceil, inf
from pathlib import Path

from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Max
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler import in_flight, runner
from scheduler.executor import start_fork_server
from scheduler.models import Heartbeat, Reason, Run, Schedule, Status

from .procs import (
    ROOT,
    Service,
    cpu_seconds,
    descendants,
    pss_mb,
    rss_mb,
    threads_cpu_seconds,
)
from .querylog import StatementCounter

READY = "Scheduler started"  # logged by both the daemon and the peer once they schedule
DIVIDED = "other daemons fire the rest"  # logged by a daemon once it fires its share alone
MODES = ("thread", "process")
# Excluded first calls: imports, the first connection, caches, the page cache for a fresh
# interpreter. What remains is the steady state a long-running daemon sees.
WARMUP = {"thread": 20, "process": 5, "bare": 20, "fresh": 1}


@dataclass(frozen=True)
class Sizes:
    thread_runs: int = 200
    process_runs: int = 100
    bare_runs: int = 200
    fresh_runs: int = 10
    single_window: float = 20.0
    load_schedules: int = 1000
    load_period: float = 30.0
    load_window: float = 35.0
    lead: float = 6.0  # how far ahead of now the first fire is put, to cover start-up
    settle: float = 1.0  # after start-up before a window opens; after it before reading
    burst_schedules: int = 1000
    pickup_trials: int = 10
    idle_schedules: int = 10_000
    idle_window: float = 60.0
    catch_up_schedules: int = 1000
    peer_catch_up_wait: float = 5.0
    history_runs: int = 1_000_000
    heartbeat_interval: float = 10.0  # the default; daemons divide about two beats after start
    # Of each single-shot measurement (a burst, a catch-up, a start-up) the median trial is
    # reported: one trial moves by a tenth or more between runs on a shared machine.
    trials: int = 3


FULL = Sizes()
QUICK = Sizes(
    thread_runs=20,
    process_runs=10,
    bare_runs=20,
    fresh_runs=2,
    single_window=2.0,
    load_schedules=20,
    load_period=2.0,
    load_window=2.0,
    lead=1.5,
    settle=0.3,
    burst_schedules=20,
    pickup_trials=2,
    idle_schedules=100,
    idle_window=2.0,
    catch_up_schedules=20,
    peer_catch_up_wait=1.0,
    history_runs=2000,
    heartbeat_interval=0.5,
    trials=2,
)


# -- helpers ------------------------------------------------------------------------------


def summary(values: list[float]) -> dict:
    """n, median, p99 (nearest rank, so the maximum below 100 samples) and max."""
    xs = sorted(values)
    if not xs:
        return {"n": 0}
    p99 = xs[ceil(0.99 * len(xs)) - 1]
    return {"n": len(xs), "median": statistics.median(xs), "p99": p99, "max": xs[-1]}


def median_trial(
    measure: Callable[[], dict], trials: int, figure: Callable[[dict], float | None]
) -> dict:
    """Take ``measure`` ``trials`` times; return the trial whose ``figure`` is the median.

    Every trial's figure is kept under ``"trials"``, in the order taken. A trial without a
    figure (``None``: it did not complete) counts as the slowest; of an even number of
    trials, the lower middle one is returned.
    """
    results = [measure() for _ in range(trials)]
    figures = [figure(result) for result in results]
    order = sorted(range(trials), key=lambda i: inf if figures[i] is None else figures[i])
    return {**results[order[(trials - 1) // 2]], "trials": figures}


def timed(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Milliseconds per call, after ``warmup`` calls that are not kept."""
    kept = []
    for index in range(warmup + runs):
        start = time.perf_counter()
        call()
        elapsed = (time.perf_counter() - start) * 1000
        if index >= warmup:
            kept.append(elapsed)
    return kept


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def sleep_until(epoch: float) -> None:
    time.sleep(max(0.0, epoch - time.time()))


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def reset() -> None:
    """Empty every table a measurement writes, so each starts from the same state."""
    Run.objects.all().delete()
    Schedule.objects.all().delete()
    Heartbeat.objects.all().delete()
    DjangoJobExecution.objects.all().delete()
    DjangoJob.objects.all().delete()


def make_schedules(timings: list[dict], executor: str = "") -> list[int]:
    """``noop`` schedules, one per dict of fields (``interval`` or ``cron``, ``created_at``)."""
    schedules = [
        Schedule(
            name=f"bench {index}", command="noop", timezone="UTC", **{"executor": executor, **t}
        )
        for index, t in enumerate(timings)
    ]
    return [s.pk for s in Schedule.objects.bulk_create(schedules, batch_size=500)]


def daemon(name: str, workdir: Path, settings: dict | None = None) -> Service:
    return Service(name, ["runscheduler"], workdir, settings)


def peer(name: str, workdir: Path, spec: dict) -> Service:
    """The django-apscheduler pattern with the jobs in ``spec`` registered at start."""
    jobs = workdir / f"{name}.jobs.json"
    jobs.write_text(json.dumps(spec))
    starts = workdir / f"{name}.starts"
    return Service(name, ["runapscheduler", "--jobs", str(jobs), "--starts", str(starts)], workdir)


def peer_starts(service: Service) -> list[tuple[str, float]]:
    path = service.log_path.with_name(f"{service.name}.starts")
    if not path.exists():
        return []
    return [(job, float(epoch)) for job, epoch in (line.split() for line in path.open())]


def expected_fires(first_fires: list[float], period: float, start: float, end: float) -> int:
    """Fire times ``first + k * period`` (k >= 0) inside [start, end)."""
    total = 0
    for first in first_fires:
        low = max(0, ceil((start - first) / period))
        high = ceil((end - first) / period) - 1
        total += max(0, high - low + 1)
    return total


def statements_rate(before: dict, after: dict) -> dict:
    seconds = max(after["at"] - before["at"], 1e-9)
    verbs = {
        verb: round((count - before.get("verbs", {}).get(verb, 0)) / seconds * 60, 1)
        for verb, count in after.get("verbs", {}).items()
    }
    return {
        "per_s": (after["count"] - before["count"]) / seconds,
        "db_ms_per_s": (after["seconds"] - before["seconds"]) / seconds * 1000,
        "connections_per_s": (after["connections"] - before["connections"]) / seconds,
        "per_min_by_verb": {verb: rate for verb, rate in verbs.items() if rate},
    }


# -- 1 and 6: in-process overhead and statements per run ----------------------------------


def overhead(sizes: Sizes) -> dict:
    """Fire time to recorded finish of one ``noop`` run, in this process.

    ``run_schedule`` is what a daemon's pool thread calls per fire: claim (insert the run),
    execute, record the finish. The daemon wraps it in ``close_old_connections`` before
    and after, which with ``CONN_MAX_AGE=0`` means a new connection per run; that variant
    is measured separately. (Here it is the only connection, so on SQLite each close also
    checkpoints the WAL: the daemon's worst case, when no other thread holds a connection.)
    Peers: a fresh ``manage.py noop`` process (what cron or a
    systemd timer pays per run, recording nothing) and a bare ``call_command('noop')``.
    """
    reset()
    now = timezone.now()
    timings = [{"interval": 3600, "created_at": now, "executor": mode} for mode in MODES]
    ids = dict(zip(MODES, make_schedules(timings), strict=True))
    start_fork_server()  # the daemon starts it before its first run, so does this

    def fire(mode: str) -> None:
        run = runner.run_schedule(ids[mode], timezone.now(), Reason.SCHEDULED)
        assert run is not None and run.status == Status.SUCCEEDED, run

    def fire_as_daemon(mode: str) -> None:
        in_flight.call(
            runner.run_schedule, ids[mode], scheduled_for=timezone.now(), reason=Reason.SCHEDULED
        )

    runs = {"thread": sizes.thread_runs, "process": sizes.process_runs}
    result = {}
    # Process first: its warm-up waits for the fork server to finish importing Django,
    # which would otherwise compete for the CPU with the thread-mode runs.
    for mode in reversed(MODES):
        result[mode] = summary(timed(lambda m=mode: fire(m), runs[mode], WARMUP[mode]))
    for mode in reversed(MODES):
        times = timed(lambda m=mode: fire_as_daemon(m), runs[mode], WARMUP[mode])
        result[f"{mode}_reconnecting"] = summary(times)
    failed = Run.objects.exclude(status=Status.SUCCEEDED).count()
    assert failed == 0, f"{failed} benchmark run(s) did not succeed"
    result["bare"] = summary(timed(lambda: call_command("noop"), sizes.bare_runs, WARMUP["bare"]))
    fresh = [sys.executable, str(ROOT / "manage.py"), "noop"]
    result["fresh"] = summary(
        timed(
            lambda: subprocess.run(fresh, cwd=ROOT, check=True), sizes.fresh_runs, WARMUP["fresh"]
        )
    )
    result["statements"] = statements_per_run(ids)
    return result


def statements_per_run(ids: dict[str, int], repeat: int = 5) -> dict:
    """SQL statements of one ``run_schedule`` (claim and finish), counted by an execute_wrapper.

    The command runs in this thread (thread executor) or in a forked child that issues no
    statements (process executor), so both count the same bookkeeping.
    """
    result = {}
    for mode in MODES:
        counts, verbs = [], {}
        for _ in range(repeat):
            counter = StatementCounter()
            with connection.execute_wrapper(counter):
                runner.run_schedule(ids[mode], timezone.now(), Reason.SCHEDULED)
            counts.append(counter.count)
            verbs = dict(counter.verbs)
        result[mode] = {"median": statistics.median(counts), "max": max(counts), "verbs": verbs}
    return result


# -- 2: start lateness under the real daemon and the peer --------------------------------


def lateness(
    kind: str, first_fires: list[float], period: float, window: float, settle: float, workdir: Path
) -> dict:
    """Start lateness of interval schedules, fire times ``first + k * period``.

    ``kind`` is ``thread``/``process`` (this project's daemon, schedules with that
    executor) or ``peer``. The window opens ``settle`` seconds after the scheduler is up
    (or at the first fire time if later), so fire times missed during start-up and caught
    up are not counted, and lasts ``window`` seconds. Also counts the scheduler's SQL statements
    during the window.
    """
    reset()
    if kind == "peer":
        service = peer(
            f"peer-lateness-{len(first_fires)}",
            workdir,
            {"interval": period, "starts": first_fires},
        )
    else:
        created = [{"interval": period, "created_at": at(first - period)} for first in first_fires]
        make_schedules(created, kind)
        service = daemon(f"daemon-{kind}-lateness-{len(first_fires)}", workdir)
    with service:
        ready = service.wait_for_line(READY, 300)
        start = max(min(first_fires), service.spawned_at + ready + settle)
        end = start + window
        sleep_until(start)
        before = service.queries()
        sleep_until(end)
        after = service.queries()
        time.sleep(settle + 0.2)  # let the window's last runs finish
    result = {
        "ready_s": ready,
        "ready_before_first_fire": service.spawned_at + ready < min(first_fires),
        "expected": expected_fires(first_fires, period, start, end),
        "statements": statements_rate(before, after),
    }
    if kind == "peer":
        late, missed = peer_lateness(service, start, end)
        result.update(summary(late), missed=missed)
    else:
        rows = Run.objects.filter(
            reason=Reason.SCHEDULED,
            scheduled_for__gte=at(start),
            scheduled_for__lt=at(end),
            started_at__isnull=False,  # a skipped fire time never started: it counts as missed
        ).values_list("scheduled_for", "started_at")
        late = [(started - fired).total_seconds() * 1000 for fired, started in rows]
        result.update(summary(late), missed=result["expected"] - len(late))
    return result


def more_daemons(counts: tuple[int, ...], sizes: Sizes, workdir: Path) -> dict:
    """SQL statements per fire time with 1, 2, 3… daemons sharing the load schedules.

    The thread-executor load of :func:`lateness` (``load_schedules`` every ``load_period``),
    run by ``n`` daemons at once; the statements of all of them over the window, per fire
    time. Each fire time must still run once. The window opens once every daemon fires
    its own share only (after the overlap that follows a change in who lives).
    """
    result = {}
    for n in counts:
        reset()
        first = time.time() + sizes.lead * 2
        fires = [
            first + index * sizes.load_period / sizes.load_schedules
            for index in range(sizes.load_schedules)
        ]
        make_schedules(
            [
                {"interval": sizes.load_period, "created_at": at(f - sizes.load_period)}
                for f in fires
            ],
            "thread",
        )
        beats = {"HEARTBEAT_INTERVAL": sizes.heartbeat_interval}
        services = [daemon(f"daemon-{n}-of-{n}-{index}", workdir, beats) for index in range(n)]
        try:
            for service in services:
                service.wait_for_line(READY, 300)
            divided_s = max(
                (service.wait_for_line(DIVIDED, 300) for service in services if n > 1), default=0
            )
            start = max(first, time.time()) + sizes.settle
            end = start + sizes.load_window
            sleep_until(start)
            before = [service.queries() for service in services]
            sleep_until(end)
            after = [service.queries() for service in services]
            time.sleep(sizes.settle + 0.2)
        finally:
            for service in services:
                service.stop()
        window = Run.objects.filter(scheduled_for__gte=at(start), scheduled_for__lt=at(end))
        fired = window.count()
        statements = sum(a["count"] - b["count"] for a, b in zip(after, before, strict=True))
        result[n] = {
            "fires": fired,
            "statements_per_fire": statements / max(fired, 1),
            "divided_s": divided_s,
            "each_once": fired == window.values("schedule_id", "scheduled_for").distinct().count(),
        }
    return result


def peer_lateness(service: Service, start: float, end: float) -> tuple[list[float], int]:
    """Start lateness of the peer's runs whose fire time is in [start, end), and misses.

    ``DjangoJobExecution.run_time`` is the fire time; each start is matched to the job's
    latest fire time at or before it (runs never start before their fire time, and with
    ``max_instances=1`` and an interval longer than the lateness they cannot interleave).
    """
    fires: dict[str, list[float]] = defaultdict(list)
    missed = 0
    for job, fired, status in DjangoJobExecution.objects.values_list(
        "job_id", "run_time", "status"
    ):
        if status == DjangoJobExecution.MISSED:
            missed += start <= fired.timestamp() < end
        else:
            fires[job].append(fired.timestamp())
    for times in fires.values():
        times.sort()
    late = []
    for job, started in peer_starts(service):
        index = bisect.bisect_right(fires[job], started) - 1
        if index >= 0 and start <= fires[job][index] < end:
            late.append((started - fires[job][index]) * 1000)
    return late, missed


# -- 2c: many schedules due in the same second -------------------------------------------


def burst(kind: str, count: int, lead: float, workdir: Path) -> dict:
    """``count`` schedules share one fire time ``lead`` seconds from now.

    Reports per run the time from that fire time to its start and to its recorded finish;
    the maximum of the latter is "all started and recorded". The fire time must come
    after the scheduler is up (otherwise the catch-up path would be measured instead);
    ``ready_before_fire`` says whether it did. For the peer, fire times it gave up on
    (``misfire_grace_time``) are counted as missed, and ``all_handled_ms`` is when the last
    fire time was recorded either way. Waits at most a minute.
    """
    reset()
    fire = time.time() + lead
    if kind == "peer":
        service = peer(f"peer-burst-{count}", workdir, {"interval": 3600, "starts": [fire] * count})
        final = [DjangoJobExecution.SUCCESS, DjangoJobExecution.MISSED, DjangoJobExecution.ERROR]
        done = DjangoJobExecution.objects.filter(status__in=final)
    else:
        make_schedules([{"interval": 3600, "created_at": at(fire - 3600)}] * count, kind)
        service = daemon(f"daemon-{kind}-burst-{count}", workdir)
        done = Run.objects.filter(scheduled_for=at(fire), finished_at__isnull=False)
    with service:
        ready = service.wait_for_line(READY, 300)
        sleep_until(fire - 1.5)  # the count read next is then written before the fire time
        before = service.queries()
        sleep_until(fire)
        cpu_before, began = cpu_seconds(service.pid), time.monotonic()
        complete = wait_until(lambda: done.count() >= count, timeout=60)
        cpu_used, elapsed = cpu_seconds(service.pid) - cpu_before, time.monotonic() - began
        after = service.queries()
    result = {
        "ready_s": ready,
        "ready_before_fire": service.spawned_at + ready < fire,
        "complete": complete,
        # Near 100 % means one core's worth, i.e. the work is bound by Python (the GIL).
        "cpu_percent_of_one_core": cpu_used / elapsed * 100,
        "statements_per_fire": (after["count"] - before["count"]) / count,
        "connections_per_fire": (after["connections"] - before["connections"]) / count,
    }
    if kind == "peer":
        executions = list(DjangoJobExecution.objects.values_list("status", "finished"))
        finished = [
            (float(done_at) - fire) * 1000
            for status, done_at in executions
            if status == DjangoJobExecution.SUCCESS
        ]
        started = [(epoch - fire) * 1000 for _, epoch in peer_starts(service)]
        result["missed"] = sum(status == DjangoJobExecution.MISSED for status, _ in executions)
        handled = [float(done_at) for _, done_at in executions if done_at is not None]
        result["all_handled_ms"] = (max(handled) - fire) * 1000 if handled else None
        result["finish_resolution_ms"] = 10  # DjangoJobExecution.finished has 2 decimals
    else:
        rows = Run.objects.filter(scheduled_for=at(fire)).values_list("started_at", "finished_at")
        started = [(s.timestamp() - fire) * 1000 for s, _ in rows]
        finished = [(f.timestamp() - fire) * 1000 for _, f in rows if f]
        result["missed"] = count - len(finished)
    result["started"] = summary(started)
    result["recorded"] = summary(finished)
    return result


def burst_figure(result: dict) -> float | None:
    """A burst trial's figure in ms: when its last fire time was recorded, run or missed
    (the peer), or its last run (this project; None unless all were, after a timely start).
    """
    if "all_handled_ms" in result:
        return result["all_handled_ms"]
    if not (result["complete"] and result["ready_before_fire"] and result["recorded"].get("n")):
        return None
    return result["recorded"]["max"]


# -- 3 and 4: idle cost with many schedules, pick-up ---------------------------------------


def idle(sizes: Sizes, kind: str, workdir: Path) -> dict:
    """Start-up, memory, CPU and SQL statements of a scheduler holding ``count`` schedules.

    Daily cron schedules at minutes spread over the 22 hours that start two hours from
    now, so nothing is due during the measurement. Start-up is timed from spawn to
    "Scheduler started", first with an empty job store, then again for a restart (the
    job store already filled), then both again until there are ``sizes.trials`` of each,
    the job store emptied before each fresh start; the median of each is reported. CPU
    and statements are counted over the idle window after twice the settling time;
    memory is read at the end of the window. For this project, pick-up latency is
    measured on the same daemon afterwards.
    """
    count = sizes.idle_schedules
    reset()
    now = timezone.now()
    hours = [(now.hour + 2 + offset) % 24 for offset in range(22)]
    slots = [(hour, minute) for hour in hours for minute in range(60)]
    times = [slots[index % len(slots)] for index in range(count)]
    if kind == "peer":
        spec = {"cron": times}
        start = lambda name: peer(name, workdir, spec)  # noqa: E731
    else:
        make_schedules([{"cron": f"{m} {h} * * *", "created_at": now} for h, m in times])
        start = lambda name: daemon(name, workdir)  # noqa: E731
    result: dict = {"schedules": count}
    with start(f"{kind}-idle-{count}") as service:
        result["startup_s"] = service.wait_for_line(READY, 600)
        time.sleep(2 * sizes.settle)
        # CPU is read right after each fresh statement count, so both span the same time.
        # The statement counter's writing thread is the benchmark's, not the scheduler's.
        queries_before = service.queries()
        writer = [queries_before["writer_tid"]]
        cpu_before, began = threads_cpu_seconds(service.pid, writer), time.monotonic()
        time.sleep(sizes.idle_window)
        queries_after = service.queries()
        cpu_after = threads_cpu_seconds(service.pid, writer)
        elapsed = time.monotonic() - began
        result["cpu_percent"] = (cpu_after - cpu_before) / elapsed * 100
        result["statements"] = statements_rate(queries_before, queries_after)
        result["rss_mb"] = rss_mb(service.pid)
        kids = descendants(service.pid)  # the fork server and the child it keeps ready
        result["children_rss_mb"] = {cmdline[:120]: rss_mb(pid) for pid, cmdline in kids.items()}
        result["pss_mb"] = pss_mb(service.pid) + sum(pss_mb(pid) for pid in kids)
        result["forkserver_rss_mb"] = sum(
            rss
            for cmdline, rss in result["children_rss_mb"].items()
            if cmdline.startswith("[forkserver]")
        )
        if kind != "peer":
            result["pickup_ms"] = pickup(sizes.pickup_trials)
    with start(f"{kind}-idle-{count}-restart") as service:
        result["restart_s"] = service.wait_for_line(READY, 600)
    startups, restarts = [result["startup_s"]], [result["restart_s"]]
    for trial in range(2, sizes.trials + 1):
        DjangoJob.objects.all().delete()  # as at the first start: an empty job store
        with start(f"{kind}-idle-{count}-{trial}") as service:
            startups.append(service.wait_for_line(READY, 600))
        with start(f"{kind}-idle-{count}-{trial}-restart") as service:
            restarts.append(service.wait_for_line(READY, 600))
    result["startup_s"] = statistics.median_low(startups)
    result["restart_s"] = statistics.median_low(restarts)
    result["startup_trials_s"], result["restart_trials_s"] = startups, restarts
    return result


def pickup(trials: int, poll: float = 0.005) -> dict:
    """Committed schedule to the daemon having its job (``schedule-<pk>`` in the job store).

    Trials start at random points of the daemon's poll cycle.
    """
    latencies, timeouts = [], 0
    for index in range(trials):
        time.sleep(random.uniform(0.2, 1.2))
        schedule = Schedule.objects.create(
            name=f"pickup {index}", command="noop", cron="0 0 1 1 *", timezone="UTC"
        )
        committed = time.monotonic()
        found = wait_until(
            lambda pk=schedule.pk: DjangoJob.objects.filter(id=f"schedule-{pk}").exists(),
            timeout=30,
            interval=poll,
        )
        if found:
            latencies.append((time.monotonic() - committed) * 1000)
        else:
            timeouts += 1
    return {**summary(latencies), "timeouts": timeouts}


# -- 5: catch-up after an outage ----------------------------------------------------------


def catch_up(kind: str, count: int, workdir: Path, peer_wait: float) -> dict:
    """Hourly schedules created 25 h ago that never ran: a 24 h outage ends now.

    The last missed fire of each is one to 1,700 s ago, so no regular fire comes due
    while this runs. This project must run each once (``catch_up``); the time is from
    spawn to the last one recorded (waiting at most 90 s). The peer re-adds its jobs at
    start, as its pattern does, and is watched for ``peer_wait`` seconds for any run.
    """
    reset()
    now = time.time()
    created = [now - 25 * 3600 - 1 - index * 1700 / count for index in range(count)]
    if kind == "peer":
        with peer(
            f"peer-catch-up-{count}", workdir, {"interval": 3600, "starts": created}
        ) as service:
            ready = service.wait_for_line(READY, 300)
            time.sleep(peer_wait)
        return {"ready_s": ready, "runs": DjangoJobExecution.objects.count(), "of": count}
    make_schedules([{"interval": 3600, "created_at": at(epoch)} for epoch in created], kind)
    recorded = Run.objects.filter(reason=Reason.CATCH_UP, finished_at__isnull=False)
    with daemon(f"daemon-{kind}-catch-up-{count}", workdir) as service:
        ready = service.wait_for_line(READY, 300)
        complete = wait_until(lambda: recorded.count() >= count, timeout=90)
        time.sleep(1.0)  # a duplicate would show up here
    last = recorded.aggregate(last=Max("finished_at"))["last"]
    per_schedule = list(
        Run.objects.values("schedule_id").annotate(n=Count("id")).values_list("n", flat=True)
    )
    return {
        "ready_s": ready,
        "complete": complete,
        "all_recorded_s": last.timestamp() - service.spawned_at if last else None,
        "runs": Run.objects.count(),
        "of": count,
        "exactly_once": len(per_schedule) == count
        and set(per_schedule) == {1}
        and not Run.objects.exclude(reason=Reason.CATCH_UP).exists(),
        "succeeded": Run.objects.filter(status=Status.SUCCEEDED).count(),
    }


def catch_up_figure(result: dict) -> float | None:
    """A catch-up trial's figure in s: spawn to the last run recorded; None unless every
    schedule ran exactly once."""
    if not (result["complete"] and result["exactly_once"]):
        return None
    return result["all_recorded_s"]
