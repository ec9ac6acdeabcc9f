import json
import sys
from pathlib import Path

import pytest
from django.core.management.base import CommandError
from django.test import override_settings

from scheduler.commands import DANGEROUS, HOUSEKEEPING, allowed_commands, check_arguments


def test_default_allows_project_commands_and_housekeeping_only():
    allowed = allowed_commands()
    assert {"cleanup_tokens", "nightly_batch", "say"} <= allowed
    assert not allowed & DANGEROUS
    assert {"clearsessions", "check"} == HOUSEKEEPING <= allowed
    assert not {"runscheduler", "dumpdata", "diffsettings", "rqenqueue", "db_worker"} & allowed


@override_settings(SCHEDULER={"ALLOWED_COMMANDS": ["clearsessions", "flush"]})
def test_explicit_list_replaces_the_default():
    assert allowed_commands() == {"clearsessions", "flush"}


def test_extra_allowed_commands_add_to_the_default():
    default = allowed_commands()
    with override_settings(SCHEDULER={"EXTRA_ALLOWED_COMMANDS": ["flush", "no_such"]}):
        assert allowed_commands() == default | {"flush"}


@override_settings(
    SCHEDULER={"ALLOWED_COMMANDS": ["say"], "EXTRA_ALLOWED_COMMANDS": ["clearsessions"]}
)
def test_extra_allowed_commands_add_to_an_explicit_list():
    assert allowed_commands() == {"say", "clearsessions"}


def test_argument_check_uses_the_commands_own_parser():
    check_arguments("cleanup_tokens", ["--days", "7", "--dry-run"])
    with pytest.raises(CommandError, match="--dayz"):
        check_arguments("cleanup_tokens", ["--dayz", "7"])
    with pytest.raises(CommandError, match="invalid int value"):
        check_arguments("cleanup_tokens", ["--days", "seven"])
    with pytest.raises(CommandError, match="exit instead of run"):
        check_arguments("cleanup_tokens", ["--help"])


def test_an_unrecognized_argument_is_named_before_a_missing_required_one():
    with pytest.raises(CommandError, match="unrecognized arguments: --dayz 3") as info:
        check_arguments("needs_days", ["--dayz", "3"])
    assert "required" not in str(info.value)
    with pytest.raises(CommandError, match="required: --days"):
        check_arguments("needs_days", [])
    check_arguments("needs_days", ["--days", "3"])


def test_an_unrecognized_argument_of_a_subcommand_is_named():
    with pytest.raises(CommandError, match="unrecognized arguments: --bogus"):
        check_arguments("schedules", ["run", "--bogus"])


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("needs_days", ["--help"]),
        ("needs_days", ["--version"]),
        ("needs_days", ["--days", "3", "-h"]),
        ("schedules", ["run", "--help"]),
    ],
)
def test_help_and_version_are_refused_without_printing(capfd, command, args):
    with pytest.raises(CommandError, match="exit instead of run"):
        check_arguments(command, args)
    assert capfd.readouterr() == ("", "")


@pytest.mark.django_db
def test_a_schedule_with_help_in_its_arguments_is_refused_without_printing(capfd):
    from django.core.exceptions import ValidationError

    from scheduler.models import Schedule

    schedule = Schedule(name="x", command="needs_days", args=["--help"], interval=60)
    with pytest.raises(ValidationError) as info:
        schedule.full_clean()
    assert "exit instead of run" in info.value.message_dict["args"][0]
    assert capfd.readouterr() == ("", "")


# A project folder holding, besides the project's own apps, third-party apps the ways pip
# puts them there: editable from version control into a virtualenv (".venv/src/…") or,
# outside one, into "./src/…" (a clone, with an editable dist-info elsewhere), and installed
# with --target into a plain folder.
COMMAND = "from django.core.management.base import BaseCommand\n\nclass Command(BaseCommand):\n"
COMMAND += "    def handle(self, *args, **options):\n        pass\n"


def make_app(root: Path, package: str, *commands: str) -> list[str]:
    """Write an importable app with the given commands; return its files relative to root."""
    files = [f"{package}/__init__.py", f"{package}/management/__init__.py"]
    files.append(f"{package}/management/commands/__init__.py")
    files += [f"{package}/management/commands/{name}.py" for name in commands]
    for file in files:
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        (root / file).write_text(COMMAND if "/commands/" in file and "__init__" not in file else "")
    return files


def make_dist_info(
    site: Path, package: str, direct_url: dict | None = None, files: list[str] = ()
) -> None:
    info = site / f"{package}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (info / "top_level.txt").write_text(f"{package}\n")
    (info / "INSTALLER").write_text("pip\n")
    record = [*files, f"{info.name}/METADATA", f"{info.name}/RECORD"]
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
        record.append(f"{info.name}/direct_url.json")
    (info / "RECORD").write_text("".join(f"{file},,\n" for file in record))


def editable(source: Path) -> dict:
    return {"url": source.as_uri(), "dir_info": {"editable": True}}


@pytest.fixture
def project_folder(tmp_path, monkeypatch):
    base = tmp_path / "project"
    (base / ".git").mkdir(parents=True)  # the project's own checkout
    make_app(base, "ownapp", "own_cmd")
    # The project itself, installed in development mode (pip install -e .).
    make_app(base, "projectpkg", "editable_cmd")
    outside = tmp_path / "site-packages"
    make_dist_info(outside, "projectpkg", editable(base))
    # pip install -e git+…#egg=fakepkg inside a virtualenv in the project folder.
    venv = base / ".venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    clone = venv / "src" / "fakepkg"
    (clone / ".git").mkdir(parents=True)
    make_app(clone, "fakepkg", "venv_cmd")
    make_dist_info(venv / "lib" / "site-packages", "fakepkg", editable(clone))
    # The same outside a virtualenv: pip clones into ./src.
    clone = base / "src" / "otherpkg"
    (clone / ".git").mkdir(parents=True)
    make_app(clone, "otherpkg", "clone_cmd")
    make_dist_info(outside, "otherpkg", editable(clone))
    # pip install --target vendor …: an installed copy, with no tell-tale folder names.
    vendor = base / "vendor"
    files = make_app(vendor, "vendpkg", "vendored_cmd", "clearsessions")
    make_dist_info(vendor, "vendpkg", files=files)
    packages = ("ownapp", "projectpkg", "fakepkg", "otherpkg", "vendpkg")
    for path in (base, outside, base / ".venv" / "src" / "fakepkg", clone, vendor):
        monkeypatch.syspath_prepend(str(path))
    yield base, packages
    for name in list(sys.modules):
        if name.partition(".")[0] in packages:
            del sys.modules[name]


@pytest.mark.parametrize(
    ("command", "admitted"),
    [
        ("own_cmd", True),
        ("editable_cmd", True),
        ("venv_cmd", False),
        ("clone_cmd", False),
        ("vendored_cmd", False),
        ("clearsessions", False),  # a third-party app's, shadowing Django's
    ],
)
def test_default_admits_the_projects_own_source_never_installed_packages(
    project_folder, command, admitted
):
    base, packages = project_folder
    installed = ["django.contrib.contenttypes", *packages, "django.contrib.sessions"]
    with override_settings(BASE_DIR=base, INSTALLED_APPS=installed):
        assert (command in allowed_commands()) is admitted
