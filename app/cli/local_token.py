"""The local admin token of `cerebros up`: one per data directory.

It is kept in an 0600 file and reused while it is valid, instead of a new never-expiring
admin token at every start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.auth import tokens
from app.auth.cli import create_token, run_in_transaction

TOKEN_FILE = "admin-token"


@dataclass(frozen=True)
class LocalToken:
    path: Path
    token: str
    reused: bool

    @property
    def display_id(self) -> str:
        return tokens.display_prefix(tokens.token_id_of(self.token) or "?")


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only, at no moment wider."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older tmp file may have had another mode
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    tmp.replace(path)


def _valid_admin(token: str) -> bool:
    principal = run_in_transaction(lambda s: tokens.authenticate(s, token))
    return principal is not None and principal.admin and principal.owner == tokens.LOCAL_OWNER


def local_admin_token(data_dir: Path) -> LocalToken:
    """The token in `data_dir/admin-token` if still valid (not revoked), else a new one.

    A new one is an admin token for owner "local", stored there. Uses the configured database.
    """
    path = data_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token and _valid_admin(token):
        if path.stat().st_mode & 0o777 != 0o600:
            path.chmod(0o600)
        return LocalToken(path, token, reused=True)
    _, token = create_token(tokens.LOCAL_OWNER, admin=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_private(path, token + "\n")
    return LocalToken(path, token, reused=False)
