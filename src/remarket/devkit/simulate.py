"""Realistic storefront traffic for demos, tests and benchmarks.

`TrafficModel` is pure and seeded (same seed, same events); `produce()` paces it onto Kafka.
Customers get a persona: repeat buyers with their own purchase cycle, one-time buyers, and
browsers who never order. With `history_days`, each customer's past orders are emitted first
(back-dated), so life-cycle stages exist from the first minute.
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator

import orjson

from remarket.domain.events import PromotionType

TIMEZONES = ("Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles",
             "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "UTC")
COUNTRIES = {"Europe/Berlin": "DE", "Europe/London": "GB", "America/New_York": "US",
             "America/Los_Angeles": "US", "Asia/Shanghai": "CN", "Asia/Tokyo": "JP",
             "Australia/Sydney": "AU", "UTC": "NL"}
CATALOG_SIZE = 200


@dataclass(frozen=True)
class SimEvent:
    role: str  # catalog role of the topic it belongs on
    key: bytes | None
    value: bytes
    malformed: bool = False


@dataclass
class Persona:
    customer_id: str
    kind: str  # repeat | one_time | browser
    cycle_days: float
    timezone: str
    favourite_products: list[str] = field(default_factory=list)
    open_order: str | None = None


class TrafficModel:
    def __init__(self, *, customers: int = 200, seed: int = 7, malformed_share: float = 0.01,
                 history_days: int = 0) -> None:
        self.rng = random.Random(seed)
        self.malformed_share = malformed_share
        self.history_days = history_days
        self._uuid_rng = random.Random(seed + 1)
        self.personas = [self._persona(i) for i in range(customers)]

    def _persona(self, i: int) -> Persona:
        r = self.rng.random()
        kind = "repeat" if r < 0.35 else "one_time" if r < 0.6 else "browser"
        tz = self.rng.choice(TIMEZONES)
        products = [f"p-{self.rng.randrange(CATALOG_SIZE):04d}" for _ in range(3)]
        return Persona(f"c-{i:06d}", kind, self.rng.uniform(10, 60), tz, products)

    def _event_id(self) -> str:
        return str(uuid.UUID(int=self._uuid_rng.getrandbits(128), version=4))

    def _doc(self, p: Persona, event_type: str, at: datetime, **fields: object) -> dict:
        return {"event_id": self._event_id(), "event_type": event_type, "customer_id": p.customer_id,
                "occurred_at": at.isoformat(), "schema_version": 1,
                "context": {"timezone": p.timezone, "country": COUNTRIES[p.timezone]}, **fields}

    def _emit(self, role: str, p: Persona, event_type: str, at: datetime, **fields: object) -> SimEvent:
        return SimEvent(role, p.customer_id.encode(), orjson.dumps(self._doc(p, event_type, at, **fields)))

    # -- history --------------------------------------------------------------------------
    def history(self, now: datetime) -> Iterator[SimEvent]:
        """Back-dated paid orders per customer, oldest first, so stages exist from the start."""
        if self.history_days <= 0:
            return
        for p in self.personas:
            if p.kind == "browser":
                continue
            at = now - timedelta(days=self.rng.uniform(0.2, 1.0) * self.history_days)
            purchases = 1 if p.kind == "one_time" else self.rng.randint(2, 8)
            for _ in range(purchases):
                if at >= now - timedelta(hours=1):
                    break
                yield from self._paid_order(p, at)
                at += timedelta(days=p.cycle_days * self.rng.uniform(0.7, 1.3))

    # -- live traffic ---------------------------------------------------------------------
    def live(self, now: datetime) -> list[SimEvent]:
        """One step of live activity by one customer at `now` (one or a few events)."""
        if self.rng.random() < self.malformed_share:
            return [self._malformed(now)]
        p = self.rng.choice(self.personas)
        r = self.rng.random()
        product = self.rng.choice(p.favourite_products)
        if r < 0.30:
            return [self._emit("visits", p, "visit.product_view", now, product_id=product)]
        if r < 0.38:
            return [self._emit("visits", p, "visit.page_view", now, url="https://shop.example/")]
        if r < 0.43:
            return [self._emit("visits", p, "visit.favourite", now, product_id=product)]
        if r < 0.50:
            return [self._emit("carts", p, "cart.add", now, cart_id=f"cart-{p.customer_id}",
                               items=[{"product_id": product, "quantity": 1, "unit_price": 19.9}], total=19.9)]
        if r < 0.55:
            return [self._emit("carts", p, "cart.checkout_started", now, cart_id=self._event_id(),
                               items=[{"product_id": product, "quantity": 1, "unit_price": 29.0}], total=29.0)]
        if r < 0.63 and p.kind != "browser":
            return self._order_flow(p, now, product)
        if r < 0.75:
            return [self._emit("email", p, "email.delivered", now, message_id=self._event_id())]
        if r < 0.88:
            return [self._emit("email", p, "email.open", now, message_id=self._event_id())]
        if r < 0.95:
            return [self._emit("email", p, "email.click", now, message_id=self._event_id())]
        if r < 0.985:
            return [self._emit("consent", p, "consent.updated", now, channel=self.rng.choice(["email", "sms"]),
                               granted=self.rng.random() < 0.8)]
        if r < 0.987:
            return [self._emit("consent", p, "consent.erasure_requested", now)]
        return [self._emit("visits", p, "visit.page_view", now)]

    def _order_flow(self, p: Persona, now: datetime, product: str) -> list[SimEvent]:
        if p.open_order and self.rng.random() < 0.6:  # pay the order left open earlier
            order_id, p.open_order = p.open_order, None
            return [self._emit("orders", p, "order.paid", now, order_id=order_id, total=42.0)]
        order_id = f"o-{self._event_id()[:13]}"
        items = [{"product_id": product, "quantity": 1, "unit_price": 42.0}]
        placed = self._emit("orders", p, "order.placed", now, order_id=order_id, total=42.0, items=items)
        r = self.rng.random()
        if r < 0.7:
            coupon = self.rng.choice([None, None, *[t.value for t in PromotionType]])
            return [placed, self._emit("orders", p, "order.paid", now + timedelta(seconds=30), order_id=order_id,
                                       total=42.0, items=items, coupon_type=coupon)]
        if r < 0.8:
            return [placed, self._emit("orders", p, "order.cancelled", now + timedelta(seconds=60),
                                       order_id=order_id, total=42.0)]
        p.open_order = order_id  # left unpaid: a payment reminder is due
        return [placed]

    def _paid_order(self, p: Persona, at: datetime) -> Iterator[SimEvent]:
        order_id = f"o-{self._event_id()[:13]}"
        total = round(self.rng.uniform(10, 300), 2)
        product = self.rng.choice(p.favourite_products)
        coupon = self.rng.choice([None, None, *[t.value for t in PromotionType]])
        items = [{"product_id": product, "quantity": 1, "unit_price": total}]
        yield self._emit("orders", p, "order.placed", at, order_id=order_id, total=total, items=items)
        yield self._emit("orders", p, "order.paid", at + timedelta(seconds=10), order_id=order_id, total=total,
                         items=items, coupon_type=coupon)

    def _malformed(self, now: datetime) -> SimEvent:
        p = self.rng.choice(self.personas)
        kind = self.rng.randrange(5)
        if kind == 0:
            return SimEvent("orders", p.customer_id.encode(), b"{not json", malformed=True)
        if kind == 1:  # schema violation: negative total
            doc = self._doc(p, "order.paid", now, order_id="o-bad", total=-5)
        elif kind == 2:  # unknown event type
            doc = self._doc(p, "order.teleported", now, order_id="o-bad")
        elif kind == 3:  # key differs from customer_id
            return SimEvent("visits", b"someone-else", orjson.dumps(self._doc(p, "visit.page_view", now)), True)
        else:  # missing required field
            doc = self._doc(p, "visit.product_view", now)
        return SimEvent("orders" if kind < 3 else "visits", p.customer_id.encode(), orjson.dumps(doc), True)


async def produce(producer, topic_names: dict[str, str], model: TrafficModel, *, rate: float,
                  duration: float, report=print) -> dict[str, int]:
    """Send history, then live traffic at `rate` events/s for `duration` seconds."""
    counts = {"history": 0, "live": 0, "malformed": 0}
    now = datetime.now(timezone.utc)
    for ev in model.history(now):
        await producer.send(topic_names[ev.role], ev.value, key=ev.key)
        counts["history"] += 1
    started = time.monotonic()
    next_report = started + 10
    while (elapsed := time.monotonic() - started) < duration:
        for ev in model.live(datetime.now(timezone.utc)):
            await producer.send(topic_names[ev.role], ev.value, key=ev.key)
            counts["live"] += 1
            counts["malformed"] += ev.malformed
        target = started + counts["live"] / rate
        if (delay := target - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        if time.monotonic() >= next_report:
            report(f"simulate: {counts['live']} live events in {elapsed:.0f}s "
                   f"({counts['malformed']} malformed), {counts['history']} history")
            next_report += 10
    await producer.flush()
    return counts
