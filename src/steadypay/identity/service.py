"""User use cases and authentication of bearer keys."""

from __future__ import annotations

import uuid

import asyncpg

from steadypay.db.router import DatabaseRouter
from steadypay.errors import AuthenticationError, EmailTaken
from steadypay.identity.domain import (
    ADMIN_PRINCIPAL,
    Principal,
    User,
    hash_api_key,
    new_api_key,
    same_secret,
)


class Identity:
    def __init__(self, db: DatabaseRouter, admin_key: str) -> None:
        if not admin_key:
            raise ValueError("an admin key is required")
        self._db = db
        self._admin_key = admin_key

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

    async def authenticate(self, token: str | None) -> Principal:
        """The principal of a bearer token (the part after ``Bearer ``)."""
        if not token:
            raise AuthenticationError()
        if same_secret(token, self._admin_key):
            return ADMIN_PRINCIPAL
        async with self._db.reader().connection() as conn:
            user_id = await conn.fetchval(
                "SELECT id FROM users WHERE api_key_hash = $1", hash_api_key(token)
            )
        if user_id is None:
            raise AuthenticationError("invalid API key")
        return Principal(user_id=user_id)
