"""Taps on the control plane: each belongs to the control connection that started it.

``tap_start`` asks the fleet for a :class:`~wsconsole.server.tap.Tap` and
starts a pump that sends its records to that connection as ``tap`` events,
at most every ``flush_interval``; once the tap ends (stopped, its duration
over, its connections gone, the server stopping) the pump sends the rest and
one ``tap_ended`` event. A control connection that goes away ends its taps.
Every end, whatever its cause, is one audit line with what the tap showed and
dropped, published as an ``operator_action`` like the start.

A slow operator never holds memory: while a send waits, the tap's own queue
fills up to its bound and then counts drops.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from .. import wire
from ..protocol import EventKind
from ..registry import Selector
from ..tap import Tap, TapEnd, TapLimits

if TYPE_CHECKING:  # pragma: no cover
    from ..fleet import Fleet
    from .audit import AuditLog
    from .listener import Session

__all__ = ["TapStreams"]

logger = logging.getLogger("wsconsole.control")


class TapStreams:
    """The taps of one control listener, by the session that owns each."""

    flush_interval = 0.1
    """Seconds between two ``tap`` events of one tap (at most)."""
    final_flush_timeout = 1.0
    """Seconds :meth:`stop` gives the pumps to send their last events."""

    def __init__(self, fleet: Fleet, audit: AuditLog) -> None:
        self.fleet = fleet
        self.audit = audit
        self._taps: dict[Session, dict[str, Tap]] = {}
        self._pumps: dict[Tap, asyncio.Task[None]] = {}

    async def start(self, session: Session, selector: Selector, limits: TapLimits, *,
                    node: str | None = None) -> dict[str, Any]:
        """Start a tap for ``session``; the result of ``tap_start``."""
        tap = await self.fleet.start_tap(selector, limits, node=node,
                                   owner={"role": session.role, "client": session.client})
        wakeup = asyncio.Event()
        tap.notify = wakeup.set
        self._taps.setdefault(session, {})[tap.id] = tap
        self._pumps[tap] = asyncio.get_running_loop().create_task(
            self._pump(session, tap, wakeup), name=f"wsconsole-tap-{tap.id}")
        return tap.summary()

    def stop(self, session: Session, tap_id: str) -> dict[str, Any]:
        """Stop one of ``session``'s taps; the result of ``tap_stop``."""
        tap = self._taps.get(session, {}).get(tap_id)
        if tap is None:
            # Ended on its own already, or another connection's: nothing to stop.
            return {"tap": tap_id, "stopped": False}
        stopped = self.fleet.stop_tap(tap, TapEnd.STOPPED)
        return {"tap": tap_id, "stopped": stopped, "reason": tap.ended,
                "shown": tap.shown, "dropped": tap.dropped}

    def session_closed(self, session: Session) -> None:
        """The control connection went away: its taps end (and are audited)."""
        for tap in list(self._taps.pop(session, {}).values()):
            self.fleet.stop_tap(tap, TapEnd.DISCONNECTED)
            pump = self._pumps.pop(tap, None)
            if pump is not None:
                pump.cancel()
            self._audit_end(session, tap)

    async def stop_all(self) -> None:
        """The listener stops: every tap ends, and its operator gets the last events."""
        for taps in self._taps.values():
            for tap in taps.values():
                self.fleet.stop_tap(tap, TapEnd.SERVER_STOPPED)
        pumps = list(self._pumps.values())
        if not pumps:
            return
        try:
            async with asyncio.timeout(self.final_flush_timeout):
                await asyncio.gather(*pumps, return_exceptions=True)
        except TimeoutError:
            # Stuck behind a slow operator: ended all the same, and audited.
            for session, taps in list(self._taps.items()):
                for tap in list(taps.values()):
                    pump = self._pumps.pop(tap, None)
                    if pump is not None:
                        pump.cancel()
                        self._audit_end(session, tap)

    def active(self, session: Session) -> int:
        """How many taps ``session`` runs."""
        return len(self._taps.get(session, {}))

    async def _pump(self, session: Session, tap: Tap, wakeup: asyncio.Event) -> None:
        sent_dropped = 0
        try:
            while True:
                if tap.ended is None and not wakeup.is_set():
                    await wakeup.wait()
                wakeup.clear()
                records = tap.take()
                dropped = tap.dropped
                if records or dropped != sent_dropped:
                    sent_dropped = dropped
                    await session.connection.send(_frame(EventKind.TAP, {
                        "tap": tap.id, "records": records, "shown": tap.shown,
                        "dropped": dropped}))
                if tap.ended is not None:
                    await session.connection.send(_frame(EventKind.TAP_ENDED, {
                        "tap": tap.id, "reason": tap.ended, "shown": tap.shown,
                        "dropped": tap.dropped}))
                    break
                # Records that arrive meanwhile wait in the tap's bounded queue.
                await asyncio.sleep(self.flush_interval)
        except ConnectionClosed:
            self.fleet.stop_tap(tap, TapEnd.DISCONNECTED)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The type only: a record holds a payload.
            logger.error("tap %s stream to %s failed: %s", tap.id, session.client,
                         type(exc).__name__)
            self.fleet.stop_tap(tap, TapEnd.DISCONNECTED)
        # Ended on its own, stopped, or its connection failed: one audit line.
        if self._pumps.pop(tap, None) is not None:
            self._taps.get(session, {}).pop(tap.id, None)
            self._audit_end(session, tap)

    def _audit_end(self, session: Session, tap: Tap) -> None:
        summary = tap.summary()
        args = {key: summary[key] for key in ("selector", "direction", "max_bytes", "rate",
                                               "byte_rate", "duration")}
        args["tap"] = tap.id
        entry = self.audit.entry(session.role, session.client, "tap_end", args)
        entry["decision"] = "ended"
        entry["result"] = {"tap": tap.id, "reason": tap.ended, "shown": tap.shown,
                           "dropped": tap.dropped,
                           "seconds": round(time.time() - tap.started_at, 3)}
        self.audit.record(entry)


def _frame(kind: str, data: dict[str, Any]) -> str:
    # Records come from websockets' decoding (text is valid Unicode, binary is
    # hex) and the application's identity: a value JSON cannot carry is the
    # application's, as for any event.
    try:
        return wire.encode_event(kind, data, time.time())
    except ValueError:
        for record in data.get("records", ()):
            for key in ("user", "data", "reason"):
                value = record.get(key)
                if isinstance(value, str):
                    record[key] = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return wire.encode_event(kind, data, time.time())
