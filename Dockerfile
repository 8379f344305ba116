# The service image. API by default; the worker uses the same image:
#   docker run -e DATABASE_URL=... IMAGE cerebros worker --processes 4
# Containers share nothing but DATABASE_URL; each keeps its own data dir, /data.
FROM python:3.11-slim

# CEREBROS_EMBEDDED_DATABASE=false: a container without DATABASE_URL fails at once, naming
# it, instead of starting a throw-away Postgres inside itself.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    KERAS_BACKEND=torch CEREBROS_DATA_DIR=/data CEREBROS_EMBEDDED_DATABASE=false

RUN useradd --create-home --uid 10001 cerebros && mkdir -p /data/artifacts \
    && chown -R cerebros /data
WORKDIR /srv
# CPU-only torch first (scripts/install_torch.sh), so keras does not pull a CUDA build.
COPY scripts/install_torch.sh ./scripts/
RUN bash scripts/install_torch.sh
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install .

USER cerebros
EXPOSE 8000
# Health checks are per service in compose.yaml: the worker, from this same image, serves no HTTP.
# DATABASE_URL must point at a Postgres server; run `cerebros migrate` once before.
CMD ["cerebros", "serve", "--host", "0.0.0.0", "--port", "8000"]
