"""The daemon's Prometheus metrics, in a registry of its own.

Names: `callrouting_calls_total{outcome}`, `callrouting_legs_total{outcome}`,
`callrouting_time_to_answer_seconds`, `callrouting_hunt_duration_seconds`,
`callrouting_ari_reconnects_total`, `callrouting_ari_closed_connections_total{result}`,
`callrouting_db_write_seconds`,
`callrouting_db_write_failures_total`, `callrouting_speech_utterances_total{party,result}`,
`callrouting_speech_decode_seconds`, `callrouting_alert_deliveries_total{method,result}`, and
gauges for what is happening now.
"""

from __future__ import annotations

import datetime as dt

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ari_controller.ari.client import RepeatedRequest
from ari_controller.calls.context import CallContext
from ari_controller.calls.outcomes import LegOutcome

# The `*_created` timestamp series double the output and no dashboard reads them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every series the daemon exposes, in a registry of its own, and the hooks that count.

    Owns: the registry and how the daemon's reports (a call started or finished, an unknown
    number, a store write, a closed ARI connection) become counts. A finished call is read from
    its journal's typed values (`alert`, `legs`, `heard`), never from timeline entries. Must
    not touch: the call, its journal or the store (it reads, never changes), ARI, the clock;
    every hook is quick and synchronous, called from the event loop.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "callrouting_calls", "Calls ended, by outcome", ["outcome"], registry=self.registry
        )
        self.calls_in_progress = Gauge(
            "callrouting_calls_in_progress", "Calls being handled now", registry=self.registry
        )
        self.legs = Counter(
            "callrouting_legs",
            "Responder legs ended, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.time_to_answer = Histogram(
            "callrouting_time_to_answer_seconds",
            "From the first responder leg placed to a responder accepting",
            buckets=(1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300),
            registry=self.registry,
        )
        self.hunt_duration = Histogram(
            "callrouting_hunt_duration_seconds",
            "From the first responder leg placed to the last one ending",
            buckets=(1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300),
            registry=self.registry,
        )
        self.ari_reconnects = Counter(
            "callrouting_ari_reconnects", "Events websocket reconnections", registry=self.registry
        )
        self.ari_connected = Gauge(
            "callrouting_ari_connected",
            "1 while the events websocket is up",
            registry=self.registry,
        )
        # Active and standby (config `failover`): which daemon drives the app.
        self.controller_active = Gauge(
            "callrouting_controller_active",
            "1 while this daemon holds its app's lease and drives the calls (0: standby)",
            registry=self.registry,
        )
        self.controller_fencing = Gauge(
            "callrouting_controller_fencing",
            "The fencing number of the lease this daemon holds (0: none)",
            registry=self.registry,
        )
        self.controller_active_since = Gauge(
            "callrouting_controller_active_since_seconds",
            "Unix time at which this daemon became active (0: standby)",
            registry=self.registry,
        )
        self.standby_present = Gauge(
            "callrouting_standby_present",
            "1 while a standby daemon of the same app was seen in the last seconds",
            registry=self.registry,
        )
        self.db_write_seconds = Histogram(
            "callrouting_db_write_seconds",
            "Latency of one store write",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.db_write_failures = Counter(
            "callrouting_db_write_failures",
            "Store writes that failed (and will be retried)",
            registry=self.registry,
        )
        self.db_pending = Gauge(
            "callrouting_db_pending_records",
            "Records waiting to be written",
            registry=self.registry,
        )
        self.alert_deliveries = Counter(
            "callrouting_alert_deliveries",
            "Attempts to deliver an alert message, by method (slack, mattermost, teams, webhook,"
            " phone, email) and result (sent, failed, dead)",
            ["method", "result"],
            registry=self.registry,
        )
        self.speech_utterances = Counter(
            "callrouting_speech_utterances",
            "Utterances listened to, by party (caller, responder) and result "
            "(counted, rejected, silence, too_slow, unreadable)",
            ["party", "result"],
            registry=self.registry,
        )
        self.speech_decode_seconds = Histogram(
            "callrouting_speech_decode_seconds",
            "Time to decode one utterance (worker thread, including the wait for a decoder)",
            buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5),
            registry=self.registry,
        )
        self.ari_closed_connections = Counter(
            "callrouting_ari_closed_connections",
            "ARI requests whose connection closed before an answer (Asterisk past its HTTP "
            "sessionlimit, or a connection closing under the request), by what followed: "
            "repeated, or gave_up (not safe to repeat, or still closed after every repeat)",
            ["result"],
            registry=self.registry,
        )
        self.screening_verdicts = Counter(
            "callrouting_screening_verdicts",
            "Calls screened, by verdict (menu, blocked, not_allowed, rate_limited, flood, "
            "ask_pin, pin_failed, voicemail_only)",
            ["verdict"],
            registry=self.registry,
        )
        self.screening_in_memory = Counter(
            "callrouting_screening_counted_in_memory",
            "Calls whose rate and flood counts came from this daemon's memory because "
            "Postgres did not answer (screening fails open)",
            registry=self.registry,
        )
        self._flood_seen_at: dict[str, dt.datetime] = {}
        self.number_flood = Gauge(
            "callrouting_number_flood",
            "1 while a number is in flood mode (as its latest call saw it), else 0",
            ["did"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "callrouting_config_reloads",
            "Configuration reloads, by result",
            ["result"],
            registry=self.registry,
        )

    def call_started(self, ctx: CallContext) -> None:
        self.calls_in_progress.inc()

    def unknown_number(self, _did: str) -> None:
        # Not labelled by DID: a scanner dialling random numbers must not grow the series.
        self.calls.labels("unknown_number").inc()

    def call_finished(self, ctx: CallContext) -> None:
        self.calls_in_progress.dec()
        journal = ctx.journal
        self.calls.labels(journal.alert.ended_reason or "unknown").inc()
        if journal.screening is not None:
            self.screening_verdicts.labels(journal.screening).inc()
        if journal.screening_shared is False:
            self.screening_in_memory.inc()
        if journal.flood_active is not None:
            # The newest call's view wins: calls end in any order, and one let through before
            # a flood began may end long after the flood was seen.
            did, seen_at = ctx.number.did, journal.alert.opened_at
            if seen_at >= self._flood_seen_at.get(did, seen_at):
                self._flood_seen_at[did] = seen_at
                self.number_flood.labels(did).set(1 if journal.flood_active else 0)
        for heard in journal.heard:
            self.speech_utterances.labels(heard.party, heard.result).inc()
            if heard.decoded:
                self.speech_decode_seconds.observe(heard.decode_ms / 1000)
        legs = journal.legs
        for leg in legs:
            if leg.outcome is not None:
                self.legs.labels(leg.outcome.value).inc()
        if not legs:
            return
        first = min(leg.placed_at for leg in legs)
        ends = [leg.ended_at for leg in legs if leg.ended_at is not None]
        if ends:
            self.hunt_duration.observe((max(ends) - first).total_seconds())
        accepted = [leg for leg in legs if leg.outcome is LegOutcome.ACCEPTED]
        if accepted and accepted[0].ended_at is not None:
            self.time_to_answer.observe((accepted[0].ended_at - first).total_seconds())

    def ari_closed_connection(self, what: RepeatedRequest) -> None:
        self.ari_closed_connections.labels(what.value).inc()

    def alert_delivery(self, method: str, result: str) -> None:
        self.alert_deliveries.labels(method, result).inc()

    def store_write(self, latency_s: float, ok: bool) -> None:
        if ok:
            self.db_write_seconds.observe(latency_s)
        else:
            self.db_write_failures.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
