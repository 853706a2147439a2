"""Structured logs for every steadypay process: one JSON object per line (or readable lines on
a terminal), each carrying the request id of the work it belongs to.

- structlog renders our own events; the standard library's records (uvicorn, asyncpg, alembic)
  go through the same processors (``ProcessorFormatter``), so a process never mixes formats.
- ``redact`` is the last line of defence against leaking secrets and personal data: values under
  sensitive keys are replaced, and strings that look like our secrets (API keys ``sp_…``,
  webhook secrets ``whsec_…``, bearer tokens, passwords in URLs, e-mail addresses) are masked
  wherever they appear. The first line is not logging them at all: request logs carry the
  method, route template, status and duration, never headers, query strings or bodies.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "api_key",
        "admin_key",
        "password",
        "secret",
        "previous_secret",
        "token",
        "email",
        "database_url",
        "redis_url",
        "dsn",
    }
)
REDACTED = "[redacted]"

_PATTERNS = (
    re.compile(r"\bsp_[A-Za-z0-9_-]{16,}"),  # user API keys
    re.compile(r"\bwhsec_[A-Za-z0-9_-]{8,}"),  # webhook signing secrets
    re.compile(r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?<=://)[^/\s:@]*:[^/\s@]+(?=@)"),  # user:password@ in URLs
    re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),  # e-mail addresses
)


_ANY = re.compile("|".join(f"(?:{pattern.pattern})" for pattern in _PATTERNS))
"""All of them at once: one scan tells whether a string needs masking (most don't)."""


def mask(text: str) -> str:
    if _ANY.search(text) is None:
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: REDACTED if _sensitive(k) else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _sensitive(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SENSITIVE_KEYS


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets and personal data in every field of every line."""
    for key, value in list(event_dict.items()):
        event_dict[key] = REDACTED if _sensitive(key) else _clean(value)
    return event_dict


def configure_logging(level_name: str, json_lines: bool | None, service: str) -> None:
    """Configure structlog and the standard library's logging for this process; every line
    names its ``service``. ``json_lines`` None means JSON unless stderr is a terminal."""
    level = logging.getLevelNamesMapping().get(level_name.upper(), logging.INFO)
    as_json = json_lines if json_lines is not None else not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )

    def add_service(
        _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        event_dict["pid"] = os.getpid()  # which worker of the service
        return event_dict

    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            # redact runs once, in the formatter below, for structlog's lines and others alike
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        # uvicorn installs its own handlers; let its records reach ours instead
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Our ``http_request`` line replaces uvicorn's access log (which has raw paths and query
    # strings); httpx logs every outbound URL at info (webhook URLs may carry tokens).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
