"""Business state of the simulated company: customers, products, subscriptions, invoices.

The flows read and change this state as transactions happen, so later transactions refer to
earlier ones: an order belongs to an onboarded customer, an invoice to an activated
subscription, a payment to an invoice. Keys are sequential per object type, like the numbering
ranges of a real ERP, which keeps them readable and reproducible.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sample_data.incidents import Incident

# Legal entities of the company: code, currency, share of customers.
ENTITIES: tuple[tuple[str, str, float], ...] = (
    ("US01", "USD", 0.5),
    ("DE01", "EUR", 0.3),
    ("GB01", "GBP", 0.2),
)

INITIAL_CUSTOMERS = 400
INITIAL_ITEMS = 80
USAGE_ADDON_SHARE = 0.6
# New subscriptions replace churned ones, so the base (and the hourly usage accruals it drives)
# stays level over a long run instead of growing into a trend the detectors would flag.
MAX_SUBSCRIPTIONS = 480


@dataclass
class Customer:
    """A customer account: CRM key, billing legal entity and currency, ERP presence."""

    key: str
    entity: str
    currency: str
    in_erp: bool
    correlation_id: str


@dataclass
class Item:
    """A product offer from the catalog and whether the ERP item master has it yet."""

    sku: str
    list_price: float
    in_erp: bool


@dataclass
class Subscription:
    """An active subscription; usage add-ons produce usage events."""

    key: str
    customer: Customer
    item: Item
    correlation_id: str
    has_usage: bool
    unit_price: float


@dataclass
class Transaction:
    """One business transaction as the integration layer sees it, carried across its traces.

    ``posts`` counts successful ERP postings (two means a duplicate); ``state`` is where the
    integration left it: new, posted, failed, parked, dropped, replaying or abandoned.
    ``master_incident`` is the incident that made its customer or item missing in the ERP.
    """

    flow: str
    key: str
    correlation_id: str
    amount: float | None
    currency: str | None
    entity: str | None = None
    customer: Customer | None = None
    item: Item | None = None
    created_ns: int = 0
    posts: int = 0
    attempts: int = 0
    state: str = "new"
    master_incident: Incident | None = field(default=None, repr=False)
    on_posted: Callable[[int], None] | None = field(default=None, repr=False)


class World:
    """The company's master data and open business, plus the key and id sequences."""

    def __init__(self, rng: random.Random, run: int = 0) -> None:
        self.rng = rng
        self._run = run
        self._counters: dict[str, itertools.count[int]] = {}
        self.customers: list[Customer] = []
        self.items: list[Item] = []
        self.subscriptions: list[Subscription] = []
        self.usage_subscriptions: list[Subscription] = []
        self.open_invoices: list[Transaction] = []
        self.invoices: list[Transaction] = []
        self.payments: list[Transaction] = []
        for _ in range(INITIAL_ITEMS):
            self.new_item(in_erp=True)
        for _ in range(INITIAL_CUSTOMERS):
            customer = self.new_customer(in_erp=True)
            self.new_subscription(customer)

    def next_key(self, prefix: str, first: int) -> str:
        """The next key of a numbering range, e.g. ``SO-100001`` (``SO-R2-100001`` in run 2)."""
        counter = self._counters.setdefault(prefix, itertools.count(first))
        return self.key(prefix, str(next(counter)))

    def key(self, prefix: str, rest: str) -> str:
        """A business key of this run: ``RECON-2025-03-03-US`` (``RECON-R2-...`` in run 2)."""
        if self._run:
            # Runs that share a store number their keys apart, e.g. SO-R2-100001.
            return f"{prefix}-R{self._run}-{rest}"
        return f"{prefix}-{rest}"

    def correlation_id(self) -> str:
        """A UUID drawn from the run's generator, so it repeats for a seed."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def money(self, median: float, spread: float = 0.6) -> float:
        """A log-normal amount around ``median``, rounded to cents."""
        return round(median * math.exp(self.rng.gauss(0.0, spread)), 2)

    def new_customer(self, in_erp: bool) -> Customer:
        """A customer in one of the legal entities; in the ERP only once onboarded."""
        entity, currency = self._entity()
        customer = Customer(
            self.next_key("CUST", 10001), entity, currency, in_erp, self.correlation_id()
        )
        self.customers.append(customer)
        return customer

    def new_item(self, in_erp: bool) -> Item:
        """A product offer; launched items reach the ERP item master through catalog sync."""
        item = Item(self.next_key("SKU", 4001), self.money(900.0, 0.9), in_erp)
        self.items.append(item)
        return item

    def new_subscription(self, customer: Customer, item: Item | None = None) -> Subscription:
        """A subscription of ``customer``; most carry a usage-based add-on."""
        subscription = Subscription(
            self.next_key("SUB", 500001),
            customer,
            item or self.rng.choice(self.items),
            customer.correlation_id,
            self.rng.random() < USAGE_ADDON_SHARE,
            round(self.rng.choice((0.002, 0.01, 0.05, 0.25, 1.5)), 4),
        )
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            self._churn()
        self.subscriptions.append(subscription)
        if subscription.has_usage:
            self.usage_subscriptions.append(subscription)
        return subscription

    def _churn(self) -> None:
        """End a random subscription to make room for a new one."""
        index = self.rng.randrange(len(self.subscriptions))
        ended = self.subscriptions[index]
        self.subscriptions[index] = self.subscriptions[-1]
        self.subscriptions.pop()
        if ended.has_usage:
            self.usage_subscriptions.remove(ended)

    def erp_customer(self) -> Customer:
        """A customer already in the ERP (existing customers buy again)."""
        while True:
            customer = self.rng.choice(self.customers)
            if customer.in_erp:
                return customer

    def take_open_invoice(self, older_than_ns: int) -> Transaction | None:
        """An invoice posted before ``older_than_ns`` and not yet paid, if one is waiting."""
        candidates = self.open_invoices
        for _ in range(4):
            if not candidates:
                return None
            index = self.rng.randrange(len(candidates))
            invoice = candidates[index]
            if invoice.created_ns <= older_than_ns:
                candidates[index] = candidates[-1]
                candidates.pop()
                return invoice
        return None

    def forget_before(self, cutoff_ns: int) -> None:
        """Drop reconciled history older than ``cutoff_ns`` so endless runs stay bounded."""
        self.invoices = [txn for txn in self.invoices if txn.created_ns >= cutoff_ns]
        self.payments = [txn for txn in self.payments if txn.created_ns >= cutoff_ns]

    def _entity(self) -> tuple[str, str]:
        pick = self.rng.random()
        for entity, currency, share in ENTITIES:
            if pick < share:
                return entity, currency
            pick -= share
        return ENTITIES[-1][0], ENTITIES[-1][1]
