"""What a delivered report looks like (pure: no I/O, no clock).

* E-mail: ``multipart/mixed`` of ``multipart/alternative`` (plain text; HTML in a
  ``multipart/related`` with the charts as inline PNG parts the HTML shows by ``cid:``)
  and the attachments (the PDF by default). The HTML is written for mail clients: tables
  and inline styles, no scripts, no SVG, no remote images; user text (KPI labels, alert
  summaries) is escaped by Jinja's autoescaping.
* Webhook: a Slack-compatible ``{"text": …, "blocks": […]}`` with the headline KPIs and a
  link to the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid
from functools import lru_cache
from typing import Any

import jinja2

from pulse_reporting.delivery.charts import PngChart
from pulse_reporting.domain.formatting import TONE_COLOURS, fmt_change, fmt_value
from pulse_reporting.domain.model import KpiTile, Report, Tone
from pulse_reporting.domain.tables import partial_banner

#: Headline KPIs in a webhook message (Slack shows at most 10 fields per section).
WEBHOOK_KPIS = 10
#: Which headline KPIs a chat message shows first (the rest follow in report order).
CHAT_PRIORITY: tuple[str, ...] = (
    "mrr", "mrr_net_new", "nrr", "spend", "attributed_revenue", "roas", "cac", "ltv_cac",
    "new_customers", "leads",
)
#: Alerts listed in an e-mail or a webhook message (the rest are counted).
LISTED_ALERTS = 5
#: Statements of each insight section in an e-mail (the report has them all).
LISTED_STATEMENTS = 3
_MIME = {
    "pdf": ("application", "pdf"),
    "html": ("text", "html"),
    "md": ("text", "markdown"),
    "json": ("application", "json"),
}


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes

    @property
    def mime(self) -> tuple[str, str]:
        return _MIME.get(self.filename.rsplit(".", 1)[-1], ("application", "octet-stream"))


def attachment_name(report: Report, fmt: str) -> str:
    return f"pulse-{report.meta.kind}-{report.meta.period}.{fmt}"


def subject(report: Report) -> str:
    m = report.meta
    partial = " (partial)" if not m.complete else ""
    return f"{m.title}{partial}"


def _tile_line(tile: KpiTile) -> str:
    return (f"{tile.label}: {fmt_value(tile.value, tile.fmt)} "
            f"({fmt_change(tile.pop, tile.fmt)} vs {'previous'}; "
            f"{fmt_change(tile.yoy, tile.fmt)} vs a year ago)")


def plain_text(
    report: Report, link: str | None, attachments: Sequence[str] = (), footer: str = "",
) -> str:
    """The text/plain alternative: the same facts as the HTML, without charts."""
    m = report.meta
    lines = [m.title, f"{m.period_start.isoformat()} – {m.period_end.isoformat()}"
             f" · attribution: {m.model_label or m.model}", ""]
    banner = partial_banner(m)
    if banner:
        lines += [banner, ""]
    if report.headline:
        lines += ["Headline KPIs", *(f"- {_tile_line(t)}" for t in report.headline), ""]
    for section in report.insights:
        lines.append(section.title)
        lines += ([f"- {section.unavailable}"] if section.unavailable else
                  [f"- {text}" for text in section.statements[:LISTED_STATEMENTS]])
        lines.append("")
    if report.alerts:
        lines.append(f"Alerts on this period's data: {len(report.alerts)}")
        lines += [f"- {a.rule}: {a.summary or a.kpi}" for a in report.alerts[:LISTED_ALERTS]]
        lines.append("")
    if link:
        lines += [f"Full report: {link}", ""]
    if attachments:
        lines += [f"Attached: {', '.join(attachments)}", ""]
    lines.append(f"Sent by Pulse{' · ' + footer if footer else ''}.")
    return "\n".join(lines) + "\n"


_HTML = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ m.title }}</title></head>
<body style="margin:0;padding:0;background:#f6f8fa;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"
 style="background:#f6f8fa;font-family:Helvetica,Arial,sans-serif;color:#1f2328;">
<tr><td align="center" style="padding:16px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0"
 style="background:#ffffff;border:1px solid #d0d7de;border-radius:6px;">
<tr><td style="padding:20px 24px 8px 24px;">
  <h1 style="font-size:20px;margin:0 0 4px 0;">{{ m.title }}</h1>
  <p style="font-size:13px;color:#6e7781;margin:0;">{{ m.period_start.isoformat() }} –
   {{ m.period_end.isoformat() }} · attribution: {{ m.model_label or m.model }}</p>
  {% if banner %}<p style="font-size:13px;background:#fff8c5;padding:6px 8px;margin:8px 0 0 0;">
   {{ banner }}</p>{% endif %}
</td></tr>
{% if tiles %}
<tr><td style="padding:8px 24px;">
  <table role="presentation" width="100%" cellpadding="4" cellspacing="0"
   style="font-size:13px;border-collapse:collapse;">
   <tr style="color:#6e7781;text-align:left;"><th align="left">KPI</th><th align="right">Value</th>
    <th align="right">vs previous</th><th align="right">vs year ago</th></tr>
   {% for t in tiles %}
   <tr style="border-top:1px solid #eaeef2;"><td>{{ t.label }}</td>
    <td align="right"><b>{{ fv(t.value, t.fmt) }}</b></td>
    <td align="right" style="color:{{ colour(t.pop.tone) }};">{{ fc(t.pop, t.fmt) }}</td>
    <td align="right" style="color:{{ colour(t.yoy.tone) }};">{{ fc(t.yoy, t.fmt) }}</td></tr>
   {% endfor %}
  </table>
</td></tr>
{% endif %}
{% for c in charts if c.name not in insight_charts %}
<tr><td style="padding:8px 24px;"><img src="cid:{{ c.content_id }}" width="552"
 alt="{{ c.name.replace('_', ' ') }} chart" style="display:block;width:100%;max-width:552px;height:auto;border:0;"></td></tr>
{% endfor %}
{% for s in insights %}
<tr><td style="padding:8px 24px 0 24px;font-size:13px;">
  <h2 style="font-size:15px;margin:8px 0 4px 0;">{{ s.title }}</h2>
  {% if s.unavailable %}<p style="margin:0;color:#6e7781;">{{ s.unavailable }}</p>
  {% else %}<ul style="margin:0;padding-left:18px;">{% for text in s.statements[:listed_statements] %}<li>{{ text }}</li>{% endfor %}</ul>{% endif %}
</td></tr>
{% for c in charts if insight_charts.get(c.name) == s.key %}
<tr><td style="padding:8px 24px;"><img src="cid:{{ c.content_id }}" width="552"
 alt="{{ s.title }}: {{ c.name.replace('_', ' ') }} chart" style="display:block;width:100%;max-width:552px;height:auto;border:0;"></td></tr>
{% endfor %}
{% endfor %}
{% if alerts %}
<tr><td style="padding:8px 24px;font-size:13px;">
  <h2 style="font-size:15px;margin:8px 0 4px 0;">Alerts on this period's data ({{ alerts|length }})</h2>
  <ul style="margin:0;padding-left:18px;">
  {% for a in alerts[:listed] %}<li><b>{{ a.rule }}</b> — {{ a.summary or a.kpi }}</li>{% endfor %}
  </ul>
  {% if alerts|length > listed %}<p style="margin:4px 0;color:#6e7781;">and {{ alerts|length - listed }} more.</p>{% endif %}
</td></tr>
{% endif %}
<tr><td style="padding:12px 24px 20px 24px;font-size:13px;">
  {% if link %}<p style="margin:0 0 8px 0;"><a href="{{ link }}" style="color:#0969da;">Open the full report</a></p>{% endif %}
  {% if attachments %}<p style="margin:0 0 8px 0;color:#6e7781;">Attached: {{ attachments|join(', ') }}.</p>{% endif %}
  <p style="margin:0;color:#6e7781;font-size:12px;">Sent by Pulse{% if footer %} · {{ footer }}{% endif %}.</p>
</td></tr>
</table></td></tr></table></body></html>
"""


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(fv=fmt_value, fc=fmt_change,
                       colour=lambda tone: TONE_COLOURS.get(Tone(tone), "#6e7781"))
    return env.from_string(_HTML)


def email_html(
    report: Report, charts: Sequence[PngChart], link: str | None,
    attachments: Sequence[str] = (), footer: str = "",
) -> str:
    from pulse_reporting.render.drawing import insight_chart_name

    # each insight section's charts go under its title and statements
    insight_charts = {insight_chart_name(s, c): s.key for s in report.insights
                      for c in s.charts}
    return _template().render(
        m=report.meta, banner=partial_banner(report.meta), tiles=report.headline,
        charts=charts, alerts=report.alerts, listed=LISTED_ALERTS, link=link,
        attachments=list(attachments), footer=footer, insights=report.insights,
        insight_charts=insight_charts, listed_statements=LISTED_STATEMENTS,
    )


def email_message(
    report: Report,
    *,
    sender: str,
    to: str,
    charts: Sequence[PngChart],
    attachments: Sequence[Attachment] = (),
    link: str | None = None,
    footer: str = "",
    message_domain: str = "pulse.local",
) -> EmailMessage:
    """One recipient's message (one message per recipient: nobody sees the others)."""
    message = EmailMessage()
    message["Subject"] = subject(report)
    message["From"] = sender
    message["To"] = str(Address(addr_spec=to))
    message["Message-ID"] = make_msgid(domain=message_domain)
    names = [a.filename for a in attachments]
    message.set_content(plain_text(report, link, names, footer))
    message.add_alternative(email_html(report, charts, link, names, footer), subtype="html")
    html_part = message.get_payload()[1]  # type: ignore[index]
    if not isinstance(html_part, EmailMessage):  # add_alternative made it (default policy)
        raise TypeError("the HTML alternative is not a message part")
    for chart in charts:
        html_part.add_related(
            chart.png, maintype="image", subtype="png", cid=f"<{chart.content_id}>",
            filename=f"{chart.name}.png", disposition="inline",
        )
    for attachment in attachments:
        maintype, subtype = attachment.mime
        if maintype == "text":
            message.add_attachment(attachment.content.decode("utf-8"), subtype=subtype,
                                   filename=attachment.filename)
        else:
            message.add_attachment(attachment.content, maintype=maintype, subtype=subtype,
                                   filename=attachment.filename)
    return message


# -- Slack-compatible webhook ---------------------------------------------------------------


def _slack_escape(text: str) -> str:
    """Slack mrkdwn control characters (``<``, ``>``, ``&``) as its entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_tiles(report: Report) -> list[KpiTile]:
    """Headline tiles with a value, the :data:`CHAT_PRIORITY` ones first."""
    rank = {kpi: i for i, kpi in enumerate(CHAT_PRIORITY)}
    tiles = [t for t in report.headline if t.value is not None]
    return sorted(tiles, key=lambda t: rank.get(t.kpi.split("__")[0], len(rank)))


def webhook_summary(report: Report, link: str | None) -> str:
    """One line (the notification text of Slack and the fallback of other receivers)."""
    tiles = chat_tiles(report)[:3]
    kpis = "; ".join(f"{t.label} {fmt_value(t.value, t.fmt)} ({fmt_change(t.pop, t.fmt)})"
                     for t in tiles)
    text = report.meta.title + (" (partial)" if not report.meta.complete else "")
    if kpis:
        text += f": {kpis}"
    if report.alerts:
        text += f"; {len(report.alerts)} alert(s)"
    if link:
        text += f" — {link}"
    return text


def webhook_payload(report: Report, link: str | None) -> dict[str, Any]:
    m = report.meta
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": m.title[:150]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(
            f"{m.period_start.isoformat()} – {m.period_end.isoformat()} · attribution: "
            f"{m.model_label or m.model}" + ("" if m.complete else " · partial period"))}]},
    ]
    tiles = chat_tiles(report)[:WEBHOOK_KPIS]
    if tiles:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _slack_escape(
                f"*{t.label}*\n{fmt_value(t.value, t.fmt)}  {fmt_change(t.pop, t.fmt)}")}
            for t in tiles]})
    if report.alerts:
        listed = "\n".join(f"• {_slack_escape(a.rule)}: {_slack_escape(a.summary or a.kpi)}"
                           for a in report.alerts[:LISTED_ALERTS])
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": f"*Alerts ({len(report.alerts)})*\n{listed}"}})
    if link:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open the report"},
            "url": link}]})
    return {"text": webhook_summary(report, link), "blocks": blocks}


def report_link(dashboard_url: str, report: Report, formats: Mapping[str, object],
                can_open_files: bool) -> str | None:
    """Where the reader goes: the report file (PDF, else HTML) on the dashboard when its
    role may open report files and the file exists, else the dashboard overview of the
    period; None without a configured dashboard URL."""
    from urllib.parse import quote

    if not dashboard_url:
        return None
    base = dashboard_url.rstrip("/")
    m = report.meta
    if can_open_files:
        for fmt in ("pdf", "html"):
            if fmt in formats:
                return (f"{base}/reports/file?report_id={quote(m.report_id, safe='')}"
                        f"&format={fmt}")
    return f"{base}/?grain={quote(m.grain, safe='')}&period={quote(m.period, safe='')}"
