# The application image: web (gunicorn), worker and beat all run from it.
# Two stages: uv installs the locked dependencies in `build`; the `runtime` image gets only the
# resulting virtualenv and the application (no uv, no tests, benchmarks or CI scripts: see
# .dockerignore).

FROM python:3.11-slim-bookworm AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

RUN pip install --no-cache-dir "uv>=0.5,<1"

WORKDIR /build
# Dependencies only, exactly as locked.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-group local --no-install-project --no-cache


FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

# Same base image as `build`, so the virtualenv's interpreter links stay valid.
COPY --from=build /opt/venv /opt/venv

WORKDIR /app
COPY . .
# collectstatic needs production settings to load; these throw-away values only let it import.
RUN DJANGO_SETTINGS_MODULE=config.settings.prod \
    SECRET_KEY=collectstatic-only-not-a-secret-0123456789abcdefghijklmnop \
    DATABASE_URL=postgres://build@localhost/build \
    ALLOWED_HOSTS=localhost \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput \
 && useradd --system --uid 10001 --home-dir /app app \
 && mkdir -p var/media \
 && chown -R app:app var

USER app
ENV DJANGO_SETTINGS_MODULE=config.settings.prod
EXPOSE 8000
# --no-control-socket: gunicorn's control socket would live under the app user's home (/app),
# which is read-only to that user; nothing here uses it.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--no-control-socket"]
