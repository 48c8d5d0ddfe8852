"""Per-customer state: compact, bounded and serialisable (JSON via pydantic, defaults left out,
stored zstd-compressed behind a format byte).

Times inside the state are whole epoch seconds (int): compact to store and cheap to compare.
Identifiers that only need a membership test (dedup, paid/cancelled orders, closed carts) are kept
as short hashes packed in one bytes field (`IdRing`), base64 in JSON.
"""
from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime

import threading
from typing import Any
from importlib import resources

import orjson
import zstandard
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from remarket.domain.events import InboundEvent, PromotionType, stored_json
from remarket.domain.model_json import compact_encoder
from remarket.domain.vocabulary import Stage

# Stored state formats, told apart by the first byte; every one of them still loads. Format 0 (plain
# JSON, always starting with "{") was written before 2026-11-23. Format 1 is that JSON
# zstd-compressed: the field names and event fields that repeat within one state make it ~2.6x
# smaller (the benchmark's dense workload: p95 2,549 -> 961 B) for ~5 us per encode and ~2 us per
# decode (a reused context). Format 2 (written since 2026-12-03) compresses against a dictionary
# trained on states (data/state-dictionary-1.zstd, remarket.devkit.state_dictionary): what all
# states share is in the dictionary, not in each state, so ~40 % fewer bytes again and ~40 % less
# time to compress (docs/benchmarks.md). The dictionary's bytes are part of the format: never
# change the file; a new dictionary is a new file and a new format byte.
_FORMAT_JSON = b"{"
_FORMAT_ZSTD_JSON = b"\x01"
_FORMAT_ZSTD_DICTIONARY_1_JSON = b"\x02"
# Since 2026-12-07 the JSON's keys come in the order CustomerState declares them: the StateFacts
# first, then "pv" (before, "pv" came second). Any order is format 2 (every decoder parses the
# whole document), so workers of either side of that change read each other's states; the index
# rebuild, which reads the facts of every state held with records waiting, parses only the prefix
# (the rest was most of its time: 2.3 KB of JSON to read 9 fields). The encoder pays nothing.
_FACTS_END = b',"pv":"'
_ZSTD_LEVEL = 1  # levels up to 3 save no more than 1 % here and cost more CPU
_MAX_STATE_JSON = 64 << 20  # only for a frame that does not say its size (zstandard's and cramjam's do)
_DICTIONARY_1 = zstandard.ZstdCompressionDict(
    (resources.files("remarket") / "data" / "state-dictionary-1.zstd").read_bytes())
_DICTIONARY_1.precompute_compress(level=_ZSTD_LEVEL)  # once, shared by every thread's compressor


class _Zstd(threading.local):
    """One compression and one decompression context per thread, reused: a fresh context per call
    (cramjam's one-shot functions) cost 16 us to compress and 13 us to decompress a ~1 KB state,
    a reused one 5 and 2 us. Contexts are not thread-safe, hence one per thread."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, dict_data=_DICTIONARY_1)
        self.decompressor = zstandard.ZstdDecompressor(dict_data=_DICTIONARY_1)
        self.plain_decompressor = zstandard.ZstdDecompressor()  # format 1


_zstd = _Zstd()

_HASH_BYTES = 5  # 40 bits: a false "seen" about once in 3·10^10 look-ups at 32 remembered ids


def stored_json_size(raw: bytes) -> int:
    """The length of a stored state's JSON, read from its bytes without decoding them (the zstd
    frames this module writes say it; a frame that does not is guessed at 3x its size)."""
    if raw[:1] == _FORMAT_JSON:
        return len(raw)
    size = zstandard.frame_content_size(raw[1:])
    return size if size >= 0 else 3 * len(raw)


def to_ts(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def from_ts(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def id_hash(identifier: str) -> bytes:
    return hashlib.blake2b(identifier.encode(), digest_size=_HASH_BYTES).digest()


def ring_contains(ring: bytes, identifier: str) -> bool:
    return ring_has(ring, id_hash(identifier))


def ring_add(ring: bytes, identifier: str, cap: int) -> bytes:
    """Append, keeping the newest `cap` ids."""
    return ring_with(ring, id_hash(identifier), cap)


def ring_has(ring: bytes, needle: bytes) -> bool:
    """`ring_contains` for an id already hashed (`id_hash`): a caller that tests and then adds hashes once."""
    start = 0
    while (found := ring.find(needle, start)) >= 0:
        if found % _HASH_BYTES == 0:
            return True
        start = found + 1
    return False


def ring_with(ring: bytes, needle: bytes, cap: int) -> bytes:
    """`ring_add` for an id already hashed (`id_hash`)."""
    return (ring + needle)[-cap * _HASH_BYTES:]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenOrder(_Record):
    """An order placed (or a checkout started) and not yet paid: a reminder may fall due."""

    at: int
    event_id: str
    cart_id: str | None = None
    total: float = 0.0
    coupon_type: PromotionType | None = None


class Attention(_Record):
    """Recent attention to one product; `since` > 0 once it qualifies for a targeted coupon."""

    last: int
    views: int = 0
    since: int = 0
    event_id: str = ""


class PendingSend(_Record):
    """An emitted action whose `send_after` is still ahead: it can still be withdrawn if it becomes moot."""

    id: str  # action_id
    kind: str
    ch: str  # channel
    at: int  # send_after, epoch s
    stage: str = ""  # stage it was decided in (campaigns)
    order: str | None = None  # the unpaid order a reminder is about
    cart: str | None = None  # the checkout a reminder is about
    products: tuple[str, ...] = ()
    hold: bool = False  # holdout


class Offer(_Record):
    """A coupon a rule wants to give, before activity, festival and type turn it into a Coupon."""

    type: PromotionType
    percent: float  # the stage's size; 0 = no coupon
    min_spend: float = 0.0
    valid: int  # seconds the coupon is valid from send_after
    boost: bool = False  # grows in festival windows (campaign coupons)


class Proposal(_Record):
    """A message a rule decided to send. One the frequency caps hold back waits in
    `CustomerState.waiting` for its next allowed slot (`retry`), until `since` + the kind's window."""

    kind: str
    ref: str  # trigger reference: the action_id derives from it, so a retry keeps its id
    rule: str
    valid: int  # seconds from send_after to expires_at
    stage: str = ""
    offer: Offer | None = None
    products: tuple[str, ...] = ()
    order: str | None = None
    cart: str | None = None
    events: tuple[str, ...] = ()
    detail: str | None = None
    since: int = 0  # first decided
    retry: int = 0  # next slot to try (waiting only)


class CustomerState(BaseModel):
    # Slots, not fields nor private attributes: invisible to validation, serialisation, equality
    # and copies (a working copy starts without them). What the core and the store-wide view work
    # out from a state once it is final (the core changes working copies, never a state it
    # returned): its segment key (profile.segment_key) and its store contribution (store.py),
    # each asked again when the state is the `before` of the customer's next record.
    __slots__ = ("_segment", "_store_part")
    # Stored with short aliases (bytes per customer add up); Python names everywhere else.
    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64",
                              validate_by_name=True, validate_by_alias=True)

    # The StateFacts fields first, then policy_version (every state has it): the JSON is written in
    # this order, and the index rebuild reads only what comes before `,"pv":"` (StateFacts.from_bytes).
    customer_id: str
    upto: int | None = Field(None, description="Time up to which events and due work are processed.")
    due_at: AwareDatetime | None = Field(None, description="Next time advance() may change something.")
    orders: int = 0
    spent: float = 0.0
    products: dict[str, Attention] = Field(default_factory=dict)
    email_engagements: list[int] = Field(default_factory=list, alias="engaged", description="Latest opens/clicks.")
    site_visits: list[int] = Field(default_factory=list, alias="visits", description="Latest visits/cart events.")
    stage: Stage = Stage.PROSPECT
    policy_version: str = Field(alias="pv")
    clock: int | None = Field(None, description="Latest time seen (event or tick), epoch s; never goes back.")
    buffer: list[InboundEvent] = Field(default_factory=list, description="Events held for reordering.")
    recent_event_hashes: bytes = Field(b"", alias="seen", description="Bounded, for dedup of repeated event ids.")
    events_by_family: dict[str, int] = Field(default_factory=dict, alias="count_by")
    last_seen_by_family: dict[str, AwareDatetime] = Field(default_factory=dict, alias="last_by")
    timezone: str | None = None
    country: str | None = None
    # purchases
    first_order: int | None = Field(None, alias="first")
    last_order: int | None = Field(None, alias="last")
    redeemed: dict[str, int] = Field(default_factory=dict, description="Coupon type -> paid orders using it.")
    paid_orders: bytes = b""
    closed_orders: bytes = Field(b"", description="Orders cancelled, already reminded, or refunded ('refund:' id).")
    closed_carts: bytes = b""
    open_orders: dict[str, OpenOrder] = Field(default_factory=dict)
    open_checkouts: dict[str, OpenOrder] = Field(default_factory=dict)
    # attention and engagement
    email_bounces: int = 0
    consent: dict[str, bool] = Field(default_factory=dict, description="Explicit choices; the policy fills gaps.")
    # life cycle and contact
    stage_since: int | None = Field(None, alias="since")
    reactivations: int = 0
    campaign_due: int | None = Field(None, alias="campaign")
    campaign_seq: int = Field(0, alias="seq")
    festival_due: int | None = Field(None, alias="fest", description="Next festival notice / greeting moment.")
    festival_done: int = Field(0, alias="festd", description="Local date (ordinal) of the last notices sent.")
    early_due: int | None = Field(None, alias="early", description="When the score falls below the grade's "
                                                                     "early win-back threshold.")
    early_for: int | None = Field(None, alias="earlyf", description="The last order that schedule was made for.")
    last_reminded: int | None = Field(None, alias="reminded")
    contacts: list[int] = Field(default_factory=list, description="send_after of recent messages.")
    couponed: dict[str, int] = Field(default_factory=dict, description="Product -> last targeted coupon.")
    bought_couponed: bytes = Field(b"", alias="bc", description="Couponed products bought since (hashes).")
    pending: list[PendingSend] = Field(default_factory=list, alias="pend",
                                       description="Emitted actions not yet due (withdrawable).")
    waiting: list[Proposal] = Field(default_factory=list, alias="wait",
                                    description="Capped messages waiting for their next allowed slot.")

    def __setattr__(self, name: str, value) -> None:
        # The core assigns fields many times per event; pydantic's generic __setattr__ (no
        # validation on assignment here anyway) costs ~2 µs a call. Serialisation is unaffected.
        if name in _FIELD_NAMES:
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def to_json(self) -> bytes:
        """pydantic's `model_dump_json(exclude_defaults=True, by_alias=True)`, byte for byte, made
        by `_state_json` at about half its cost (the state is encoded at every commit that changed it).
        A copy of orjson's bytes, which hold its ~4 KiB buffer whatever their length."""
        return bytes(memoryview(_state_json(self)))

    def to_bytes(self) -> bytes:
        return _FORMAT_ZSTD_DICTIONARY_1_JSON + _zstd.compressor.compress(_state_json(self))

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CustomerState":
        return cls.model_validate_json(stored_state_json(raw))

    def working_copy(self) -> "CustomerState":
        """A copy safe to mutate: containers are copied (empty ones too: the core fills them, and the
        original must not change), their elements are immutable."""
        fields = self.__dict__.copy()
        for name in _CONTAINER_FIELDS:
            fields[name] = fields[name].copy()  # list.copy / dict.copy: a new container, empty or not
        # What pydantic's model_copy does, without its generic path (once per event): no extra
        # fields (extra="forbid"), no private attributes; set through BaseModel's own slot
        # descriptors (object.__setattr__ looks each name up). The set of fields given is shared:
        # only pydantic's __setattr__ adds to it, and `__setattr__` below bypasses it for fields.
        copy = object.__new__(CustomerState)
        _DICT_SLOT.__set__(copy, fields)
        _FIELDS_SET_SLOT.__set__(copy, _FIELDS_SET_SLOT.__get__(self))
        _EXTRA_SLOT.__set__(copy, None)
        _PRIVATE_SLOT.__set__(copy, None)
        return copy


def stored_state_json(raw: bytes) -> bytes:
    """The JSON document of a stored state, whichever of its formats it is in."""
    fmt = raw[:1]
    if fmt == _FORMAT_ZSTD_DICTIONARY_1_JSON:
        return _zstd.decompressor.decompress(raw[1:], max_output_size=_MAX_STATE_JSON)
    if fmt == _FORMAT_ZSTD_JSON:
        return _zstd.plain_decompressor.decompress(raw[1:], max_output_size=_MAX_STATE_JSON)
    if fmt == _FORMAT_JSON:
        return raw
    raise ValueError(f"not a stored customer state: format byte {fmt!r} is unknown (known: "
                     f"{_FORMAT_ZSTD_DICTIONARY_1_JSON!r} zstd JSON with dictionary 1, "
                     f"{_FORMAT_ZSTD_JSON!r} zstd JSON, {_FORMAT_JSON!r} JSON)")


class StateFacts(BaseModel):
    """What the due-work index, the store-wide view and the segment gauges read of a stored
    state, decoded without the rest (held events, orders, contacts, pending sends): the worker
    scans every state it holds after each assignment change, with records waiting: 67.5 µs per
    state decoding whole states, 26.5 decoding these, 14.7 since they are written first
    (bench/rebuild.py). The same names, aliases and types as CustomerState's fields (a test holds
    them to it); the domain functions that read them (store.contribution, lifecycle.tier_of,
    email_activity, site_activity) take either."""

    model_config = ConfigDict(extra="ignore", ser_json_bytes="base64", val_json_bytes="base64",
                              validate_by_name=True, validate_by_alias=True)

    customer_id: str
    upto: int | None = None
    due_at: AwareDatetime | None = None
    orders: int = 0
    spent: float = 0.0
    products: dict[str, Attention] = Field(default_factory=dict)
    email_engagements: list[int] = Field(default_factory=list, alias="engaged")
    site_visits: list[int] = Field(default_factory=list, alias="visits")
    stage: Stage = Stage.PROSPECT

    @classmethod
    def from_bytes(cls, raw: bytes) -> "StateFacts":
        document = stored_state_json(raw)
        # Written facts first, they are the keys before the top-level "pv": the first `,"pv":"` of
        # the document (inside a string a quote is escaped; a product id "pv" is followed by an
        # object). Only the customer id before it: written before 2026-12-07 ("pv" second, the
        # facts further on), or every fact at its default; the whole document says which.
        end = document.find(_FACTS_END)
        if end > 0:
            facts = cls.model_validate_json(document[:end] + b"}")
            if facts.__pydantic_fields_set__ != _ONLY_THE_ID:  # model_fields_set, without its property call
                return facts
        return cls.model_validate_json(document)


def _held_events_json(held: list[InboundEvent]) -> orjson.Fragment:
    """The held events are most of a state's JSON while they wait: each event's JSON is made once
    (`stored_json`) and put in as it is."""
    return orjson.Fragment(b"[" + b",".join([stored_json(event) for event in held]) + b"]")


_state_json = compact_encoder(CustomerState, fields_as_json={"buffer": _held_events_json})
SEGMENT, STORE_PART = CustomerState.__dict__["_segment"], CustomerState.__dict__["_store_part"]  # its slots


def kept(state: CustomerState, slot: Any) -> Any:
    """What is kept in one of a final state's slots (`SEGMENT`, `STORE_PART`); None when nothing is
    (decoded from bytes, or not asked yet). Read through the slot's descriptor: an unset slot
    raises at once, not through pydantic's BaseModel.__getattr__."""
    try:
        return slot.__get__(state)
    except AttributeError:
        return None


def keep(state: CustomerState, slot: Any, value: Any) -> None:
    slot.__set__(state, value)


_DICT_SLOT, _FIELDS_SET_SLOT, _EXTRA_SLOT, _PRIVATE_SLOT = (
    BaseModel.__dict__[name] for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__",
                                          "__pydantic_private__"))
_ONLY_THE_ID = frozenset({"customer_id"})
_FIELD_NAMES = frozenset(CustomerState.model_fields)
_CONTAINER_FIELDS = tuple(
    name for name, info in CustomerState.model_fields.items()
    if getattr(info.annotation, "__origin__", None) in (list, dict)
)


def new_state(customer_id: str, policy_version: str) -> CustomerState:
    """Once per new customer: a working copy of a validated blank state (fresh containers) with the
    two fields set, rather than validating every default again; the same two fields are marked set.
    Anything but two plain strings is validated as before (coerced or refused)."""
    if type(customer_id) is str and type(policy_version) is str:
        fresh = _BLANK.working_copy()
        fresh.__dict__["customer_id"], fresh.__dict__["policy_version"] = customer_id, policy_version
        return fresh
    return CustomerState(customer_id=customer_id, policy_version=policy_version)


_BLANK = CustomerState(customer_id="-", policy_version="-")
