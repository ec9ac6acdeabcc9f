"""Crontabs read into schedules: the parser on realistic files, and ``import-crontab``."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from scheduler.crontab import parse_crontab, review
from scheduler.models import Schedule
from tests import manage_py

CRONTABS = Path(__file__).parent / "crontabs"
NOW = datetime(2025, 3, 28, 12, 0, tzinfo=UTC)


def parse(text: str, settings_module: str = "tests.settings", **options):
    return parse_crontab(text, timezone="UTC", settings_module=settings_module, **options)


def fields(crontab) -> list[dict]:
    return [
        {
            "line": p.line,
            "name": p.name,
            "command": p.command,
            "args": p.args,
            "cron": p.cron,
            "timezone": p.timezone,
            "timeout": p.timeout,
            "ping_url": p.ping_url,
        }
        for p in crontab.proposals
    ]


def reasons(crontab) -> dict[int, str]:
    return {refusal.line: refusal.reason for refusal in crontab.refused}


def test_debian_user_crontab_of_a_django_shop_becomes_its_schedules():
    crontab = parse((CRONTABS / "debian-user-crontab").read_text())
    assert not crontab.system
    assert fields(crontab) == [
        {
            "line": 10,
            "name": "cleanup_tokens --days 7",
            "command": "cleanup_tokens",
            "args": ["--days", "7"],
            "cron": "30 3 * * *",
            "timezone": "Europe/Berlin",
            "timeout": None,
            "ping_url": "",
        },
        {
            "line": 13,
            "name": "compute_daily_stats",
            "command": "compute_daily_stats",
            "args": [],
            "cron": "15 6 * * 1-5",
            "timezone": "Europe/Berlin",
            "timeout": 300,
            "ping_url": "",
        },
        {
            "line": 16,
            "name": "normalize_emails --batch-size 200",
            "command": "normalize_emails",
            "args": ["--batch-size", "200"],
            "cron": "*/10 8-18 * * mon-fri",
            "timezone": "Europe/Berlin",
            "timeout": None,
            "ping_url": "",
        },
        {
            "line": 18,
            "name": "nightly_batch --dry-run",
            "command": "nightly_batch",
            "args": ["--dry-run"],
            "cron": "@daily",
            "timezone": "Europe/Berlin",
            "timeout": None,
            "ping_url": "https://hc-ping.com/1f9e0a7c-6b53-4a43-9c61-1e3ce5a5f7a1",
        },
    ]
    refused = reasons(crontab)
    assert sorted(refused) == [21, 23, 25]
    assert refused[21].startswith("@reboot runs once when the machine boots")
    assert refused[23].startswith("not a Django management command")
    assert refused[25].startswith("an unescaped % ends the command in cron")
    assert [note.line for note in crontab.notes] == [4, 5, 6, 7]
    assert "mails ADMINS about failures" in crontab.notes[2].note


def test_each_dropped_wrapper_is_explained_on_its_schedule():
    crontab = parse((CRONTABS / "debian-user-crontab").read_text())
    notes = {p.line: " | ".join(p.notes) for p in crontab.proposals}
    assert "cd /srv/shop dropped" in notes[10]
    assert "output redirection dropped: each run's output is recorded in its Run" in notes[10]
    assert "output piped to logger dropped" in notes[13]
    assert ". .venv/bin/activate dropped" in notes[13]
    assert "PYTHONUNBUFFERED=1 dropped" in notes[13]
    assert "timeout 300 became the schedule's timeout (300 s)" in notes[13]
    assert "flock dropped" in notes[16] and "overlap=skip, the default" in notes[16]
    assert "nice dropped" in notes[18] and "ionice dropped" in notes[18]
    assert "curl ping after the command became ping_url" in notes[18]


def test_cron_d_file_is_recognised_by_its_user_column():
    crontab = parse((CRONTABS / "cron.d-shop").read_text())
    assert crontab.system
    assert [(p.line, p.name, p.cron) for p in crontab.proposals] == [
        (7, "cleanup_tokens --days 30", "30 3 * * *"),
        (8, "cleanup_tokens --days 30 --dry-run", "45 3 * * *"),
        (9, "normalize_emails --batch-size 1000", "0 */4 * * *"),
    ]
    assert "ran as user www-data" in crontab.proposals[0].notes[0]
    refused = reasons(crontab)
    assert refused[10].startswith("not a Django management command")
    assert refused[11].startswith(
        "runs with settings shop.settings.staging, but the scheduler runs with tests.settings"
    )


def test_the_format_can_be_forced_when_detection_would_guess_wrong():
    line = "0 4 * * * deploy /srv/app/manage.py cleanup_tokens\n"
    assert parse(line).system
    [refusal] = parse(line, system=False).refused
    assert refusal.reason.startswith("runs the management command through 'deploy'")
    assert parse("0 4 * * * python manage.py cleanup_tokens", system=True).proposals[0].command == (
        "cleanup_tokens"
    )


def test_systemd_timers_written_as_cron_lines_keep_timeout_and_timezone():
    crontab = parse(
        (CRONTABS / "systemd-timers-as-cron").read_text(), settings_module="jobsite.settings"
    )
    assert crontab.refused == []
    assert [(p.name, p.cron, p.timezone, p.timeout) for p in crontab.proposals] == [
        ("nightly_batch", "30 3 * * *", "UTC", None),
        ("cleanup_tokens --days 1", "@hourly", "UTC", 600),
        ("normalize_emails --batch-size 500", "*/15 * * * *", "UTC", None),
        ("compute_daily_stats", "30 2 * * 1-5", "Europe/Berlin", None),
    ]
    assert "--settings jobsite.settings dropped" in crontab.proposals[3].notes[0]


def test_systemd_timers_run_with_other_settings_are_refused_not_silently_moved():
    crontab = parse((CRONTABS / "systemd-timers-as-cron").read_text())
    refused = reasons(crontab)
    assert sorted(refused) == [6, 16]
    assert "runs with settings jobsite.settings" in refused[6]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("@reboot python manage.py say hi", "@reboot runs once when the machine boots"),
        ("@every 5m python manage.py say hi", "unknown timing '@every'"),
        ("61 * * * * python manage.py say hi", "Bad minute in '61 * * * *'"),
        ("0 * * *  python manage.py say hi", "Bad day of week field 'python'"),
        ("0 * * * *", "five timing fields and a command"),
        ("0 2 * * * /usr/local/bin/backup.sh", "not a Django management command"),
        ("0 * * * * python manage.py say 50%", "an unescaped % ends the command"),
        ("0 * * * * FOO=1 python manage.py say hi", "sets FOO for this command only"),
        ("0 * * * * python manage.py say a && python manage.py say b", "runs 2 management"),
        ("0 * * * * pg_dump x > x.sql && python manage.py say hi", "runs 'pg_dump' before"),
        ("0 * * * * python manage.py say hi && mail -s done ops", "runs 'mail' after"),
        ("0 * * * * python manage.py say $HOSTNAME", "uses a shell variable"),
        ("0 * * * * python manage.py say $(hostname)", "command substitution"),
        ("0 * * * * python manage.py say hi &", "in the background"),
        ("0 * * * * python manage.py say hi < words.txt", "reads its standard input"),
        ("0 * * * * echo hi | python manage.py say hi", "pipes into the command"),
        ("0 * * * * python manage.py say hi --settings=other.settings", "settings other"),
        ("0 * * * * docker compose exec web python manage.py say hi", "through 'docker'"),
        ("0 * * * * python manage.py say '{x}'", "braces"),
        ("0 * * * * python manage.py --verbosity 2 say", "no management command name"),
        ("0 * * * * python manage.py say 'unclosed", "cannot be split like a shell"),
    ],
)
def test_a_line_that_cannot_be_converted_says_why(line, reason):
    crontab = parse(line)
    assert crontab.proposals == []
    [refusal] = crontab.refused
    assert (refusal.line, refusal.text) == (1, line.strip())
    assert reason in refusal.reason


def test_escaped_percent_is_a_literal_percent():
    [proposal] = parse(r"0 * * * * python manage.py say 50\%").proposals
    assert proposal.args == ["50%"]


def test_wrappers_people_write_are_peeled_off():
    text = "\n".join(
        [
            "1 * * * * /srv/app/manage.py say a",
            "2 * * * * python3 /srv/app/manage.py say b",
            "3 * * * * django-admin say c --settings=tests.settings --pythonpath=/srv/app",
            "4 * * * * env PYTHONUNBUFFERED=1 nice -10 python -u manage.py say d 2>/dev/null",
            "5 * * * * flock -w 30 /tmp/e.lock -c 'python manage.py say e'",
            "6 * * * * cd /srv/app || exit 1; uv run python manage.py say f || true",
            "7 * * * * run-one chronic timeout --signal=KILL 1.5m python manage.py say g",
            "8 * * * * export PYTHONIOENCODING=utf-8; source .env; python manage.py say h",
        ]
    )
    crontab = parse(text)
    assert crontab.refused == []
    assert [(p.command, p.args, p.timeout) for p in crontab.proposals] == [
        ("say", ["a"], None),
        ("say", ["b"], None),
        ("say", ["c"], None),
        ("say", ["d"], None),
        ("say", ["e"], None),
        ("say", ["f"], None),
        ("say", ["g"], 90),
        ("say", ["h"], None),
    ]
    assert "flock without -n waited for it instead" in " ".join(crontab.proposals[4].notes)
    assert "(systemd EnvironmentFile=)" in " ".join(crontab.proposals[7].notes)


def test_names_are_unique_and_depend_only_on_the_file():
    text = "\n".join(
        [
            "0 3 * * * python manage.py cleanup_tokens",
            "0 15 * * * python manage.py cleanup_tokens",
            "0 3 * * * python manage.py cleanup_tokens",
            "CRON_TZ=Europe/Berlin",
            "0 3 * * * python manage.py cleanup_tokens",
        ]
    )
    crontab = parse(text)
    assert [p.name for p in crontab.proposals] == [
        "cleanup_tokens (0 3 * * * UTC)",
        "cleanup_tokens (0 15 * * *)",
        "cleanup_tokens (0 3 * * * Europe/Berlin)",
    ]
    assert reasons(crontab) == {3: "the same schedule as line 1"}


@pytest.mark.django_db
def test_review_validates_like_admin_and_lists_next_fire_times_across_dst():
    text = "\n".join(
        [
            "CRON_TZ=Europe/Berlin",
            "30 3 * * * python manage.py cleanup_tokens --days 7",
            "0 * * * * python manage.py nosuchcommand",
            "0 * * * * python manage.py migrate",
            "0 * * * * python manage.py cleanup_tokens --days soon",
            "CRON_TZ=Mars/Olympus",
            "0 * * * * python manage.py say hi",
        ]
    )
    first, unknown, dangerous, bad_args, bad_zone = review(parse(text), NOW)
    assert first.errors == []
    assert [f.isoformat() for f in first.next_fire_times] == [
        "2025-03-29T03:30:00+01:00",
        "2025-03-30T03:30:00+02:00",
        "2025-03-31T03:30:00+02:00",
    ]
    assert first.status == "would create"
    assert unknown.errors == ["command: Unknown management command 'nosuchcommand'."]
    assert "is not allowed to be scheduled" in dangerous.errors[0]
    assert bad_args.errors[0].startswith("args: The command refuses these arguments:")
    assert bad_zone.errors == [
        "timezone: Unknown timezone 'Mars/Olympus'; use an IANA name such as Europe/Berlin."
    ]


def schedules(*args: str, **options) -> str:
    out = StringIO()
    call_command("schedules", "import-crontab", *args, stdout=out, **options)
    return out.getvalue()


EXPECTED_DRY_RUN = """\
{path} (user crontab): 4 schedule(s), 3 line(s) not converted.

line 10: 30 3 * * * cd /srv/shop && /srv/shop/.venv/bin/python manage.py cleanup_tokens --days 7 >> /var/log/shop/cleanup.log 2>&1
  name      cleanup_tokens --days 7
  command   cleanup_tokens --days 7
  cron      30 3 * * *  (At 03:30, Europe/Berlin)
  next      2025-03-29 03:30 +01:00, 2025-03-30 03:30 +02:00, 2025-03-31 03:30 +02:00
  note      cd /srv/shop dropped: the scheduler runs in its own project directory
  note      output redirection dropped: each run's output is recorded in its Run
  status    would create
"""  # noqa: E501


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_import_prints_what_it_would_create_with_next_fire_times_and_what_it_cannot():
    path = CRONTABS / "debian-user-crontab"
    out = schedules(str(path))
    assert out.startswith(EXPECTED_DRY_RUN.format(path=path))
    assert "  timeout   300 s\n" in out
    assert "  ping url  https://hc-ping.com/1f9e0a7c-6b53-4a43-9c61-1e3ce5a5f7a1\n" in out
    assert "\nNot converted:\n  line 21: @reboot cd /srv/shop" in out
    assert "\nNotes:\n  line 4: SHELL=/bin/bash: SHELL not needed" in out
    assert Schedule.objects.count() == 0


@pytest.mark.django_db
def test_apply_creates_valid_schedules_and_twice_creates_nothing_more():
    path = str(CRONTABS / "debian-user-crontab")
    first = schedules(path, "--apply")
    assert first.count("  status    created") == 4
    created = {s.name: s for s in Schedule.objects.all()}
    assert sorted(created) == [
        "cleanup_tokens --days 7",
        "compute_daily_stats",
        "nightly_batch --dry-run",
        "normalize_emails --batch-size 200",
    ]
    stats = created["compute_daily_stats"]
    assert (stats.cron, stats.timezone, stats.timeout, stats.overlap) == (
        "15 6 * * 1-5",
        "Europe/Berlin",
        300,
        "skip",
    )
    second = schedules(path, "--apply")
    assert second.count("  status    exists, unchanged") == 4
    assert "created" not in second
    assert Schedule.objects.count() == 4


@pytest.mark.django_db
def test_apply_finds_a_renamed_import_and_leaves_a_different_schedule_with_the_name_alone(
    make_schedule,
):
    make_schedule(name="mine", command="cleanup_tokens", args=["--days", "7"], cron="30 3 * * *")
    make_schedule(
        name="compute_daily_stats", command="compute_daily_stats", args=[], cron="0 1 * * *"
    )
    data = json.loads(
        schedules(
            "-",
            "--apply",
            "--json",
            stdin=StringIO(
                "30 3 * * * python manage.py cleanup_tokens --days 7\n"
                "0 6 * * * python manage.py compute_daily_stats\n"
            ),
        )
    )
    assert [row["status"] for row in data["schedules"]] == [
        "exists as 'mine', unchanged",
        "name taken by a different schedule: left alone",
    ]
    assert Schedule.objects.get(name="compute_daily_stats").cron == "0 1 * * *"
    assert Schedule.objects.count() == 2


@pytest.mark.django_db
def test_apply_does_not_create_lines_refused_like_admin_input():
    data = json.loads(
        schedules(
            "-",
            "--apply",
            "--json",
            stdin=StringIO(
                "0 * * * * python manage.py cleanup_tokens --days soon\n"
                "0 * * * * python manage.py cleanup_tokens --days 3\n"
            ),
        )
    )
    assert [row["name"] for row in data["schedules"]] == ["cleanup_tokens --days 3"]
    [refused] = data["not_converted"]
    assert refused["line"] == 1
    assert refused["reason"].startswith("refused like admin input: args: The command refuses")
    assert list(Schedule.objects.values_list("name", flat=True)) == ["cleanup_tokens --days 3"]


@pytest.mark.django_db
def test_json_report_is_for_scripts():
    data = json.loads(schedules(str(CRONTABS / "cron.d-shop"), "--json"))
    assert data["format"] == "system crontab (user column)"
    first = data["schedules"][0]
    assert {k: first[k] for k in ("line", "name", "command", "args", "cron", "status")} == {
        "line": 7,
        "name": "cleanup_tokens --days 30",
        "command": "cleanup_tokens",
        "args": ["--days", "30"],
        "cron": "30 3 * * *",
        "status": "would create",
    }
    assert len(first["next"]) == 3
    assert [row["line"] for row in data["not_converted"]] == [10, 11]
    assert [row["line"] for row in data["notes"]] == [2, 3, 4]


@pytest.mark.django_db
def test_a_missing_file_is_an_error():
    with pytest.raises(CommandError, match="Cannot read /nonexistent/crontab"):
        schedules("/nonexistent/crontab")


@pytest.mark.e2e
def test_crontab_l_can_be_piped_into_the_command(tmp_path):
    database = tmp_path / "db.sqlite3"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(manage_py.ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=manage_py.ROOT,
        env=env,
        check=True,
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "schedules", "import-crontab", "-", "--apply"],
        cwd=manage_py.ROOT,
        env=env,
        input="*/5 * * * * cd /srv/app && .venv/bin/python manage.py say hi >/dev/null 2>&1\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("standard input (user crontab): 1 schedule(s), 0 line(s)")
    assert "  status    created" in result.stdout


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_readme_example_prints_what_the_readme_shows():
    out = schedules("-", stdin=StringIO((CRONTABS / "readme-example").read_text()))
    assert out == (CRONTABS / "readme-example.out").read_text()
