from __future__ import annotations

import inspect

import pytest
from django.test import override_settings

from scheduler.conf import DEFAULTS, SchedulerSettings, conf


def test_every_setting_is_a_typed_property_of_conf():
    properties = {
        name for name, value in inspect.getmembers(SchedulerSettings) if isinstance(value, property)
    }
    assert properties == set(DEFAULTS)
    for name in properties:
        assert "return" in inspect.get_annotations(getattr(SchedulerSettings, name).fget)


def test_a_setting_falls_back_to_its_default_and_follows_the_settings_when_read():
    assert conf.POLL_INTERVAL == DEFAULTS["POLL_INTERVAL"]
    with override_settings(SCHEDULER={"POLL_INTERVAL": 0.25}):
        assert conf.POLL_INTERVAL == 0.25
    assert conf.POLL_INTERVAL == DEFAULTS["POLL_INTERVAL"]


def test_an_unknown_setting_is_an_error_not_a_default():
    with pytest.raises(KeyError):
        conf.get("POLL_INTERVALL")
    with pytest.raises(AttributeError):
        conf.POLL_INTERVALL  # noqa: B018
