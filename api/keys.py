"""API keys: one per client, shown once, stored as SHA-256 digests, revocable.

A key reads ``ich_<prefix>_<secret>``: the prefix finds the row without scanning, the digest
of the whole key is compared in constant time, and a stolen database holds no usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from api.db import clients
from ich.errors import IchError

SCOPES = ("analyses:write", "analyses:read")
"""write: submit studies (REST and STOW-RS); read: results and their DICOM objects."""


class UnknownKeyError(IchError):
    code = "unknown-key"
    title = "Unknown API key"


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    scopes: frozenset[str]
    webhook_secret: str


@dataclass(frozen=True)
class IssuedKey:
    client: Client
    key: str
    prefix: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _client(row: object) -> Client:
    return Client(row.id, row.name, frozenset(row.scopes.split()), row.webhook_secret)  # type: ignore[attr-defined]


def create_key(engine: Engine, name: str, scopes: tuple[str, ...] = SCOPES) -> IssuedKey:
    """A new client and its key (the only time the key is visible)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(unknown)}")
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(24)
    key = f"ich_{prefix}_{secret}"
    client = Client(secrets.token_hex(8), name, frozenset(scopes), secrets.token_hex(32))
    with engine.begin() as db:
        db.execute(
            insert(clients).values(
                id=client.id,
                name=name,
                key_prefix=prefix,
                key_hash=_digest(key),
                scopes=" ".join(sorted(scopes)),
                webhook_secret=client.webhook_secret,
                created=datetime.now(UTC),
            )
        )
    return IssuedKey(client, key, prefix)


def find_key(engine: Engine, key: str) -> Client | None:
    """The active client holding ``key``, or None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "ich":
        return None
    with engine.connect() as db:
        row = db.execute(
            select(clients).where(clients.c.key_prefix == parts[1], clients.c.revoked.is_(None))
        ).first()
    if row is None or not hmac.compare_digest(row.key_hash, _digest(key)):
        return None
    return _client(row)


def client_active(engine: Engine, client_id: str) -> bool:
    """Whether the client exists and is not revoked (links it issued die with it)."""
    with engine.connect() as db:
        row = db.execute(select(clients.c.revoked).where(clients.c.id == client_id)).first()
    return row is not None and row.revoked is None


def token_client(engine: Engine, subject: str, scopes: frozenset[str]) -> Client:
    """The client row of a JWT subject, created on first sight (analyses need an owner)."""
    client_id = "jwt-" + hashlib.sha256(subject.encode()).hexdigest()[:24]
    query = select(clients).where(clients.c.id == client_id)
    with engine.connect() as db:
        row = db.execute(query).first()
    if row is None:
        try:
            with engine.begin() as db:
                db.execute(
                    insert(clients).values(
                        id=client_id,
                        name=f"token {client_id[4:16]}",
                        scopes="",
                        webhook_secret=secrets.token_hex(32),
                        created=datetime.now(UTC),
                    )
                )
        except IntegrityError:  # a concurrent first request of the same subject made it
            pass
        with engine.connect() as db:
            row = db.execute(query).one()
    if row.revoked is not None:
        raise UnknownKeyError(f"Client {client_id} is revoked.")
    return Client(row.id, row.name, scopes, row.webhook_secret)


def client_named(engine: Engine, name: str) -> str:
    """The id of the newest unrevoked client called ``name`` (``ich keys create NAME``).

    Raises:
        LookupError: there is none.
    """
    with engine.connect() as db:
        found = db.execute(
            select(clients.c.id)
            .where(clients.c.name == name, clients.c.revoked.is_(None))
            .order_by(clients.c.created.desc())
        ).first()
    if found is None:
        raise LookupError(
            f"No API client named {name!r} to own received studies: create it with "
            f"`ich keys create {name}` or set ICH_DICOM_CLIENT to an existing one."
        )
    return str(found.id)


def list_keys(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as db:
        rows = db.execute(select(clients).order_by(clients.c.created)).all()
    return [
        {
            "client_id": r.id,
            "name": r.name,
            "prefix": r.key_prefix,
            "scopes": r.scopes,
            "created": r.created,
            "revoked": r.revoked,
        }
        for r in rows
    ]


def revoke_key(engine: Engine, prefix_or_id: str) -> str:
    """Revoke by key prefix or client id; returns the client id."""
    with engine.begin() as db:
        row = db.execute(
            select(clients).where(
                (clients.c.key_prefix == prefix_or_id) | (clients.c.id == prefix_or_id)
            )
        ).first()
        if row is None:
            raise UnknownKeyError(f"No key with prefix or client id {prefix_or_id!r}.")
        db.execute(update(clients).where(clients.c.id == row.id).values(revoked=datetime.now(UTC)))
    return row.id


def client_secret(engine: Engine, client_id: str) -> str:
    """The client's webhook signing secret."""
    with engine.connect() as db:
        return str(
            db.execute(
                select(clients.c.webhook_secret).where(clients.c.id == client_id)
            ).scalar_one()
        )
