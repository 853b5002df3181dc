"""The configuration reference, generated from the config models' fields and descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from device.config.base import is_section


def _value_doc(name: str, value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and name == "address":
        return hex(value)
    return str(value)


def _type_doc(name: str, field: Any) -> str:
    annotation = field.annotation
    choices = getattr(annotation, "__args__", ()) if getattr(annotation, "__origin__", None) \
        is Literal else (field.json_schema_extra or {}).get("one_of", ())
    if choices:
        return "one of " + ", ".join(_value_doc(name, c) for c in choices)
    args = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not type(None)]
    text = " or ".join("path" if issubclass(a, Path) else a.__name__ for a in args)
    bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le", "lt")
              if getattr(m, k, None) is not None}
    if "ge" in bounds and "le" in bounds:
        return f"{text}, {_value_doc(name, bounds['ge'])} to {_value_doc(name, bounds['le'])}"
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return text + "".join(f", {signs[k]} {v}" for k, v in bounds.items())


def reference_markdown(root: type[BaseModel]) -> str:
    """The configuration reference as a Markdown table, generated from the models."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if is_section(field.annotation):
                walk(field.annotation, f"{prefix}{name}.")
                continue
            default = (field.json_schema_extra or {}).get("default_doc") or _value_doc(
                name, field.default)
            cells = (f"`{prefix}{name}`", _type_doc(name, field), f"`{default}`", field.description)
            rows.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")

    walk(root, "")
    return "\n".join(rows) + "\n"
