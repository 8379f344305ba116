"""Service configuration: one `Settings` object read from the environment (prefix-free names)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.nas.limits import DEFAULT_MAX_TRAINABLE_PARAMS


def default_data_dir() -> Path:
    """Per-user data directory for the embedded Postgres cluster and artifacts.

    As root, the embedded server runs as an unprivileged user, which must be able to reach
    the cluster: /var/lib/cerebros-nas is, a folder under a 0700 /root is not (the cluster
    would move to /var/lib/cerebros-nas/clusters, see app/db/embedded.py).
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/cerebros-nas")
    return platformdirs.user_data_path("cerebros-nas")


class Settings(BaseSettings):
    """Everything the service can be configured with; see the README's configuration table."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        default=None,
        description="Postgres URL (postgresql://user:pass@host:port/db). Unset: embedded Postgres.",
    )
    embedded_database: bool = Field(
        default=True,
        alias="CEREBROS_EMBEDDED_DATABASE",
        description="Start an embedded Postgres when DATABASE_URL is unset (false in the "
        "Docker image: a container must be given DATABASE_URL).",
    )
    data_dir: Path = Field(default_factory=default_data_dir, alias="CEREBROS_DATA_DIR")
    artifacts_dir: Path | None = Field(default=None, alias="CEREBROS_ARTIFACTS_DIR")
    model_cache_dir: Path | None = Field(
        default=None,
        alias="CEREBROS_MODEL_CACHE_DIR",
        description="Where the API keeps the models it serves from Postgres (run_artifacts), "
        "one folder per run and sha256; default: the artifacts folder's model-cache.",
    )
    engine_enabled: bool = Field(default=True, alias="CEREBROS_ENGINE_ENABLED")
    queue_name: str = "ml"
    max_body_bytes: int = Field(default=64 * 1024, alias="CEREBROS_MAX_BODY_BYTES")
    max_dataset_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1,
        alias="CEREBROS_MAX_DATASET_BYTES",
        description="Largest dataset file POST /datasets takes (checked while it streams in; "
        "beyond: 413).",
    )
    auth_enabled: bool = Field(
        default=True,
        alias="CEREBROS_AUTH",
        description="Require a bearer token (`cerebros token create`) on every route but /health*.",
    )
    max_queued_runs_per_owner: int = Field(
        default=100,
        ge=1,
        alias="CEREBROS_MAX_QUEUED_RUNS_PER_OWNER",
        description="Queued + running runs one owner may have; POST /runs beyond it is a 429.",
    )
    max_streams_per_owner: int = Field(
        default=20,
        ge=1,
        alias="CEREBROS_MAX_STREAMS_PER_OWNER",
        description="Open SSE streams one token owner may have per API process; beyond: 429.",
    )
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        alias="CEREBROS_AUTH_CACHE_SECONDS",
        description="How long an API process trusts a token it checked (no database read per "
        "request); a revoked token is refused within this many seconds. 0: check every request.",
    )
    api_pool_size: int = Field(
        default=20,
        ge=1,
        alias="CEREBROS_API_POOL_SIZE",
        description="Database connections of one API process (no overflow): requests that need "
        "one beyond these wait up to 10 s, then get the busy 503.",
    )
    stream_auth_recheck_seconds: float = Field(
        default=10.0,
        gt=0,
        alias="CEREBROS_STREAM_AUTH_RECHECK_SECONDS",
        description="Seconds between re-checks of open streams' tokens (revoked: stream ends).",
    )
    stream_ticket_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        alias="CEREBROS_STREAM_TICKET_SECONDS",
        description="How long a stream ticket (POST /events/tickets) may wait to be used.",
    )
    job_max_attempts: int = Field(default=5, alias="CEREBROS_JOB_MAX_ATTEMPTS")
    job_retry_wait_seconds: float = Field(default=2.0, alias="CEREBROS_JOB_RETRY_WAIT_SECONDS")
    stalled_after_seconds: float = Field(default=30.0, alias="CEREBROS_STALLED_AFTER_SECONDS")
    supervisor_pid: int | None = Field(
        default=None,
        alias="CEREBROS_SUPERVISOR_PID",
        description="Set by `cerebros worker --processes N` in its children: the supervisor's "
        "pid (a child dies with it).",
    )
    pg_application_name: str | None = Field(
        default=None,
        alias="PGAPPNAME",
        description="libpq's application name; a supervised worker names itself when unset.",
    )
    job_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        alias="CEREBROS_JOB_POLL_SECONDS",
        description="An idle worker looks for jobs at least this often (LISTEN/NOTIFY wakes it "
        "at once; polling covers notifications lost while its connection was down).",
    )
    fault_steps: str = Field(
        default="",
        alias="CEREBROS_FAULT_STEPS",
        description="Comma-separated saga step names that fail on purpose (fault-injection tests).",
    )
    dataset_cache_dir: Path | None = Field(default=None, alias="CEREBROS_DATASET_CACHE_DIR")
    keras_home: Path = Field(
        default=Path("~/.keras"),
        alias="KERAS_HOME",
        description="Keras' home folder (keras reads the variable too); datasets are cached "
        "under it unless CEREBROS_DATASET_CACHE_DIR is set.",
    )
    keras_backend: str = Field(
        default="torch",
        alias="KERAS_BACKEND",
        description="Keras backend: torch (installed), or jax / tensorflow where installed. "
        "Keras reads the variable itself, at its first import; app/nas/backend.py sets it "
        "from here just before.",
    )
    torch_threads: int = Field(
        default=1,
        ge=1,
        alias="CEREBROS_TORCH_THREADS",
        description="torch intra-op threads per process; 1 measured fastest on 2 shared "
        "cores (app/nas/backend.py says why).",
    )
    max_trainable_params: int = Field(
        default=DEFAULT_MAX_TRAINABLE_PARAMS,
        ge=1,
        alias="CEREBROS_MAX_TRAINABLE_PARAMS",
        description="Trainable parameters one architecture may have; larger candidates are "
        "recorded failed without being built (app/nas/limits.py says why 5 000 000).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        alias="CEREBROS_LOG_FORMAT",
        description="text, or json: one JSON object per line with run_id, trial, job_id and "
        "worker where they apply (app/observability/logs.py).",
    )
    log_level: str = Field(
        default="INFO",
        pattern=r"(?i)^(debug|info|warning|error|critical)$",
        alias="CEREBROS_LOG_LEVEL",
        description="Lowest level logged by `serve`, `worker`, `up` and `migrate`.",
    )

    @property
    def resolved_artifacts_dir(self) -> Path:
        return self.artifacts_dir or self.data_dir / "artifacts"

    @property
    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or self.resolved_artifacts_dir / "model-cache"

    @property
    def resolved_dataset_cache_dir(self) -> Path:
        return (self.dataset_cache_dir or self.keras_home).expanduser()

    @property
    def fault_step_names(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.fault_steps.split(",") if s.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
