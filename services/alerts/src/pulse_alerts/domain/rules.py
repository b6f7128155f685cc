"""Alert rules: YAML → validated pydantic models, with errors naming file, rule, field.

Rule types are registered classes (:mod:`.rule_base`, built-ins in :mod:`.rule_types`);
this module loads rules files into a :class:`RuleSet`.

A rules file looks like::

    rules:
      - name: paid_search_daily_spend_high
        type: threshold          # a registered rule type (RULE_TYPES): threshold |
                                 # change | zscore | ewma | budget | campaign_status |
                                 # freshness | forecast
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

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from pulse_alerts.domain.rule_base import (
    RULE_TYPES,
    ActionSpec,
    Direction,
    Duration,
    EvalContext,
    ForSpec,
    Op,
    RelatedRead,
    RuleBase,
    RuleName,
    RuleTypeRegistry,
    Template,
    TimerReads,
    glob_match,
    rule_type,
)
from pulse_alerts.domain.rule_types import (  # registers the built-in types
    SOURCES,
    BudgetRule,
    CampaignStatusRule,
    ChangeRule,
    EwmaRule,
    ForecastRule,
    FreshnessRule,
    ThresholdRule,
    ZScoreRule,
)
from pulse_shared.events import Grain

__all__ = [
    "DIMENSIONS", "RULE_TYPES", "SOURCES", "ActionSpec", "BudgetRule", "CampaignStatusRule",
    "ChangeRule", "Direction", "Duration", "EvalContext", "EwmaRule", "ForSpec",
    "ForecastRule", "FreshnessRule", "KpiCatalog", "KpiScope", "Op", "RelatedRead",
    "RuleBase", "RuleName", "RuleSet", "RuleTypeRegistry", "RulesError", "Template",
    "ThresholdRule", "TimerReads", "ZScoreRule", "check_scope", "load_rules", "parse_rules",
    "rule_type",
]

#: Dimensions of ``kpi_values`` (the cross-service contract): a rule scoped to any other
#: dimension could never match a snapshot.
DIMENSIONS: tuple[str, ...] = ("all", "channel", "campaign", "sending_domain",
                               # the account's profile (kpi_catalog.ACCOUNT_DIMS)
                               "segment", "plan", "region", "industry", "employee_band")
#: Exit status of a rules file that names an unknown choice (KPI, grain, dimension, type):
#: a usage error, like an unknown choice on the command line.
EXIT_UNKNOWN_CHOICE = 2
_CHOICE_ERRORS = frozenset({"enum", "literal_error", "union_tag_invalid"})
_glob = glob_match


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
            if not rule.enabled or not rule.kpi_scoped:
                continue
            if any(c in rule.kpi for c in "*?["):
                wildcard.append(rule)
            else:
                by_kpi.setdefault(rule.kpi, []).append(rule)
            for kpi in rule.trigger_kpis:
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
        """Enabled rules the timer evaluates (:attr:`RuleBase.on_timer`)."""
        return [r for r in self.rules if r.enabled and r.on_timer]


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
    adapter = RULE_TYPES.adapter()
    type_names = ", ".join(RULE_TYPES)
    for index, raw in enumerate(raw_rules):
        label = _rule_label(raw, index)
        try:
            rule: RuleBase = adapter.validate_python(raw)
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
                    field, msg = "type", f"must be one of {type_names}"
                elif err["type"] == "union_tag_not_found":
                    field, msg = "type", f"missing; one of {type_names}"
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
    if not rule.kpi_scoped:
        return []  # e.g. freshness: scoped by source, not by KPI
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
