# Hubkeeper as a container: an external JupyterHub service (see docs/deploy.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/hubkeeper

COPY requirements-prod.lock pyproject.toml README.md ./
# requirements-prod.lock: the runtime set only (requirements.lock adds the dev/test tools).
RUN pip install --no-cache-dir uv \
 && uv pip install --system --no-cache -r requirements-prod.lock

COPY app ./app
COPY alembic ./alembic
COPY templates ./templates
COPY static ./static
# A regular (not editable) install: the wheel carries templates, static files and migrations.
RUN uv pip install --system --no-cache --no-deps . && rm -rf build

RUN useradd --system --home /srv/hubkeeper hubkeeper && chown -R hubkeeper /srv/hubkeeper
USER hubkeeper
EXPOSE 10101
CMD ["hubkeeper", "serve", "--host", "0.0.0.0"]
