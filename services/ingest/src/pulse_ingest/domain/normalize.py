"""Raw rows → validated, pseudonymised events (pure: no I/O, no clock).

Rules applied to every row, whatever the format it came in:

* Only the fields of the kind's event model (plus a few documented aliases) are kept;
  everything else — names, phone numbers, notes, any free text — is dropped.
* Touchpoint contacts: ``contact_id`` that is already a SHA-256 hex is kept; any other
  identifier (``contact_id``, ``contact_email``, ``email``) is hashed with the salt (an
  e-mail address or phone number, even disguised, as its canonical form:
  :func:`pulse_shared.privacy.contact_hash`).
* Every other kept string field (whatever the model's fields are, so a new one is covered)
  has each e-mail address and phone number it holds, disguised or not (``%40``, ``＠``,
  ``&#64;``, ``mailto:``, IDN, ``+1-555-…``), replaced by a salted token such as
  ``[email:3f2a…]`` (:func:`pulse_shared.privacy.scrub_text`), so raw PII can never leave
  ingest, even by mistake, and rows of one person still join.
* Empty strings mean "not given" (CSV cells); naive timestamps and plain dates are read as
  UTC; channel and enum values are case-insensitive, with common aliases (``cpc`` …).
* Missing ``event_id`` → a deterministic content hash of the *normalised* event, so a
  re-send of the same row gets the same id and is recognised as a duplicate.
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from pulse_shared import topics
from pulse_shared.events import (
    Channel,
    Event,
    PipelineStage,
    SubscriptionEventType,
    TouchType,
    deterministic_event_id,
)
from pulse_shared.privacy import (
    DEFAULT_PHONE_REGION,
    contact_hash,
    is_hashed,
    quick_clean,
    scrub_text,
)
from pulse_shared.topics import Topic

KIND_TOPICS: dict[str, Topic] = topics.BY_INGEST_KIND  # the registry's kind ↔ topic ↔ table
KINDS: tuple[str, ...] = tuple(KIND_TOPICS)

PLACEHOLDER_ID = "pending"

CONTACT_FIELDS = ("contact_id", "contact_email", "email", "contact")
"""Where a touchpoint's contact comes from, in this priority (hashed unless already hashed)."""

ALIASES: dict[str, dict[str, str]] = {
    "touchpoints": {
        "timestamp": "occurred_at", "time": "occurred_at", "type": "touch_type",
        "campaign": "campaign_id", "amount": "cost",
    },
    "spend": {"day": "date", "campaign": "campaign_id", "cost": "amount", "spend": "amount"},
    "subscriptions": {"timestamp": "occurred_at", "type": "event_type", "event": "event_type"},
    "pipeline": {"timestamp": "occurred_at", "deal_stage": "stage", "value": "amount"},
    "budgets": {"campaign": "campaign_id", "budget": "amount"},
    "martech": {"tool": "vendor", "cost": "amount", "monthly_cost": "amount",
                "tool_category": "category"},
    "accounts": {"account": "account_id", "company_id": "account_id",
                 "effective_date": "effective_from", "valid_from": "effective_from",
                 "date": "effective_from", "customer_segment": "segment", "tier": "segment",
                 "size": "employee_band", "company_size": "employee_band",
                 "employees": "employee_band", "number_of_employees": "employee_band",
                 "channel": "acquisition_channel", "source": "acquisition_channel"},
    "usage": {"date": "day", "uses": "count", "events": "count", "feature_name": "feature",
              "account": "account_id"},
    "deliverability": {"date": "day", "domain": "sending_domain", "campaign": "campaign_id",
                       "requests": "sent", "spam_reports": "spam_complaints",
                       "complaints": "spam_complaints"},
    # Survey exports: a comment / feedback text column is NOT an alias of anything, so it
    # is dropped like every unknown column (reported by name in "ignored"): comments are
    # personal data in practice and never stored.
    "feedback": {"account": "account_id", "type": "survey", "survey_type": "survey",
                 "rating": "score", "date": "responded_at", "submitted_at": "responded_at",
                 "answered_at": "responded_at"},
    "tickets": {"id": "ticket_id", "ticket": "ticket_id", "account": "account_id",
                "organization_id": "account_id", "solved_at": "resolved_at",
                "first_reply_at": "first_response_at", "via": "channel",
                "updated": "updated_at"},
}

CHANNEL_ALIASES: dict[str, Channel] = {
    "cpc": Channel.PAID_SEARCH, "ppc": Channel.PAID_SEARCH, "sem": Channel.PAID_SEARCH,
    "search": Channel.PAID_SEARCH, "google_ads": Channel.PAID_SEARCH,
    "adwords": Channel.PAID_SEARCH, "bing_ads": Channel.PAID_SEARCH,
    "paid_social_media": Channel.PAID_SOCIAL, "linkedin_ads": Channel.PAID_SOCIAL,
    "facebook_ads": Channel.PAID_SOCIAL, "meta_ads": Channel.PAID_SOCIAL,
    "seo": Channel.ORGANIC_SEARCH, "organic": Channel.ORGANIC_SEARCH,
    "social": Channel.ORGANIC_SOCIAL, "newsletter": Channel.EMAIL, "e_mail": Channel.EMAIL,
    "event": Channel.EVENTS, "webinars": Channel.WEBINAR, "partners": Channel.PARTNER,
    "affiliates": Channel.AFFILIATE, "none": Channel.DIRECT, "display_ads": Channel.DISPLAY,
}

_ENUM_FIELDS: dict[str, tuple[str, ...]] = {
    "channel": tuple(c.value for c in Channel),
    "touch_type": tuple(t.value for t in TouchType),
    "event_type": tuple(t.value for t in SubscriptionEventType),
    "stage": tuple(s.value for s in PipelineStage),
    "acquisition_channel": tuple(c.value for c in Channel),  # accounts: same aliases
}
_DATETIME_FIELDS = frozenset({"occurred_at", "responded_at", "created_at", "first_response_at",
                              "resolved_at", "updated_at"})


@dataclass(frozen=True)
class RowError:
    """One rejected row: its index in the request/file, the field and the reason."""

    index: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class InvalidRow:
    """Placeholder for an input row that could not even be parsed (bad NDJSON line …)."""

    reason: str


@dataclass
class NormalisedBatch:
    """Valid events (with their row index) and row errors, in input order."""

    kind: str
    events: list[Event] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    ignored: set[str] = field(default_factory=set)

    @property
    def rejected_rows(self) -> int:
        return len({e.index for e in self.errors})


def topic_for(kind: str) -> Topic:
    try:
        return KIND_TOPICS[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}") from None


def _slug(value: str) -> str:
    return re.sub(r"[\s\-/]+", "_", value.strip().lower())


_ENUM_SETS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in _ENUM_FIELDS.items()}


def _enum_value(name: str, value: Any) -> Any:
    if not isinstance(value, str) or value in _ENUM_SETS[name]:
        return value
    slug = _slug(value)
    if name in ("channel", "acquisition_channel") and slug not in _ENUM_FIELDS["channel"]:
        alias = CHANNEL_ALIASES.get(slug)
        return alias.value if alias else value
    return slug if slug in _ENUM_FIELDS[name] else value


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _datetime_value(value: Any) -> Any:
    """Naive timestamps and plain dates are UTC; epoch numbers are seconds."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        text = value.strip()
        if _DATE_ONLY.match(text):
            return text + "T00:00:00Z"
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return value  # let the model report it
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return value


_CONTACT = "__contact__"


def _is_text(annotation: Any) -> bool:
    """A string field (ids, labels, free text), through ``Annotated`` and ``Optional``."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_text(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_text(a) for a in typing.get_args(annotation))
    return annotation is str


def text_fields(kind: str) -> frozenset[str]:
    """The kind's model fields holding text: the ones scrubbed of PII (enums, times and
    amounts are not text; a value with PII there fails validation without being echoed)."""
    fields = KIND_TOPICS[kind].model.model_fields
    return frozenset(name for name, f in fields.items() if _is_text(f.annotation))


_TEXT_FIELDS: dict[str, frozenset[str]] = {kind: text_fields(kind) for kind in KIND_TOPICS}


def _targets(kind: str) -> dict[str, str]:
    """Lower-case input key → model field (aliases resolved, contacts marked)."""
    fields = KIND_TOPICS[kind].model.model_fields
    targets = {name: name for name in fields if name != "kind"}
    for alias, name in ALIASES.get(kind, {}).items():
        targets.setdefault(alias, name)
    if kind == "touchpoints":
        for name in CONTACT_FIELDS:
            targets[name] = _CONTACT
    return targets


_TARGETS: dict[str, dict[str, str]] = {kind: _targets(kind) for kind in KIND_TOPICS}


MAX_IGNORED_REPORTED = 50


def prepare_row(
    kind: str,
    row: Mapping[str, Any],
    salt: str,
    ignored: set[str] | None = None,
    region: str = DEFAULT_PHONE_REGION,
) -> dict[str, Any]:
    """Map a raw row onto the kind's model fields (no validation yet), PII replaced by
    tokens (phone numbers without a country code read as ``region``'s).

    Names of dropped input fields are added to ``ignored`` (values never are)."""
    targets = _TARGETS[kind]
    texts = _TEXT_FIELDS[kind]
    out: dict[str, Any] = {}
    contacts: dict[str, Any] = {}
    kept_texts: list[str] = []  # fields kept with a text value: scrubbed after the loop
    for raw_key, value in row.items():
        key = targets.get(raw_key)
        if key is None:
            if not isinstance(raw_key, str):
                continue
            normal = raw_key.strip().lower()
            key = targets.get(normal)
            if key is None:  # unknown / free-text / personal fields are dropped
                if ignored is not None and len(ignored) < MAX_IGNORED_REPORTED:
                    ignored.add(scrub_text(normal, salt, region)[:64])
                continue
        else:
            normal = raw_key
        if value is None:
            continue
        is_text = type(value) is str
        if is_text and (not value or value.isspace()):
            continue
        if key == _CONTACT:
            contacts.setdefault(normal, value)
            continue
        if is_text and key in texts and key not in out:
            kept_texts.append(key)
        if key in _ENUM_FIELDS:
            value = _enum_value(key, value)
        elif key in _DATETIME_FIELDS:
            value = _datetime_value(value)
        out.setdefault(key, value)
    # One C-speed check of all the row's texts at once (joined, they are clean only if each
    # one is): most rows hold no PII outside their contact, and then need no closer look.
    if kept_texts and not quick_clean(
        "\x00".join([out[key] for key in kept_texts]).encode("utf-8", "surrogatepass")
    ):
        for key in kept_texts:
            out[key] = scrub_text(out[key], salt, region)
    for name in CONTACT_FIELDS:  # the first contact field given, in priority order
        if name in contacts:
            text = str(contacts[name]).strip()
            out["contact_id"] = text if is_hashed(text) else contact_hash(text, salt, region)
            break
    return out


def _errors(index: int, exc: ValidationError) -> list[RowError]:
    errors: list[RowError] = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(row)"
        errors.append(RowError(index, loc, str(err["msg"])))
    return errors


def normalise_row(
    kind: str,
    row: Any,
    salt: str,
    index: int = 0,
    ignored: set[str] | None = None,
    region: str = DEFAULT_PHONE_REGION,
) -> Event | list[RowError]:
    """One raw row → an event, or the list of its field errors."""
    if isinstance(row, InvalidRow):
        return [RowError(index, "(row)", row.reason)]
    if not isinstance(row, Mapping):
        return [RowError(index, "(row)", f"expected an object, got {type(row).__name__}")]
    model = topic_for(kind).model
    try:
        prepared = prepare_row(kind, row, salt, ignored, region)
    except (TypeError, ValueError) as exc:  # defensive: exotic values
        return [RowError(index, "(row)", str(exc))]
    client_id = prepared.get("event_id")
    if client_id is None:
        prepared["event_id"] = PLACEHOLDER_ID
    try:
        event = model.model_validate(prepared)
    except ValidationError as exc:
        return _errors(index, exc)
    if client_id is None:
        # model_dump(mode="json"), without its keyword plumbing (~0.5 µs a row);
        # deterministic_event_id leaves the placeholder id out of the hash by itself.
        canonical = model.__pydantic_serializer__.to_python(event, mode="json")
        event_id = deterministic_event_id(model.kind, canonical)
        # The event was built just above and nobody else holds it yet: set its id the way
        # model_copy(update=…) sets it on the copy (in __dict__; "event_id" is already in
        # the fields set), without the copy, which cost ~2 µs of every row.
        event.__dict__["event_id"] = event_id
    return event


def normalise_rows(
    kind: str,
    rows: Sequence[Any],
    salt: str,
    start_index: int = 0,
    indexes: Sequence[int] | None = None,
    region: str = DEFAULT_PHONE_REGION,
) -> NormalisedBatch:
    """Normalise and validate ``rows``; a row's index is ``indexes[i]`` if given, else
    ``start_index + i``."""
    topic_for(kind)
    if indexes is not None and len(indexes) != len(rows):
        raise ValueError("indexes and rows differ in length")
    batch = NormalisedBatch(kind=kind)
    for offset, row in enumerate(rows):
        index = indexes[offset] if indexes is not None else start_index + offset
        result = normalise_row(kind, row, salt, index, batch.ignored, region)
        if isinstance(result, list):
            batch.errors.extend(result)
        else:
            batch.events.append(result)
            batch.indexes.append(index)
    return batch
