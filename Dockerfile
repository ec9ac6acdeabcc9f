FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# tini runs as PID 1 (docker run, a Kubernetes pod): it reaps what commands leave behind
# and passes signals on to the daemon. -s keeps it reaping under an init of its own too
# (compose's init: true).
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
# The example site's extras (dj-database-url, psycopg, the tasks backend). Editable, so
# the project's apps stay under /app: ALLOWED_COMMANDS' default admits the commands of
# apps inside the project folder.
RUN pip install -e ".[example]" && useradd --create-home app && chown app /app
USER app
ENTRYPOINT ["/usr/bin/tini", "-s", "--"]
CMD ["python", "manage.py", "runscheduler"]
