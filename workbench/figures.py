"""Figures with their unit and source: a chip's capacities, a device's energy per operation.

A figure is a dataclass field made with :func:`figure`; :class:`Figures` (a mixin for frozen
dataclasses) lists them with their value, unit, source and whether they are an assumption, so
every number an emulator or an energy estimate uses can be traced to where it came from.
``dataclasses.replace(figures, name=value)`` changes one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field

import pandas as pd


def figure(
    value,
    unit: str = "",
    source: str = "",
    assumption: bool = False,
    bound: tuple[float, float] | None = None,
):
    """A field: its default ``value`` with unit, source and whether it is assumed; ``bound``
    ``(low, high)``, where given, is the range a run's override must keep (checked by
    :func:`workbench.limits.backend_option_problems` and when the profile is made)."""
    metadata = {"unit": unit, "source": source, "assumption": assumption}
    if bound is not None:
        metadata["range"] = tuple(bound)
    if isinstance(value, (list, dict, set)):
        return field(default_factory=lambda: value, metadata=metadata)
    return field(default=value, metadata=metadata)


class Figures:
    """Mixin for a dataclass of :func:`figure` fields (a field ``name`` is its label)."""

    def figures(self) -> pd.DataFrame:
        """Every figure with its value, unit, source and whether it is an assumption."""
        rows = []
        for f in dataclasses.fields(self):
            if f.name == "name":
                continue
            rows.append(
                {
                    "figure": f.name,
                    "value": getattr(self, f.name),
                    "unit": f.metadata.get("unit", ""),
                    "source": f.metadata.get("source", ""),
                    "assumption": f.metadata.get("assumption", False),
                }
            )
        return pd.DataFrame(rows)

    def source(self, name: str) -> str:
        """The source of the figure ``name``."""
        return next(
            f.metadata.get("source", "") for f in dataclasses.fields(self) if f.name == name
        )
