import hmac

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics as scheduler_metrics
from .conf import conf
from .health import check_health


def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and probes: 200 while a scheduler's heartbeat is fresh, else 503.

    It reveals no output or schedule, only daemons' hosts and heartbeat times.
    """
    report = check_health(timezone.now())
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    """Serve the Prometheus metrics to staff, or to a scraper with the bearer token.

    Without credentials: 401; a logged-in non-staff user or a wrong token: 403.
    """
    token = conf.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        pass
    elif header.startswith("Bearer "):
        given = header.removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponseForbidden("Wrong metrics token.")
    elif user is not None and user.is_authenticated:
        return HttpResponseForbidden("Staff only.")
    else:
        response = HttpResponse("Log in as staff, or send the metrics token.", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="scheduler metrics"'
        return response
    body = generate_latest(scheduler_metrics.registry(timezone.now()))
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
