"""Field types that request bodies of every steadypay service share."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StrictStr

from steadypay.money import get_currency

CurrencyCode = Annotated[
    StrictStr,
    AfterValidator(lambda code: get_currency(code).code),
    Field(description="ISO 4217 code, upper case", examples=["USD"]),
]
"""An ISO 4217 code steadypay knows, normalised to upper case."""
