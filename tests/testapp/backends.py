"""A task backend whose system check always complains: to count how often it is asked."""

from django.core import checks

from scheduler.compat import DummyBackend


class ComplainingBackend(DummyBackend):
    def check(self, **kwargs) -> list[checks.CheckMessage]:
        return [checks.Warning("this backend complains", id="testapp.W001")]
