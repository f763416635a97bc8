"""The order-to-cash workflow of the simulated stack, written as the spans each hop emits.

Every method plays one hop of a business transaction at a moment of simulated time and writes
the trace that hop would produce in a real deployment. Asynchronous hops schedule the next hop
on the event loop; the consuming trace links to the producing span and keeps the transaction's
correlation id, so one transaction spans several traces.

Hops, by flow:

* ``customer.onboarding`` (canonical): CRM account -> canonical-mapper resolves the hierarchy
  and maps a CustomerAccount -> ERP customer and receivables account.
* ``order-to-cash.order-submit`` (api): CPQ contract acceptance -> integration-api validates,
  enriches through canonical-mapper, transforms and posts the ERP sales order, answering
  accepted, rejected or pending.
* ``billing.subscription-activate`` (event): billing -> event-router -> integration-api -> ERP
  revenue contract; activation is followed by the first invoice.
* ``billing.invoice-post`` (event): billing -> event-router -> integration-api -> ERP invoice.
* ``usage.usage-post`` (event): billing usage events -> event-router aggregation, posted hourly
  as ERP accruals.
* ``payments.payment-apply`` (event): payment processor -> integration-api -> ERP receivables,
  then ``support.health-signal`` fans out through event-router to CRM and support.
* ``catalog.item-sync`` (event): product.created and price.updated -> ERP item master.
* ``finance.reconciliation`` (batch): nightly billing totals against ERP postings, replaying
  what never arrived.
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import NormalDist

from opentelemetry.sdk.trace import Tracer
from opentelemetry.trace import Link, SpanContext, SpanKind

from sample_data import incidents as inc
from sample_data.telemetry import Attributes, TraceWriter
from sample_data.world import ENTITIES, Customer, Item, Subscription, Transaction, World

logger = logging.getLogger(__name__)

NS_PER_MS = 1_000_000
NS_PER_MINUTE = 60 * 1_000_000_000
NS_PER_HOUR = 60 * NS_PER_MINUTE

# log-normal spread of ERP posting times around a posting's median
ERP_LATENCY_SPREAD = 0.5
# a latency drift counts a posting as affected from the multiplier at which a typical posting
# is slower than 99 in 100 normal ones (about 3.2x at this spread)
NOTICEABLE_DRIFT = math.exp(NormalDist().inv_cdf(0.99) * ERP_LATENCY_SPREAD)

SERVER = SpanKind.SERVER
CLIENT = SpanKind.CLIENT
PRODUCER = SpanKind.PRODUCER
CONSUMER = SpanKind.CONSUMER
INTERNAL = SpanKind.INTERNAL

ERP_HOST = "api.erp.example.com"
MAPPER_HOST = "canonical-mapper.middleware.svc.cluster.local"
INTEGRATION_API_HOST = "integration-api.middleware.svc.cluster.local"
BILLING_HOST = "api.billing.example.com"
MAPPER_RPC_SERVICE = "mapping.v1.CanonicalMapper"
MAX_LINKS = 32
MAX_REPLAY_ATTEMPTS = 6

ONBOARDING = "customer.onboarding"
ORDER_SUBMIT = "order-to-cash.order-submit"
SUBSCRIPTION_ACTIVATE = "billing.subscription-activate"
INVOICE_POST = "billing.invoice-post"
USAGE_POST = "usage.usage-post"
PAYMENT_APPLY = "payments.payment-apply"
HEALTH_SIGNAL = "support.health-signal"
ITEM_SYNC = "catalog.item-sync"
RECONCILIATION = "finance.reconciliation"


@dataclass(frozen=True)
class Posting:
    """How one flow posts to the ERP: who calls, which endpoint, how long the ERP usually takes."""

    flow: str
    pattern: str
    source: str
    business_object: str
    caller: str
    method: str
    route: str
    operation: str
    median_ms: float
    timeout_ms: float


POSTINGS: dict[str, Posting] = {
    posting.flow: posting
    for posting in (
        Posting(
            flow=ONBOARDING,
            pattern="canonical",
            source="crm",
            business_object="CustomerAccount",
            caller="canonical-mapper",
            method="POST",
            route="/api/v1/customers",
            operation="Customer.create",
            median_ms=600,
            timeout_ms=10_000,
        ),
        Posting(
            flow=ORDER_SUBMIT,
            pattern="api",
            source="cpq",
            business_object="SalesOrder",
            caller="integration-api",
            method="POST",
            route="/api/v1/salesOrders",
            operation="SalesOrder.create",
            median_ms=450,
            timeout_ms=8_000,
        ),
        Posting(
            flow=SUBSCRIPTION_ACTIVATE,
            pattern="event",
            source="billing",
            business_object="SubscriptionContract",
            caller="integration-api",
            method="POST",
            route="/api/v1/revenueContracts",
            operation="RevenueContract.create",
            median_ms=500,
            timeout_ms=10_000,
        ),
        Posting(
            flow=INVOICE_POST,
            pattern="event",
            source="billing",
            business_object="Invoice",
            caller="integration-api",
            method="POST",
            route="/api/v1/arInvoices",
            operation="ARInvoice.create",
            median_ms=320,
            timeout_ms=8_000,
        ),
        Posting(
            flow=USAGE_POST,
            pattern="event",
            source="billing",
            business_object="UsageAccrual",
            caller="event-router",
            method="POST",
            route="/api/v1/accruals",
            operation="Accrual.create",
            median_ms=350,
            timeout_ms=10_000,
        ),
        Posting(
            flow=PAYMENT_APPLY,
            pattern="event",
            source="payments",
            business_object="Payment",
            caller="integration-api",
            method="POST",
            route="/api/v1/receivables/receipts",
            operation="CashReceipt.apply",
            median_ms=260,
            timeout_ms=8_000,
        ),
        Posting(
            flow=ITEM_SYNC,
            pattern="event",
            source="catalog",
            business_object="ProductOffer",
            caller="canonical-mapper",
            method="POST",
            route="/api/v1/items",
            operation="Item.upsert",
            median_ms=400,
            timeout_ms=10_000,
        ),
    )
}


@dataclass(frozen=True)
class Failure:
    """Why a hop failed: category of design.md section 4, message, exception type, status.

    ``incident`` is the injected incident behind the failure, if one is.
    """

    category: str
    message: str
    exception_type: str
    http_status: int
    incident: inc.Incident | None = field(default=None, compare=False)

    @property
    def retryable(self) -> bool:
        """Whether the integration layer answers pending and replays on its own."""
        return self.category in ("timeout", "rate_limit", "auth", "master_data_missing")


class Scheduler:
    """What the flows need from the event loop: schedule a hop at a simulated time."""

    def schedule(self, at_ns: int, action: Callable[..., None], *args: object) -> None:
        """Run ``action(at_ns, *args)`` when simulated time reaches ``at_ns``."""
        raise NotImplementedError


class IncidentBook:
    """The incidents in force; flows ask it whether a transaction is hit."""

    def __init__(self) -> None:
        self.active_incidents: list[inc.Incident] = []
        self._recoveries: dict[int, list[Callable[[int], None]]] = defaultdict(list)
        # customers and items an incident made missing in the ERP, by id, until they arrive
        self._missing: dict[int, inc.Incident] = {}
        # called with an incident and the time when the last record it made missing arrives
        self.on_records_arrived: Callable[[inc.Incident, int], None] | None = None

    def active(self, kind: str, flow: str, now_ns: int) -> inc.Incident | None:
        """The incident of ``kind`` hitting ``flow`` at ``now_ns``, if any."""
        for incident in self.active_incidents:
            if (
                incident.kind == kind
                and incident.flow == flow
                and incident.start_ns <= now_ns < incident.end_ns
            ):
                return incident
        return None

    def on_recovery(self, incident: inc.Incident, action: Callable[[int], None]) -> None:
        """Run ``action`` once ``incident`` is over (the fix is deployed, the data arrives)."""
        self._recoveries[id(incident)].append(action)

    def made_missing(self, incident: inc.Incident, record: Customer | Item) -> None:
        """Note that ``incident`` keeps ``record`` out of the ERP until it is synced."""
        self._missing[id(record)] = incident

    def arrived(self, record: Customer | Item, now_ns: int) -> None:
        """``record`` reached the ERP; the last one of its incident settles that incident."""
        incident = self._missing.pop(id(record), None)
        if incident is None or self.awaits(incident) or self.on_records_arrived is None:
            return
        self.on_records_arrived(incident, now_ns)

    def awaits(self, incident: inc.Incident) -> bool:
        """Whether a record ``incident`` made missing has not reached the ERP yet."""
        return any(waiting is incident for waiting in self._missing.values())

    def start(self, incident: inc.Incident) -> None:
        """Put ``incident`` in force."""
        self.active_incidents.append(incident)

    def finish(self, incident: inc.Incident) -> list[Callable[[int], None]]:
        """Take ``incident`` out of force; returns the recoveries waiting for its end."""
        self.active_incidents.remove(incident)
        return self._recoveries.pop(id(incident), [])


class Stack:
    """The simulated SaaS-to-ERP stack: writes each hop's spans and schedules the next hop."""

    def __init__(
        self,
        tracers: Mapping[str, Tracer],
        rng: random.Random,
        world: World,
        scheduler: Scheduler,
        incidents: IncidentBook,
    ) -> None:
        self.tracers = tracers
        self.rng = rng
        self.world = world
        self.scheduler = scheduler
        self.incidents = incidents
        self.transactions: dict[str, int] = defaultdict(int)
        self._usage_window: dict[str, list[tuple[Subscription, str, float, SpanContext]]] = {}

    # ----------------------------------------------------------------- helpers

    def ms(self, median: float, spread: float = 0.45) -> float:
        """A log-normal duration in milliseconds around ``median``."""
        return median * math.exp(self.rng.gauss(0.0, spread))

    def later(self, now_ns: int, low_minutes: float, high_minutes: float) -> int:
        """A moment between ``low_minutes`` and ``high_minutes`` after ``now_ns``."""
        return now_ns + int(self.rng.uniform(low_minutes, high_minutes) * NS_PER_MINUTE)

    def writer(self, now_ns: int, txn: Transaction, replay: bool = False) -> TraceWriter:
        """A trace writer whose spans carry ``txn``'s business attributes."""
        return TraceWriter(self.tracers, now_ns, business_attributes(txn, replay))

    def count(self, flow: str) -> None:
        """Count one business transaction started in ``flow``."""
        self.transactions[flow] += 1

    def chance(self, probability: float) -> bool:
        """True with ``probability``."""
        return self.rng.random() < probability

    # ------------------------------------------------------------ shared hops

    def publish(self, tw: TraceWriter, service: str, topic: str, event: str) -> SpanContext:
        """A producer span of ``service`` sending ``event`` to ``topic``; returns its context."""
        attrs = messaging_attributes("send", "publish", topic)
        attrs["cloudevents.event_type"] = event
        with tw.span(service, f"send {topic}", PRODUCER, "publish", attrs) as producer:
            tw.wait(self.ms(4, 0.5))
        return producer.context

    def route(
        self, at_ns: int, txn: Transaction, link: SpanContext, topic: str, out_topic: str
    ) -> SpanContext:
        """The event-router hop: consume from ``topic``, route, publish to ``out_topic``."""
        tw = self.writer(at_ns, txn)
        attrs = messaging_attributes("process", "process", topic, "event-router")
        with tw.span("event-router", f"process {topic}", CONSUMER, "receive", attrs, [Link(link)]):
            tw.wait(self.ms(2))
            with tw.span(
                "event-router",
                "route event",
                INTERNAL,
                "route",
                {"messaging.destination.name": out_topic},
            ):
                tw.wait(self.ms(3))
            attrs = messaging_attributes("send", "publish", out_topic)
            with tw.span("event-router", f"send {out_topic}", PRODUCER, "publish", attrs) as out:
                tw.wait(self.ms(4, 0.5))
        return out.context

    def map_rpc(
        self,
        tw: TraceWriter,
        caller: str,
        method: str,
        stage: str,
        txn: Transaction,
        burst_applies: bool = True,
    ) -> Failure | None:
        """A gRPC call to canonical-mapper; a mapping failure there fails the caller's span."""
        client_attrs = rpc_attributes(method)
        client_attrs["peer.service"] = "canonical-mapper"
        failure = self.mapping_failure(txn, tw.now, burst_applies)
        with tw.span(caller, f"{MAPPER_RPC_SERVICE}/{method}", CLIENT, stage, client_attrs) as cl:
            tw.wait(self.ms(1.5))
            with tw.span(
                "canonical-mapper",
                f"{MAPPER_RPC_SERVICE}/{method}",
                SERVER,
                stage,
                rpc_attributes(method),
            ) as server:
                tw.wait(self.ms(12))
                if failure:
                    server.fail(failure.category, failure.message, failure.exception_type)
                server.span.set_attribute("rpc.grpc.status_code", 3 if failure else 0)
            tw.wait(self.ms(1.5))
            cl.span.set_attribute("rpc.grpc.status_code", 3 if failure else 0)
            if failure:
                cl.fail(failure.category, failure.message, "grpc.RpcError", "INVALID_ARGUMENT")
        return failure

    def mapping_failure(
        self, txn: Transaction, now_ns: int, burst_applies: bool = True
    ) -> Failure | None:
        """Mapping errors: rare on their own; during a mapping-error burst every transaction
        carrying the code whose mapping broke (its customer's, or its own without one)."""
        incident = self.incidents.active(inc.MAPPING_ERROR_BURST, txn.flow, now_ns)
        owner = txn.customer.key if txn.customer is not None else txn.key
        if incident and burst_applies and incident.carries_code(owner):
            incident.affect(txn.key, now_ns)
            return mapping_error(txn, self.rng, incident)
        if self.chance(0.001):
            return mapping_error(txn, self.rng, None)
        return None

    def erp_post(
        self,
        tw: TraceWriter,
        txn: Transaction,
        route: str | None = None,
        operation: str | None = None,
        method: str | None = None,
    ) -> Failure | None:
        """Post ``txn`` to the ERP: client span of the caller, ERP server and persist spans.

        Latency follows the flow's median, stretched by any latency drift in force; a post
        slower than the caller's timeout fails the client with a timeout while the ERP keeps
        working until it notices the closed connection and rolls back.
        """
        posting = POSTINGS[txn.flow]
        method = method or posting.method
        route = route or posting.route
        latency = self.erp_latency(posting, txn, tw.now)
        timed_out = latency > posting.timeout_ms
        if timed_out:
            failure: Failure | None = timeout_failure(posting)
        else:
            failure = self.master_data_failure(txn, tw.now) or self.erp_baseline_failure(txn)
        client_start = tw.now
        with tw.span(
            posting.caller,
            f"{method} {route}",
            CLIENT,
            "post",
            http_client_attributes(method, route),
        ) as client:
            tw.wait(self.ms(3))
            if timed_out:
                cutoff = client_start + int(posting.timeout_ms * NS_PER_MS)
                operation = operation or posting.operation
                self.erp_server(tw, method, route, operation, latency, failure, cutoff)
                tw.now = cutoff
                client.fail("timeout", failure.message, "requests.exceptions.ReadTimeout")
                return failure
            self.erp_server(tw, method, route, operation or posting.operation, latency, failure)
            tw.wait(self.ms(3))
            status = failure.http_status if failure else 201
            client.span.set_attribute("http.response.status_code", status)
            if failure:
                client.fail(
                    failure.category, failure.message, "requests.exceptions.HTTPError", str(status)
                )
        return failure

    def erp_latency(self, posting: Posting, txn: Transaction, now_ns: int) -> float:
        """How long the ERP takes for this posting, stretched by a latency drift in force.

        A drift affects a posting once it makes a typical one slower than 99 in 100 normal
        postings (``NOTICEABLE_DRIFT``): before that, a stretched posting hides in the normal
        spread (at 1.5x, one normal posting in five is slower still)."""
        latency = self.ms(posting.median_ms, ERP_LATENCY_SPREAD)
        drift = self.incidents.active(inc.ERP_LATENCY_DRIFT, txn.flow, now_ns)
        if drift:
            multiplier = drift.latency_multiplier(now_ns)
            latency *= multiplier
            if multiplier >= NOTICEABLE_DRIFT:
                drift.affect(txn.key, now_ns)
        return latency

    def erp_server(
        self,
        tw: TraceWriter,
        method: str,
        route: str,
        operation: str,
        latency_ms: float,
        failure: Failure | None,
        cutoff_ns: int | None = None,
    ) -> None:
        """The ERP's own spans for one request; ``cutoff_ns`` is when the client hung up."""
        with tw.span(
            "erp", f"{method} {route}", SERVER, "post", http_server_attributes(method, route)
        ) as server:
            tw.wait(latency_ms * 0.15)
            with tw.span("erp", operation, INTERNAL, "post") as persist:
                if cutoff_ns is not None:
                    # The ERP notices the closed connection shortly after the client gives up.
                    tw.now = max(tw.now, cutoff_ns) + int(self.ms(150) * NS_PER_MS)
                    persist.fail(
                        "timeout",
                        "transaction rolled back: client closed connection",
                        "erp.TransactionRolledBack",
                    )
                else:
                    tw.wait(latency_ms * 0.8)
                    if failure:
                        persist.fail(failure.category, failure.message, failure.exception_type)
            if cutoff_ns is not None:
                server.span.set_attribute("http.response.status_code", 499)
                server.fail(
                    "timeout",
                    "client closed connection before the response",
                    "erp.ClientDisconnected",
                    "499",
                )
                return
            tw.wait(latency_ms * 0.05)
            status = failure.http_status if failure else 201
            server.span.set_attribute("http.response.status_code", status)
            if failure:
                # Server spans mark only 5xx as errors (OpenTelemetry HTTP conventions); the
                # category still says what the ERP rejected.
                server.fail(
                    failure.category,
                    failure.message,
                    failure.exception_type,
                    str(status),
                    status=status >= 500,
                )

    def master_data_failure(self, txn: Transaction, now_ns: int) -> Failure | None:
        """The ERP rejects a posting whose customer or item it does not have (yet)."""
        message = None
        if txn.flow == ORDER_SUBMIT and txn.customer and not txn.customer.in_erp:
            message = f"Customer {txn.customer.key} is not active in the ERP (status: pending)"
        elif txn.flow == INVOICE_POST and txn.item and not txn.item.in_erp:
            message = f"Item {txn.item.sku} not found or inactive in the ERP item master"
        if message is None:
            return None
        incident = txn.master_incident
        if incident is not None:
            incident.affect(txn.key, now_ns)
        return Failure(
            "master_data_missing", message, "erp.MasterDataNotActiveError", 422, incident
        )

    def erp_baseline_failure(self, txn: Transaction) -> Failure | None:
        """The everyday background of ERP errors, well under one percent."""
        draw = self.rng.random()
        if draw < 0.002:
            return Failure(
                "rate_limit",
                "429 Too Many Requests: API quota exceeded, retry later",
                "erp.RateLimitExceeded",
                429,
            )
        if draw < 0.003:
            return Failure(
                "timeout", "504 Gateway Timeout from the ERP API gateway", "erp.GatewayTimeout", 504
            )
        if draw < 0.0032:
            return Failure(
                "auth", "401 Unauthorized: OAuth token expired", "erp.AuthenticationError", 401
            )
        if draw < 0.0062:
            field_name = self.rng.choice(("postingDate", "taxCode", "paymentTerms", "costCenter"))
            return Failure(
                "validation",
                f"422 {txn.key}: field '{field_name}' is invalid",
                "erp.ValidationError",
                422,
            )
        return None

    def after_failure(
        self, now_ns: int, txn: Transaction, failure: Failure, link: SpanContext
    ) -> None:
        """Decide how the failed ``txn`` is recovered: replay later, after a fix, or never."""
        txn.state = "failed"
        txn.attempts += 1
        if txn.attempts >= MAX_REPLAY_ATTEMPTS or failure.category == "duplicate":
            txn.state = "abandoned"
            return
        incident = failure.incident
        if incident is not None and now_ns < incident.end_ns:
            # Parked until the mapping fix is deployed or the master data arrives.
            txn.state = "parked"
            self.incidents.on_recovery(
                incident, lambda at: self.schedule_replay(self.later(at, 5, 40), txn, link)
            )
            return
        if failure.retryable:
            backoff = 5 * 2 ** (txn.attempts - 1)
            self.schedule_replay(self.later(now_ns, backoff, backoff * 1.5), txn, link)
        elif failure.category in ("mapping", "validation") and self.chance(0.7):
            # Someone corrects the data or the mapping table within a working day.
            self.schedule_replay(self.later(now_ns, 60, 360), txn, link)
        else:
            txn.state = "abandoned"

    def schedule_replay(self, at_ns: int, txn: Transaction, link: SpanContext) -> None:
        """Replay ``txn``'s ERP posting at ``at_ns``."""
        self.scheduler.schedule(at_ns, self.replay_posting, txn, link)

    def replay_posting(
        self, at_ns: int, txn: Transaction, link: SpanContext, caller: str | None = None
    ) -> None:
        """A replay: a new trace linked to the failed attempt, marked integration.replay."""
        posting = POSTINGS[txn.flow]
        tw = self.writer(at_ns, txn, replay=True)
        attrs = {"integration.replay.attempt": txn.attempts}
        with tw.span(
            caller or posting.caller,
            f"replay {posting.business_object}",
            INTERNAL,
            "receive",
            attrs,
            [Link(link)],
        ) as root:
            tw.wait(self.ms(5))
            failure = self.erp_post(tw, txn)
            if failure:
                root.fail(failure.category, failure.message, "integration.ReplayFailed")
            else:
                root.ok()
        if failure:
            self.after_failure(tw.now, txn, failure, root.context)
        else:
            self.posted(tw.now, txn)

    def posted(self, now_ns: int, txn: Transaction) -> None:
        """Book a successful ERP posting and start whatever follows it.

        A posted onboarding or item sync puts its customer or item in the ERP, on a replay
        as on the first attempt."""
        txn.posts += 1
        txn.state = "posted"
        if txn.flow == ONBOARDING and txn.customer is not None:
            txn.customer.in_erp = True
            self.incidents.arrived(txn.customer, now_ns)
        elif txn.flow == ITEM_SYNC and txn.item is not None:
            txn.item.in_erp = True
            self.incidents.arrived(txn.item, now_ns)
        if txn.on_posted is not None and txn.posts == 1:
            txn.on_posted(now_ns)

    # ------------------------------------------------------ customer onboarding

    def onboard_customer(self, at_ns: int, customer: Customer | None = None) -> None:
        """A CRM account converted to a customer starts onboarding into the ERP.

        Without ``customer`` a new one signs up and usually orders once onboarded; with one, a
        delayed onboarding of an existing CRM account finally runs.
        """
        self.count(ONBOARDING)
        new_signup = customer is None
        customer = customer or self.world.new_customer(in_erp=False)
        txn = Transaction(
            ONBOARDING,
            customer.key,
            customer.correlation_id,
            None,
            None,
            customer.entity,
            customer,
            created_ns=at_ns,
        )
        if new_signup and self.chance(0.85):
            txn.on_posted = lambda at: self.scheduler.schedule(
                self.later(at, 20, 240), self.submit_order, customer
            )
        tw = self.writer(at_ns, txn)
        with tw.span("crm", "Account.convert", INTERNAL, "publish"):
            tw.wait(self.ms(25))
            link = self.publish(tw, "crm", "crm.accounts", "account.created")
        self.scheduler.schedule(self.soon(tw.now, 800), self.map_customer, txn, link)

    def map_customer(self, at_ns: int, txn: Transaction, link: SpanContext) -> None:
        """canonical-mapper resolves the customer hierarchy and creates it in the ERP."""
        tw = self.writer(at_ns, txn)
        attrs = messaging_attributes("process", "process", "crm.accounts", "canonical-mapper")
        with tw.span(
            "canonical-mapper", "process crm.accounts", CONSUMER, "receive", attrs, [Link(link)]
        ) as root:
            tw.wait(self.ms(3))
            for step in ("legal entity", "bill-to contact", "tax registration"):
                with tw.span("canonical-mapper", f"resolve {step}", INTERNAL, "enrich"):
                    tw.wait(self.ms(18))
            with tw.span("canonical-mapper", "map CustomerAccount", INTERNAL, "transform"):
                tw.wait(self.ms(6))
            failure = self.erp_post(tw, txn)
            if not failure:
                failure = self.erp_post(
                    tw,
                    txn,
                    route="/api/v1/customers/{customerId}/receivablesAccounts",
                    operation="ReceivablesAccount.create",
                )
            if failure:
                root.fail(failure.category, failure.message, "integration.PostingFailed")
        if failure:
            self.after_failure(tw.now, txn, failure, root.context)
            return
        self.posted(tw.now, txn)

    # -------------------------------------------------------------- order submit

    def submit_order(self, at_ns: int, customer: Customer | None = None) -> None:
        """A sales rep's contract acceptance in CPQ becomes an ERP sales order via the API."""
        self.count(ORDER_SUBMIT)
        customer = customer or self.world.erp_customer()
        master_incident = self.incidents.active(inc.MISSING_MASTER_DATA, ORDER_SUBMIT, at_ns)
        if master_incident and self.chance(master_incident.intensity):
            # A new customer whose onboarding is stuck: it reaches the ERP after the incident.
            customer = self.world.new_customer(in_erp=False)
            late = customer
            self.incidents.made_missing(master_incident, late)
            self.incidents.on_recovery(
                master_incident,
                lambda at: self.scheduler.schedule(
                    self.later(at, 1, 3), self.onboard_customer, late
                ),
            )
        else:
            master_incident = None
        txn = Transaction(
            ORDER_SUBMIT,
            self.world.next_key("SO", 100001),
            customer.correlation_id,
            self.world.money(24_000, 0.8),
            customer.currency,
            customer.entity,
            customer,
            self.rng.choice(self.world.items),
            at_ns,
            master_incident=master_incident,
        )
        txn.on_posted = lambda at: self.scheduler.schedule(
            self.later(at, 5, 90), self.activate_subscription, txn
        )
        tw = self.writer(at_ns, txn)
        route = "/quotes/{quoteId}/accept"
        attrs = http_server_attributes("POST", route, "cpq.example.com")
        with tw.span("cpq", f"POST {route}", SERVER, "receive", attrs) as accept:
            tw.wait(self.ms(30))
            outcome, failure, api = self.call_order_api(tw, txn)
            tw.wait(self.ms(10))
            accept.set_attributes(
                {"http.response.status_code": 200, "integration.outcome": outcome}
            )
        if failure:
            self.after_failure(tw.now, txn, failure, api)
        else:
            self.posted(tw.now, txn)

    def call_order_api(
        self, tw: TraceWriter, txn: Transaction
    ) -> tuple[str, Failure | None, SpanContext]:
        """cpq -> integration-api: validate, enrich, transform, post; accepted/rejected/pending."""
        route = "/v1/sales-orders"
        client_attrs = http_client_attributes("POST", route, INTEGRATION_API_HOST, 8443)
        server_attrs = http_server_attributes("POST", route, INTEGRATION_API_HOST)
        with tw.span("cpq", f"POST {route}", CLIENT, "receive", client_attrs) as client:
            tw.wait(self.ms(2))
            with tw.span(
                "integration-api", f"POST {route}", SERVER, "receive", server_attrs
            ) as api:
                failure = self.order_pipeline(tw, txn)
                outcome, status = order_outcome(failure)
                api.set_attributes(
                    {"http.response.status_code": status, "integration.outcome": outcome}
                )
                if failure:
                    # A 4xx answer leaves the server span's status unset (HTTP conventions).
                    api.fail(
                        failure.category,
                        failure.message,
                        "integration.OrderNotAccepted",
                        str(status),
                        status=status >= 500,
                    )
            tw.wait(self.ms(2))
            client.span.set_attribute("http.response.status_code", status)
            if failure and outcome == "rejected":
                client.fail(
                    failure.category, failure.message, "requests.exceptions.HTTPError", str(status)
                )
        return outcome, failure, api.context

    def order_pipeline(self, tw: TraceWriter, txn: Transaction) -> Failure | None:
        """The integration-api steps of an order: validate, enrich, transform, post."""
        with tw.span("integration-api", "validate SalesOrder", INTERNAL, "validate") as validate:
            tw.wait(self.ms(8))
            if self.chance(0.005):
                failure = Failure(
                    "validation",
                    f"{txn.key}: purchase order number is required for this customer",
                    "integration.ValidationError",
                    422,
                )
                validate.fail(failure.category, failure.message, failure.exception_type)
                return failure
        failure = self.map_rpc(tw, "integration-api", "MapSalesOrder", "enrich", txn)
        if failure:
            return failure
        with tw.span("integration-api", "transform SalesOrder", INTERNAL, "transform"):
            tw.wait(self.ms(5))
        return self.erp_post(tw, txn)

    # ---------------------------------------------------- subscription activation

    def activate_subscription(self, at_ns: int, order: Transaction) -> None:
        """Billing activates the subscription of an accepted order and invoices it."""
        self.count(SUBSCRIPTION_ACTIVATE)
        customer = order.customer or self.world.erp_customer()
        subscription = self.world.new_subscription(customer, order.item)
        txn = Transaction(
            SUBSCRIPTION_ACTIVATE,
            subscription.key,
            order.correlation_id,
            order.amount,
            order.currency,
            order.entity,
            customer,
            order.item,
            at_ns,
        )
        tw = self.writer(at_ns, txn)
        with tw.span("billing", "Subscription.activate", INTERNAL, "publish"):
            tw.wait(self.ms(40))
            link = self.publish(tw, "billing", "billing.subscriptions", "subscription.activated")
        self.scheduler.schedule(self.soon(tw.now), self.route_activation, txn, link)
        first_invoice = round((order.amount or 0.0) * self.rng.uniform(0.08, 0.25), 2)
        self.scheduler.schedule(
            self.later(tw.now, 2, 20), self.create_invoice, subscription, first_invoice
        )

    def route_activation(self, at_ns: int, txn: Transaction, link: SpanContext) -> None:
        """event-router forwards the activation towards the ERP revenue contract."""
        out = self.route(at_ns, txn, link, "billing.subscriptions", "erp.revenue-contracts")
        self.scheduler.schedule(
            self.soon(at_ns), self.consume_and_post, txn, out, "erp.revenue-contracts", None
        )

    def soon(self, now_ns: int, median_ms: float = 600.0) -> int:
        """The moment a consumer picks up a just-published event."""
        return now_ns + int(self.ms(median_ms, 0.8) * NS_PER_MS)

    # ------------------------------------------------------------ invoice post

    def renewal_invoice(self, at_ns: int) -> None:
        """A renewal or overage invoice of an existing subscription."""
        subscription = self.rng.choice(self.world.subscriptions)
        self.create_invoice(at_ns, subscription, self.world.money(6_000, 0.9))

    def create_invoice(self, at_ns: int, subscription: Subscription, amount: float) -> None:
        """Billing finalizes an invoice and publishes invoice.created."""
        self.count(INVOICE_POST)
        customer = subscription.customer
        item = subscription.item
        master_incident = self.incidents.active(inc.MISSING_MASTER_DATA, INVOICE_POST, at_ns)
        if master_incident and self.chance(master_incident.intensity):
            # A plan launched in billing whose item has not reached the ERP item master; the
            # catalog sync catches up once the incident is over. That sync can fail on a
            # background ERP error, and the invoice's replays then fail after the window: the
            # incident lasts until the item arrives.
            item = self.world.new_item(in_erp=False)
            late = item
            self.incidents.made_missing(master_incident, late)
            self.incidents.on_recovery(
                master_incident,
                lambda at: self.scheduler.schedule(self.later(at, 1, 3), self.launch_item, late),
            )
        else:
            master_incident = None
        txn = Transaction(
            INVOICE_POST,
            self.world.next_key("INV", 2000001),
            subscription.correlation_id,
            amount,
            customer.currency,
            customer.entity,
            customer,
            item,
            at_ns,
            master_incident=master_incident,
        )
        txn.on_posted = lambda at: self.world.open_invoices.append(txn)
        self.world.invoices.append(txn)
        tw = self.writer(at_ns, txn)
        with tw.span("billing", "Invoice.finalize", INTERNAL, "publish"):
            tw.wait(self.ms(60))
            link = self.publish(tw, "billing", "billing.invoices", "invoice.created")
        if self.dropped(txn, tw.now):
            return
        self.scheduler.schedule(self.soon(tw.now), self.route_invoice, txn, link)

    def dropped(self, txn: Transaction, now_ns: int) -> bool:
        """Whether a dropped-events incident swallows ``txn``'s event."""
        incident = self.incidents.active(inc.DROPPED_EVENTS, txn.flow, now_ns)
        if incident and self.chance(incident.intensity):
            # the fault is exercised when the lost event is published
            incident.affect(txn.key, txn.created_ns or now_ns)
            txn.state = "dropped"
            return True
        return False

    def route_invoice(self, at_ns: int, txn: Transaction, link: SpanContext) -> None:
        """event-router forwards invoice.created to the ERP posting queue."""
        out = self.route(at_ns, txn, link, "billing.invoices", "erp.invoices")
        self.scheduler.schedule(
            self.soon(at_ns), self.consume_and_post, txn, out, "erp.invoices", "MapInvoice"
        )

    def consume_and_post(
        self,
        at_ns: int,
        txn: Transaction,
        link: SpanContext,
        topic: str,
        map_method: str | None,
        redelivery: str = "",
    ) -> None:
        """integration-api consumes an event, maps it and posts it to the ERP.

        ``redelivery`` is empty for the first delivery, ``rebalance`` for an ordinary
        redelivery (the ERP's idempotency check answers 409) and ``incident`` for one that
        carries a fresh idempotency key and posts the same business key twice.
        """
        tw = self.writer(at_ns, txn)
        attrs = messaging_attributes("process", "process", topic, "integration-api")
        with tw.span(
            "integration-api", f"process {topic}", CONSUMER, "receive", attrs, [Link(link)]
        ) as root:
            tw.wait(self.ms(3))
            failure = None
            if map_method:
                failure = self.map_rpc(tw, "integration-api", map_method, "transform", txn)
            if failure is None and redelivery == "rebalance":
                failure = self.erp_post_rejected_duplicate(tw, txn)
            elif failure is None:
                failure = self.erp_post(tw, txn)
            if failure:
                root.fail(failure.category, failure.message, "integration.PostingFailed")
            elif txn.flow == PAYMENT_APPLY:
                self.signal_health(tw, txn)
        if failure:
            self.after_failure(tw.now, txn, failure, root.context)
        elif redelivery:
            txn.posts += 1
        else:
            self.posted(tw.now, txn)
            self.maybe_redeliver(tw.now, txn, link, topic, map_method)

    def erp_post_rejected_duplicate(self, tw: TraceWriter, txn: Transaction) -> Failure:
        """The ERP answers 409 to a redelivered posting it already has."""
        failure = Failure(
            "duplicate",
            f"409 Conflict: {txn.key} was already posted",
            "erp.DuplicateDocument",
            409,
        )
        posting = POSTINGS[txn.flow]
        attrs = http_client_attributes(posting.method, posting.route)
        name = f"{posting.method} {posting.route}"
        with tw.span(posting.caller, name, CLIENT, "post", attrs) as client:
            tw.wait(self.ms(3))
            latency = self.ms(posting.median_ms * 0.3)
            self.erp_server(tw, posting.method, posting.route, posting.operation, latency, failure)
            tw.wait(self.ms(3))
            client.span.set_attribute("http.response.status_code", 409)
            client.fail("duplicate", failure.message, "requests.exceptions.HTTPError", "409")
        return failure

    def maybe_redeliver(
        self, now_ns: int, txn: Transaction, link: SpanContext, topic: str, map_method: str | None
    ) -> None:
        """Redeliver a consumed event: rarely as a rebalance, often during a duplicate incident."""
        incident = self.incidents.active(inc.DUPLICATE_POSTINGS, txn.flow, now_ns)
        if incident and self.chance(incident.intensity):
            redelivery = "incident"
        elif self.chance(0.001):
            redelivery = "rebalance"
        else:
            return
        redelivered_at = self.later(now_ns, 0.5, 5)
        if incident and redelivery == "incident":
            # the first posting is the right one: the harm is done when the event comes again
            incident.affect(txn.key, redelivered_at)
        self.scheduler.schedule(
            redelivered_at,
            self.consume_and_post,
            txn,
            link,
            topic,
            map_method,
            redelivery,
        )

    # ------------------------------------------------------------- usage events

    def usage_event(self, at_ns: int) -> None:
        """The product meters usage of an add-on; billing publishes usage.recorded."""
        self.count(USAGE_POST)
        subscription = self.rng.choice(self.world.usage_subscriptions)
        quantity = max(1, int(self.ms(400, 1.2)))
        amount = round(quantity * subscription.unit_price, 2)
        customer = subscription.customer
        txn = Transaction(
            USAGE_POST,
            self.world.next_key("USG", 9000001),
            subscription.correlation_id,
            amount,
            customer.currency,
            customer.entity,
            customer,
            subscription.item,
            at_ns,
        )
        tw = TraceWriter(self.tracers, at_ns, business_attributes(txn, False, "UsageEvent"))
        link = self.publish(tw, "billing", "billing.usage", "usage.recorded")
        if self.dropped(txn, tw.now):
            return
        self.scheduler.schedule(
            self.soon(tw.now, 300), self.aggregate_usage, txn, subscription, link
        )

    def aggregate_usage(
        self,
        at_ns: int,
        txn: Transaction,
        subscription: Subscription,
        link: SpanContext,
        replay: bool = False,
    ) -> None:
        """event-router maps a usage event and adds it to the subscription's hourly window."""
        tw = TraceWriter(self.tracers, at_ns, business_attributes(txn, replay, "UsageEvent"))
        attrs = messaging_attributes("process", "process", "billing.usage", "event-router")
        failure = None if replay else self.mapping_failure(txn, at_ns)
        with tw.span(
            "event-router", "process billing.usage", CONSUMER, "receive", attrs, [Link(link)]
        ) as root:
            tw.wait(self.ms(1.5))
            with tw.span("event-router", "map and aggregate usage", INTERNAL, "transform") as agg:
                tw.wait(self.ms(2))
                if failure:
                    agg.fail(failure.category, failure.message, failure.exception_type)
            if failure:
                root.fail(failure.category, failure.message, "integration.EventRejected")
        if failure is None:
            self._usage_window.setdefault(subscription.key, []).append(
                (subscription, txn.key, txn.amount or 0.0, agg.context)
            )
        elif failure.incident is not None:
            # Rejected events are re-driven into a later window once the mapping is fixed.
            replay_link = root.context
            self.incidents.on_recovery(
                failure.incident,
                lambda at: self.scheduler.schedule(
                    self.later(at, 5, 40),
                    self.aggregate_usage,
                    txn,
                    subscription,
                    replay_link,
                    True,
                ),
            )

    def close_usage_window(self, at_ns: int) -> None:
        """Every hour, each subscription's usage becomes one ERP accrual posting."""
        windows, self._usage_window = self._usage_window, {}
        post_at = at_ns
        for events in windows.values():
            post_at += int(self.ms(900, 0.3) * NS_PER_MS)
            self.post_accrual(post_at, events)
        next_hour = at_ns - at_ns % NS_PER_HOUR + NS_PER_HOUR
        self.scheduler.schedule(next_hour + 5 * NS_PER_MINUTE, self.close_usage_window)

    def post_accrual(
        self, at_ns: int, events: list[tuple[Subscription, str, float, SpanContext]]
    ) -> None:
        """event-router posts one subscription's aggregated usage to the ERP as an accrual."""
        self.count(USAGE_POST)
        subscription = events[0][0]
        customer = subscription.customer
        txn = Transaction(
            USAGE_POST,
            self.world.next_key("ACR", 700001),
            subscription.correlation_id,
            round(sum(e[2] for e in events), 2),
            customer.currency,
            customer.entity,
            customer,
            subscription.item,
            at_ns,
        )
        tw = self.writer(at_ns, txn)
        links = [Link(event[3]) for event in events[:MAX_LINKS]]
        with tw.span(
            "event-router",
            "close usage window",
            INTERNAL,
            "transform",
            {"usage.event.count": len(events)},
            links,
        ) as root:
            tw.wait(self.ms(15))
            # A mapping burst on usage hits the events as they are aggregated, not the accrual.
            failure = self.map_rpc(
                tw, "event-router", "MapUsageAccrual", "transform", txn, burst_applies=False
            )
            failure = failure or self.erp_post(tw, txn)
            if failure:
                root.fail(failure.category, failure.message, "integration.PostingFailed")
        if failure:
            self.after_failure(tw.now, txn, failure, root.context)
        else:
            self.posted(tw.now, txn)

    # ----------------------------------------------------------------- payments

    def settle_payment(self, at_ns: int) -> None:
        """The payment processor settles a charge against an open invoice."""
        self.count(PAYMENT_APPLY)
        invoice = self.world.take_open_invoice(at_ns - NS_PER_HOUR)
        if invoice is None:
            invoice = self.pre_existing_invoice(at_ns)
        amount = invoice.amount or 0.0
        if self.chance(0.08):
            amount = round(amount * self.rng.uniform(0.3, 0.9), 2)  # partial payment
        txn = Transaction(
            PAYMENT_APPLY,
            self.world.next_key("PAY", 3000001),
            invoice.correlation_id,
            amount,
            invoice.currency,
            invoice.entity,
            invoice.customer,
            created_ns=at_ns,
        )
        self.world.payments.append(txn)
        tw = self.writer(at_ns, txn)
        with tw.span(
            "payments", "Charge.settle", INTERNAL, "publish", {"payment.invoice.key": invoice.key}
        ):
            tw.wait(self.ms(120))
            link = self.publish(tw, "payments", "payments.settled", "payment.settled")
        if self.dropped(txn, tw.now):
            return
        self.scheduler.schedule(
            self.soon(tw.now), self.consume_and_post, txn, link, "payments.settled", None
        )

    def pre_existing_invoice(self, at_ns: int) -> Transaction:
        """An invoice issued before the simulation began (already in the ERP)."""
        customer = self.world.erp_customer()
        return Transaction(
            INVOICE_POST,
            self.world.next_key("INV", 1000001),
            customer.correlation_id,
            self.world.money(6_000, 0.9),
            customer.currency,
            customer.entity,
            customer,
            created_ns=at_ns,
            posts=1,
            state="posted",
        )

    def signal_health(self, tw: TraceWriter, payment: Transaction) -> None:
        """After a payment posts, integration-api publishes a customer-health signal."""
        customer = payment.customer
        key = customer.key if customer else payment.key
        signal = Transaction(
            HEALTH_SIGNAL,
            key,
            payment.correlation_id,
            payment.amount,
            payment.currency,
            payment.entity,
            customer,
        )
        attrs = business_attributes(signal, False)
        attrs.update(messaging_attributes("send", "publish", "customer.health"))
        with tw.span(
            "integration-api", "send customer.health", PRODUCER, "publish", attrs
        ) as producer:
            tw.wait(self.ms(4))
        self.scheduler.schedule(self.soon(tw.now), self.fan_out_health, signal, producer.context)

    def fan_out_health(self, at_ns: int, signal: Transaction, link: SpanContext) -> None:
        """event-router fans the health signal out to CRM and support."""
        tw = self.writer(at_ns, signal)
        attrs = messaging_attributes("process", "process", "customer.health", "event-router")
        outs: list[tuple[str, SpanContext]] = []
        with tw.span(
            "event-router", "process customer.health", CONSUMER, "receive", attrs, [Link(link)]
        ):
            with tw.span("event-router", "route event", INTERNAL, "route"):
                tw.wait(self.ms(2))
            for service in ("crm", "support"):
                topic = f"{service}.customer-health"
                with tw.span(
                    "event-router",
                    f"send {topic}",
                    PRODUCER,
                    "publish",
                    messaging_attributes("send", "publish", topic),
                ) as out:
                    tw.wait(self.ms(3))
                outs.append((service, out.context))
        for service, out_link in outs:
            self.scheduler.schedule(self.soon(tw.now), self.apply_health, signal, service, out_link)

    def apply_health(
        self, at_ns: int, signal: Transaction, service: str, link: SpanContext
    ) -> None:
        """CRM or support updates the account's health score."""
        tw = self.writer(at_ns, signal)
        topic = f"{service}.customer-health"
        attrs = messaging_attributes("process", "process", topic, service)
        attrs["integration.target"] = service
        with tw.span(service, f"process {topic}", CONSUMER, "receive", attrs, [Link(link)]):
            tw.wait(self.ms(3))
            name = "Account.updateHealth" if service == "crm" else "Customer.updateHealthScore"
            with tw.span(service, name, INTERNAL, "post", {"integration.target": service}):
                tw.wait(self.ms(20))

    # ------------------------------------------------------------------ catalog

    def catalog_change(self, at_ns: int) -> None:
        """Product management launches a product or changes a price."""
        if self.chance(0.2):
            self.launch_item(at_ns, self.world.new_item(in_erp=False))
        else:
            item = self.rng.choice(self.world.items)
            item.list_price = round(item.list_price * self.rng.uniform(0.9, 1.15), 2)
            self.publish_item(at_ns, item, "price.updated")

    def launch_item(self, at_ns: int, item: Item) -> None:
        """product.created for ``item``."""
        self.publish_item(at_ns, item, "product.created")

    def publish_item(self, at_ns: int, item: Item, event: str) -> None:
        """The catalog publishes a product event towards the ERP item master."""
        self.count(ITEM_SYNC)
        txn = Transaction(
            ITEM_SYNC,
            item.sku,
            self.world.correlation_id(),
            item.list_price,
            "USD",
            item=item,
            created_ns=at_ns,
        )
        tw = self.writer(at_ns, txn)
        name = "Product.publish" if event == "product.created" else "Price.update"
        with tw.span("catalog", name, INTERNAL, "publish", {"cloudevents.event_type": event}):
            tw.wait(self.ms(35))
            link = self.publish(tw, "catalog", "catalog.products", event)
        self.scheduler.schedule(self.soon(tw.now), self.route_item, txn, link, event)

    def route_item(self, at_ns: int, txn: Transaction, link: SpanContext, event: str) -> None:
        """event-router forwards product events to the item-master queue."""
        out = self.route(at_ns, txn, link, "catalog.products", "erp.item-master")
        self.scheduler.schedule(self.soon(at_ns), self.sync_item, txn, out, event)

    def sync_item(self, at_ns: int, txn: Transaction, link: SpanContext, event: str) -> None:
        """canonical-mapper maps the ProductOffer and upserts the ERP item."""
        tw = self.writer(at_ns, txn)
        attrs = messaging_attributes("process", "process", "erp.item-master", "canonical-mapper")
        with tw.span(
            "canonical-mapper", "process erp.item-master", CONSUMER, "receive", attrs, [Link(link)]
        ) as root:
            tw.wait(self.ms(3))
            failure = self.mapping_failure(txn, tw.now)
            with tw.span("canonical-mapper", "map ProductOffer", INTERNAL, "transform") as mp:
                tw.wait(self.ms(9))
                if failure:
                    mp.fail(failure.category, failure.message, failure.exception_type)
            if not failure:
                if event == "price.updated":
                    failure = self.erp_post(
                        tw,
                        txn,
                        route="/api/v1/items/{itemId}/prices",
                        operation="ItemPrice.update",
                        method="PATCH",
                    )
                else:
                    failure = self.erp_post(tw, txn)
            if failure:
                root.fail(failure.category, failure.message, "integration.PostingFailed")
        if failure:
            self.after_failure(tw.now, txn, failure, root.context)
            return
        self.posted(tw.now, txn)

    # ----------------------------------------------------------- reconciliation

    def reconcile(self, at_ns: int) -> None:
        """Nightly: billing totals against ERP postings per legal entity; replay what is missing."""
        day_end = at_ns - at_ns % (24 * NS_PER_HOUR)
        day_start = day_end - 24 * NS_PER_HOUR
        for entity, _currency, _share in ENTITIES:
            self.reconcile_entity(at_ns, entity, day_start, day_end)
            at_ns += int(self.ms(40_000, 0.3) * NS_PER_MS)
        self.world.forget_before(day_start - 2 * 24 * NS_PER_HOUR)
        self.scheduler.schedule(day_end + 26 * NS_PER_HOUR, self.reconcile)

    def reconcile_entity(self, at_ns: int, entity: str, day_start: int, day_end: int) -> None:
        """One reconciliation run: fetch both sides, compare, report, replay."""
        self.count(RECONCILIATION)
        day = datetime.fromtimestamp(day_start / 1e9, tz=UTC).date().isoformat()
        invoices = [
            t
            for t in self.world.invoices
            if t.entity == entity and day_start <= t.created_ns < day_end
        ]
        payments = [
            t
            for t in self.world.payments
            if t.entity == entity and day_start <= t.created_ns < day_end
        ]
        billed = round(sum(t.amount or 0.0 for t in invoices), 2)
        currency = next(code for name, code, _ in ENTITIES if name == entity)
        run = Transaction(
            RECONCILIATION,
            self.world.key("RECON", f"{day}-{entity}"),
            self.world.correlation_id(),
            billed,
            currency,
            entity,
            created_ns=at_ns,
        )
        tw = self.writer(at_ns, run)
        with tw.span(
            "batch-reconciler",
            f"reconcile billing vs erp {entity}",
            INTERNAL,
            "reconcile",
            {"reconciliation.date": day},
        ) as root:
            for system, host, route in (
                ("billing", BILLING_HOST, "/v1/invoices"),
                ("erp", ERP_HOST, "/api/v1/arInvoices"),
            ):
                self.fetch(tw, system, host, route, len(invoices) + len(payments))
            missing: list[Transaction] = []
            for label, records in (("invoices", invoices), ("receipts", payments)):
                missing += self.compare(tw, label, records)
            root.set_attributes(
                {
                    "reconciliation.records": len(invoices) + len(payments),
                    "reconciliation.replays": len(missing),
                }
            )
            root.ok()
        for txn in missing:
            txn.state = "replaying"
            self.scheduler.schedule(
                self.later(tw.now, 1, 15),
                self.replay_posting,
                txn,
                root.context,
                "batch-reconciler",
            )

    def fetch(self, tw: TraceWriter, system: str, host: str, route: str, records: int) -> None:
        """The reconciler reads one side's postings of the day."""
        attrs = http_client_attributes("GET", route, host)
        attrs["peer.service"] = system
        with tw.span("batch-reconciler", f"GET {route}", CLIENT, "reconcile", attrs) as client:
            tw.wait(self.ms(5))
            with tw.span(
                system,
                f"GET {route}",
                SERVER,
                "reconcile",
                http_server_attributes("GET", route, host),
            ) as server:
                tw.wait(self.ms(200 + records * 0.8))
                server.span.set_attribute("http.response.status_code", 200)
            tw.wait(self.ms(5))
            client.span.set_attribute("http.response.status_code", 200)

    def compare(self, tw: TraceWriter, label: str, records: list[Transaction]) -> list[Transaction]:
        """Compare one kind of record; returns the dropped ones to replay."""
        missing: list[Transaction] = []
        mismatches = 0
        with tw.span("batch-reconciler", f"compare {label}", INTERNAL, "reconcile") as span:
            tw.wait(self.ms(30 + len(records) * 0.05))
            erp_total = 0.0
            for txn in records:
                erp_total += (txn.amount or 0.0) * txn.posts
                if txn.posts == 1:
                    continue
                mismatches += 1
                reason = "duplicate" if txn.posts > 1 else f"missing ({txn.state})"
                if mismatches <= 100:
                    span.span.add_event(
                        "reconciliation.mismatch",
                        {
                            "business.key": txn.key,
                            "reconciliation.reason": reason,
                            "business.amount": txn.amount or 0.0,
                        },
                        timestamp=tw.now,
                    )
                if txn.state == "dropped":
                    missing.append(txn)
            span.set_attributes(
                {
                    "reconciliation.records": len(records),
                    "reconciliation.mismatches": mismatches,
                    "reconciliation.source_total": round(sum(t.amount or 0.0 for t in records), 2),
                    "reconciliation.target_total": round(erp_total, 2),
                    "reconciliation.status": "mismatched" if mismatches else "matched",
                }
            )
        return missing

    # ------------------------------------------------------------------ arrivals

    def arrival(self, profile: str) -> Callable[[int], None]:
        """The handler that starts a transaction of traffic profile ``profile``."""
        return {
            "customer_onboarding": self.onboard_customer,
            "order_submit": self.submit_order,
            "renewal_invoice": self.renewal_invoice,
            "usage_event": self.usage_event,
            "payment_settled": self.settle_payment,
            "catalog_change": self.catalog_change,
        }[profile]


_TARGETS = {HEALTH_SIGNAL: "crm", RECONCILIATION: "erp"}
_SOURCES = {HEALTH_SIGNAL: "payments", RECONCILIATION: "billing"}
_PATTERNS = {HEALTH_SIGNAL: "event", RECONCILIATION: "batch"}
_OBJECTS = {HEALTH_SIGNAL: "CustomerHealthSignal", RECONCILIATION: "ReconciliationRun"}


def business_attributes(
    txn: Transaction, replay: bool, business_object: str | None = None
) -> Attributes:
    """The design.md section 4 attributes of ``txn``, carried by every span of its traces."""
    posting = POSTINGS.get(txn.flow)
    attrs: Attributes = {
        "integration.flow": txn.flow,
        "integration.pattern": posting.pattern if posting else _PATTERNS[txn.flow],
        "integration.source": posting.source if posting else _SOURCES[txn.flow],
        "integration.target": "erp" if posting else _TARGETS[txn.flow],
        "business.object": business_object
        or (posting.business_object if posting else _OBJECTS[txn.flow]),
        "business.key": txn.key,
        "correlation.id": txn.correlation_id,
    }
    if txn.amount is not None:
        attrs["business.amount"] = txn.amount
        attrs["business.currency"] = txn.currency or "USD"
    if replay:
        attrs["integration.replay"] = True
    return attrs


def http_client_attributes(
    method: str, route: str, host: str = ERP_HOST, port: int = 443
) -> Attributes:
    """Client-side HTTP attributes of the semantic conventions."""
    return {
        "http.request.method": method,
        "url.template": route,
        "server.address": host,
        "server.port": port,
        "peer.service": "erp" if host == ERP_HOST else host.split(".")[0],
    }


def http_server_attributes(method: str, route: str, host: str = ERP_HOST) -> Attributes:
    """Server-side HTTP attributes of the semantic conventions."""
    return {
        "http.request.method": method,
        "http.route": route,
        "url.scheme": "https",
        "server.address": host,
    }


def messaging_attributes(
    operation_type: str, operation_name: str, topic: str, consumer_group: str | None = None
) -> Attributes:
    """Kafka messaging attributes of the semantic conventions."""
    attrs: Attributes = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": operation_type,
        "messaging.operation.name": operation_name,
    }
    if consumer_group:
        attrs["messaging.consumer.group.name"] = consumer_group
    return attrs


def rpc_attributes(method: str) -> Attributes:
    """gRPC attributes of a canonical-mapper call."""
    return {
        "rpc.system": "grpc",
        "rpc.service": MAPPER_RPC_SERVICE,
        "rpc.method": method,
        "server.address": MAPPER_HOST,
        "server.port": 50051,
    }


MAPPING_DETAILS = (
    "no ERP tax code mapped for tax category 'DE-RC-B2B'",
    "unmapped payment terms 'NET45-EOM'",
    "product bundle component has no ERP item mapping",
    "unknown revenue treatment 'ratable-usage' for ERP item structure",
)


def mapping_error(txn: Transaction, rng: random.Random, incident: inc.Incident | None) -> Failure:
    """A canonical-mapping failure with a message an integration engineer recognises; during
    a burst, always the one code whose mapping broke."""
    if incident is not None:
        detail = incident.broken_code(MAPPING_DETAILS)
    else:
        detail = rng.choice(MAPPING_DETAILS)
    return Failure("mapping", f"{txn.key}: {detail}", "mapping.UnmappedValueError", 422, incident)


def timeout_failure(posting: Posting) -> Failure:
    """The caller gave up waiting for the ERP."""
    return Failure(
        "timeout",
        f"ERP did not answer {posting.method} {posting.route} within "
        f"{posting.timeout_ms / 1000:.0f}s",
        "requests.exceptions.ReadTimeout",
        504,
    )


def order_outcome(failure: Failure | None) -> tuple[str, int]:
    """The integration API's answer to CPQ: accepted 201, pending 202, rejected 422."""
    if failure is None:
        return "accepted", 201
    if failure.retryable:
        return "pending", 202
    return "rejected", 422
