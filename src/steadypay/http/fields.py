"""Field types that request bodies, query parameters and headers of every service share.

Text that reaches the database or a screen is annotated :class:`Text`: one line of Unicode
without control characters. What it refuses (``400 validation_error`` naming the field):

- C0 controls (U+0000-U+001F, tab and newline included: every text field is a single line)
  and DEL (U+007F); C1 controls (U+0080-U+009F);
- the line and paragraph separators U+2028 and U+2029;
- the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which
  make a name display as something else;
- lone surrogates (U+D800-U+DFFF), which no UTF-8 text can hold.

Everything else is accepted, any script, emoji and the joiners (ZWJ, ZWNJ) they need included.
:class:`Name` is :class:`Text` for what names a person or thing: invisible characters (white
space, zero-width and other format characters, Hangul fillers) are trimmed from both ends, and
a name with nothing visible left is refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    EmailStr,
    Field,
    GetCoreSchemaHandler,
    StrictStr,
)
from pydantic_core import core_schema

from steadypay.money import get_currency

CurrencyCode = Annotated[
    StrictStr,
    AfterValidator(lambda code: get_currency(code).code),
    Field(description="ISO 4217 code, upper case", examples=["USD"]),
]
"""An ISO 4217 code steadypay knows, normalised to upper case."""

REFUSED_IN_TEXT = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""The characters :class:`Text` refuses (see the module's docstring)."""

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What PostgreSQL cannot store in text or jsonb, or UTF-8 cannot encode: NUL and lone
surrogates. Refused in every string of every JSON body (:mod:`steadypay.http.strict_json`)."""

_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me"})
"""Space and format characters, and combining marks (invisible without a base character)."""
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Letters and symbols that render as nothing: the Hangul fillers and the blank Braille cell."""


def refused_character_message(char: str) -> str:
    """The error message for ``char``, one of :data:`REFUSED_IN_TEXT`."""
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return f"text must be valid Unicode (found a lone surrogate U+{code:04X})"
    return f"control characters are not allowed (found U+{code:04X})"


def check_text(value: str) -> str:
    """``value`` if it holds none of :data:`REFUSED_IN_TEXT`; else ``ValueError``."""
    found = REFUSED_IN_TEXT.search(value)
    if found is not None:
        raise ValueError(refused_character_message(found.group()))
    return value


def _check_text_if_str(value: Any) -> Any:
    return check_text(value) if isinstance(value, str) else value


def _blank(char: str) -> bool:
    return char in _BLANK_LETTERS or unicodedata.category(char) in _INVISIBLE_CATEGORIES


def _trimmed(char: str) -> bool:
    return char in _BLANK_LETTERS or unicodedata.category(char) in {"Zs", "Cf"}


def check_name(value: str) -> str:
    """``value`` without invisible characters at its ends; ``ValueError`` if nothing visible
    is left (a zero-width space alone, white space, lone combining marks)."""
    start, end = 0, len(value)
    while start < end and _trimmed(value[start]):
        start += 1
    while end > start and _trimmed(value[end - 1]):
        end -= 1
    trimmed = value[start:end]
    if all(_blank(char) for char in trimmed):
        raise ValueError("must contain a visible character")
    return trimmed


@dataclass(frozen=True, slots=True)
class Text:
    """The annotation of a text field: ``Annotated[str, Text(max_length=500)]`` is one line of
    at most 500 characters without control characters (see the module's docstring). Strict:
    only a JSON string is accepted. Also for query parameters and headers."""

    max_length: int
    min_length: int = 0

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        inner = core_schema.str_schema(
            strict=True, min_length=self.min_length or None, max_length=self.max_length
        )
        return core_schema.no_info_after_validator_function(self.check, inner)

    def check(self, value: str) -> str:
        return check_text(value)


@dataclass(frozen=True, slots=True)
class Name(Text):
    """:class:`Text` that names a person or thing: trimmed of invisible characters at its
    ends, with at least one visible character (:func:`check_name`)."""

    min_length: int = 1

    def check(self, value: str) -> str:
        return check_name(check_text(value))


Email = Annotated[EmailStr, BeforeValidator(_check_text_if_str)]
"""An email address (email-validator's rules), control characters refused first."""
