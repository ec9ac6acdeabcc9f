import pytest
from django.core.management.base import CommandError
from django.test import override_settings

from scheduler.commands import DANGEROUS, allowed_commands, check_arguments


def test_default_allows_project_commands_only():
    allowed = allowed_commands()
    assert {"cleanup_tokens", "nightly_batch", "say"} <= allowed
    assert not allowed & DANGEROUS
    assert "clearsessions" not in allowed  # Django's own: listed explicitly if wanted
    assert "runscheduler" not in allowed


@override_settings(SCHEDULER={"ALLOWED_COMMANDS": ["clearsessions", "flush"]})
def test_explicit_list_replaces_the_default():
    assert allowed_commands() == {"clearsessions", "flush"}


def test_argument_check_uses_the_commands_own_parser():
    check_arguments("cleanup_tokens", ["--days", "7", "--dry-run"])
    with pytest.raises(CommandError, match="--dayz"):
        check_arguments("cleanup_tokens", ["--dayz", "7"])
    with pytest.raises(CommandError, match="invalid int value"):
        check_arguments("cleanup_tokens", ["--days", "seven"])
    with pytest.raises(CommandError, match="exit instead of run"):
        check_arguments("cleanup_tokens", ["--help"])
