# The service image. API by default; the worker uses the same image:
#   docker run IMAGE cerebros worker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    KERAS_BACKEND=torch CEREBROS_DATA_DIR=/data

RUN useradd --create-home --uid 10001 cerebros && mkdir /data && chown cerebros /data
WORKDIR /srv
# CPU-only torch first, so keras does not pull a CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
RUN pip install .

USER cerebros
EXPOSE 8000
# DATABASE_URL must point at a Postgres server; run `cerebros migrate` once before.
CMD ["cerebros", "serve", "--host", "0.0.0.0", "--port", "8000"]
