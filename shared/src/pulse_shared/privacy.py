"""Pseudonymisation: raw personal identifiers never leave ingest.

Detection works on a *normalised* copy of the text, so disguised identifiers are found too:
Unicode NFKC (full-width ``＠`` and digits), percent-decoding and HTML entities (repeated
until stable, at most :data:`MAX_DECODE_ROUNDS` times: ``jane%2540x`` → ``jane@x``), and
``mailto:`` / ``tel:`` schemes removed.

* **E-mail addresses**: any ``local@host``, Unicode (IDN) domains included, and bare hosts
  (``jane@localhost``) when the host is a name of two or more characters starting with a
  letter (so ``logo@2x`` is not one).
* **Phone numbers**: found by ``phonenumbers.PhoneNumberMatcher`` (possible-number
  leniency, so the fictional ``+1-555-867-5309`` is caught) and kept only if written like
  one: a possible number (local-only lengths such as ``555-0100`` are not) that is not
  glued to a letter (``abc+4155552671``), and either starts with ``+`` or has its digits
  grouped — after the international dialling prefix (``011 44 20 7946 0958``) or the way
  the default region writes its numbers (``(555) 867-5309``, ``1-555-867-5309``). A bare
  run of digits is an id or an amount (``c-6208717303``), never a phone number; neither
  are ``12345678.90``, dates, times, epoch seconds, ISO weeks or ``INV-2026-000123``.

Ingest replaces what it finds by a **token** carrying the first hex digits of the salted
hash: ``[email:<hex>]`` / ``[phone:<hex>]`` (:func:`scrub_text`). The e-mail token is the
prefix of the ``contact_id`` the same address gets, and the phone token that of its E.164
form, so rows of one person still join; the raw value is gone. Tokens are never detected
as PII themselves (hex: no ``@``, no ``+``, no separator between digits).

Everything else on the bus refuses raw PII (the event models' validator), and dead letters
keep a redacted copy (:func:`redact_pii`, no salt: ``[redacted-email]``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

import phonenumbers
from phonenumbers import Leniency as _Leniency
from phonenumbers import (
    PhoneMetadata,
    PhoneNumberFormat,
    PhoneNumberMatcher,
    ValidationResult,
)

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
#: Default region for phone numbers written without a country code (ISO 3166 alpha-2).
DEFAULT_PHONE_REGION = "US"
#: Percent-decoding / HTML-unescaping / NFKC rounds before giving up (``%252540`` …).
MAX_DECODE_ROUNDS = 4
#: Hex digits of the salted hash a token shows (48 bits: joins, not reversal).
TOKEN_HEX = 12
REDACTED_EMAIL = "[redacted-email]"
REDACTED_PHONE = "[redacted-phone]"

#: Local part (RFC 5322 atext plus dots, Unicode letters) @ host labels.
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
EMAIL = re.compile(
    r"[\w.!#$%&'*+/=?^`{|}~-]+@(?P<host>" + _LABEL + r"(?:\." + _LABEL + r")*)"
)
_SCHEME = re.compile(r"\b(?:mailto|tel|callto|sms|fax):(?://)?", re.IGNORECASE)
_DECODE_HINTS = ("%", "&")
#: Digit groups joined by up to 4 separators, as the phone matcher reads a number (its
#: punctuation; any non-ASCII character counts as one, conservatively); at least two.
# (?<!\d): a run starts at its first digit; trying every later digit of it again found
# the same runs and cost ~1 µs per identifier with digits (contact_hash of every row).
_GROUPED_DIGITS = re.compile(r"(?<!\d)\d+(?:(?:[-x./()\[\]~\s]|[^\x00-\x7f]){1,4}\d+)+")



def _byte_classes() -> bytes:
    """A ``bytes.translate`` table for :func:`quick_clean`: digits → ``0``, the matcher's
    ASCII separators → ``-``, anything that needs a closer look (``@ % & + :`` and every
    byte of a non-ASCII character) → ``!``, the rest → ``a``."""
    table = bytearray(b"a" * 256)
    for byte in b"0123456789":
        table[byte] = ord("0")
    for byte in b"-x./()[]~ \t\n\r\x0b\x0c":
        table[byte] = ord("-")
    for byte in [*b"@%&+:", *range(0x80, 0x100)]:
        table[byte] = ord("!")
    return bytes(table)


_BYTE_CLASSES = _byte_classes()
#: Digits grouped by 1-4 separators, in :data:`_BYTE_CLASSES` terms (one C-speed search
#: instead of a generator over the four lengths, which cost ~1 µs per id such as
#: ``acct-2026-0001``).
_GROUPED_CLASS_RUN = re.compile(rb"0-{1,4}0")
_PLUS_THEN_DIGIT = re.compile(r"\+\D{0,12}\d")
_DIGITS = re.compile(r"\d+")


def hash_identifier(raw: str, salt: str) -> str:
    """Salted SHA-256 (HMAC) of a normalised identifier such as an email address.

    Normalising (trim, lower-case) makes the same person hash the same way across tools.
    """
    if not salt:
        raise ValueError("a non-empty salt is required to hash identifiers")
    keyed = _keyed_hmac(salt).copy()
    keyed.update(raw.strip().lower().encode())
    return keyed.hexdigest()


@functools.lru_cache(maxsize=4)
def _keyed_hmac(salt: str) -> hmac.HMAC:
    """HMAC-SHA256 keyed with ``salt`` and fed nothing yet, copied for each identifier:
    keying one (OpenSSL looks the digest up again each time) cost more than hashing an
    e-mail address (~0.5 µs of every touchpoint's contact)."""
    return hmac.new(salt.encode(), digestmod=hashlib.sha256)


def is_hashed(value: str) -> bool:
    return bool(_SHA256_HEX.match(value))


# -- Normalisation ---------------------------------------------------------------------------


def normalise(text: str) -> str:
    """The text as a reader would see it: NFKC, percent- and entity-decoded until stable
    (bounded), URL schemes of contacts (``mailto:``, ``tel:``) removed."""
    for _ in range(MAX_DECODE_ROUNDS):
        before = text
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        if "%" in text:
            text = unquote(text, errors="replace")
        if "&" in text:
            text = html.unescape(text)
        if text == before:
            break
    if ":" in text:
        text = _SCHEME.sub("", text)
    return text


# -- Detection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One identifier in a normalised text: where, and its canonical form (the hash input:
    the lower-cased address, or the number in E.164)."""

    kind: Literal["email", "phone"]
    start: int
    end: int
    canonical: str


def _is_email_host(host: str) -> bool:
    if "." in host:
        tld = host.rsplit(".", 1)[1]
        return len(tld) >= 2 and (tld.isalpha() or tld.lower().startswith("xn--"))
    return len(host) >= 2 and host[0].isalpha()  # a bare host: localhost, intranet


def _emails(text: str) -> list[Finding]:
    found: list[Finding] = []
    for match in EMAIL.finditer(text):
        host = match.group("host")
        # The longest host that is a plausible one (``jane@acme.example.`` ends at "e").
        while host and not _is_email_host(host) and "." in host:
            host = host.rsplit(".", 1)[0]
        if not _is_email_host(host):
            continue
        end = match.start("host") + len(host)
        found.append(Finding("email", match.start(), end, text[match.start():end].lower()))
    return found


def _shortest(metadata: PhoneMetadata) -> int:
    """Fewest digits of a national number of this region (1 if the data says nothing)."""
    lengths = metadata.general_desc.possible_length if metadata.general_desc else ()
    return min((n for n in lengths if n > 0), default=1)


def _region_metadata(region: str) -> PhoneMetadata:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        raise ValueError(f"unknown phone region {region!r}")
    return metadata


def _international_prefixes(metadata: PhoneMetadata) -> tuple[str, ...]:
    """The region's international dialling prefixes (``011``, ``00``; ``00`` if none)."""
    return tuple(re.findall(r"\d+", metadata.international_prefix or "")) or ("00",)


@functools.cache
def _min_phone_digits(region: str) -> int:
    """Fewest digits a number written without ``+`` can have in ``region`` (nationally,
    or after the region's international dialling prefix)."""
    metadata = _region_metadata(region)
    national = _shortest(metadata)
    shortest_international = min(
        len(str(m.country_code)) + _shortest(m)
        for r in phonenumbers.SUPPORTED_REGIONS
        if (m := PhoneMetadata.metadata_for_region(r)) is not None
    )
    idd = min(len(d) for d in _international_prefixes(metadata))
    return min(national, idd + shortest_international)


def _may_hold_phone(text: str, region: str) -> bool:
    """Cheap and conservative: False only if the matcher and :func:`_plausible` can find
    no phone number in ``text``: no ``+`` before a digit, and no run of digit groups
    (bare digits are never one) with at least :func:`_min_phone_digits` digits."""
    if "+" in text and _PLUS_THEN_DIGIT.search(text):
        return True
    least = _min_phone_digits(region)
    return any(
        sum(map(str.isdigit, run.group())) >= least for run in _GROUPED_DIGITS.finditer(text)
    )


def _grouped_like_region(raw: str, number: phonenumbers.PhoneNumber) -> bool:
    """Digit groups as the region writes its numbers (a national prefix group allowed)."""
    groups = [len(g) for g in _DIGITS.findall(raw)]
    national = [len(g) for g in _DIGITS.findall(
        phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL))]
    if len(groups) < 2 or len(national) < 2:
        return False
    return groups[-len(national):] == national and len(groups) <= len(national) + 1


def _plausible(text: str, start: int, end: int, raw: str, region: str) -> str | None:
    """The E.164 form if the matcher's candidate is a phone number we should hide."""
    if start > 0 and text[start - 1].isalpha() and raw[0] not in "+([":
        return None
    if end < len(text) and text[end].isalpha():
        return None
    try:
        number = phonenumbers.parse(raw, region, keep_raw_input=True)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != ValidationResult.IS_POSSIBLE:
        return None
    source = number.country_code_source
    if source != phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN and not (
        len(_DIGITS.findall(raw)) >= 2  # bare digits: an id or an amount
        and (source == phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD
             or _grouped_like_region(raw, number))
    ):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


#: Short texts whose phone search is remembered. Identifiers recur (an account's id on each
#: of its touches, a campaign id on each of its spend rows) and the matcher costs ~40 µs per
#: text with a run of grouped digits; the answer depends on the text and region only. Long
#: free texts are searched every time (they rarely recur, and would hold the memory).
PHONE_SEARCH_CACHE_SIZE = 1 << 15
PHONE_SEARCH_CACHE_MAX_CHARS = 200


def _phones(text: str, region: str) -> tuple[Finding, ...]:
    if not _may_hold_phone(text, region):
        return ()
    if len(text) <= PHONE_SEARCH_CACHE_MAX_CHARS:
        return _remembered_phone_search(text, region)
    return _phone_search(text, region)


def _phone_search(text: str, region: str) -> tuple[Finding, ...]:
    found = []
    tried = set()  # the matcher's candidates: searching one of them again would find nothing
    for match in PhoneNumberMatcher(text, region, leniency=_Leniency.POSSIBLE):
        e164 = _plausible(text, match.start, match.end, match.raw_string, region)
        if e164 is not None:
            found.append(Finding("phone", match.start, match.end, e164))
        tried.add((match.start, match.end))
    budget = [_SUPPLEMENT_TRIES]
    missed = [
        phone
        for run in _GROUPED_DIGITS.finditer(text)
        if not any(f.start < run.end() and run.start() < f.end for f in found)
        for phone in _phones_among_groups(text, run.start(), run.end(), region, budget, tried)
    ]
    return tuple(sorted(found + missed, key=lambda f: f.start)) if missed else tuple(found)


#: Most digits a phone number is written with: 15 (E.164) after an international dialling
#: prefix of up to 4 digits; and most digit groups (``00 33 1 42 68 53 00``: 7).
_MAX_PHONE_DIGITS = 19
_MAX_PHONE_GROUPS = 8
#: Matcher calls :func:`_phones_among_groups` may make for one text (~25 µs each). Texts
#: with a few digit runs need a handful; a 4 KB wall of digit groups would need thousands
#: (0.1 s), so past this it is searched by the matcher alone, as every text was before.
_SUPPLEMENT_TRIES = 64


@functools.cache
def _national_digit_counts(region: str) -> tuple[frozenset[int], tuple[str, ...]]:
    """Digits a number written the region's national way can have (with or without its
    national prefix), and the region's international dialling prefixes (``011``, ``00``):
    a span starting with one of those is read as international, any length."""
    metadata = _region_metadata(region)
    desc = metadata.general_desc
    lengths = {n for n in (*desc.possible_length, *(desc.possible_length_local_only or ()))
               if n > 0} if desc else set()
    prefix = len(metadata.national_prefix or "")
    counts = frozenset(lengths | {n + prefix for n in lengths})
    return counts, _international_prefixes(metadata)


def _phones_among_groups(
    text: str, start: int, end: int, region: str, budget: list[int],
    tried: set[tuple[int, int]],
) -> list[Finding]:
    """Numbers in one run of digit groups that the matcher missed. It keeps or drops a
    candidate whole, so an id's or an amount's digits written next to a number hide it:
    ``c5065 555.308.0815`` gives ``5065 555`` and ``308.0815``; ``+1 (555) 200 0000 1234``
    gives nothing. Contiguous groups are tried, longest first from each group, through the
    same matcher and :func:`_plausible`; a span found is skipped past.

    Only spans a number could be are tried (at most :data:`_MAX_PHONE_GROUPS` groups; after
    a ``+`` or an international prefix at most :data:`_MAX_PHONE_DIGITS` digits, else a
    national length of the region), so a text of many digit groups costs a few matcher
    calls per group, not one per pair of groups; ``budget`` (one counter for the whole text)
    caps the calls. A span the matcher returned as a candidate (``tried``) is not searched
    again: an id such as ``lat10000-12345``, one candidate, costs no second call."""
    groups = [m.span() for m in _DIGITS.finditer(text, start, end)]
    if len(groups) == 2 and (start, end) in tried and (start == 0 or text[start - 1] not in "+("):
        # Ids such as ``INV-2026-000123``: the matcher judged the only span of two groups
        # already, and one group alone (bare digits, no ``+``) is never a number.
        return []
    before = [0]
    for g_start, g_end in groups:
        before.append(before[-1] + g_end - g_start)  # digits before each group
    least = _min_phone_digits(region)
    national, idds = _national_digit_counts(region)
    found: list[Finding] = []
    first = 0
    while first < len(groups) and before[-1] - before[first] >= least:
        resume = first + 1
        g_start = groups[first][0]
        a = g_start
        while a > 0 and text[a - 1] in "+(":  # a country code's plus, an area code's bracket
            a -= 1
        international = (a < g_start and "+" in text[a:g_start]) or text.startswith(idds, g_start)
        for last in range(min(len(groups), first + _MAX_PHONE_GROUPS) - 1, first - 1, -1):
            count = before[last + 1] - before[first]
            if count < least:
                break  # shorter spans from here hold fewer digits still
            if count > _MAX_PHONE_DIGITS or not (international or count in national):
                continue
            b = groups[last][1]
            if b < len(text) and text[b] == ")":
                b += 1
            if (a, b) in tried or (g_start, groups[last][1]) in tried:
                continue
            if budget[0] <= 0:
                return found
            budget[0] -= 1
            hit = next((
                Finding("phone", a + m.start, a + m.end, e164)
                for m in PhoneNumberMatcher(text[a:b], region, leniency=_Leniency.POSSIBLE)
                if (e164 := _plausible(text, a + m.start, a + m.end, m.raw_string, region))
            ), None)
            if hit is not None:
                found.append(hit)
                resume = next((i for i, (g, _) in enumerate(groups) if g >= hit.end), len(groups))
                break
        first = resume
    return found


_remembered_phone_search = functools.lru_cache(maxsize=PHONE_SEARCH_CACHE_SIZE)(_phone_search)


def find_pii(text: str, region: str = DEFAULT_PHONE_REGION) -> tuple[str, list[Finding]]:
    """The normalised text and the identifiers in it, in order (none overlapping)."""
    normal = normalise(text)
    return normal, _identifiers(normal, region)


def _identifiers(
    normal: str, region: str, emails: list[Finding] | None = None
) -> list[Finding]:
    """:func:`find_pii` of a normalised text (``emails``: its addresses, if found already)."""
    if emails is None:
        emails = _emails(normal) if "@" in normal else []
    phones = _phones(normal, region)
    findings: list[Finding] = []
    for finding in sorted([*emails, *phones], key=lambda f: (f.start, f.kind != "email")):
        if findings and finding.start < findings[-1].end:
            continue  # a phone inside an address is part of the address
        findings.append(finding)
    return findings


def quick_clean(raw: bytes) -> bool:
    """True if this UTF-8 text surely holds no PII: ASCII without ``@ % & + :`` and with no
    digits grouped by separators. C speed (a byte translation and substring searches),
    for whole batches: values joined by ``b"\\x00"`` are clean only if each one is."""
    classes = raw.translate(_BYTE_CLASSES)
    if b"!" in classes:
        return False
    # Most texts have no digit before a separator: one search settles it.
    return b"0-" not in classes or _GROUPED_CLASS_RUN.search(classes) is None


def _byte_set(kind: str, limit: int = 0x100) -> str:
    """A regex character set of the bytes below ``limit`` that :func:`quick_clean` maps to
    ``kind`` (every byte hex-escaped: no escaping question in SQL or RE2)."""
    return "[" + "".join(f"\\x{b:02x}" for b in range(limit) if _BYTE_CLASSES[b] == ord(kind)) + "]"


#: A regular expression (RE2 and Python syntax, over UTF-8 text) that finds something
#: exactly when :func:`quick_clean` of the text is False: a byte it flags (ASCII ``@ % & +
#: :`` or any non-ASCII character) or digits grouped by 1-4 separators. Built from the same
#: byte table, so ClickHouse can run the pre-check where it parses the values
#: (:mod:`pulse_shared.canonical`); tests compare the two.
QUICK_CLEAN_REFUSES = (
    f"{_byte_set('!', 0x80)}|[^\\x00-\\x7f]|{_byte_set('0')}{_byte_set('-')}{{1,4}}{_byte_set('0')}"
)


#: Short texts whose :func:`quick_clean` verdict is remembered. The same ids and labels
#: recur on many events (a channel, a campaign id, an account id on each of its touches) and
#: each is checked by ingest and again by every event model's validator; the verdict
#: depends on the text only. Longer texts are checked every time (free text rarely recurs).
CLEAN_CHECK_CACHE_SIZE = 1 << 15
CLEAN_CHECK_CACHE_MAX_CHARS = 128


def is_surely_clean(text: str) -> bool:
    """:func:`quick_clean` of the text (UTF-8), remembered for short texts."""
    if len(text) <= CLEAN_CHECK_CACHE_MAX_CHARS:
        return _remembered_clean_check(text)
    return _clean_check(text)


def _clean_check(text: str) -> bool:
    return quick_clean(text.encode("utf-8", "surrogatepass"))


_remembered_clean_check = functools.lru_cache(maxsize=CLEAN_CHECK_CACHE_SIZE)(_clean_check)


def may_contain_pii(text: str, region: str = DEFAULT_PHONE_REGION) -> bool:
    """Cheap, conservative pre-check: False means :func:`contains_pii` is False.

    Also holds for several values joined with ``"\\x00"`` (a separator that ends digit runs
    and is no letter): False for the join means False for every value."""
    if is_surely_clean(text):
        return False
    normal = normalise(text)
    return "@" in normal or _may_hold_phone(normal, region)


def contains_pii(text: str, region: str = DEFAULT_PHONE_REGION) -> bool:
    if not may_contain_pii(text, region):
        return False
    return bool(find_pii(text, region)[1])


def pii_kinds(text: str, region: str = DEFAULT_PHONE_REGION) -> list[str]:
    """Kinds of identifier found ("email", "phone"), without repeating the values;
    remembered for short texts, as :func:`is_surely_clean` is. A day (``2026-12-04``) is
    digits grouped by separators, so it fails the quick check and the phone matcher looked
    at it again on every KPI snapshot of a day period that every consumer decoded."""
    if len(text) <= CLEAN_CHECK_CACHE_MAX_CHARS:
        return list(_remembered_pii_kinds(text, region))
    return list(_pii_kinds(text, region))


def _pii_kinds(text: str, region: str) -> tuple[str, ...]:
    if not may_contain_pii(text, region):
        return ()
    return tuple(sorted({f.kind for f in find_pii(text, region)[1]}))


_remembered_pii_kinds = functools.lru_cache(maxsize=CLEAN_CHECK_CACHE_SIZE)(_pii_kinds)


def contains_email(text: str) -> bool:
    """An e-mail address, disguised or not (phone numbers aside)."""
    normal = normalise(text)
    return "@" in normal and bool(_emails(normal))


# -- Replacement -----------------------------------------------------------------------------


def pii_token(kind: str, canonical: str, salt: str) -> str:
    """``[email:<hex>]``: the first :data:`TOKEN_HEX` hex digits of the salted hash (a
    prefix of the ``contact_id`` of the same address)."""
    return f"[{kind}:{hash_identifier(canonical, salt)[:TOKEN_HEX]}]"


def _replace(text: str, findings: list[Finding], token: Any) -> str:
    parts: list[str] = []
    position = 0
    for finding in findings:
        parts.append(text[position:finding.start])
        parts.append(token(finding))
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)


def scrub_text(text: str, salt: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """``text`` with every e-mail address and phone number replaced by its token.

    Unchanged if it holds none; otherwise the normalised text with the replacements."""
    if not may_contain_pii(text, region):
        return text
    normal, findings = find_pii(text, region)
    if not findings:
        return text
    return _replace(normal, findings, lambda f: pii_token(f.kind, f.canonical, salt))


def contact_hash(identifier: str, salt: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """``contact_id`` of a raw contact identifier: an e-mail address or phone number, even
    disguised, hashes as its canonical form (so its tokens elsewhere are prefixes of this);
    anything else as trimmed lower-case text."""
    normal = normalise(identifier)
    emails = _emails(normal) if "@" in normal else []
    # The usual identifier, one address and nothing else: any phone number inside it is
    # part of the address (dropped by find_pii), so the phone search is skipped.
    sole = _sole(normal, emails) or _sole(normal, _identifiers(normal, region, emails))
    return hash_identifier(sole.canonical if sole else identifier, salt)


def _sole(normal: str, findings: list[Finding]) -> Finding | None:
    """The one finding that is all of the (stripped) text, if so."""
    if len(findings) == 1 and normal.strip() == normal[findings[0].start:findings[0].end]:
        return findings[0]
    return None


def _redact_text(text: str, region: str) -> str:
    if not may_contain_pii(text, region):
        return text
    normal, findings = find_pii(text, region)
    if not findings:
        return text
    return _replace(
        normal, findings, lambda f: REDACTED_EMAIL if f.kind == "email" else REDACTED_PHONE
    )


def _redact_json(value: Any, region: str) -> Any:
    if isinstance(value, str):
        return _redact_text(value, region)
    if isinstance(value, list):
        return [_redact_json(v, region) for v in value]
    if isinstance(value, dict):
        return {_redact_text(str(k), region): _redact_json(v, region) for k, v in value.items()}
    return value


def redact_pii(text: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """Identifiers replaced by ``[redacted-email]`` / ``[redacted-phone]``, e.g. in a dead
    letter's copy of a foreign payload. JSON is redacted value by value (so an address
    written with ``\\u0040`` escapes is found too) and written back compactly."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            pass
        else:
            redacted = _redact_json(parsed, region)
            if redacted == parsed:
                return text
            return json.dumps(redacted, ensure_ascii=False, separators=(", ", ": "))
    return _redact_text(text, region)


def redact_emails(text: str) -> str:
    """Former name of :func:`redact_pii` (which also redacts phone numbers)."""
    return redact_pii(text)
