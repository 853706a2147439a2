"""User and operator use cases, and authentication of bearer keys.

Every key change writes its audit entry in the same transaction (:mod:`.audit`)."""

from __future__ import annotations

import uuid

import asyncpg
from prometheus_client import Counter

from steadypay.db.router import DatabaseRouter
from steadypay.errors import AuthenticationError, Conflict, EmailTaken, NotFound, ValidationError
from steadypay.identity import audit as actions
from steadypay.identity.audit import Audit, AuditEntry, record_in
from steadypay.identity.domain import (
    ADMIN_NAME_PATTERN,
    ADMIN_PRINCIPAL,
    AdminKey,
    Principal,
    User,
    hash_api_key,
    new_admin_key,
    new_admin_key_id,
    new_api_key,
    operator,
)
from steadypay.keys import same_digest

KEY_LOOKUPS = Counter(
    "steadypay_auth_key_lookups",
    "Bearer keys looked up in PostgreSQL, by outcome (user, operator, unknown).",
    ["outcome"],
)


def _admin_key(row: asyncpg.Record) -> AdminKey:
    return AdminKey(
        row["id"],
        row["name"],
        row["created_at"],
        row["created_by"],
        row["rotated_at"],
        row["revoked_at"],
        row["revoked_by"],
    )


class Identity:
    def __init__(self, db: DatabaseRouter, admin_key: str) -> None:
        if not admin_key:
            raise ValueError("an admin key is required")
        self._db = db
        self._admin_digest = hash_api_key(admin_key)
        self.audit = Audit(db)
        self.operators = OperatorKeys(db)

    async def create_user(self, name: str, email: str) -> tuple[User, str]:
        """Create a user; returns it with its API key, which is never retrievable again."""
        api_key = new_api_key()
        try:
            async with self._db.writer().connection() as conn:
                row = await conn.fetchrow(
                    """
                    INSERT INTO users (id, name, email, api_key_hash) VALUES ($1, $2, $3, $4)
                    RETURNING id, name, email, created_at
                    """,
                    uuid.uuid4(),
                    name,
                    email,
                    hash_api_key(api_key),
                )
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise EmailTaken(param="email") from exc
        assert row is not None
        return User(row["id"], row["name"], row["email"], row["created_at"]), api_key

    async def user_exists(self, user_id: uuid.UUID) -> bool:
        async with self._db.reader().connection() as conn:
            found = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id
            )
        return bool(found)

    async def authenticate(self, token: str | None, key_hash: bytes | None = None) -> Principal:
        """The principal of a bearer token (the part after ``Bearer ``): the environment's
        admin key, a live named admin key, or a user's key. ``key_hash``: the token's
        :func:`hash_api_key` when the caller has it already."""
        if not token:
            raise AuthenticationError()
        key_hash = key_hash or hash_api_key(token)
        if same_digest(key_hash, self._admin_digest):
            return ADMIN_PRINCIPAL
        async with self._db.reader().connection() as conn:
            row = await conn.fetchrow(
                """
                SELECT id::text AS id, false AS operator FROM users WHERE api_key_hash = $1
                UNION ALL
                SELECT id, true FROM admin_keys WHERE key_hash = $1 AND revoked_at IS NULL
                """,
                key_hash,
            )
        if row is None:
            KEY_LOOKUPS.labels("unknown").inc()
            raise AuthenticationError("invalid API key")
        if row["operator"]:
            KEY_LOOKUPS.labels("operator").inc()
            return operator(row["id"])
        KEY_LOOKUPS.labels("user").inc()
        return Principal(user_id=uuid.UUID(row["id"]))

    async def replace_user_key(self, user_id: uuid.UUID, entry: AuditEntry) -> str:
        """A new key for the user, shown once; the old one is refused from now on."""
        api_key = new_api_key()
        await self._set_user_key(user_id, hash_api_key(api_key), entry, actions.USER_KEY_ROTATE)
        return api_key

    async def revoke_user_key(self, user_id: uuid.UUID, entry: AuditEntry) -> None:
        """Refuse the user's key; the user has no key until an admin issues a new one."""
        unusable = hash_api_key("revoked:" + new_api_key())  # nobody knows its preimage
        await self._set_user_key(user_id, unusable, entry, actions.USER_KEY_REVOKE)

    async def _set_user_key(
        self, user_id: uuid.UUID, key_hash: bytes, entry: AuditEntry, action: str
    ) -> None:
        async with self._db.writer().transaction() as conn:
            found = await conn.fetchval(
                "UPDATE users SET api_key_hash = $2, api_key_rotated_at = now() WHERE id = $1 "
                "RETURNING id",
                user_id,
                key_hash,
            )
            if found is None:
                raise NotFound("no such user", param="user_id")
            await record_in(conn, entry.about(action, f"user:{user_id}"))


class OperatorKeys:
    """Named operator keys: created, listed, rotated and revoked, each change audited in its
    transaction. (The API's routes and `steadypay admin-keys` share it.)"""

    def __init__(self, db: DatabaseRouter) -> None:
        self._db = db

    async def create(self, name: str, entry: AuditEntry) -> tuple[AdminKey, str]:
        """A named operator key; returns it with its secret, which is never shown again."""
        if not ADMIN_NAME_PATTERN.match(name):
            raise ValidationError(
                "name must be 1-64 of a-z, 0-9 and . _ @ - (starting with a letter or digit)",
                param="name",
            )
        secret = new_admin_key()
        key_id = new_admin_key_id()
        try:
            async with self._db.writer().transaction() as conn:
                row = await conn.fetchrow(
                    """
                    INSERT INTO admin_keys (id, name, key_hash, created_by)
                    VALUES ($1, $2, $3, $4) RETURNING
                    id, name, created_at, created_by, rotated_at, revoked_at, revoked_by
                    """,
                    key_id,
                    name,
                    hash_api_key(secret),
                    entry.actor,
                )
                await record_in(conn, entry.about(actions.ADMIN_KEY_CREATE, key_id, name=name))
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict(f"a live admin key named {name!r} exists", param="name") from exc
        assert row is not None
        return _admin_key(row), secret

    async def list(self, *, include_revoked: bool = False) -> list[AdminKey]:
        async with self._db.writer().connection() as conn:
            rows = await conn.fetch(
                "SELECT id, name, created_at, created_by, rotated_at, revoked_at, revoked_by "
                "FROM admin_keys "
                "WHERE $1 OR revoked_at IS NULL ORDER BY created_at, id",
                include_revoked,
            )
        return [_admin_key(r) for r in rows]

    async def rotate(self, key_id: str, entry: AuditEntry) -> tuple[AdminKey, str]:
        """A new secret for a live key (same id and name); the old secret is refused at once."""
        secret = new_admin_key()
        async with self._db.writer().transaction() as conn:
            row = await conn.fetchrow(
                """
                UPDATE admin_keys SET key_hash = $2, rotated_at = now()
                WHERE id = $1 AND revoked_at IS NULL RETURNING
                    id, name, created_at, created_by, rotated_at, revoked_at, revoked_by
                """,
                key_id,
                hash_api_key(secret),
            )
            if row is None:
                raise NotFound("no live admin key with this id", param="key_id")
            await record_in(conn, entry.about(actions.ADMIN_KEY_ROTATE, key_id))
        return _admin_key(row), secret

    async def revoke(self, key_id: str, entry: AuditEntry) -> AdminKey:
        """Refuse the key from now on (idempotent: revoking a revoked key answers it as is)."""
        async with self._db.writer().transaction() as conn:
            row = await conn.fetchrow(
                """
                UPDATE admin_keys SET revoked_at = now(), revoked_by = $2
                WHERE id = $1 AND revoked_at IS NULL RETURNING
                    id, name, created_at, created_by, rotated_at, revoked_at, revoked_by
                """,
                key_id,
                entry.actor,
            )
            if row is not None:
                await record_in(conn, entry.about(actions.ADMIN_KEY_REVOKE, key_id))
                return _admin_key(row)
            row = await conn.fetchrow(
                "SELECT id, name, created_at, created_by, rotated_at, revoked_at, revoked_by "
                "FROM admin_keys WHERE id = $1",
                key_id,
            )
        if row is None:
            raise NotFound("no admin key with this id", param="key_id")
        return _admin_key(row)
