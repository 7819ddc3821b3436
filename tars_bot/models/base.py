"""What every model shares: frozen, no unknown fields; and the id and text types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

ID_PATTERN = r"[a-z0-9][a-z0-9._-]*"
ImprovementId = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$", max_length=100)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
