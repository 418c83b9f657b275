"""JSON Schema from Structs, independent of how the installed msgspec formats docstrings.

msgspec copies a Struct's docstring into its schema's ``description``; releases differ in
whether they dedent it (0.23 started to). The checked-in schemas and the OpenAPI document must
not change with a library upgrade, so every description is normalised here, the one way:
:func:`inspect.cleandoc`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import msgspec


def normalised(schema: Any) -> Any:
    """``schema`` with every ``description`` string dedented by :func:`inspect.cleandoc`."""
    if isinstance(schema, dict):
        return {
            key: (
                inspect.cleandoc(value)
                if key == "description" and isinstance(value, str)
                else normalised(value)
            )
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [normalised(item) for item in schema]
    return schema


def schema_components(
    types: Iterable[Any], *, ref_template: str
) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    """:func:`msgspec.json.schema_components` with normalised descriptions."""
    refs, components = msgspec.json.schema_components(list(types), ref_template=ref_template)
    return tuple(normalised(ref) for ref in refs), normalised(components)
