"""Data the example maintenance commands work on: API tokens and a per-day usage summary."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


def generate_token_key() -> str:
    return secrets.token_hex(32)


class AuthToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_tokens"
    )
    key = models.CharField(max_length=64, unique=True, default=generate_token_key)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"Token {self.key[:8]}… for {self.user}"


class DailyStat(models.Model):
    date = models.DateField(unique=True)
    new_users = models.PositiveIntegerField()
    tokens_created = models.PositiveIntegerField()
    active_tokens = models.PositiveIntegerField()
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date"]

    def __str__(self) -> str:
        return f"Stats for {self.date}"
