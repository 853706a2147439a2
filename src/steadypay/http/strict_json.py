"""The JSON every steadypay service accepts: RFC 8259 JSON, with what parsers disagree on or
our storage cannot hold refused before a handler sees the body.

:func:`problem` parses a body as the framework will and answers the first reason to refuse it
as a ``400 validation_error`` (``param`` is the dotted path, as pydantic's are):

- a duplicate key in any object, at any depth (a gateway or a signature check that reads the
  first ``"amount"`` must not see another amount than the ledger, which would read the last);
- nesting deeper than the limit (``STEADYPAY_HTTP_MAX_JSON_DEPTH``);
- NUL or a lone surrogate in any string or key (:data:`~steadypay.http.fields.UNSTORABLE`:
  PostgreSQL and UTF-8 cannot hold them, so they must not reach a handler, even in free-form
  ``data``);
- a body that is not JSON, not UTF-8/16/32, or uses ``NaN``/``Infinity``.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from steadypay.errors import ValidationError
from steadypay.http.fields import UNSTORABLE, refused_character_message

Path = tuple[str | int, ...]


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _Constant(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


class _Marked(dict[str, Any]):
    """An object that had a duplicate key (the second parse, which finds where it is)."""

    duplicate: str


def _marking(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    try:
        return _unique(pairs)
    except _DuplicateKey as exc:
        marked = _Marked(pairs)
        marked.duplicate = exc.key
        return marked


def _refuse_constant(name: str) -> NoReturn:
    raise _Constant(name)


def _dotted(path: Path) -> str | None:
    return ".".join(str(part) for part in path) or None


def problem(body: bytes | bytearray, max_depth: int) -> ValidationError | None:
    """Why ``body`` must be refused, or None if it is fine (see the module's docstring)."""
    try:
        document = json.loads(body, object_pairs_hook=_unique, parse_constant=_refuse_constant)
    except _DuplicateKey as exc:
        return ValidationError(
            f"duplicate key {exc.key!r} in a JSON object", param=_duplicate_path(body)
        )
    except RecursionError:
        return _nested_too_deep(max_depth)
    except _Constant as exc:
        return ValidationError(f"{exc} is not a JSON value")
    except UnicodeDecodeError:
        return ValidationError("the request body is not valid UTF-8")
    except ValueError:  # json.JSONDecodeError, an integer of too many digits
        return ValidationError("the request body is not valid JSON")
    # Fewer brackets than the limit (strings' brackets counted too): it cannot be too deep.
    if body.count(b"[") + body.count(b"{") > max_depth and _too_deep(document, max_depth):
        return _nested_too_deep(max_depth)
    # In UTF-8, NUL and surrogates can only come as \u escapes or raw ED A0..BF bytes (a NUL
    # byte is no valid UTF-8 JSON, but is in UTF-16/32): without these, no string needs a look.
    if b"\\u" in body or b"\xed" in body or b"\x00" in body:
        return _unstorable(document)
    return None


def _nested_too_deep(max_depth: int) -> ValidationError:
    return ValidationError(f"the JSON body is nested deeper than {max_depth} levels")


def _too_deep(document: Any, max_depth: int) -> bool:
    """Whether objects and arrays nest deeper than ``max_depth``: level by level."""
    level = [document] if isinstance(document, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            return True
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]
    return False


def _unstorable(document: Any) -> ValidationError | None:
    """The first string or key (in document order) holding NUL or a lone surrogate."""
    stack: list[tuple[Any, Path]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if (found := _string_problem(node, path)) is not None:
                return found
            continue
        if isinstance(node, dict):
            for key in node:
                if (found := _string_problem(key, (*path, key))) is not None:
                    return found
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        stack.extend(reversed([(value, (*path, key)) for key, value in items]))
    return None


def _string_problem(value: str, path: Path) -> ValidationError | None:
    found = UNSTORABLE.search(value)
    if found is None:
        return None
    return ValidationError(refused_character_message(found.group()), param=_dotted(path))


def _duplicate_path(body: bytes | bytearray) -> str | None:
    """The dotted path of the first duplicate key (a second parse, on the error path only)."""
    try:
        document = json.loads(body, object_pairs_hook=_marking)
    except RecursionError:  # the duplicate came before a part nested too deep to parse
        return None
    stack: list[tuple[Any, Path]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Marked):
            return _dotted((*path, node.duplicate))
        children: Any = node.items() if isinstance(node, dict) else enumerate(node)
        containers = [(v, (*path, k)) for k, v in children if isinstance(v, (dict, list))]
        stack.extend(reversed(containers))
    return None
