"""What every model shares: frozen, no unknown fields (computed ones are derived again on
read); and the id and text types."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

ID_PATTERN = r"[a-z0-9][a-z0-9._-]*"
ImprovementId = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$", max_length=100)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _derived_fields(cls, data: Any) -> Any:
        """Computed fields are written for readers of the JSON, and derived again when read."""
        if isinstance(data, dict) and data.keys() & cls.model_computed_fields.keys():
            return {k: v for k, v in data.items() if k not in cls.model_computed_fields}
        return data
