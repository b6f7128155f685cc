"""Alert rules: YAML → validated pydantic models, with errors naming file, rule, field.

A rules file looks like::

    rules:
      - name: paid_search_daily_spend_high
        type: threshold          # threshold | change | zscore | ewma | budget |
                                 # campaign_status | freshness | forecast
        kpi: spend
        grain: day
        dimension: channel
        dimension_value: "paid_*" # shell-style wildcard
        op: above
        threshold: 5000
        severity: warning
        for: 2                    # 2 consecutive evaluations (or a duration: 30m)
        repeat_interval: 24h
        labels: {team: growth}
        annotations:
          summary: "{kpi} on {dimension_value} is {value:,.0f} (limit {threshold:,.0f})"
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from pulse_alerts.domain.durations import parse_duration
from pulse_alerts.domain.templating import check_template
from pulse_shared.events import Grain, Severity

RuleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
Template = Annotated[str, BeforeValidator(lambda v: check_template(str(v)))]
Direction = Literal["up", "down", "any"]
Op = Literal["above", "below"]
SOURCES = ("touchpoints", "spend", "subscriptions", "pipeline", "budgets")
#: Dimensions of ``kpi_values`` (the cross-service contract): a rule scoped to any other
#: dimension could never match a snapshot.
DIMENSIONS: tuple[str, ...] = ("all", "channel", "campaign")
#: Exit status of a rules file that names an unknown choice (KPI, grain, dimension, type):
#: a usage error, like an unknown choice on the command line.
EXIT_UNKNOWN_CHOICE = 2
_CHOICE_ERRORS = frozenset({"enum", "literal_error", "union_tag_invalid"})


class RulesError(ValueError):
    """A rules file is invalid; ``problems`` lists ``file: rule 'x': field: reason``.

    ``code`` is the exit status for the CLI: 2 when a problem is an unknown choice
    (KPI, grain, dimension, rule type), else 1.
    """

    def __init__(self, problems: list[str], code: int = 1) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.code = code


@dataclass(frozen=True)
class KpiScope:
    """Where one catalog KPI exists: its grains and dimensions."""

    grains: frozenset[str]
    dimensions: frozenset[str]


#: KPI name → scope. The catalog belongs to the KPI service; callers pass it in.
KpiCatalog = Mapping[str, KpiScope]


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
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

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

    @property
    def effective_stale_after(self) -> dt.timedelta | None:
        """None for rules the timer re-evaluates itself (freshness, campaign status)."""
        if self.stale_after is not None:
            return self.stale_after
        if isinstance(self, FreshnessRule | CampaignStatusRule):
            return None
        days = {"day": 2, "week": 8, "month": 32, "quarter": 93}
        return dt.timedelta(days=days[self.grain.value] if self.grain else 93)

    # -- scope ------------------------------------------------------------------------
    def matches(self, kpi: str, grain: str, dimension: str, dimension_value: str) -> bool:
        return (
            self.enabled
            and _glob(self.kpi, kpi)
            and (self.grain is None or self.grain.value == grain)
            and _glob(self.dimension, dimension)
            and _glob(self.dimension_value, dimension_value)
        )

    @property
    def history_periods(self) -> int:
        """How many earlier periods of the series evaluation needs (0 = none)."""
        return 0


def _glob(pattern: str, value: str) -> bool:
    if pattern == "*":
        return True
    return fnmatch.fnmatchcase(value, pattern)


class ThresholdRule(RuleBase):
    """Static threshold: ``value`` above/below ``threshold``."""

    type: Literal["threshold"]
    op: Op
    threshold: float


class ChangeRule(RuleBase):
    """Change vs an earlier period in percent (``periods_back: 1`` = previous period)."""

    type: Literal["change"]
    direction: Direction = "any"
    threshold_pct: float = Field(gt=0)
    periods_back: int = Field(default=1, ge=1, le=366)
    min_base: float = Field(default=0.0, ge=0, description="Skip when |base| ≤ this.")

    @property
    def history_periods(self) -> int:
        return self.periods_back


class ZScoreRule(RuleBase):
    """Deviation from the mean of the last ``window`` periods, in standard deviations."""

    type: Literal["zscore"]
    direction: Direction = "any"
    threshold: float = Field(default=3.0, gt=0)
    window: int = Field(default=28, ge=3, le=366)
    min_periods: int = Field(default=7, ge=3)

    @property
    def history_periods(self) -> int:
        return self.window


class EwmaRule(RuleBase):
    """Deviation from an exponentially weighted moving average (EWM std units)."""

    type: Literal["ewma"]
    direction: Direction = "any"
    alpha: float = Field(default=0.3, gt=0, le=1)
    threshold: float = Field(default=3.0, gt=0)
    window: int = Field(default=60, ge=3, le=366)
    min_periods: int = Field(default=7, ge=3)

    @property
    def history_periods(self) -> int:
        return self.window


class BudgetRule(RuleBase):
    """Budget: projected month-end spend (``pacing``) or spend to date (``overspend``)
    above the month's budget by more than ``tolerance_pct``."""

    type: Literal["budget"]
    mode: Literal["pacing", "overspend"] = "pacing"
    tolerance_pct: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _scope(self) -> BudgetRule:
        kpi = "projected_spend" if self.mode == "pacing" else "spend_to_date"
        if self.kpi not in ("*", kpi):
            raise ValueError(f"kpi of a budget rule in mode {self.mode} is {kpi}")
        object.__setattr__(self, "kpi", kpi)
        if self.grain is None:
            object.__setattr__(self, "grain", Grain.MONTH)
        return self


class CampaignStatusRule(RuleBase):
    """Campaign health from daily campaign KPIs: spend without clicks/leads for ``days``
    days, or no spend on a campaign that has a budget this month."""

    type: Literal["campaign_status"]
    condition: Literal["spend_without_clicks", "spend_without_leads", "no_spend"]
    days: int = Field(default=3, ge=1, le=90)
    min_spend: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _scope(self) -> CampaignStatusRule:
        object.__setattr__(self, "dimension", "campaign")
        object.__setattr__(self, "grain", Grain.DAY)
        if self.kpi == "*":
            object.__setattr__(self, "kpi", "spend")
        return self

    PRIOR_DAYS: ClassVar[int] = 7

    @property
    def needed_kpis(self) -> tuple[str, ...]:
        if self.condition == "spend_without_clicks":
            return ("spend", "clicks")
        if self.condition == "spend_without_leads":
            return ("spend", "leads")
        return ("spend", "budget")


class FreshnessRule(RuleBase):
    """No events of ``source`` ingested for ``max_age`` (evaluated on the timer)."""

    type: Literal["freshness"]
    source: Literal["touchpoints", "spend", "subscriptions", "pipeline", "budgets"]
    max_age: Duration

    def matches(self, kpi: str, grain: str, dimension: str, dimension_value: str) -> bool:
        return False


class ForecastRule(RuleBase):
    """Forecast ``horizon`` periods ahead with prediction intervals (statsforecast);
    fires when the chosen interval bound crosses ``threshold``."""

    type: Literal["forecast"]
    op: Op
    threshold: float
    horizon: int = Field(default=14, ge=7, le=30)
    level: int = Field(default=90, ge=50, le=99)
    window: int = Field(default=90, ge=14, le=730)
    min_periods: int = Field(default=21, ge=7)
    bound: Literal["lower", "mean", "upper"] | None = Field(
        default=None, description="Default: upper for above, lower for below."
    )

    @property
    def history_periods(self) -> int:
        return self.window

    @property
    def effective_bound(self) -> str:
        return self.bound or ("upper" if self.op == "above" else "lower")


Rule = Annotated[
    ThresholdRule
    | ChangeRule
    | ZScoreRule
    | EwmaRule
    | BudgetRule
    | CampaignStatusRule
    | FreshnessRule
    | ForecastRule,
    Field(discriminator="type"),
]
RULE_TYPES = (
    "threshold",
    "change",
    "zscore",
    "ewma",
    "budget",
    "campaign_status",
    "freshness",
    "forecast",
)
_RULE_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)


@dataclass(frozen=True)
class RuleSet:
    """Loaded rules with a KPI index so a snapshot only meets rules that may match."""

    rules: tuple[RuleBase, ...]
    source: str = "<memory>"
    _by_kpi: dict[str, list[RuleBase]] = field(init=False, repr=False, compare=False)
    _wildcard: tuple[RuleBase, ...] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, RuleBase] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kpi: dict[str, list[RuleBase]] = {}
        wildcard: list[RuleBase] = []
        for rule in self.rules:
            if not rule.enabled or isinstance(rule, FreshnessRule):
                continue
            if any(c in rule.kpi for c in "*?["):
                wildcard.append(rule)
            else:
                by_kpi.setdefault(rule.kpi, []).append(rule)
            if isinstance(rule, CampaignStatusRule):
                for kpi in rule.needed_kpis:
                    if kpi != rule.kpi:
                        by_kpi.setdefault(kpi, []).append(rule)
        object.__setattr__(self, "_by_kpi", by_kpi)
        object.__setattr__(self, "_wildcard", tuple(wildcard))
        object.__setattr__(self, "_by_name", {r.name: r for r in self.rules})

    def by_name(self, name: str) -> RuleBase | None:
        return self._by_name.get(name)

    def candidates(self, kpi: str) -> list[RuleBase]:
        found: list[RuleBase] = list(self._by_kpi.get(kpi, ()))
        found.extend(r for r in self._wildcard if _glob(r.kpi, kpi))
        return found

    @property
    def timer_rules(self) -> list[RuleBase]:
        return [
            r
            for r in self.rules
            if r.enabled and isinstance(r, FreshnessRule | CampaignStatusRule)
        ]


def parse_rules(
    data: Any, source: str = "<memory>", catalog: KpiCatalog | None = None
) -> RuleSet:
    """Validate already-parsed YAML/JSON data; raises :class:`RulesError`.

    Dimensions are always checked against :data:`DIMENSIONS`; KPI names and their
    grains/dimensions only when ``catalog`` is given.
    """
    if not isinstance(data, Mapping) or "rules" not in data:
        raise RulesError([f"{source}: top level must be a mapping with a 'rules' list"])
    extra = set(data) - {"rules"}
    problems: list[str] = []
    if extra:
        problems.append(f"{source}: unknown top-level key(s) {sorted(extra)}")
    raw_rules = data["rules"] or []
    if not isinstance(raw_rules, list):
        raise RulesError([f"{source}: 'rules' must be a list"])
    rules: list[RuleBase] = []
    seen: dict[str, int] = {}
    code = 1
    for index, raw in enumerate(raw_rules):
        label = _rule_label(raw, index)
        try:
            rule = _RULE_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                if err["type"] in _CHOICE_ERRORS:
                    code = EXIT_UNKNOWN_CHOICE
                loc = [str(p) for p in err["loc"]]
                if loc and loc[0] in RULE_TYPES:
                    loc = loc[1:]  # the discriminator tag is not a field
                field = ".".join(loc) or "(rule)"
                msg = err["msg"]
                if err["type"] == "enum":
                    expected = str((err.get("ctx") or {}).get("expected", ""))
                    msg = f"unknown {field} {err['input']!r}; valid: {expected}"
                elif err["type"] == "union_tag_invalid":
                    field, msg = "type", f"must be one of {', '.join(RULE_TYPES)}"
                elif err["type"] == "union_tag_not_found":
                    field, msg = "type", f"missing; one of {', '.join(RULE_TYPES)}"
                problems.append(f"{source}: {label}: {field}: {msg}")
            continue
        if rule.name in seen:
            problems.append(
                f"{source}: {label}: name: duplicate of rule #{seen[rule.name] + 1}"
            )
            continue
        seen[rule.name] = index
        scope_problems = check_scope(rule, catalog)
        if scope_problems:
            code = EXIT_UNKNOWN_CHOICE
            problems.extend(f"{source}: {label}: {p}" for p in scope_problems)
            continue
        rules.append(rule)
    if problems:
        raise RulesError(problems, code)
    return RuleSet(tuple(rules), source)


def check_scope(rule: RuleBase, catalog: KpiCatalog | None = None) -> list[str]:
    """Why ``rule`` could never match a KPI snapshot (``field: reason`` each), or [].

    An unknown dimension, an unknown KPI, or a KPI that has no such grain or dimension
    would make the rule silently evaluate nothing; each reason lists the valid choices.
    """
    if isinstance(rule, FreshnessRule):
        return []  # scoped by source, not by KPI
    problems: list[str] = []
    dims = sorted({d for s in catalog.values() for d in s.dimensions}) if catalog else []
    valid_dims = dims or list(DIMENSIONS)
    if not any(_glob(rule.dimension, d) for d in valid_dims):
        problems.append(
            f"dimension: unknown dimension {rule.dimension!r}; valid: {', '.join(valid_dims)}"
        )
    if catalog is None:
        return problems
    named = [k for k in catalog if _glob(rule.kpi, k)]
    if not named:
        close = difflib.get_close_matches(rule.kpi, list(catalog), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        problems.append(
            f"kpi: unknown KPI {rule.kpi!r}{hint}; valid: {_fold_kpi_names(catalog)}"
        )
        return problems
    if problems:
        return problems
    grain = rule.grain.value if rule.grain is not None else None
    with_grain = [k for k in named if grain is None or grain in catalog[k].grains]
    if not with_grain:
        grains = sorted({g for k in named for g in catalog[k].grains}, key=_GRAIN_ORDER.index)
        problems.append(
            f"grain: KPI {rule.kpi!r} has no grain {grain!r}; valid: {', '.join(grains)}"
        )
        return problems
    if not any(_glob(rule.dimension, d) for k in with_grain for d in catalog[k].dimensions):
        valid = [d for d in valid_dims if any(d in catalog[k].dimensions for k in with_grain)]
        problems.append(
            f"dimension: KPI {rule.kpi!r} has no dimension {rule.dimension!r}; "
            f"valid: {', '.join(valid)}"
        )
    return problems


_GRAIN_ORDER: list[str] = [g.value for g in Grain]


def _fold_kpi_names(catalog: KpiCatalog) -> str:
    """Catalog names with the per-model variants folded: ``roas__<model>`` once, plus the
    list of models (the catalog holds ~100 names)."""
    names: list[str] = []
    suffixes: list[str] = []
    for name in catalog:
        base, sep, suffix = name.partition("__")
        if sep:
            if suffix not in suffixes:
                suffixes.append(suffix)
            name = f"{base}__<model>"
        if name not in names:
            names.append(name)
    text = ", ".join(names)
    return f"{text} (<model>: {', '.join(suffixes)})" if suffixes else text


def _rule_label(raw: Any, index: int) -> str:
    if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
        return f"rule '{raw['name']}' (#{index + 1})"
    return f"rule #{index + 1}"


def load_rules(
    text: str, source: str = "<memory>", catalog: KpiCatalog | None = None
) -> RuleSet:
    """Parse YAML text; syntax errors name the line, validation errors the rule/field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RulesError([f"{source}:{where}: invalid YAML: {exc}"]) from exc
    return parse_rules(data, source, catalog)
