FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY . .
# The example site's extras (dj-database-url, psycopg, the tasks backend). Editable, so
# the project's apps stay under /app: ALLOWED_COMMANDS' default admits the commands of
# apps inside the project folder.
RUN pip install -e ".[example]" && useradd --create-home app && chown app /app
USER app
CMD ["python", "manage.py", "runscheduler"]
