"""Statements per order request, counted in-process with Django's CaptureQueriesContext.

Run by the bench in a subprocess per implementation (its settings module in
DJANGO_SETTINGS_MODULE), through django.test.Client against the bench database:
``python -m tests.bench.statements ORDER_URL [--login] [--count N]``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import uuid

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("order_url")
    parser.add_argument("--login", action="store_true")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT="application/json")
    client.get("/api/me/")
    if args.login:
        client.post("/bench/login/", headers={"X-CSRFToken": client.cookies["csrftoken"].value})
    body = json.dumps({"items": [{"cake": "strawberry-shortcake", "quantity": 1}], "note": ""})

    def post(key):
        return client.post(args.order_url, body, content_type="application/json",
                           headers={"X-CSRFToken": client.cookies["csrftoken"].value, "Idempotency-Key": str(key)})

    post(uuid.uuid4())  # warm: the first request of a process loads the cake and content types
    keys = [uuid.uuid4() for _ in range(args.count)]
    found = {}
    for phase in ("fresh", "replay"):
        counts, sql = [], []
        for key in keys:
            with CaptureQueriesContext(connection) as captured:
                response = post(key)
            assert response.status_code == 201, (phase, response.status_code, response.content[:300])
            counts.append(len(captured.captured_queries))
            sql = [query["sql"] for query in captured.captured_queries]
        found[phase] = sum(counts) / len(counts)
        found[f"{phase}_sql"] = sql
    if args.order_url == "/api/orders/":
        # The baseline (a): the same customer with the idempotency switch off.
        client.patch("/api/me/", json.dumps({"idempotency": False}), content_type="application/json",
                     headers={"X-CSRFToken": client.cookies["csrftoken"].value})
        counts = []
        for _ in range(args.count):
            with CaptureQueriesContext(connection) as captured:
                assert post(uuid.uuid4()).status_code == 201
            counts.append(len(captured.captured_queries))
        found["baseline"] = sum(counts) / len(counts)
        found["baseline_sql"] = [query["sql"] for query in captured.captured_queries]
    print(json.dumps(found))


if __name__ == "__main__":
    main()
