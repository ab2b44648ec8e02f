"""Deterministic synthetic card transactions with labelled fraud patterns.

Why: the detector's rules are per user and per 60 s window, so the traffic needs users
who come back (the original generator made a new user id per transaction, and no per-user
rule could ever fire), normal users who mostly stay below the rules, and fraud shaped so
that each pattern exercises a rule. The generator is pure and seeded: tests and
end-to-end runs rebuild exactly the same stream; Kafka, pacing and metrics live in
`producer.py`.

Model
- Simulated clock: transaction i (0-based) happens at `start_time + floor(i * 1000 / rate)`
  ms. Every slot holds exactly one transaction, so the stream runs at exactly `rate` and
  is in event-time order; the producer sends transaction i at i / rate seconds after start.
- Users: a pool of `users` (default `rate * mean_purchase_interval`: an average user buys
  once per interval, about once per window). A user's profile (home country and currency,
  typical amount, usual categories, favourite merchants) is a pure function of
  (seed, user index), so a pool of millions costs no memory. Users come in activity tiers
  (light, regular, heavy), so some buy several times a minute.
- Normal purchases: at home, in the user's categories, around the typical amount. A small
  fraction start a short trip abroad (a location change when the trip starts or ends
  mid-window) or splurge (1000-6000): the realistic false positives.
- Fraud, about `fraud_ratio` of all transactions, on a victim's card, as patterns:
  `high_amount` (one purchase 3000.01-15000), `country_hop` (2-4 purchases from distinct
  foreign countries), `risky_merchant` (one gambling/crypto/gift-card purchase, elevated
  but mostly <= 3000), `rapid_fire` (5-8 small purchases seconds apart). A burst reserves
  future slots and is kept inside one tumbling window of `window_seconds`, so a labelled
  pattern is always visible to window rules; measured recall then reflects the detector.
  Near the end of a `count`-limited stream, a burst that no longer fits becomes a
  single-transaction pattern, so no labelled burst is ever cut short.
- Amounts are in the user's home (card) currency, also abroad.

Use: `for item in generate(GeneratorConfig(start_time=t, rate=r, seed=s, count=n))`; the
same (seed, start_time, rate, count, and other fields) always gives the same items.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from statistics import NormalDist
from typing import Any

from faker import Faker

from libs.schemas.headers import FRAUD_LABEL_HEADER, FRAUD_PATTERN_HEADER
from libs.schemas.transaction import Transaction

HIGH_AMOUNT = "high_amount"
COUNTRY_HOP = "country_hop"
RISKY_MERCHANT = "risky_merchant"
RAPID_FIRE = "rapid_fire"
PATTERNS: tuple[str, ...] = (HIGH_AMOUNT, COUNTRY_HOP, RISKY_MERCHANT, RAPID_FIRE)

# Ground truth travels in Kafka headers (docs/design.md, topic `transactions`).

# Home countries and their currency, weighted. Only currencies worth roughly a US dollar
# or more: the rules compare raw amounts with 3000, which would flag every yen laptop.
HOME_COUNTRIES: tuple[tuple[str, str, int], ...] = (
    ("US", "USD", 30), ("GB", "GBP", 10), ("DE", "EUR", 9), ("FR", "EUR", 8),
    ("CA", "CAD", 6), ("AU", "AUD", 5), ("ES", "EUR", 5), ("IT", "EUR", 5),
    ("NL", "EUR", 4), ("IE", "EUR", 2), ("BE", "EUR", 2), ("AT", "EUR", 2),
    ("CH", "CHF", 2), ("SG", "SGD", 2), ("NZ", "NZD", 1), ("FI", "EUR", 1),
    ("PT", "EUR", 1),
)  # fmt: skip
# Where legitimate users travel to, and where stolen cards get used.
TRAVEL_COUNTRIES: tuple[str, ...] = (
    "US", "GB", "FR", "ES", "IT", "DE", "PT", "GR", "HR", "MX", "TH", "JP", "TR", "AE",
    "CA", "NL", "CH", "AT", "MA", "ID",
)  # fmt: skip
FRAUD_COUNTRIES: tuple[str, ...] = (
    "NG", "RU", "BR", "CN", "UA", "RO", "VN", "ID", "PH", "KZ", "TR", "MX", "IN", "ZA",
    "BG", "PK", "EG", "CO",
)  # fmt: skip

# Everyday categories and how much a purchase there costs relative to the user's typical one.
CATEGORY_FACTORS: dict[str, float] = {
    "grocery": 1.0,
    "restaurants": 0.8,
    "fuel": 1.2,
    "pharmacy": 0.6,
    "transport": 0.4,
    "clothing": 1.8,
    "online_services": 0.4,
    "entertainment": 0.9,
    "home_garden": 2.0,
    "electronics": 3.0,
    "travel": 5.0,
}
RISKY_CATEGORIES: tuple[str, ...] = ("gambling", "crypto", "gift_cards")
_MERCHANT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "grocery": ("Market", "Grocers", "Foods", "Supermarket", "Fresh"),
    "restaurants": ("Kitchen", "Bistro", "Grill", "Diner", "Pizzeria", "Cafe"),
    "fuel": ("Fuel", "Gas", "Petroleum", "Service Station"),
    "pharmacy": ("Pharmacy", "Drugstore", "Chemists"),
    "transport": ("Transit", "Taxi", "Rail", "Rides"),
    "clothing": ("Apparel", "Outfitters", "Clothing Co", "Boutique"),
    "online_services": ("Cloud", "Streaming", "Apps", "Online"),
    "entertainment": ("Cinemas", "Tickets", "Games", "Live"),
    "home_garden": ("Home", "Hardware", "Garden Center", "Furniture"),
    "electronics": ("Electronics", "Digital", "Tech Store", "Computers"),
    "travel": ("Airways", "Travel", "Hotels", "Tours"),
    "jewelry": ("Jewelers", "Diamonds", "Gold & Silver", "Watches"),
    "gambling": ("Casino", "Bet", "Poker", "Sportsbook"),
    "crypto": ("Crypto Exchange", "Coin", "Bitcoin ATM", "Digital Assets"),
    "gift_cards": ("Gift Cards", "eGift", "Vouchers", "Prepaid"),
}
_MERCHANTS_PER_CATEGORY = 150
_SPLURGE_CATEGORIES = ("electronics", "travel", "jewelry")
_HIGH_AMOUNT_CATEGORIES = ("electronics", "jewelry", "travel")
_HOP_CATEGORIES = ("electronics", "clothing", "jewelry", "travel", "gift_cards")
_CARD_TESTING_CATEGORIES = ("online_services", "gift_cards", "electronics")

# Activity tiers: (share of users, relative purchase frequency); mean frequency ~1.
_TIERS: tuple[tuple[float, float], ...] = ((0.10, 2.0), (0.50, 1.1), (0.40, 0.6))
_TYPICAL_MEDIAN, _TYPICAL_SIGMA = 35.0, 0.5  # users' typical purchase, lognormal
_PURCHASE_SIGMA = 0.55  # one purchase around the user's typical amount
_FAVOURITE_SHARE = 0.6  # purchases at one of the user's three favourite merchants
_HABITS = 64  # distinct category mixes users are drawn from

_M64 = (1 << 64) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_CENTS = 1_500_000  # 15000.00


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """What to generate. Same config, same stream (for a given Faker version).

    `start_time` is truncated to whole milliseconds. `count=None` is an endless stream.
    `users=None` sizes the pool as `rate * mean_purchase_interval`. `window_seconds` is the
    detector's tumbling window (epoch-aligned); bursts are kept inside one (0: no
    alignment). Patterns need `rate` >= about 1 tx/s to fit a window.
    """

    start_time: datetime
    rate: float
    seed: int = 0
    count: int | None = None
    fraud_ratio: float = 0.10
    users: int | None = None
    mean_purchase_interval: float = 60.0
    window_seconds: int = 60
    patterns: tuple[str, ...] = PATTERNS
    travel_probability: float = 0.002
    splurge_probability: float = 0.001

    def __post_init__(self) -> None:
        if self.start_time.tzinfo is None or self.start_time.utcoffset() is None:
            raise ValueError(f"start_time={self.start_time!r} must be timezone-aware")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate={self.rate} must be a finite number > 0 (tx/s)")
        if self.count is not None and self.count < 0:
            raise ValueError(f"count={self.count} must be >= 0 or None (endless)")
        if not 0 <= self.fraud_ratio < 1:
            raise ValueError(f"fraud_ratio={self.fraud_ratio} must be in [0, 1)")
        if self.users is not None and self.users < 1:
            raise ValueError(f"users={self.users} must be >= 1 or None (derived from rate)")
        if not self.mean_purchase_interval > 0:
            raise ValueError(f"mean_purchase_interval={self.mean_purchase_interval} must be > 0")
        if self.window_seconds < 0:
            raise ValueError(f"window_seconds={self.window_seconds} must be >= 0")
        unknown = sorted(set(self.patterns) - set(PATTERNS))
        if unknown or not self.patterns:
            raise ValueError(
                f"patterns={list(self.patterns)} must be a non-empty subset of {list(PATTERNS)}"
            )
        for name in ("travel_probability", "splurge_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1]")

    @property
    def user_count(self) -> int:
        """Size of the user pool."""
        if self.users is not None:
            return self.users
        return max(1, round(self.rate * self.mean_purchase_interval))


@dataclass(frozen=True, slots=True)
class GeneratedTransaction:
    """One transaction and its ground truth.

    `pattern` is the fraud pattern name, "" for normal traffic. `incident` numbers fraud
    pattern instances from 1 (all transactions of one burst share it); 0 for normal.
    """

    transaction: Transaction
    fraud_label: bool
    pattern: str
    incident: int = 0

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carrying the ground truth (`fraud-label`, `fraud-pattern`)."""
        return [
            (FRAUD_LABEL_HEADER, b"1" if self.fraud_label else b"0"),
            (FRAUD_PATTERN_HEADER, self.pattern.encode()),
        ]


def generate(config: GeneratorConfig) -> Iterator[GeneratedTransaction]:
    """The stream described by `config` (see the module docstring)."""
    return _Simulation(config).run()


def user_id(config: GeneratorConfig, index: int) -> str:
    """Id of user `index` (0 <= index < config.user_count) in this config's pool."""
    return _user_prefix(config.seed) + f"{index:07d}"


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _user_prefix(seed: int) -> str:
    # A seed-specific prefix: runs with different seeds (almost surely) share no user, so
    # two overlapping runs never mix two home countries into one user's window.
    return f"u{_mix64(seed & _M64) & 0xFFFFFF:06x}-"


def _weighted_table(items: tuple[tuple[str, str, int], ...], size: int) -> tuple[int, ...]:
    """Indices into `items`, each repeated in proportion to its weight, `size` long."""
    total = sum(w for *_, w in items)
    shares = [w * size / total for *_, w in items]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(items)), key=lambda i: counts[i] - shares[i])
    for i in by_remainder[: size - sum(counts)]:
        counts[i] += 1
    return tuple(i for i, n in enumerate(counts) for _ in range(n))


def _cents(value: float) -> int:
    return min(_MAX_CENTS, max(50, int(value * 100 + 0.5)))


def _amount(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


class _Simulation:
    """State of one stream: pools built once, then one slot per transaction."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        start = config.start_time.astimezone(UTC)
        self.start_ms = (start - _EPOCH) // timedelta(milliseconds=1)
        self.start = _EPOCH + timedelta(milliseconds=self.start_ms)
        # Ids depend on the start time too: a rerun with the same seed later never
        # repeats a transaction_id, while the same (seed, start_time) reproduces them.
        self.id_rng = random.Random(f"transaction-ids:{config.seed}:{self.start_ms}")
        self.interval_ms = 1000.0 / config.rate
        self.window_ms = config.window_seconds * 1000
        self.end = config.count
        self.user_key = _mix64(config.seed & _M64)
        self.user_prefix = _user_prefix(config.seed)
        self._build_pools(config.seed)
        self._build_tiers(config.user_count)
        self.trips: dict[int, list[Any]] = {}  # user index -> [country, purchases left]
        self.reserved: dict[int, GeneratedTransaction] = {}  # slot -> burst member
        self.incidents = 0
        self._last_ms = -1
        self._last_time = self.start

    # -- pools ---------------------------------------------------------------------------

    def _build_pools(self, seed: int) -> None:
        fake = Faker("en_US")
        fake.seed_instance(seed)
        pools: dict[str, tuple[str, ...]] = {}
        for category, suffixes in _MERCHANT_SUFFIXES.items():
            names: dict[str, None] = {}  # ordered set: deterministic order
            while len(names) < _MERCHANTS_PER_CATEGORY:
                names[f"{fake.last_name()} {fake.random_element(suffixes)}"] = None
            pools[category] = tuple(names)
        self.merchants = pools
        self.home_lookup = tuple(
            HOME_COUNTRIES[i][:2] for i in _weighted_table(HOME_COUNTRIES, 1024)
        )
        normal = NormalDist()
        self.typical_levels = tuple(
            _TYPICAL_MEDIAN * math.exp(_TYPICAL_SIGMA * normal.inv_cdf((k + 0.5) / 64))
            for k in range(64)
        )
        # Habits: a user's category mix as 16 weighted entries (indexed by 4 hash bits).
        habit_rng = random.Random(f"habits:{seed}")
        everyday = list(CATEGORY_FACTORS)
        habits = []
        for _ in range(_HABITS):
            usual = ["grocery", *habit_rng.sample(everyday[1:], habit_rng.randint(2, 4))]
            weights = [habit_rng.uniform(0.5, 3.0) for _ in usual]
            habits.append(tuple(habit_rng.choices(usual, weights, k=16)))
        self.habits = tuple(habits)
        self.travel_from = {
            home: tuple(c for c in TRAVEL_COUNTRIES if c != home) for home, _, _ in HOME_COUNTRIES
        }
        self.fraud_from = {
            home: tuple(c for c in FRAUD_COUNTRIES if c != home) for home, _, _ in HOME_COUNTRIES
        }
        lengths = {HIGH_AMOUNT: 1, COUNTRY_HOP: 3, RISKY_MERCHANT: 1, RAPID_FIRE: 6.5}
        self.mean_incident_size = sum(lengths[p] for p in self.config.patterns) / len(
            self.config.patterns
        )

    def _build_tiers(self, users: int) -> None:
        """Tiers as index ranges; picking a tier by its share of purchases, then a user."""
        sizes = [int(share * users) for share, _ in _TIERS]
        sizes[1] += users - sum(sizes)
        tiers, lo, total = [], 0, 0.0
        for (_, activity), size in zip(_TIERS, sizes, strict=True):
            if size:
                total += size * activity
                tiers.append((total, lo, size))
            lo += size
        self.tiers = tuple((cum / total, lo, size) for cum, lo, size in tiers)

    # -- the stream ----------------------------------------------------------------------

    def run(self) -> Iterator[GeneratedTransaction]:
        config, rng, reserved = self.config, self.rng, self.reserved
        ratio = config.fraud_ratio
        # Fraud debt: grows by `ratio` per slot, paid by each fraud transaction scheduled.
        # Starting a pattern when it passes a random trigger keeps the ratio exact in the
        # long run while incidents still start at irregular times.
        debt, trigger = 0.0, rng.expovariate(1.0) * self.mean_incident_size
        slot = 0
        while self.end is None or slot < self.end:
            debt += ratio
            member = reserved.pop(slot, None) if reserved else None
            if member is not None:
                yield member
            elif ratio and debt >= trigger:
                scheduled = self._start_incident(slot)
                debt -= scheduled
                trigger = rng.expovariate(1.0) * self.mean_incident_size
                yield reserved.pop(slot, None) or self._normal(slot)
            else:
                yield self._normal(slot)
            slot += 1

    def _time(self, slot: int) -> datetime:
        ms = int(slot * self.interval_ms)
        if ms != self._last_ms:  # many slots share a millisecond at high rates
            self._last_ms = ms
            self._last_time = self.start + timedelta(milliseconds=ms)
        return self._last_time

    def _offset_ms(self, slot: int) -> int:
        return int(slot * self.interval_ms)

    def _slot_at(self, offset_ms: int) -> int:
        """The first slot whose time is >= offset_ms."""
        slot = max(0, math.ceil(offset_ms / self.interval_ms))
        while slot > 0 and self._offset_ms(slot - 1) >= offset_ms:
            slot -= 1
        while self._offset_ms(slot) < offset_ms:
            slot += 1
        return slot

    def _transaction_id(self) -> str:
        bits = self.id_rng.getrandbits(128)
        # RFC 4122 version 4 / variant 10xx, like uuid.uuid4().
        bits = (bits & ~(0xF << 76) & ~(0x3 << 62)) | (0x4 << 76) | (0x2 << 62)
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _pick_user(self) -> int:
        r = self.rng.random()
        for cum, lo, size in self.tiers:
            if r < cum:
                return lo + int(self.rng.random() * size)
        _, lo, size = self.tiers[-1]
        return lo + size - 1

    def _normal(self, slot: int) -> GeneratedTransaction:
        rng = self.rng
        index = self._pick_user()
        h = _mix64(self.user_key ^ index)
        country, currency = self.home_lookup[h & 1023]
        if rng.random() < _FAVOURITE_SHARE:
            bits = (h >> (22 + 14 * int(rng.random() * 3))) & 0x3FFF
            category = self.habits[(h >> 16) & 63][bits & 15]
            pool = self.merchants[category]
            merchant = pool[(bits >> 4) % len(pool)]
        else:
            category = self.habits[(h >> 16) & 63][int(rng.random() * 16)]
            pool = self.merchants[category]
            merchant = pool[int(rng.random() * len(pool))]
        if rng.random() < self.config.splurge_probability:
            category = _SPLURGE_CATEGORIES[int(rng.random() * 3)]
            pool = self.merchants[category]
            merchant = pool[int(rng.random() * len(pool))]
            cents = rng.randint(100_000, 600_000)
        else:
            typical = self.typical_levels[(h >> 10) & 63] * CATEGORY_FACTORS[category]
            cents = _cents(typical * math.exp(rng.gauss(0.0, _PURCHASE_SIGMA)))
        trip = self.trips.get(index)
        if trip is not None:
            country = trip[0]
            trip[1] -= 1
            if trip[1] <= 0:
                del self.trips[index]
        elif rng.random() < self.config.travel_probability:
            destinations = self.travel_from[country]
            country = destinations[int(rng.random() * len(destinations))]
            self.trips[index] = [country, rng.randint(1, 10)]  # purchases after this one
        transaction = Transaction(
            self._transaction_id(),
            self.user_prefix + f"{index:07d}",
            _amount(cents),
            currency,
            merchant,
            category,
            country,
            self._time(slot),
        )
        return GeneratedTransaction(transaction, False, "")

    # -- fraud ---------------------------------------------------------------------------

    def _start_incident(self, slot: int) -> int:
        """Reserve the slots of one fraud incident; returns how many transactions it has.

        The first member may take `slot` itself; a burst that would cross a window
        boundary (or the end of the stream) moves to the next window, and falls back to a
        single-transaction pattern if it fits nowhere.
        """
        rng = self.rng
        index = self._pick_user()
        h = _mix64(self.user_key ^ index)
        home, currency = self.home_lookup[h & 1023]
        pattern = self.config.patterns[int(rng.random() * len(self.config.patterns))]
        members = self._members(pattern, home)
        offsets = [offset for offset, *_ in members]
        slots = self._place(slot, offsets)
        if slots is None and self.window_ms:
            # Too late in this window: start at a random time in the next one where the
            # whole burst still fits (not at its first slot, which would pile bursts up
            # at every window boundary).
            next_window = (
                (self.start_ms + self._offset_ms(slot)) // self.window_ms + 1
            ) * self.window_ms - self.start_ms
            margin = int(len(offsets) * self.interval_ms) + 100  # slot rounding, collisions
            slack = max(0, self.window_ms - offsets[-1] - margin)
            first = self._slot_at(next_window + rng.randint(0, slack))
            while first in self.reserved:
                first += 1
            slots = self._place(first, offsets)
        if slots is None:
            singles = [p for p in (HIGH_AMOUNT, RISKY_MERCHANT) if p in self.config.patterns]
            if not singles:
                return 0  # only bursts configured and none fits: try again next slot
            pattern = singles[int(rng.random() * len(singles))]
            members = self._members(pattern, home)
            slots = [slot]
        self.incidents += 1
        user = self.user_prefix + f"{index:07d}"
        for at, (_, cents, merchant, category, country) in zip(slots, members, strict=True):
            transaction = Transaction(
                self._transaction_id(),
                user,
                _amount(cents),
                currency,
                merchant,
                category,
                country,
                self._time(at),
            )
            self.reserved[at] = GeneratedTransaction(transaction, True, pattern, self.incidents)
        return len(slots)

    def _place(self, first: int, offsets_ms: list[int]) -> list[int] | None:
        """Free slots for members at `offsets_ms` after slot `first`, all in its window."""
        t0 = self._offset_ms(first)
        window = (self.start_ms + t0) // self.window_ms if self.window_ms else 0
        slots: list[int] = []
        previous = first - 1
        for offset in offsets_ms:
            at = max(previous + 1, self._slot_at(t0 + offset))
            while at in self.reserved:
                at += 1
            if self.end is not None and at >= self.end:
                return None
            if self.window_ms and (self.start_ms + self._offset_ms(at)) // self.window_ms != window:
                return None
            slots.append(at)
            previous = at
        return slots

    def _merchant(self, categories: tuple[str, ...]) -> tuple[str, str]:
        category = categories[int(self.rng.random() * len(categories))]
        pool = self.merchants[category]
        return pool[int(self.rng.random() * len(pool))], category

    def _members(self, pattern: str, home: str) -> list[tuple[int, int, str, str, str]]:
        """(offset ms from the first, cents, merchant, category, country) per transaction."""
        rng = self.rng
        if pattern == HIGH_AMOUNT:
            merchant, category = self._merchant(_HIGH_AMOUNT_CATEGORIES)
            return [(0, rng.randint(300_001, _MAX_CENTS), merchant, category, home)]
        if pattern == RISKY_MERCHANT:
            merchant, category = self._merchant(RISKY_CATEGORIES)
            cents = _cents(800 * math.exp(rng.gauss(0.0, 0.9)))  # ~7% above 3000
            return [(0, cents, merchant, category, home)]
        if pattern == COUNTRY_HOP:
            countries = rng.sample(self.fraud_from[home], rng.randint(2, 4))
            members, offset = [], 0
            for country in countries:
                merchant, category = self._merchant(_HOP_CATEGORIES)
                members.append((offset, rng.randint(2_000, 90_000), merchant, category, country))
                offset += rng.randint(2_000, 15_000)
            return members
        if pattern == RAPID_FIRE:
            # Card testing: small amounts, mostly at one online merchant, seconds apart.
            merchant, category = self._merchant(_CARD_TESTING_CATEGORIES)
            members, offset = [], 0
            for _ in range(rng.randint(5, 8)):
                if rng.random() < 0.3:
                    merchant, category = self._merchant(_CARD_TESTING_CATEGORIES)
                members.append((offset, rng.randint(100, 6_000), merchant, category, home))
                offset += rng.randint(200, 3_000)
            return members
        raise ValueError(f"pattern={pattern!r} is not one of {list(PATTERNS)}")
