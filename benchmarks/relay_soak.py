"""The relay's soak: many webhooks through two relay replicas on one Redis, screens coming
and going, the relays killed -9 and Redis restarted (some times losing its data), then a
reconciliation of what every screen received against what the relays answered 2xx.

Set-up, each piece in its own process as in production:

- ``redis-server`` with AOF (``appendfsync always``), restarted ``--redis-restarts`` times
  (SIGKILL, then started again); ``--wipes`` of those restarts lose its data first (a
  Redis without persistence: the store forgets everything, ids go back);
- two relay replicas (``kiosk relay``) on that Redis, each killed -9 ``--relay-kills`` / 2
  times and started again at once (as systemd would);
- the provider: ``--webhooks`` deliveries over ``--branches`` branches, each to either
  replica (a load balancer), signed as the default template signs them (``--auth jwt``:
  a bound RS256 JWT, signed anew at each sending as the provider's ``#jwt`` helper does,
  the relays holding the public key only) or as the HMAC template does (``--auth
  hmac``); a delivery answered 5xx or not at all is sent again up to 4 times (the
  provider retries a 5xx, faster here); the mix: new calls, repeated deliveries of one
  (same ``callId``), re-calls of a ticket to another booth (a new ``callId``), bad or
  missing signatures (a JWT of another key, an HMAC of another secret, none), and
  replays of an earlier delivery (its very bytes, as captured: a JWT replayed is refused
  401, an HMAC one is the same call again, 200);
- ``--screens`` calling screens (each a stream of its branch's calls, read with the
  screen's own line and event reader), connecting to either replica, leaving a while
  and coming back with ``Last-Event-ID``, or leaving for good for a new screen to take
  their place.

Reconciled and printed, each by count (all must be 0, exit status 1 otherwise):

- lost: a call answered 2xx that a screen of its branch, watching since before it was
  sent and still there a while after, never received (unless a wipe of the store explains
  it: the call was stored before the wipe and the screen was not connected all along
  between its answer and the wipe);
- shown twice: a screen received a call more often than the relays accepted it as new
  (201, or a sending that got no answer or a 5xx: it may have been stored);
- at the wrong branch: a screen received another branch's call;
- unsigned accepted: a delivery with a bad or no signature answered 2xx, or shown;
- accepted twice: one call accepted as new (201) twice with no wipe of the store between
  (a repeated delivery or a replay taken for a new call);
- re-calls refused: a re-call to another booth (a new ``callId``) answered 2xx but never
  accepted as a new call (taken for a repeated delivery: never shown, and the provider
  never retries);
- replays taken: a replay answered 2xx (with a JWT: the relay had that very token before)
  or 201 (with an HMAC: a 200 is "the same call again") after what it replays was
  answered 2xx, with no wipe of the store between.

Figures that explain the rest are printed too (never acknowledged, refused by kind and
error, excused by a wipe, latency from the webhook's first sending to a screen).

    .venv/bin/python benchmarks/relay_soak.py [--webhooks 20000] [--branches 50]
        [--screens 200] [--relay-kills 10] [--redis-restarts 5] [--wipes 2] [--rate 150]
        [--recall-share 0.08] [--auth jwt|hmac] [--seed 1] [--work DIR]

tests/test_relay_soak.py runs a 1,200-webhook version (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _processes import RedisServer, RelayProcess

from kiosk.calls.feed import bounded_lines, sse_events
from tests.relay_helpers import jwt_headers, rs256_pair, sign

SECRET = b"soak-webhook-secret-0123456789abcdef"
WRONG_SECRET = b"not-the-secret-0123456789abcdefgh"
MIX = {"new": 0.70, "repeat": 0.10, "recall": 0.08, "bad_signature": 0.06, "replay": 0.06}
"""Shares of the deliveries, by kind."""
RETRIES = (0.5, 1.0, 2.0, 2.0)
"""Waits before the provider sends a delivery again (5xx or no answer), shortened: the
provider waits 60 s and more (and a repeated delivery of a call comes later still)."""
SETTLE_S = 10.0
"""A screen that leaves for good within this long of a call's answer need not have it."""
IN_FLIGHT_S = 2.0
"""A call answered this long before a wipe of the store may not have reached anyone."""
FIGURES = ("lost", "shown twice", "at the wrong branch", "unsigned accepted",
           "accepted twice", "re-calls refused", "replays taken")


_ISSUED: defaultdict[bytes, set[int]] = defaultdict(set)
"""The ``iat`` of every JWT signed so far, by the call's body."""


def provider_jwt(body: bytes, which: str = "provider") -> dict[str, str]:
    """What the default template's ``Authorization`` renders to at one sending: a JWT of
    the call's fields, issued now, expiring in a minute (``expiresIn: 1m``), as the
    relay's tests make it (:func:`tests.relay_helpers.jwt_headers`).

    ``iat`` is in seconds and RS256 is deterministic, so two sendings of one call within
    a second would be the very same JWT - a replay to the relay. The provider's never
    are (it sends again after 60 s and more); the soak's time runs faster, so a JWT of a
    call whose second is taken is issued a second further back (a few seconds at most,
    well within the relay's window), to stay as distinct as the provider's."""
    issued = _ISSUED[body]
    now = int(time.time())
    while now in issued:
        now -= 1
    issued.add(now)
    return jwt_headers(body, rs256_pair(which)[0], "RS256", issued=now)


# --------------------------------------------------------------------------- the plan


@dataclass
class Delivery:
    """One webhook the provider sends (maybe several times, if it gets no 2xx)."""

    index: int
    kind: str
    """``new``, ``repeat``, ``recall``, ``bad_signature``, ``replay``."""
    branch: int
    key: tuple[str, str]
    """(ticketId, booth): one call, as a screen shows it."""
    body: bytes
    signed: bool = True
    forged: str = ""
    """How an unsigned delivery is sent: ``none`` (no proof) or ``other`` (another key's)."""
    source: Delivery | None = None
    """The delivery a repeat or a replay is of."""
    attempts: list[tuple[float, int]] = field(default_factory=list)
    """(when sent, status; 0: no answer) of each sending."""
    errors: list[str] = field(default_factory=list)
    """The ``error`` of each 4xx answer."""
    captured: dict[str, str] | None = None
    """The headers of its first sending, as an attacker on the way would have them."""
    sending: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at its first sending (when :attr:`captured` is known)."""

    def headers(self, auth: str) -> dict[str, str]:
        """The headers of one sending: signed anew (a JWT's time is now), or the very
        bytes of an earlier one (a replay: :func:`deliver` waits until its source sent)."""
        if self.kind == "replay":
            assert self.source is not None and self.source.captured is not None
            return self.source.captured
        if not self.signed and self.forged == "none":
            return {"Content-Type": "application/json"}
        if auth == "hmac":
            return sign(self.body, SECRET if self.signed else WRONG_SECRET)
        return provider_jwt(self.body, "provider" if self.signed else "other")


def branch_id(b: int) -> str:
    return f"65272{b:019d}"


def token(b: int) -> str:
    return f"soak-display-token-{b:04d}-0123456789"


def plan(n: int, branches: int, seed: int, mix: dict[str, float] | None = None
         ) -> list[Delivery]:
    """``n`` deliveries in sending order, drawn with ``seed`` (``mix``: the shares of each
    kind, default :data:`MIX`)."""
    rng = random.Random(seed)
    out: list[Delivery] = []
    calls: list[Delivery] = []  # signed deliveries of a call: what repeats, re-calls and
    tickets: dict[int, int] = defaultdict(int)  # replays draw from
    booths: dict[str, set[str]] = defaultdict(set)  # where each ticket was called: one
    # (ticket, booth) is one call, so a key is one callId (its repeats and replays aside)
    kinds, weights = zip(*(mix or MIX).items(), strict=True)
    for i in range(n):
        kind = rng.choices(kinds, weights)[0]
        if (kind in ("repeat", "recall", "replay") and len(calls) < 20) or (
                kind == "replay" and len(calls) == 20):  # a replay is of an older one
            kind = "new"
        if kind in ("repeat", "replay"):
            source = rng.choice(calls[-20:] if kind == "repeat" else calls[:-20])
            out.append(Delivery(i, kind, source.branch, source.key, source.body,
                                source=source))
            continue
        if kind == "recall":  # to a booth this ticket was not called to: another call
            source = rng.choice(calls)
            b, ticket = source.branch, source.key[0]
            free = [n for n in range(1, 41) if f"Cabina {n}" not in booths[ticket]]
            if not free:
                kind, source = "repeat", rng.choice(calls[-20:])
                out.append(Delivery(i, kind, source.branch, source.key, source.body,
                                    source=source))
                continue
            booth = f"Cabina {rng.choice(free)}"
        else:
            b = rng.randrange(branches)
            tickets[b] += 1
            ticket = f"B{b:02d}-{tickets[b]:05d}" if kind == "new" else \
                f"B{b:02d}-X{tickets[b]:05d}"
            booth = f"Cabina {rng.randint(1, 40)}"
        call = {"event": "qms.ticket.assigned", "ticketId": ticket, "callId": f"call-{i}",
                "branch": {"id": branch_id(b), "label": f"Sucursal {b}"},
                "queue": {"id": "652a1ae848880e168884e49b", "name": "Atención a clientes"},
                "poc": {"id": f"poc-{booth.split()[-1]}", "label": booth},
                "integrationData": {"lang": rng.choice(["es", "en", "pt"]), "source": "kiosk",
                                    "kiosk": "lobby-1", "day": ""}}
        body = json.dumps(call, ensure_ascii=False).encode()
        signed = kind != "bad_signature"
        forged = "" if signed else "none" if rng.random() < 0.5 else "other"
        d = Delivery(i, kind, b, (ticket, booth), body, signed, forged)
        booths[ticket].add(booth)
        out.append(d)
        if signed:
            calls.append(d)
    return out


# --------------------------------------------------------------------------- processes


# --------------------------------------------------------------------------- screens


@dataclass
class Screen:
    """One calling screen, from its first connection until it leaves for good."""

    ident: int
    branch: int
    first_connected: float | None = None
    left: float | None = None
    last_id: str | None = None
    connected: list[list[float]] = field(default_factory=list)
    """[start, end] of each connection (end: inf while open)."""
    received: list[tuple[tuple[str, str], str, float]] = field(default_factory=list)
    """(key, branch id in the ticket, when) of each call received."""
    refusals: Counter[int] = field(default_factory=Counter)

    def connected_all_along(self, start: float, end: float) -> bool:
        return any(a <= start and b >= end for a, b in self.connected)


@dataclass
class Soak:
    """What happened."""

    args: argparse.Namespace
    replicas: list[RelayProcess]
    redis: RedisServer
    deliveries: list[Delivery] = field(default_factory=list)
    screens: list[Screen] = field(default_factory=list)
    wipes: list[float] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)
    stopping: bool = False
    began: float = 0.0
    """When the provider began sending (the times printed are from it)."""
    sent: int = 0
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    """Notified at each delivery sent (the faults wait for their moment on it)."""


async def watch(soak: Soak, screen: Screen, client: httpx.AsyncClient, until: float) -> None:
    """One connection of ``screen`` to a replica until ``until`` (or it ends)."""
    replica = random.choice(soak.replicas)
    headers = {"Authorization": f"Bearer {token(screen.branch)}",
               "Accept": "text/event-stream"}
    if screen.last_id is not None:
        headers["Last-Event-ID"] = screen.last_id
    url = f"{replica.url}/v1/branches/{branch_id(screen.branch)}/calls"
    span: list[float] | None = None
    try:
        async with asyncio.timeout(max(0.0, until - time.monotonic())), \
                client.stream("GET", url, headers=headers) as resp:
            if resp.status_code != 200:
                screen.refusals[resp.status_code] += 1
                return
            moment = time.monotonic()
            if screen.first_connected is None:
                screen.first_connected = moment
            span = [moment, float("inf")]
            screen.connected.append(span)
            async for ev in sse_events(bounded_lines(resp.aiter_raw())):
                if ev.event != "call":
                    continue
                if ev.id is not None:
                    screen.last_id = ev.id
                data = json.loads(ev.data)
                key = (data["ticketId"], data["poc"]["label"])
                screen.received.append((key, data["ticketId"].split("-")[0],
                                        time.monotonic()))
    except (TimeoutError, httpx.HTTPError, ValueError, KeyError):
        pass
    finally:
        if span is not None:
            span[1] = time.monotonic()


async def screen_slot(soak: Soak, slot: int, client: httpx.AsyncClient) -> None:
    """A place for a screen: one screen after another, each coming and going."""
    rng = random.Random(soak.args.seed * 1000 + slot)
    branch = slot % soak.args.branches
    await asyncio.sleep(rng.uniform(0, 2))
    while not soak.stopping:
        screen = Screen(len(soak.screens), branch)
        soak.screens.append(screen)
        life_end = time.monotonic() + rng.expovariate(1 / soak.args.screen_life)
        while not soak.stopping and time.monotonic() < life_end:
            stay = min(life_end, time.monotonic() + rng.expovariate(1 / 8.0))
            await watch(soak, screen, client, stay)
            if not soak.stopping and time.monotonic() < life_end:
                await asyncio.sleep(rng.uniform(0.1, 0.6))  # a blip, or a reconnect
        screen.left = time.monotonic()
        await asyncio.sleep(rng.uniform(0.1, 1.0))


# --------------------------------------------------------------------------- the provider


async def deliver(soak: Soak, d: Delivery, client: httpx.AsyncClient) -> None:
    if d.source is not None and d.kind == "replay":
        await d.source.sending.wait()  # what is replayed was sent (captured) first
    for wait in (0.0, *RETRIES):
        await asyncio.sleep(wait)
        replica = random.choice(soak.replicas)
        headers = d.headers(soak.args.auth)
        if d.captured is None:
            d.captured = headers
            d.sending.set()
        sent = time.monotonic()
        try:
            r = await client.post(f"{replica.url}/webhooks/videsk", content=d.body,
                                  headers=headers)
            status = r.status_code
            if 400 <= status < 500:
                try:
                    d.errors.append(str(r.json().get("error")))
                except ValueError:
                    d.errors.append("?")
        except httpx.HTTPError:
            status = 0
        d.attempts.append((sent, status))
        if 200 <= status < 500:
            return


async def provider(soak: Soak, client: httpx.AsyncClient) -> None:
    gap = 1.0 / soak.args.rate
    began = soak.began = time.monotonic()
    busy = asyncio.Semaphore(24)
    tasks: set[asyncio.Task[None]] = set()

    async def one(d: Delivery) -> None:
        try:
            await deliver(soak, d, client)
        finally:
            busy.release()

    for d in soak.deliveries:
        await asyncio.sleep(max(0.0, began + d.index * gap - time.monotonic()))
        await busy.acquire()
        task = asyncio.create_task(one(d))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        async with soak.progress:
            soak.sent = d.index + 1
            soak.progress.notify_all()
    await asyncio.gather(*tasks)


async def faults(soak: Soak) -> None:
    """Relay kill -9s and Redis restarts, spread over the sending."""
    n = len(soak.deliveries)
    kills, restarts = soak.args.relay_kills, soak.args.redis_restarts
    wipes = min(soak.args.wipes, restarts)
    wiping = {round(j * restarts / wipes + restarts / wipes / 2) for j in range(wipes)} \
        if wipes else set()
    events = [((i + 1) / (kills + 1), "relay", i) for i in range(kills)]
    events += [((i + 0.5) / (restarts + 0.5), "redis", i) for i in range(restarts)]
    for at, kind, i in sorted(events):
        async with soak.progress:
            await soak.progress.wait_for(lambda at=at: soak.sent >= at * n)
        if kind == "relay":
            replica = soak.replicas[i % len(soak.replicas)]
            await asyncio.to_thread(replica.kill)
            soak.faults.append((time.monotonic(), f"kill -9 relay {replica.name}"))
            await asyncio.sleep(0.3)
            await asyncio.to_thread(replica.start)
        else:
            wipe = i in wiping
            await asyncio.to_thread(soak.redis.kill, wipe)
            moment = time.monotonic()
            soak.faults.append((moment, "restart redis" + (", its data lost" if wipe else
                                                           " (AOF)")))
            if wipe:
                soak.wipes.append(moment)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(soak.redis.start)


# --------------------------------------------------------------------------- reconciling


def reconcile(soak: Soak) -> tuple[dict[str, int], list[str]]:
    """The figures (each must be 0) and the lines explaining the rest."""
    acked: dict[tuple[str, str], float] = {}  # key -> first 2xx answer
    first_sent: dict[tuple[str, str], float] = {}
    branch_of: dict[tuple[str, str], int] = {}
    made_by: dict[tuple[str, str], str] = {}  # the kind of the call's first delivery
    recalls: set[tuple[str, str]] = set()
    accepted: dict[tuple[str, str], list[float]] = defaultdict(list)  # 201s
    unsure: Counter[tuple[str, str]] = Counter()
    figures = dict.fromkeys(FIGURES, 0)
    examples: dict[str, list[tuple[str, str]]] = defaultdict(list)
    outcomes: Counter[tuple[str, int]] = Counter()
    of_key: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
    never = 0
    refused_by: Counter[tuple[str, str]] = Counter()
    replays_ok: list[tuple[Delivery, float]] = []
    for d in soak.deliveries:
        of_key[d.key].append(d)
        for _, status in d.attempts:
            outcomes[d.kind, status] += 1
        first_sent.setdefault(d.key, d.attempts[0][0] if d.attempts else 0.0)
        branch_of[d.key] = d.branch
        made_by.setdefault(d.key, d.kind)
        ok = [t for t, status in d.attempts if 200 <= status < 300]
        if not d.signed:
            figures["unsigned accepted"] += bool(ok)
            continue
        # a sending with no answer (or a 5xx) may have stored the call all the same
        unsure[d.key] += sum(1 for _, status in d.attempts if status == 0 or status >= 500)
        if d.kind == "replay" and ok:
            replays_ok.append((d, ok[0]))
        if not ok:
            if d.errors:  # answered 4xx: a replay refused, or a JWT out of its time
                refused_by[d.kind, d.errors[-1]] += 1
            else:
                never += 1
            continue
        acked.setdefault(d.key, ok[0])
        acked[d.key] = min(acked[d.key], ok[0])
        accepted[d.key] += [t for t, status in d.attempts if status == 201]
        if d.kind == "recall":
            recalls.add(d.key)

    def wiped_between(a: float, b: float) -> bool:
        return any(a <= w <= b for w in soak.wipes)

    # a replay answered 2xx although what it replays had been answered 2xx before it was
    # sent, with no wipe of the store between: with a JWT any 2xx (the relay has seen
    # that very token), with an HMAC a 201 (taken for a new call; a 200 is "the same call")
    for d, t_ok in replays_ok:
        assert d.source is not None
        first = d.source.attempts[0] if d.source.attempts else None
        if first is None or not 200 <= first[1] < 300 or first[0] > d.attempts[0][0] \
                or wiped_between(first[0], t_ok):
            continue  # its source never reached the relay: the replay is its delivery
        if soak.args.auth == "jwt" or any(status == 201 for _, status in d.attempts):
            figures["replays taken"] += 1
            examples["replays taken"].append(d.key)

    # a re-call answered 2xx, but never as a new call by any of its deliveries (one of its
    # repeats may come first), all of them answered: taken for a repeated delivery
    refused_recalls = {key for key in recalls
                       if key in acked and not accepted.get(key) and not unsure[key]}
    figures["re-calls refused"] = len(refused_recalls)
    examples["re-calls refused"] += [(key[0], key[1]) for key in sorted(refused_recalls)]
    again_after_wipe = 0
    for key, times in accepted.items():
        times.sort()
        for a, b in itertools.pairwise(times):
            if wiped_between(a, b):
                again_after_wipe += 1
            else:
                figures["accepted twice"] += 1
                examples["accepted twice"].append(key)

    end = time.monotonic()
    by_branch: dict[int, list[tuple[tuple[str, str], float]]] = defaultdict(list)
    for key, t_ack in acked.items():
        by_branch[branch_of[key]].append((key, t_ack))
    excused = 0
    lost_by: Counter[str] = Counter()
    lost_screens: list[str] = []
    """Each lost pair's screen: its connections and what it received around the call."""
    latencies: list[float] = []
    unsigned_keys = {d.key for d in soak.deliveries if not d.signed}
    for screen in soak.screens:
        got: Counter[tuple[str, str]] = Counter()
        first_seen: dict[tuple[str, str], float] = {}
        for key, prefix, when in screen.received:
            got[key] += 1
            first_seen.setdefault(key, when)
            if prefix != f"B{screen.branch:02d}":
                figures["at the wrong branch"] += 1
            if key in unsigned_keys:
                figures["unsigned accepted"] += 1
        for key, n in got.items():  # more often than the relays may have stored it
            allowed = max(1, len(accepted.get(key, ())) + unsure[key])
            if n > allowed:
                figures["shown twice"] += n - allowed
                examples["shown twice"].append(key)
        if screen.first_connected is None:
            continue
        left = screen.left if screen.left is not None else end
        for key, t_ack in by_branch[screen.branch]:
            if key in first_seen:
                if screen.first_connected < first_sent[key]:
                    latencies.append(first_seen[key] - first_sent[key])
                continue
            if not (screen.first_connected < first_sent[key] and left > t_ack + SETTLE_S):
                continue  # not watching since before it was sent, or left soon after
            wipes = [w for w in soak.wipes if w > first_sent[key]]
            if any(w - t_ack < IN_FLIGHT_S or not screen.connected_all_along(t_ack, w)
                   for w in wipes):
                excused += 1
                continue
            figures["lost"] += 1
            examples["lost"].append(key)
            if len(lost_screens) < 3:
                rel = soak.began
                before = [w - rel for _, _, w in screen.received if w <= t_ack]
                after = [w - rel for _, _, w in screen.received if w > t_ack]
                spans = ", ".join(f"{a - rel:.2f}-" + ("end" if b == float("inf") else
                                                      f"{b - rel:.2f}")
                                  for a, b in screen.connected)
                lost_screens.append(
                    f"  {key[0]} (answered at {t_ack - rel:.2f} s) not on screen "
                    f"#{screen.ident} of B{screen.branch:02d}: connected {spans} s; "
                    f"its last call before at {max(before, default=float('nan')):.2f} s, "
                    f"first after at {min(after, default=float('nan')):.2f} s "
                    f"(last id {screen.last_id})")
            lost_by["a re-call answered as a duplicate" if key in refused_recalls else
                    "a call answered after a wipe of the store" if any(
                        w < t_ack for w in soak.wipes) else f"a {made_by[key]} call"] += 1
    lines = []
    kinds = Counter(d.kind for d in soak.deliveries)
    lines.append(f"deliveries {len(soak.deliveries)}: " + ", ".join(
        f"{k} {kinds[k]}" for k in MIX))
    lines.append("answers: " + ", ".join(
        f"{k}/{status or 'none'} {n}" for (k, status), n in sorted(outcomes.items())))
    lines.append(f"calls acknowledged {len(acked)}; never acknowledged {never} "
                 "(every sending failed: the provider gives up, nothing is promised)")
    lines.append("signed deliveries refused (4xx), by kind and error: " + (", ".join(
        f"{kind}/{error} {n}" for (kind, error), n in sorted(refused_by.items())) or "none"))
    lines.append(f"screens {len(soak.screens)} "
                 f"({sum(s.first_connected is not None for s in soak.screens)} connected), "
                 f"connections {sum(len(s.connected) for s in soak.screens)}, "
                 f"calls received {sum(len(s.received) for s in soak.screens)}, refused "
                 f"{dict(sum((s.refusals for s in soak.screens), Counter()))}")
    lines.append(f"not received, excused by a wipe of the store {excused}; accepted as new "
                 f"again after a wipe (a repeat or a replay the store forgot) {again_after_wipe}")
    if lost_by:
        lines.append("lost (screen, call) pairs, by what the call was: " + ", ".join(
            f"{what} {n}" for what, n in lost_by.most_common()))
        lines += lost_screens
    if latencies:
        latencies.sort()
        lines.append(f"first sending to a screen: p50 {statistics.median(latencies) * 1000:.0f}"
                     f" ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms "
                     "(retries and replays included)")
    lines.append("faults: " + "; ".join(f"{name} at {t - soak.began:.1f} s"
                                        for t, name in soak.faults))
    for figure, keys in examples.items():  # what happened to a few of them
        for key in list(dict.fromkeys(keys))[:3]:
            story = "; ".join(
                f"{d.kind} #{d.index} " + ",".join(
                    f"{status or 'none'}@{t - soak.began:.2f}s" for t, status in d.attempts)
                for d in of_key[key])
            lines.append(f"  e.g. {figure}: {key[0]} to {key[1]!r}: {story}")
    return figures, lines


# --------------------------------------------------------------------------- main


def write_config(folder: Path, redis_url: str, branches: int, auth: str) -> Path:
    if auth == "jwt":  # the relays hold the provider's public key only
        public = folder / "webhook-jwt.pub"
        public.write_text(rs256_pair("provider")[1])
        proof: dict[str, Any] = {"jwt_public_key_file": str(public), "require_jwt": True}
    else:
        secret = folder / "webhook-secret"
        secret.write_text(SECRET.decode() + "\n")
        secret.chmod(0o600)
        proof = {"webhook_secret_file": str(secret)}
    displays = []
    for b in range(branches):
        path = folder / f"display-{b}"
        path.write_text(token(b) + "\n")
        path.chmod(0o600)
        displays.append({"branch": branch_id(b), "token_file": str(path)})
    config = folder / "relay.yaml"
    config.write_text(yaml.safe_dump({
        "kiosk": {"data_dir": str(folder / "data")},
        "relay": {**proof, "store": redis_url, "keepalive_s": 2,
                  "max_streams_per_token": 64, "displays": displays}}))
    return config


async def run(args: argparse.Namespace, folder: Path) -> int:
    redis = RedisServer(folder / "redis")
    redis.start()
    config = write_config(folder, redis.url, args.branches, args.auth)
    replicas = [RelayProcess(config, folder / f"relay-{name}.log", name, ready="listening")
                for name in "AB"]
    mix = dict(MIX)
    if args.recall_share is not None:
        mix["new"] += mix["recall"] - args.recall_share
        mix["recall"] = args.recall_share
    soak = Soak(args, replicas, redis, plan(args.webhooks, args.branches, args.seed, mix))
    try:
        for replica in replicas:
            await asyncio.to_thread(replica.start)
        limits = httpx.Limits(max_connections=args.screens * 2 + 100)
        timeout = httpx.Timeout(5.0, read=10.0)
        async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False
                                     ) as screens_client, \
                httpx.AsyncClient(timeout=httpx.Timeout(5.0), trust_env=False) as hooks:
            slots = [asyncio.create_task(screen_slot(soak, i, screens_client))
                     for i in range(args.screens)]
            await asyncio.sleep(2.5)  # the first screens are watching
            began = time.monotonic()
            await asyncio.gather(provider(soak, hooks), faults(soak))
            sending = time.monotonic() - began
            await asyncio.sleep(SETTLE_S + 2)  # everyone reconnected and caught up
            soak.stopping = True
            for task in slots:
                task.cancel()
            await asyncio.gather(*slots, return_exceptions=True)
    finally:
        for replica in replicas:
            replica.stop()
        redis.stop()
    figures, lines = reconcile(soak)
    print(f"relay soak: {args.webhooks} webhooks over {args.branches} branches in "
          f"{sending:.0f} s, {args.screens} screens, two replicas on Redis, "
          f"{args.relay_kills} relay kill -9s, {args.redis_restarts} Redis restarts "
          f"({len(soak.wipes)} losing its data), signed by {args.auth}, seed {args.seed}")
    for line in lines:
        print(line)
    print("figures (each must be 0):")
    for name in FIGURES:
        print(f"  {name:<22}{figures[name]:>6}")
    failed = {k: v for k, v in figures.items() if v}
    print("relay soak: OK" if not failed else f"relay soak: FAILED {failed} (logs: {folder})")
    return 1 if failed else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--webhooks", type=int, default=20_000)
    p.add_argument("--branches", type=int, default=50)
    p.add_argument("--screens", type=int, default=200)
    p.add_argument("--relay-kills", type=int, default=10)
    p.add_argument("--redis-restarts", type=int, default=5)
    p.add_argument("--wipes", type=int, default=2,
                   help="how many of the Redis restarts lose its data (no persistence)")
    p.add_argument("--recall-share", type=float, default=None,
                   help=f"share of re-calls to another booth (default {MIX['recall']})")
    p.add_argument("--rate", type=float, default=150.0, help="webhooks a second")
    p.add_argument("--screen-life", type=float, default=40.0,
                   help="mean seconds a screen stays before it leaves for good")
    p.add_argument("--auth", choices=["jwt", "hmac"], default="jwt",
                   help="how the provider signs: the default template's JWT, or the HMAC")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", type=Path, help="keep the logs here (default: a temporary folder)")
    args = p.parse_args()
    random.seed(args.seed)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        sys.exit(asyncio.run(run(args, args.work)))
    with tempfile.TemporaryDirectory(prefix="relay-soak-") as folder:
        status = asyncio.run(run(args, Path(folder)))
        if status:
            kept = Path(tempfile.mkdtemp(prefix="relay-soak-logs-"))
            for log in Path(folder).glob("relay-*.log"):
                shutil.copy(log, kept / log.name)
            print(f"relay soak: the relays' logs are kept in {kept}")
    sys.exit(status)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
