"""Seeded JSONL event files for replay tests and the replay benchmark (`python generate.py N PATH`)."""
from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

START = datetime(2025, 1, 1, tzinfo=UTC)
ZONES = ["Europe/Berlin", "Asia/Tokyo", "America/New_York", None]
COUPONS = [None, None, "discount", "gift", "free_shipping", "special_price"]


def _customer_events(rng: random.Random, customer: str, count: int, days: int) -> list[dict]:
    zone = rng.choice(ZONES)
    products = [f"p{rng.randrange(500)}" for _ in range(4)]
    base = {"customer_id": customer}
    if zone:
        base["context"] = {"timezone": zone}
    out, order_no = [], 0
    for i in range(count):
        at = START + timedelta(seconds=rng.uniform(0, days * 86_400))
        doc = {"event_id": f"{customer}-{i}", **base, "occurred_at": at.isoformat()}
        r = rng.random()
        if r < 0.30:
            doc |= {"event_type": "visit.product_view", "product_id": rng.choice(products)}
        elif r < 0.40:
            doc |= {"event_type": "visit.page_view"}
        elif r < 0.45:
            doc |= {"event_type": "visit.favourite", "product_id": rng.choice(products)}
        elif r < 0.52:
            doc |= {"event_type": "cart.add", "cart_id": f"{customer}-k{i}",
                    "items": [{"product_id": rng.choice(products)}], "total": 20}
        elif r < 0.56:
            doc |= {"event_type": "cart.checkout_started", "cart_id": f"{customer}-k{i}", "total": 20}
        elif r < 0.70:
            order_no += 1
            order = f"{customer}-o{order_no}"
            doc |= {"event_type": "order.placed", "order_id": order, "total": 35.5,
                    "items": [{"product_id": rng.choice(products)}]}
            if rng.random() < 0.75:
                paid_at = at + timedelta(minutes=rng.choice([1, 5, 45]))
                out.append({"event_id": f"{customer}-{i}-paid", **base, "occurred_at": paid_at.isoformat(),
                            "event_type": "order.paid", "order_id": order, "total": 35.5,
                            **({"coupon_type": c} if (c := rng.choice(COUPONS)) else {})})
        elif r < 0.80:
            doc |= {"event_type": "email.open"}
        elif r < 0.86:
            doc |= {"event_type": "email.click"}
        elif r < 0.92:
            doc |= {"event_type": "email.delivered"}
        elif r < 0.94:
            doc |= {"event_type": "email.bounce"}
        elif r < 0.99:
            doc |= {"event_type": "consent.updated", "channel": rng.choice(["sms", "email"]),
                    "granted": rng.random() < 0.7}
        elif r < 0.995:
            doc |= {"event_type": "email.unsubscribe"}
        else:
            doc |= {"event_type": "consent.erasure_requested"}
        out.append(doc)
    return out


def write_events(path: Path, events: int, *, per_customer: int = 10, days: int = 365, seed: int = 1,
                 invalid_every: int = 0) -> int:
    """About `events` events (mixed types, time-sorted per file chunk); returns lines written."""
    rng = random.Random(seed)
    written = 0
    with open(path, "wb") as out:
        customer = 0
        while written < events:
            chunk = []
            for _ in range(1000):
                customer += 1
                chunk += _customer_events(rng, f"c{customer}", max(1, int(rng.expovariate(1 / per_customer))), days)
            chunk.sort(key=lambda d: d["occurred_at"])
            for doc in chunk:
                out.write(orjson.dumps(doc) + b"\n")
                written += 1
                if invalid_every and written % invalid_every == 0:
                    out.write(b'{"event_type": "order.paid", "customer_id": "broken"}\n')
                    written += 1
                if written >= events:
                    break
    return written


if __name__ == "__main__":
    print(write_events(Path(sys.argv[2]), int(sys.argv[1])))
