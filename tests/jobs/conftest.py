import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from jobs.models import AuthToken

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc_timezone() -> Iterator[None]:
    """Pin the current timezone so day boundaries don't depend on DJANGO_TIME_ZONE."""
    with timezone.override("UTC"):
        yield


@pytest.fixture
def now(time_machine) -> datetime:
    """Freeze the clock at NOW."""
    time_machine.move_to(NOW, tick=False)
    return NOW


@pytest.fixture
def make_user(db) -> Callable[..., AbstractUser]:
    """Create users with emails stored verbatim (create_user() would normalise them)."""
    counter = itertools.count(1)

    def make(**fields: Any) -> AbstractUser:
        n = next(counter)
        fields.setdefault("username", f"user{n}")
        fields.setdefault("email", f"user{n}@example.com")
        return get_user_model().objects.create(**fields)

    return make


@pytest.fixture
def make_token(make_user) -> Callable[..., AuthToken]:
    def make(user: AbstractUser | None = None, **fields: Any) -> AuthToken:
        return AuthToken.objects.create(user=user or make_user(), **fields)

    return make
