"""How a setting is declared: a pydantic field read from environment variables, carrying its documentation."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, Field
from pydantic.fields import FieldInfo
from pydantic_settings import NoDecode

__all__ = ["CSV", "env_field", "field_meta", "split_csv"]

# A comma-separated list in the environment (NoDecode: pydantic-settings would otherwise expect JSON).
CSV = Annotated[list[str], NoDecode]


def env_field(
    *names: str, default: Any = None, doc: str, example: str | None = None, secret: bool = False, **kw: Any
) -> Any:
    """A field read from the first of ``names`` that is set; the field's own name also works as an ``init()`` kwarg."""
    extra: dict[str, Any] = {"doc": doc, "example": example, "env": list(names), "secret": secret}
    return Field(default=default, validation_alias=AliasChoices(*names), json_schema_extra=extra, **kw)


def field_meta(info: FieldInfo | None) -> dict[str, Any]:
    """What ``env_field`` put in a field's ``json_schema_extra`` (doc, example, env, secret); pydantic types it
    loosely."""
    extra = info.json_schema_extra if info is not None else None
    return extra if isinstance(extra, dict) else {}


def split_csv(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value
