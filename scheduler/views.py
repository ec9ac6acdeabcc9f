from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from .health import check_health


def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and probes: 200 while a scheduler's heartbeat is fresh, else 503.

    It reveals no output or schedule, only daemons' hosts and heartbeat times.
    """
    report = check_health(timezone.now())
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)
