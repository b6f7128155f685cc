"""Reports that reach people: subscriptions, e-mail (HTML with inline PNG charts, PDF
attached) and Slack-compatible webhooks, with retries and a delivery log.

* :mod:`.model` — targets, subscriptions, outcomes, masking (pure);
* :mod:`.compose` — the e-mail message and the webhook payload of a report (pure);
* :mod:`.charts` — the report's charts as PNG (mail clients strip SVG);
* :mod:`.transport` — SMTP and webhook sending with bounded exponential retries;
* :mod:`.secrets` — addresses and webhook URLs encrypted at rest (Fernet keys of
  ``PULSE_REPORTING_DELIVERY_KEY``), an address's salted hash for erasure;
* :mod:`.storage` — ``report_subscriptions`` and ``report_deliveries`` (migration 0080);
* :mod:`.service` — who gets what (access scopes) and the delivery of one report.
"""
