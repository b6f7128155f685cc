"""Human formatting of report numbers (shared by every text renderer)."""

from __future__ import annotations

from pulse_reporting.domain.model import Delta, Fmt, Tone

MISSING = "n/a"


def fmt_value(value: float | None, fmt: Fmt | str) -> str:
    if value is None:
        return MISSING
    fmt = Fmt(fmt)
    if fmt is Fmt.MONEY:
        sign = "-" if value < 0 else ""
        magnitude = abs(value)
        if magnitude >= 1_000_000:
            return f"{sign}${magnitude / 1_000_000:,.2f}M"
        return f"{sign}${magnitude:,.0f}" if magnitude >= 1000 else f"{sign}${magnitude:,.2f}"
    if fmt is Fmt.RATIO:
        return f"{value:,.2f}x"
    if fmt is Fmt.PERCENT:
        # below 1 % one decimal hides what matters (a 0.08 % complaint rate against a
        # 0.1 % threshold): two decimals there
        if 0 < abs(value) < 0.01:
            return f"{value * 100:,.2f}%"
        return f"{value * 100:,.1f}%"
    if fmt is Fmt.COUNT:
        return f"{value:,.0f}"
    if fmt is Fmt.MONTHS:
        return f"{value:,.1f} mo"
    if fmt is Fmt.HOURS:
        return f"{value:,.1f} h"
    if fmt is Fmt.POINTS:
        return f"{value:+,.0f}"
    return f"{value:,.1f} d"


def fmt_change(delta: Delta, fmt: Fmt | str) -> str:
    """``+12.3%`` (relative) or, for rates, ``+1.2 pp`` and, for scores, ``+3.0 pts``;
    arrow shows direction."""
    if delta.unavailable:
        return f"{MISSING} ({delta.unavailable})"
    if delta.change is None:
        return MISSING
    arrow = "▲" if delta.change > 0 else ("▼" if delta.change < 0 else "■")
    if Fmt(fmt) is Fmt.PERCENT:
        return f"{arrow} {delta.change * 100:+.1f} pp"
    if Fmt(fmt) is Fmt.POINTS:  # a score (NPS −100…100): its change in points, not in %
        return f"{arrow} {delta.change:+.1f} pts"
    if delta.change_pct is None:
        return f"{arrow} {fmt_value(delta.change, fmt)}"
    return f"{arrow} {delta.change_pct * 100:+.1f}%"


TONE_COLOURS: dict[Tone, str] = {
    Tone.GOOD: "#1a7f37",
    Tone.BAD: "#cf222e",
    Tone.NEUTRAL: "#6e7781",
}
TONE_EMOJI: dict[Tone, str] = {Tone.GOOD: "🟢", Tone.BAD: "🔴", Tone.NEUTRAL: "⚪"}
