"""What every alert rule type is, and the registry of rule types.

A rule type is one :class:`RuleBase` subclass registered with :func:`rule_type`. The class
is the whole extension point; evaluation, context reads, the timer, the backtest, rules
files and error messages all dispatch through it:

* its YAML ``type`` name: the ``type: Literal["name"]`` field (the registry reads it);
* parsing and validation: its pydantic fields and validators;
* what it reads beyond the snapshot: :attr:`~RuleBase.history_periods` (earlier values of
  the same series), :meth:`~RuleBase.related_reads` (other KPIs),
  :attr:`~RuleBase.needs_forecaster`;
* which snapshots trigger it: :meth:`~RuleBase.matches` plus :attr:`~RuleBase.trigger_kpis`
  / :meth:`~RuleBase.triggered_by` (a rule on several KPIs);
* how it evaluates: :meth:`~RuleBase.evaluate` (pure: snapshot + context → observation);
* whether it needs the timer: :attr:`~RuleBase.on_timer` and
  :meth:`~RuleBase.observe_timer` (rules whose condition can hold without any snapshot);
* what the backtest replays: :meth:`~RuleBase.backtest_series`,
  :meth:`~RuleBase.backtest_includes`.

Every hook has a default that fits "a rule on its own KPI series", so a simple new type
declares its fields and :meth:`~RuleBase.evaluate` only.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    NamedTuple,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
)

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)

from pulse_alerts.domain.durations import parse_duration
from pulse_alerts.domain.model import Observation
from pulse_alerts.domain.templating import check_template, render
from pulse_shared.events import Grain, KpiSnapshot, Severity

RuleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
Template = Annotated[str, BeforeValidator(lambda v: check_template(str(v)))]
Direction = Literal["up", "down", "any"]
Op = Literal["above", "below"]

# (values oldest→newest, horizon, level) → per step (mean, lower, upper)
Forecaster = Callable[[Sequence[float], int, int], list[tuple[float, float, float]]]
#: One read of related KPIs from kpi_values: (KPIs, grain, dimension, dimension value,
#: period_start of the last period, number of periods ending with it).
RelatedRequest = tuple[tuple[str, ...], str, str, str, dt.date, int]


class RelatedRead(NamedTuple):
    """One read of related KPIs and where its series go in ``EvalContext.related``."""

    request: RelatedRequest
    # None: each KPI's series under the KPI's own name; a name: the request's only KPI
    # under that name (prior days' spend must not overwrite the window's spend).
    into: str | None = None


@dataclass(frozen=True)
class EvalContext:
    """What a rule may need beyond the snapshot, fetched by the service from kpi_values.

    ``history``: earlier values of the same series (oldest first, current excluded).
    ``related``: other KPIs of the same series key, each as values of the last periods
    ending with the current one (oldest first), e.g. ``{"budget": [12000.0]}``.
    """

    history: Sequence[float | None] = ()
    related: Mapping[str, Sequence[float | None]] = field(default_factory=dict)
    forecaster: Forecaster | None = None


class TimerReads(Protocol):
    """What timer rules may read (implemented over the store by the service)."""

    def last_ingested(self, source: str) -> dt.datetime | None:
        """Newest ingestion time of ``source`` events; None when there never was one."""
        ...

    def recent_campaigns(self, until: dt.date, days: int) -> list[str]:
        """Campaigns with spend or a budget in the ``days`` days ending ``until``."""
        ...

    def context(self, rule: RuleBase, snapshot: KpiSnapshot) -> EvalContext:
        """What ``rule`` needs to evaluate ``snapshot`` (see :meth:`RuleBase.related_reads`)."""
        ...


#: One timer evaluation: the rule and its observation (None: could not evaluate).
Evaluation = tuple["RuleBase", Observation | None]


class ForSpec(BaseModel):
    """How long a condition must hold before pending turns into firing."""

    model_config = ConfigDict(frozen=True)
    evaluations: int = Field(default=1, ge=1)
    duration: dt.timedelta = dt.timedelta(0)

    @property
    def immediate(self) -> bool:
        return self.evaluations <= 1 and self.duration <= dt.timedelta(0)


def _parse_for(value: Any) -> Any:
    if value is None:
        return ForSpec()
    if isinstance(value, ForSpec | dict):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a number of evaluations or a duration such as 30m")
    if isinstance(value, int):
        return ForSpec(evaluations=max(1, value))
    if isinstance(value, str) and value.strip().isdigit():
        return ForSpec(evaluations=max(1, int(value)))
    return ForSpec(duration=parse_duration(value))


class ActionSpec(BaseModel):
    """Ask for a recommendation event on ``campaign.actions.v1`` when the alert fires."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    action: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    reason: Template = "{rule}: {kpi} is {value} (threshold {threshold})"


class RuleBase(BaseModel):
    """Fields and hooks shared by every rule type (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: Evaluated on KPI snapshots and scoped by KPI/grain/dimension (checked against the
    #: catalog, indexed by KPI, backtested on kpi_values). False: scoped otherwise.
    kpi_scoped: ClassVar[bool] = True
    #: Re-evaluated by the timer (:meth:`observe_timer`) because its condition can hold
    #: while no snapshot arrives; its alerts then never go stale for want of snapshots.
    on_timer: ClassVar[bool] = False
    #: Gets the forecaster in its :class:`EvalContext`.
    needs_forecaster: ClassVar[bool] = False

    name: RuleName
    description: str = ""
    enabled: bool = True
    kpi: str = "*"
    grain: Grain | None = None
    dimension: str = "*"
    dimension_value: str = "*"
    severity: Severity = Severity.WARNING
    for_: Annotated[ForSpec, BeforeValidator(_parse_for)] = Field(
        default_factory=ForSpec, alias="for"
    )
    repeat_interval: Duration = dt.timedelta(hours=24)
    labels: dict[str, Template] = Field(default_factory=dict)
    annotations: dict[str, Template] = Field(default_factory=dict)
    group_by: list[str] = Field(default_factory=lambda: ["alertname"])
    action: ActionSpec | None = None
    stale_after: Duration | None = Field(
        default=None,
        description="Resolve a pending/firing alert whose series got no snapshot for this "
        "long (default by grain: day 2d, week 8d, month 32d, quarter 93d).",
    )
    channel: str | None = Field(
        default=None, description="Shorthand: dimension channel + dimension_value pattern."
    )
    campaign: str | None = Field(
        default=None, description="Shorthand: dimension campaign + dimension_value pattern."
    )

    @model_validator(mode="after")
    def _shorthand_scope(self) -> RuleBase:
        given = [(d, p) for d, p in (("channel", self.channel), ("campaign", self.campaign))
                 if p is not None]
        if not given:
            return self
        if len(given) > 1:
            raise ValueError("set either channel or campaign, not both")
        dimension, pattern = given[0]
        if self.dimension not in ("*", dimension) or self.dimension_value != "*":
            raise ValueError(f"{dimension} conflicts with dimension/dimension_value")
        object.__setattr__(self, "dimension", dimension)
        object.__setattr__(self, "dimension_value", pattern)
        return self

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or not key.replace("_", "a").isalnum():
                raise ValueError(f"label name {key!r} must be alphanumeric/underscore")
        return value

    @field_validator("repeat_interval")
    @classmethod
    def _positive_repeat(cls, value: dt.timedelta) -> dt.timedelta:
        if value <= dt.timedelta(0):
            raise ValueError("repeat_interval must be positive")
        return value

    # -- identity ---------------------------------------------------------------------
    @classmethod
    def type_name_of(cls) -> str:
        """The YAML ``type`` of this class: its ``type: Literal["name"]`` field."""
        info = cls.model_fields.get("type")
        args = get_args(info.annotation) if info is not None else ()
        if info is None or get_origin(info.annotation) is not Literal or len(args) != 1 \
                or not isinstance(args[0], str):
            raise TypeError(f"{cls.__name__} needs a field type: Literal['<type name>']")
        return args[0]

    @property
    def type_name(self) -> str:
        return type(self).type_name_of()

    @property
    def effective_stale_after(self) -> dt.timedelta | None:
        """None for rules the timer re-evaluates itself (:attr:`on_timer`)."""
        if self.stale_after is not None:
            return self.stale_after
        if self.on_timer:
            return None
        days = {"day": 2, "week": 8, "month": 32, "quarter": 93}
        return dt.timedelta(days=days[self.grain.value] if self.grain else 93)

    # -- scope ------------------------------------------------------------------------
    def matches(self, kpi: str, grain: str, dimension: str, dimension_value: str) -> bool:
        return (
            self.enabled
            and glob_match(self.kpi, kpi)
            and (self.grain is None or self.grain.value == grain)
            and glob_match(self.dimension, dimension)
            and glob_match(self.dimension_value, dimension_value)
        )

    @property
    def trigger_kpis(self) -> tuple[str, ...]:
        """KPIs besides :attr:`kpi` whose snapshots may trigger this rule (indexed)."""
        return ()

    def triggered_by(self, snapshot: KpiSnapshot) -> bool:
        """A snapshot this rule does not :meth:`matches` but must be evaluated on."""
        return False

    # -- reads ------------------------------------------------------------------------
    @property
    def history_periods(self) -> int:
        """How many earlier periods of the series evaluation needs (0 = none)."""
        return 0

    def related_reads(self, snapshot: KpiSnapshot) -> list[RelatedRead]:
        """Other KPIs evaluation of ``snapshot`` needs, into ``EvalContext.related``."""
        return []

    # -- identity of what an evaluation updates -----------------------------------------
    def series_of(self, snapshot: KpiSnapshot) -> dict[str, str]:
        """Labels of the alert an evaluation on ``snapshot`` observes (its fingerprint's
        input): the snapshot's own series. The engine reads them before evaluating, to
        skip a snapshot older than the period that alert already holds."""
        return series_labels(self, scope_context(self, snapshot), snapshot.kpi)

    # -- evaluation -------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, snapshot: KpiSnapshot, ctx: EvalContext) -> Observation | None:
        """One evaluation on one snapshot (scope already matched); None = cannot evaluate
        (value undefined, not enough history): the alert's state is left as it is."""

    @classmethod
    def observe_timer(
        cls, rules: Sequence[RuleBase], now: dt.datetime, reads: TimerReads
    ) -> list[Evaluation]:
        """Timer pass over the enabled rules of this type (only if :attr:`on_timer`)."""
        return []

    # -- backtest ---------------------------------------------------------------------
    def backtest_series(self) -> tuple[str, str]:
        """(KPI, dimension) of the kpi_values history the backtest replays; ValueError
        when the rule cannot be backtested on KPI history."""
        return self.kpi, self.dimension

    def backtest_includes(
        self, kpi: str, grain: str, dimension: str, dimension_value: str
    ) -> bool:
        """Whether a history row read by :meth:`backtest_series` is replayed."""
        return self.matches(kpi, grain, dimension, dimension_value)


def glob_match(pattern: str, value: str) -> bool:
    if pattern == "*":
        return True
    return fnmatch.fnmatchcase(value, pattern)


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


# -- observations -------------------------------------------------------------------------
def scope_context(rule: RuleBase, snapshot: KpiSnapshot) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "severity": rule.severity.value,
        "kpi": snapshot.kpi,
        "grain": snapshot.grain.value,
        "period": snapshot.period,
        "dimension": snapshot.dimension,
        "dimension_value": snapshot.dimension_value,
    }


def series_labels(
    rule: RuleBase, scope: Mapping[str, Any], kpi: str | None = None
) -> dict[str, str]:
    """Identity of the alert: rule, KPI series and the rule's own (rendered) labels."""
    labels = {"alertname": rule.name, "severity": rule.severity.value}
    if kpi is not None:
        labels.update(
            kpi=kpi,
            grain=str(scope["grain"]),
            dimension=str(scope["dimension"]),
            dimension_value=str(scope["dimension_value"]),
        )
        if scope["dimension"] in ("channel", "campaign"):
            labels[str(scope["dimension"])] = str(scope["dimension_value"])
    for key, template in rule.labels.items():
        labels[key] = render(template, scope)
    return labels


def observe(
    rule: RuleBase,
    snapshot: KpiSnapshot,
    breaching: bool,
    value: float | None,
    threshold: float | None,
    extra: Mapping[str, Any] | None = None,
) -> Observation:
    """The observation of ``rule`` on ``snapshot``'s series; ``extra`` adds template
    fields (baseline, zscore, ...)."""
    scope = scope_context(rule, snapshot)
    return Observation(
        rule=rule.name,
        kpi=snapshot.kpi,
        labels=rule.series_of(snapshot),
        breaching=breaching,
        value=value,
        threshold=threshold,
        as_of=snapshot.computed_at,
        period_start=snapshot.period_start,
        context={**scope, "value": value, "threshold": threshold, **(extra or {})},
    )


# -- registry -----------------------------------------------------------------------------
R = TypeVar("R", bound=type[RuleBase])


class RuleTypeRegistry:
    """Rule type name → class, in registration order. Iterating yields the names."""

    def __init__(self) -> None:
        self._types: dict[str, type[RuleBase]] = {}
        self._adapter: tuple[tuple[type[RuleBase], ...], TypeAdapter[Any]] | None = None

    def register(self, cls: R) -> R:
        """Add a rule type (usable as a class decorator); its name must be new."""
        name = cls.type_name_of()
        if name in self._types and self._types[name] is not cls:
            raise ValueError(f"rule type {name!r} is already registered "
                             f"({self._types[name].__name__})")
        self._types[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self._types.pop(name, None)

    def get(self, name: str) -> type[RuleBase] | None:
        return self._types.get(name)

    def classes(self) -> tuple[type[RuleBase], ...]:
        return tuple(self._types.values())

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._types))

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __len__(self) -> int:
        return len(self._types)

    def adapter(self) -> TypeAdapter[Any]:
        """Validates one raw rule into the class its ``type`` names (a tagged union)."""
        classes = self.classes()
        if self._adapter is None or self._adapter[0] != classes:
            union: Any = Union[classes] if len(classes) > 1 else classes[0]  # noqa: UP007
            annotated: Any = Annotated[union, Field(discriminator="type")]
            self._adapter = (classes, TypeAdapter(annotated))
        return self._adapter[1]


#: The rule types rules files may name.
RULE_TYPES = RuleTypeRegistry()
#: Class decorator registering a rule type: ``@rule_type class MyRule(RuleBase): ...``.
rule_type = RULE_TYPES.register
