"""Synthetic e-mail deliverability for the demo dataset
(``generate_dataset(email_deliverability=True)``).

Two sending domains of the demo company, one row per domain and day:

* :data:`LIFECYCLE_DOMAIN` sends product and lifecycle mail every day (fewer at weekends),
  ESP sendgrid, campaign ``lifecycle``;
* :data:`NEWSLETTER_DOMAIN` sends the weekly newsletter on Tuesdays (campaign
  ``newsletter-<ISO week>``), ESP mailchimp.

Healthy days bounce about 0.5–1 % and draw about 0.02–0.05 % spam complaints; in the one
bad week (:func:`bad_week`: the second ISO week of the last complete month, or the
window's first week when it is shorter) the lifecycle domain mails a stale imported list:
bounces about 4–6 % and complaints about 0.2–0.3 % of sent, above the industry
thresholds of the shipped alert rules (2 %, 0.1 %): the monthly report of the demo (the
last complete month) names the breach, and the weekly report shows a calm week.

Own random generator (seeded from the dataset's seed) and ids made of domain and day, so
turning deliverability on changes no other event of the dataset.
"""

from __future__ import annotations

import datetime as dt
import random

from pulse_shared.events import EmailDeliveryStats

LIFECYCLE_DOMAIN = "mail.pulse-demo.io"
NEWSLETTER_DOMAIN = "news.pulse-demo.io"
#: Bounce and complaint shares of sent (low, high) on healthy days and in the bad week.
HEALTHY_BOUNCE = (0.005, 0.010)
HEALTHY_COMPLAINT = (0.0002, 0.0005)
BAD_BOUNCE = (0.040, 0.060)
BAD_COMPLAINT = (0.0020, 0.0030)


def bad_week(start: dt.date, end: dt.date) -> dt.date:
    """Monday of the bad week: the first ISO week starting on or after the 8th of the last
    month complete on ``end`` (the month the demo's monthly report covers), not before the
    window's first Monday (a short window still gets one)."""
    next_day = end + dt.timedelta(days=1)
    month = next_day.replace(day=1)  # first day of the month after the last complete one
    last_complete = (month - dt.timedelta(days=1)).replace(day=1)
    eighth = last_complete.replace(day=8)
    monday = eighth + dt.timedelta(days=(7 - eighth.weekday()) % 7)
    first_monday = start - dt.timedelta(days=start.weekday())
    return max(monday, first_monday)


def _row(rng: random.Random, day: dt.date, domain: str, campaign: str, esp: str, sent: int,
         bad: bool, opens: float, clicks: float) -> EmailDeliveryStats:
    bounce = rng.uniform(*(BAD_BOUNCE if bad else HEALTHY_BOUNCE))
    complaint = rng.uniform(*(BAD_COMPLAINT if bad else HEALTHY_COMPLAINT))
    bounced = round(sent * bounce)
    hard = round(bounced * rng.uniform(0.55, 0.75))
    delivered = sent - bounced
    return EmailDeliveryStats(
        event_id=f"demo-deliverability-{domain}-{day.isoformat()}",
        day=day, sending_domain=domain, campaign_id=campaign, esp=esp, sent=sent,
        delivered=delivered, hard_bounces=hard, soft_bounces=bounced - hard,
        spam_complaints=round(sent * complaint),
        unsubscribes=round(delivered * rng.uniform(0.001, 0.003) * (3 if bad else 1)),
        unique_opens=round(delivered * rng.uniform(opens - 0.03, opens + 0.03)),
        unique_clicks=round(delivered * rng.uniform(clicks - 0.01, clicks + 0.01)),
    )


def email_deliverability(start: dt.date, end: dt.date, seed: int) -> list[EmailDeliveryStats]:
    """Daily delivery counts of both demo domains for the days ``start``..``end``."""
    rng = random.Random(f"deliverability-{seed}")
    monday = bad_week(start, end)
    out: list[EmailDeliveryStats] = []
    day = start
    while day <= end:
        bad = monday <= day < monday + dt.timedelta(days=7)
        weekend = day.weekday() >= 5
        sent = rng.randint(1500, 2500) if weekend else rng.randint(5000, 7000)
        out.append(_row(rng, day, LIFECYCLE_DOMAIN, "lifecycle", "sendgrid", sent, bad,
                        opens=0.28, clicks=0.04))
        if day.weekday() == 1:  # the newsletter goes out on Tuesdays
            iso = day.isocalendar()
            out.append(_row(rng, day, NEWSLETTER_DOMAIN,
                            f"newsletter-{iso.year}-w{iso.week:02d}", "mailchimp",
                            rng.randint(11000, 13000), False, opens=0.38, clicks=0.08))
        day += dt.timedelta(days=1)
    return out
