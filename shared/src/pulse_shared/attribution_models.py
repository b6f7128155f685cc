"""The attribution models Pulse computes: one list, read by the attribution service, the
KPI catalog, reports, Grafana generation and the CLI.

``DEFAULT_MODEL`` is the model of the un-suffixed attribution KPIs (``roas``,
``attributed_revenue``, channel ``leads``/``cac`` …) and of every executive view. It is
**position-based (U-shaped: 40 % first touch, 40 % last touch, 20 % over the middle)**:

- it credits the touch that created demand and the touch that converted it, where
  last-touch gives paid acquisition channels nothing for journeys they started
  (the demo's November report read ROAS 0.00x for paid search under last-touch and 1.67x
  under first-touch);
- it is a rule, computed as each conversion streams in, so it is never missing or stale,
  whereas the data-driven models (Markov, Shapley) need a batch recompute and are unstable
  on a few hundred paths.

``BESIDE_MODEL`` (last-touch) is shown next to it in executive views, because it is what ad
platforms report and what most readers compare with.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ModelKind(StrEnum):
    RULE = "rule"
    """Computed per conversion as it streams in."""
    DATA_DRIVEN = "data_driven"
    """Computed from all paths by ``pulse attribution recompute``."""


@dataclass(frozen=True, slots=True)
class AttributionModel:
    name: str
    label: str
    kind: ModelKind
    summary: str


_R, _D = ModelKind.RULE, ModelKind.DATA_DRIVEN

MODELS: tuple[AttributionModel, ...] = (
    AttributionModel("first_touch", "First touch", _R, "All credit to the first touch."),
    AttributionModel("last_touch", "Last touch", _R, "All credit to the last touch."),
    AttributionModel("last_non_direct", "Last non-direct", _R,
                     "All credit to the last touch that is not direct traffic."),
    AttributionModel("linear", "Linear", _R, "Equal credit to every touch."),
    AttributionModel("time_decay", "Time decay", _R,
                     "Credit halves every half-life (7 days) before the conversion."),
    AttributionModel("position_based", "Position-based (U-shaped)", _R,
                     "40 % first touch, 40 % last touch, 20 % over the middle."),
    AttributionModel("w_shaped", "W-shaped", _R,
                     "30 % first, 30 % lead-creation, 30 % opportunity-creation touch, "
                     "10 % over the rest."),
    AttributionModel("full_path", "Full path (Z-shaped)", _R,
                     "22.5 % each to first, lead, opportunity and closed-won touches, "
                     "10 % over the rest."),
    AttributionModel("markov", "Markov (data-driven)", _D,
                     "Credit proportional to each channel's removal effect."),
    AttributionModel("shapley", "Shapley (data-driven)", _D,
                     "Each channel's Shapley value over the channel coalitions seen."),
)
BY_NAME: dict[str, AttributionModel] = {m.name: m for m in MODELS}
MODEL_NAMES: tuple[str, ...] = tuple(m.name for m in MODELS)
RULE_MODELS: tuple[str, ...] = tuple(m.name for m in MODELS if m.kind is _R)
DATA_DRIVEN_MODELS: tuple[str, ...] = tuple(m.name for m in MODELS if m.kind is _D)

DEFAULT_MODEL = "position_based"
BESIDE_MODEL = "last_touch"


def label(name: str) -> str:
    """The model's label for people (the name itself for an unknown model)."""
    model = BY_NAME.get(name)
    return model.label if model else name
