"""Reading improvement files (YAML, TOML, JSON) into models, with errors that name the field."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tars_bot import models
from tars_bot.errors import PlanError

SUFFIXES = (".yaml", ".yml", ".toml", ".json")
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# PyYAML's stubs cannot type a base class chosen at import time (the C loader where built)
class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe YAML that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_text(text: str, source: str, suffix: str) -> Any:
    """Parse a document; syntax errors become one PlanError line with the position."""
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_StrictLoader)
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"{source}: TOML syntax error: {e}") from None
    except json.JSONDecodeError as e:
        raise PlanError(
            f"{source}: line {e.lineno}, column {e.colno}: JSON syntax error: {e.msg}"
        ) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PlanError(f"{source}: {where}YAML syntax error: {e.problem or e.context}") from None
    except (yaml.YAMLError, RecursionError, ValueError) as e:
        raise PlanError(f"{source}: cannot parse: {e}") from None


def _field_names(model: type[BaseModel], visited: set[type[BaseModel]]) -> set[str]:
    if model in visited:
        return set()
    visited.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for sub in _nested_models(field.annotation):
            names |= _field_names(sub, visited)
    return names


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _nested_models(arg)]


KNOWN_KEYS = sorted(_field_names(models.Improvement, set()))


def format_location(loc: tuple[str | int, ...]) -> str:
    """pydantic's location as tars-bot prints paths: list items counted from 1, as steps are."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        elif part not in models.UNION_TAGS:
            text += f".{part}" if text else str(part)
    return text or "(document)"


def _describe(error: ErrorDetails) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"])
    if value is not None and kind not in ("one_action",) and not isinstance(value, dict | list):
        shown = repr(value)
        message += f", got {shown[:60] + '...' if len(shown) > 60 else shown}"
    return message


def validation_problems(error: ValidationError, source: str) -> list[str]:
    return [f"{source}: {format_location(e['loc'])}: {_describe(e)}" for e in error.errors()]


def improvement_from_data(data: Any, source: str, default_id: str | None) -> models.Improvement:
    if not isinstance(data, dict):
        found = "an empty document" if data is None else f"a {type(data).__name__}"
        raise PlanError(f"{source}: expected a mapping of improvement fields, found {found}")
    if data.get("id") is None and default_id is not None:
        data = {**data, "id": default_id}
    try:
        improvement = models.Improvement.model_validate(data)
    except ValidationError as e:
        raise PlanError(*validation_problems(e, source)) from None
    if improvement.id is None:
        raise PlanError(f"{source}: id: required when the improvement does not come from a file")
    return improvement


def load_improvement(path: Path, display: str | None = None) -> models.Improvement:
    """Load an improvement file; the id defaults to the file name without its suffix."""
    source = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"{source}: cannot read: {e}") from None
    data = parse_text(text, source, path.suffix.lower())
    stem = path.name.split(".")[0]
    if isinstance(data, dict) and data.get("id") is None:
        try:
            default_id = models.Improvement.model_validate({"id": stem, "title": "x"}).id
        except ValidationError:
            raise PlanError(
                f"{source}: id: the file name {stem!r} is not a valid id "
                "(lowercase letters, digits, '.', '_', '-'); set `id:` in the file"
            ) from None
    else:
        default_id = None
    return improvement_from_data(data, source, default_id)


def find_improvement_file(directory: Path, improvement_id: str) -> Path:
    if not re.fullmatch(models.ID_PATTERN, improvement_id):
        raise PlanError(
            f"improvement {improvement_id!r}: not a valid id "
            "(lowercase letters, digits, '.', '_', '-'; starting with a letter or digit)"
        )
    for suffix in SUFFIXES:
        candidate = directory / f"{improvement_id}{suffix}"
        if candidate.is_file():
            return candidate
    known = sorted({p.name.split(".")[0] for p in directory.glob("*") if p.suffix in SUFFIXES})
    hint = f"; known: {', '.join(known)}" if known else ""
    raise PlanError(
        f"improvement {improvement_id!r}: no {improvement_id}.yaml in {directory}{hint}"
    )
