"""Customer experience ingest on the real Kafka broker (issue 17): survey answers and
ticket states reach cx.feedback.v1 / cx.tickets.v1 normalised and keyed (answers by
account, tickets by ticket), survey comments never reach the broker, and an out-of-scale
score is refused naming the field."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from ingest_support import KEYS, ingest_settings
from test_ingest_kafka import read_topic

from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import FeedbackResponse, SupportTicket
from pulse_shared.service import broker_health
from pulse_shared.topics import FEEDBACK, TICKETS

pytestmark = pytest.mark.kafka
FULL = {"X-API-Key": KEYS["full"][0]}
RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
async def http(kafka_broker: Any) -> AsyncIterator[httpx.AsyncClient]:
    broker = make_broker(kafka_broker.bootstrap_servers, client_id="pulse-ingest-cx-test")
    await broker.start()
    service = IngestService(Bus(broker, "ingest"), ingest_settings(max_rows=100))
    app = build_api(service, health=broker_health(broker))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ingest") as client:
        yield client
    await broker.stop()


async def test_answers_and_ticket_states_on_the_broker(http: httpx.AsyncClient,
                                                       kafka_broker: Any) -> None:
    account = f"cx-acct-{RUN}"
    csv_text = ("account,type,rating,date,comment\n"
                f"{account},NPS,9,2026-11-20,\"Great, ask Jo (+1 415 555 0100) {RUN}\"\n"
                f"{account},csat,7,2026-11-21,too high\n")
    answer = await http.post("/v1/feedback", content=csv_text,
                             headers={**FULL, "content-type": "text/csv"})
    assert answer.status_code == 422, answer.text  # the csat 7 row; the nps row is published
    (error,) = answer.json()["rejected"]
    assert (error["index"], error["field"]) == (1, "score")
    assert "outside the csat scale 1–5" in error["reason"]
    ticket = f"cx-ticket-{RUN}"
    states = [
        {"ticket_id": ticket, "account_id": account, "created_at": "2026-11-20T09:00:00Z",
         "status": "open", "channel": "Email"},
        {"ticket_id": ticket, "account_id": account, "created_at": "2026-11-20T09:00:00Z",
         "first_response_at": "2026-11-20T11:30:00Z", "resolved_at": "2026-11-21T08:00:00Z",
         "status": "Solved", "channel": "email"},
    ]
    published = await http.post("/v1/tickets", json=states, headers=FULL)
    assert published.status_code == 200, published.text

    records = [r for r in await read_topic(kafka_broker.bootstrap_servers, FEEDBACK.name)
               if account.encode() in r.value]
    assert len(records) == 1
    event = FeedbackResponse.model_validate_json(records[0].value)
    assert (event.survey.value, event.score) == ("nps", 9)
    assert records[0].key == account.encode()
    # The event id is a random-looking hex digest that can contain "415" by chance, so the
    # comment check reads every other field of the published record.
    published_fields = json.loads(records[0].value)
    assert "comment" not in published_fields
    del published_fields["event_id"], published_fields["account_id"]
    rest = json.dumps(published_fields)
    assert "415" not in rest and "555" not in rest and RUN not in rest
    tickets = [r for r in await read_topic(kafka_broker.bootstrap_servers, TICKETS.name)
               if ticket.encode() in r.value]
    assert [SupportTicket.model_validate_json(r.value).status.value for r in tickets] == [
        "open", "solved"]
    assert {r.key for r in tickets} == {ticket.encode()}
    assert len({r.partition for r in tickets}) == 1  # one ticket's states stay in order
