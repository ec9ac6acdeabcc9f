"""The APScheduler adapter: the trigger's fire times and its trip through the job store."""

import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.job import Job
from django_apscheduler.models import DjangoJob

from scheduler.apscheduler_adapter import JOB_FUNC, APSchedulerJobs, JobPlan, TimingTrigger, job_id
from scheduler.shares import Share
from scheduler.timing import Timing

ANCHOR = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_next_fire_follows_the_previous_one_even_when_it_is_already_past():
    trigger = TimingTrigger(Timing(interval=60, anchor=ANCHOR))
    late_now = ANCHOR + timedelta(minutes=10)
    # APScheduler walks these past fire times and coalesces them into one late run
    # instead of dropping them as misfires.
    assert trigger.get_next_fire_time(ANCHOR + timedelta(minutes=1), late_now) == (
        ANCHOR + timedelta(minutes=2)
    )


def test_first_fire_is_after_now():
    trigger = TimingTrigger(Timing(cron="*/5 * * * *"))
    now = datetime(2026, 11, 24, 10, 3, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == datetime(2026, 11, 24, 10, 5, tzinfo=UTC)


def test_trigger_survives_the_job_store_round_trip():
    trigger = TimingTrigger(Timing(cron="30 2 * * *", timezone="Europe/Berlin"))
    restored = pickle.loads(pickle.dumps(trigger))
    assert restored.timing == trigger.timing
    assert str(restored) == "cron[30 2 * * * Europe/Berlin]"


def test_no_fire_time_left_in_the_calendar_ends_the_job_instead_of_raising():
    trigger = TimingTrigger(Timing(interval=30 * 86400, anchor=datetime(9999, 11, 1, tzinfo=UTC)))
    now = datetime(9999, 12, 31, 12, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) is None


@pytest.fixture
def jobs() -> Iterator[APSchedulerJobs]:
    jobs = APSchedulerJobs(on_due=lambda due: None)
    jobs.start(paused=True)
    yield jobs
    jobs.shutdown()


def fire(jobs: APSchedulerJobs, now: datetime, due: list[Job]) -> None:
    """Do what APScheduler's wake-up does with each due job, then ask for the next one."""
    for job in due:
        job._modify(next_run_time=job.trigger.get_next_fire_time(job.next_run_time, now))
        jobs.store.update_job(job)


@pytest.mark.django_db(transaction=True)
def test_each_job_is_stored_as_apscheduler_itself_would_store_it(jobs):
    now = datetime.now(UTC)
    plans = [
        JobPlan(7, "every minute", Timing(interval=60, anchor=now), now + timedelta(minutes=1)),
        JobPlan(9, "nightly", Timing(cron="30 2 * * *", timezone="Europe/Berlin"), now),
    ]
    jobs.put(plans)
    for plan in plans:
        job = Job(
            jobs.scheduler,
            id=job_id(plan.schedule_id),
            func=JOB_FUNC,
            trigger=TimingTrigger(plan.timing),
            executor="default",
            args=[plan.schedule_id],
            kwargs={},
            name=plan.name,
            misfire_grace_time=None,
            coalesce=False,
            max_instances=1,
            next_run_time=plan.next_fire,
        )
        expected = job.__getstate__()
        stored = pickle.loads(DjangoJob.objects.get(id=job.id).job_state)
        assert stored.pop("trigger").timing == expected.pop("trigger").timing
        assert stored == expected
    restored = {
        job.id: (job.name, job.args, job.next_run_time) for job in jobs.scheduler.get_jobs()
    }
    assert restored == {
        "schedule-7": ("every minute", [7], now + timedelta(minutes=1)),
        "schedule-9": ("nightly", [9], now),
    }


@pytest.mark.django_db(transaction=True)
def test_jobs_due_at_once_store_their_next_fire_times_in_one_go(
    jobs, django_assert_max_num_queries
):
    now = datetime.now(UTC)
    anchor = now - timedelta(hours=1)
    jobs.put(
        [JobPlan(pk, f"s{pk}", Timing(interval=3600, anchor=anchor), now) for pk in range(100)]
    )
    due = jobs.store.get_due_jobs(now)
    assert len(due) == 100
    with django_assert_max_num_queries(4):  # the transaction, one update, the next wake-up
        fire(jobs, now, due)
        assert jobs.store.get_next_run_time() == now + timedelta(hours=1)
    assert set(DjangoJob.objects.values_list("next_run_time", flat=True)) == {
        now + timedelta(hours=1)
    }


@pytest.mark.django_db(transaction=True)
def test_a_job_removed_by_another_daemon_during_a_wake_up_stays_removed(jobs):
    now = datetime.now(UTC)
    jobs.put([JobPlan(1, "s1", Timing(interval=60, anchor=now - timedelta(minutes=1)), now)])
    due = jobs.store.get_due_jobs(now)
    DjangoJob.objects.all().delete()  # another daemon: the schedule was deleted
    fire(jobs, now, due)
    assert jobs.store.get_next_run_time() is None
    assert not DjangoJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_only_the_jobs_of_this_daemons_shares_come_due(jobs):
    now = datetime.now(UTC)
    anchor = now - timedelta(hours=1)
    jobs.put(
        [
            JobPlan(pk, f"s{pk}", Timing(interval=3600, anchor=anchor), now - timedelta(seconds=pk))
            for pk in range(1, 13)
        ]
    )
    jobs.divide(frozenset({Share(1, 3)}))
    assert sorted(job.args[0] for job in jobs.store.get_due_jobs(now)) == [1, 4, 7, 10]
    assert jobs.store.get_next_run_time() == now - timedelta(seconds=10)

    jobs.divide(frozenset({Share(1, 3), Share(0, 2)}))  # a previous share, held on
    due = sorted(job.args[0] for job in jobs.store.get_due_jobs(now))
    assert due == [1, 2, 4, 6, 7, 8, 10, 12]
    assert jobs.store.get_next_run_time() == now - timedelta(seconds=12)


@pytest.mark.django_db(transaction=True)
def test_a_job_of_another_shape_in_the_store_does_not_stop_a_share_from_firing(jobs):
    now = datetime.now(UTC)
    jobs.put([JobPlan(2, "s2", Timing(interval=60, anchor=now - timedelta(minutes=1)), now)])
    for odd_id in ("schedule-x", "nightly-report", "schedule-99999999999999999999999"):
        DjangoJob.objects.create(id=odd_id, next_run_time=now, job_state=b"")
    jobs.divide(frozenset({Share(0, 2)}))
    assert [job.args[0] for job in jobs.store.get_due_jobs(now)] == [2]
    assert jobs.store.get_next_run_time() == now


@pytest.mark.django_db(transaction=True)
def test_a_stopping_daemon_leaves_the_jobs_it_found_due_due_for_another(jobs):
    now = datetime.now(UTC)
    jobs.put([JobPlan(1, "s1", Timing(interval=60, anchor=now - timedelta(minutes=1)), now)])
    due = jobs.store.get_due_jobs(now)
    jobs.stop_storing_fires()
    fire(jobs, now, due)
    jobs.store.get_next_run_time()
    assert list(DjangoJob.objects.values_list("next_run_time", flat=True)) == [now]
