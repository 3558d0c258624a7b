"""Conformance of `outlake sim` with Microsoft's own Graph client: the Python `msgraph-sdk`.

The simulator is our reading of Graph; this asks code written by Microsoft whether it reads the
same. The script starts `outlake sim` on 127.0.0.1, points a `GraphServiceClient` at it, and
pages every endpoint outlake syncs, through the SDK's generated request builders only (the URL
templates are Microsoft's, so `delta()` is the form asked for):

- `users` (the listing; outlake has no users delta, and neither has the simulator);
- per mailbox: `mailFolders/delta()`, `messages/delta()` of the inbox by its well-known name and
  of every folder by id, the `calendars` listing, every calendar's
  `calendars/{id}/calendarView/delta()`, and the default calendar's
  `calendar/calendarView/delta()` and `calendarView/delta()` (the last with
  `Prefer: outlook.timezone`), all with `startDateTime`/`endDateTime`;
- the user without a mailbox (Graph answers 404 `MailboxNotEnabledForRESTAPI`);
- then a round of changes (`POST /_sim/random-changes`) and the newest `@odata.deltaLink` of each
  folder tree, folder and calendar followed with `with_url` (older ones are superseded: the
  simulator, like Graph, answers 410 `SyncStateNotFound` for them): changed and `@removed` items,
  404 `ErrorItemNotFound` for the deltaLinks of deleted folders and calendars, fresh rounds for
  new ones.

Every request sends the `Prefer` header outlake's connector sends (`odata.maxpagesize`,
`IdType="ImmutableId"`), so the rounds span many pages and `@odata.nextLink` is followed with
`with_url` too.

What is checked, for every page the SDK parsed (and every error body it parsed into `ODataError`):

1. The request succeeds (an unexpected error status, a transport error, or an exception while
   parsing fails the check); the page parses into the SDK's typed response and each item into
   its typed model (`User`, `MailFolder`, `Message`, `Event`, `Calendar`); every item has an
   `id`.
2. The parsed value equals the raw JSON. The raw JSON is the exact body the SDK received (an
   httpx response hook on the SDK's own client keeps it), not a second fetch, so the two cannot
   differ by timing. The parsed page is serialized back with the SDK's JSON writer and compared
   to the raw body key by key. This is a sound oracle because Kiota's parse nodes turn a value of
   the wrong JSON type, an unknown enum member or an unparsable date into `None` without error:
   such a field is missing after the round trip and reported with its path. Equal means: the same
   string, number (booleans apart from numbers), list and object; an ISO date-time string equal
   as an instant (the SDK writes `+00:00` for `Z`); a JSON `null` equal to an absent key. A key
   the SDK writes but the raw JSON lacked fails, except `@odata.type`, which the models fill in
   with their own type.
3. Every property name is in Graph's schema: a key that lands in a model's `additional_data`
   (the SDK knows no property of that name for that type; its models are generated from Graph's
   metadata) fails, unless it is an OData annotation (`@odata.etag`, `@removed`, …).
4. Every `Edm.DateTimeOffset` property carries an offset (a naive `datetime` after parsing
   fails: Graph writes `Z`), except `innerError.date` of error bodies, which Graph itself writes
   without one.

Before any of that, a negative control: a well-formed message must pass the comparison and each
kind of corruption above (wrong JSON type, unknown enum value, unparsable or offset-less
date-time, unknown property, nested ones) must be caught, or the run fails.

It never contacts anything but the simulator: a request hook refuses any host but 127.0.0.1,
and tokens come from the simulator's own token endpoint (client credentials) through Kiota's
`BaseBearerTokenAuthenticationProvider`, not azure-identity.

Usage: python conformance.py --outlake target/debug/outlake
Exit status: 0 all checks passed, 1 a check failed (each failure is printed with its URL and
JSON path), 2 the simulator or the token endpoint could not be used.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import enum
import json
import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from typing import Any, Awaitable, Callable, Optional

import httpx
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.serialization import Parsable
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.calendar import Calendar
from msgraph.generated.models.event import Event
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder as CalendarViewDelta
from msgraph.graph_request_adapter import options as graph_adapter_options
from msgraph_core import GraphClientFactory

LOOPBACK = "127.0.0.1"
MAX_REPORTED = 40


class SetupError(Exception):
    """The simulator or its token endpoint could not be used (exit 2)."""


# ---------------------------------------------------------------------------------------------
# The simulator process


class Sim:
    """`outlake sim` as a child process; its first stdout line is {url, tenant_id, client_id, client_secret}."""

    def __init__(self, outlake: str, args: list[str]) -> None:
        self.log = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen([outlake, "sim", *args], stdout=subprocess.PIPE, stderr=self.log)
        except OSError as e:
            raise SetupError(f"cannot run {outlake}: {e} (build it with `cargo build -p outlake`, or pass --outlake)") from e
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=30):
            self.stop()
            raise SetupError(f"`outlake sim` printed nothing within 30 s:\n{self.log_tail()}")
        line = self.proc.stdout.readline()
        try:
            info = json.loads(line)
            self.url, self.tenant, self.client_id, self.secret = info["url"], info["tenant_id"], info["client_id"], info["client_secret"]
        except (ValueError, KeyError) as e:
            self.stop()
            raise SetupError(f"`outlake sim` did not print its JSON line ({e}): {line!r}\n{self.log_tail()}") from e
        if httpx.URL(self.url).host != LOOPBACK:
            self.stop()
            raise SetupError(f"`outlake sim` serves on {self.url}, not on {LOOPBACK}")

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SimTokens(AccessTokenProvider):
    """App-only tokens from the simulator's identity endpoint (client credentials), cached until near expiry."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.token: Optional[str] = None
        self.expires = 0.0
        self.fetched = 0

    async def get_authorization_token(self, uri: str, additional_authentication_context: dict[str, Any] = {}) -> str:
        if self.token is None or time.monotonic() > self.expires - 60:
            form = {
                "grant_type": "client_credentials",
                "client_id": self.sim.client_id,
                "client_secret": self.sim.secret,
                "scope": "https://graph.microsoft.com/.default",
            }
            async with httpx.AsyncClient() as http:
                r = await http.post(f"{self.sim.url}/{self.sim.tenant}/oauth2/v2.0/token", data=form)
            if r.status_code != 200:
                raise SetupError(f"the simulator's token endpoint answered {r.status_code}: {r.text[:500]}")
            body = r.json()
            self.token, self.expires = body["access_token"], time.monotonic() + float(body.get("expires_in", 3600))
            self.fetched += 1
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([LOOPBACK])


class Wire:
    """httpx hooks on the SDK's own client: refuse any host but loopback; keep the last response body."""

    def __init__(self) -> None:
        self.last: Optional[tuple[str, int, bytes]] = None
        self.requests = 0

    async def on_request(self, request: httpx.Request) -> None:
        if request.url.host != LOOPBACK:
            raise RuntimeError(f"refusing a request to {request.url.host}: only the simulator on {LOOPBACK} may be contacted")

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()
        self.requests += 1
        self.last = (str(response.request.url), response.status_code, response.content)


def graph_client(sim: Sim, wire: Wire) -> tuple[GraphServiceClient, SimTokens]:
    http = KiotaClientFactory.get_default_client()
    http.event_hooks = {"request": [wire.on_request], "response": [wire.on_response]}
    http = GraphClientFactory.create_with_default_middleware(client=http, options=graph_adapter_options)
    tokens = SimTokens(sim)
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(tokens), client=http)
    adapter.base_url = f"{sim.url}/v1.0"
    return GraphServiceClient(request_adapter=adapter), tokens


# ---------------------------------------------------------------------------------------------
# Comparing what the SDK parsed with what it received

ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def serialize(model: Parsable) -> Any:
    w = JsonSerializationWriter()
    w.write_object_value(None, model)
    return json.loads(w.get_serialized_content())


def as_instant(s: str) -> Optional[dt.datetime]:
    if not ISO_DATETIME.match(s):
        return None
    try:
        return dt.datetime.fromisoformat(s)
    except ValueError:
        return None


def describe(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 120 else s[:117] + "..."


def diff(raw: Any, parsed: Any, path: str, out: list[str]) -> None:
    """Appends to `out` every place where `parsed` (the SDK's model serialized back) differs from `raw`."""
    if isinstance(raw, dict) and isinstance(parsed, dict):
        for k, rv in raw.items():
            if rv is None:
                if parsed.get(k) is not None:
                    out.append(f"{path}.{k}: raw null, parsed {describe(parsed[k])}")
            elif k not in parsed:
                out.append(f"{path}.{k}: raw {describe(rv)}, lost by the SDK (wrong JSON type, unknown enum value or unparsable value)")
            else:
                diff(rv, parsed[k], f"{path}.{k}", out)
        for k in parsed.keys() - raw.keys():
            if k != "@odata.type" and parsed[k] is not None:
                out.append(f"{path}.{k}: absent from the raw JSON, the SDK wrote {describe(parsed[k])}")
    elif isinstance(raw, list) and isinstance(parsed, list):
        if len(raw) != len(parsed):
            out.append(f"{path}: raw has {len(raw)} elements, parsed {len(parsed)}")
        for i, (r, p) in enumerate(zip(raw, parsed)):
            diff(r, p, f"{path}[{i}]", out)
    elif isinstance(raw, bool) or isinstance(parsed, bool):
        if raw is not parsed:
            out.append(f"{path}: raw {describe(raw)}, parsed {describe(parsed)}")
    elif isinstance(raw, (int, float)) and isinstance(parsed, (int, float)):
        if raw != parsed:
            out.append(f"{path}: raw {raw}, parsed {parsed}")
    elif isinstance(raw, str) and isinstance(parsed, str):
        if raw != parsed:
            a, b = as_instant(raw), as_instant(parsed)
            if a is None or b is None or (a.tzinfo is None) != (b.tzinfo is None) or a != b:
                out.append(f"{path}: raw {describe(raw)}, parsed {describe(parsed)}")
    else:
        out.append(f"{path}: raw {describe(raw)}, parsed {describe(parsed)}")


def schema_problems(model: Any, path: str, out: list[str]) -> None:
    """Properties Graph's schema does not have (they land in additional_data) and offset-less DateTimeOffsets."""
    if isinstance(model, list):
        for i, m in enumerate(model):
            schema_problems(m, f"{path}[{i}]", out)
        return
    if isinstance(model, dt.datetime) and model.tzinfo is None and not path.endswith("inner_error.date"):
        # Graph's own error bodies write innerError.date without an offset ("2024-05-01T10:00:00").
        out.append(f"{path}: a DateTimeOffset without an offset ({model.isoformat()}); Graph writes UTC with Z")
        return
    if not (isinstance(model, Parsable) and dataclasses.is_dataclass(model)):
        return
    extra = getattr(model, "additional_data", None) or {}
    for k in extra:
        if "@" not in k:
            out.append(f"{path}.{k}: not a property of {type(model).__name__} in Graph's schema (value {describe(jsonable(extra[k]))})")
    for f in dataclasses.fields(model):
        if f.name in ("additional_data", "backing_store"):
            continue
        v = getattr(model, f.name)
        if v is not None and not isinstance(v, (str, int, float, bytes, enum.Enum)):
            schema_problems(v, f"{path}.{f.name}", out)


def jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


# The negative control: the comparison must see each kind of discrepancy it claims to see.

CONTROL_GOOD: dict[str, Any] = {
    "@odata.etag": 'W/"CQAAABYAAAA"',
    "id": "AAMkAGI2",
    "subject": "hello",
    "isRead": True,
    "importance": "high",
    "receivedDateTime": "2026-01-01T10:00:00Z",
    "conversationIndex": "AQIDBA==",
    "categories": ["Blue"],
    "body": {"contentType": "html", "content": "<p>hi</p>"},
    "flag": {"flagStatus": "flagged"},
    "toRecipients": [{"emailAddress": {"name": "Adele", "address": "adele@contoso.example"}}],
}
CONTROL_BAD: list[tuple[str, dict[str, Any]]] = [
    ("a value of the wrong JSON type", {"isRead": "true"}),
    ("an enum value Graph does not have", {"importance": "urgent"}),
    ("an unparsable date-time", {"receivedDateTime": "yesterday"}),
    ("a date-time without an offset", {"receivedDateTime": "2026-01-01T10:00:00"}),
    ("a property Graph does not have", {"receivedDateTme": "2026-01-01T10:00:00Z"}),
    ("a nested value of the wrong type", {"toRecipients": [{"emailAddress": {"name": 5, "address": "adele@contoso.example"}}]}),
    ("a nested enum value Graph does not have", {"body": {"contentType": "markdown", "content": "hi"}}),
]


def control_problems(raw: dict[str, Any]) -> list[str]:
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory

    try:
        node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(raw).encode())
        model = node.get_object_value(Message)
    except Exception as e:  # a parse error is a detection too
        return [f"{type(e).__name__}: {e}"]
    out: list[str] = []
    diff(raw, serialize(model), "$", out)
    schema_problems(model, "$", out)
    return out


def negative_control() -> list[str]:
    """Empty when a well-formed message passes and every corrupted one is caught."""
    failures = [f"a well-formed message was flagged: {p}" for p in control_problems(CONTROL_GOOD)]
    for name, change in CONTROL_BAD:
        if not control_problems({**CONTROL_GOOD, **change}):
            failures.append(f"the comparison missed {name}: {json.dumps(change)}")
    return failures


# ---------------------------------------------------------------------------------------------
# Paging through the SDK


class Checker:
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.failures: list[str] = []
        self.checks = 0
        self.failed_checks = 0
        self.pages: Counter[str] = Counter()
        self.items: Counter[str] = Counter()
        self.removed: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def fail(self, what: str, problems: list[str]) -> None:
        self.failed_checks += 1
        url = self.wire.last[0] if self.wire.last else "(no response)"
        self.failures.append(f"{what}\n    GET {url}\n" + "\n".join(f"    {p}" for p in problems[:MAX_REPORTED]))
        if len(problems) > MAX_REPORTED:
            self.failures[-1] += f"\n    … and {len(problems) - MAX_REPORTED} more"

    def raw_body(self) -> Any:
        assert self.wire.last is not None
        return json.loads(self.wire.last[2])

    async def page(self, what: str, kind: str, call: Callable[[], Awaitable[Any]], item_type: type) -> Optional[Any]:
        """One page through the SDK: parsed, compared with its raw body, items typed."""
        self.checks += 1
        self.wire.last = None
        try:
            resp = await call()
        except ODataError as e:
            self.fail(what, [f"Graph error {e.response_status_code}: {e.error.code if e.error else '?'}: {e.error.message if e.error else e}"])
            return None
        except SetupError:
            raise
        except Exception as e:  # transport or parse error
            self.fail(what, [f"{type(e).__name__}: {e}"])
            return None
        problems: list[str] = []
        if resp is None:
            self.fail(what, ["the SDK returned no response object"])
            return None
        diff(self.raw_body(), serialize(resp), "$", problems)
        schema_problems(resp, "$", problems)
        for i, item in enumerate(resp.value or []):
            if not isinstance(item, item_type):
                problems.append(f"$.value[{i}]: parsed as {type(item).__name__}, not {item_type.__name__}")
            if not getattr(item, "id", None):
                problems.append(f"$.value[{i}]: no id")
            removed = (getattr(item, "additional_data", None) or {}).get("@removed")
            self.items[item_type.__name__] += 1
            if removed is not None:
                self.removed[item_type.__name__] += 1
        if problems:
            self.fail(what, problems)
        self.pages[kind] += 1
        return resp

    async def expect_error(self, what: str, call: Callable[[], Awaitable[Any]], status: int, code: str) -> None:
        """A request Graph refuses: the SDK must raise ODataError with this status and code, parsed intact."""
        self.checks += 1
        self.wire.last = None
        try:
            await call()
        except ODataError as e:
            problems: list[str] = []
            if e.response_status_code != status or not e.error or e.error.code != code:
                problems.append(f"expected {status} {code}, the SDK raised {e.response_status_code} {e.error.code if e.error else None}")
            if not (e.error and e.error.message):
                problems.append("the error has no message")
            if self.wire.last:
                diff(self.raw_body(), serialize(e), "$", problems)
                schema_problems(e, "$", problems)
            if problems:
                self.fail(what, problems)
            else:
                self.errors[code] += 1
            return
        except Exception as e:
            self.fail(what, [f"expected ODataError {status} {code}, got {type(e).__name__}: {e}"])
            return
        self.fail(what, [f"expected {status} {code}, the request succeeded"])

    async def round(
        self, what: str, kind: str, first: Callable[[], Awaitable[Any]], with_url: Callable[[str], Any], item_type: type, delta: bool = True
    ) -> tuple[list[Any], Optional[str]]:
        """Follows @odata.nextLink to the end; returns the items and the @odata.deltaLink (delta rounds need one)."""
        items: list[Any] = []
        call, n = first, 0
        while True:
            resp = await self.page(f"{what} (page {n + 1})", kind, call, item_type)
            if resp is None:
                return items, None
            items.extend(resp.value or [])
            n += 1
            nxt = resp.odata_next_link
            dl = getattr(resp, "odata_delta_link", None)
            if nxt and dl:
                self.fail(f"{what} (page {n})", ["both @odata.nextLink and @odata.deltaLink"])
                return items, None
            if nxt:
                call = lambda nxt=nxt: with_url(nxt).get(request_configuration=config())  # noqa: E731
                continue
            if delta and not dl:
                self.fail(f"{what} (page {n})", ["the last page has no @odata.deltaLink"])
            return items, dl


PREFER: list[str] = []


def config(query: Any = None, extra_prefer: Optional[str] = None) -> RequestConfiguration:
    c = RequestConfiguration(query_parameters=query)
    c.headers.add("Prefer", ", ".join(PREFER + ([extra_prefer] if extra_prefer else [])))
    return c


def removed(item: Any) -> bool:
    return "@removed" in (getattr(item, "additional_data", None) or {})


# ---------------------------------------------------------------------------------------------
# The walk


class Mailbox:
    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.folders_link: Optional[str] = None
        # Every page served advances its collection's sync-state generation and the simulator keeps
        # the newest 3 (as Graph, a superseded deltaLink answers 410 SyncStateNotFound), so only the
        # newest deltaLink of each collection is kept for the second round.
        self.folder_links: dict[str, str] = {}  # folder id → its messages deltaLink
        self.calendar_links: dict[str, tuple[str, Optional[str]]] = {}  # calendar id → (calendarView deltaLink, Prefer zone)


ZONE = 'outlook.timezone="Pacific Standard Time"'


class Follow:
    """`with_url` of a request builder, sending the Prefer zone on every link (links carry the token, not the header)."""

    def __init__(self, builder: Any, zone: Optional[str]) -> None:
        self.builder, self.zone = builder, zone

    def __call__(self, url: str) -> Follow:
        return Follow(self.builder.with_url(url), self.zone)

    async def get(self, request_configuration: Any = None) -> Any:
        return await self.builder.get(request_configuration=config(None, self.zone))


async def messages_round(ck: Checker, g: GraphServiceClient, mb: Mailbox, fid: str, keep: bool = True) -> None:
    b = g.users.by_user_id(mb.uid).mail_folders.by_mail_folder_id(fid).messages.delta
    _, dl = await ck.round(f"{mb.uid}: messages delta of folder {fid}", "messages", lambda: b.get(request_configuration=config()), b.with_url, Message)
    if dl and keep:
        mb.folder_links[fid] = dl


async def calendars_listing(ck: Checker, g: GraphServiceClient, mb: Mailbox) -> list[Calendar]:
    b = g.users.by_user_id(mb.uid).calendars
    cals, _ = await ck.round(f"{mb.uid}: calendars listing", "calendars", lambda: b.get(request_configuration=config()), b.with_url, Calendar, delta=False)
    return [c for c in cals if c.id]


async def view_round(ck: Checker, g: GraphServiceClient, mb: Mailbox, which: str, cid: str, window: tuple[str, str], zone: Optional[str]) -> None:
    """One calendarView delta round; `which` is the path form, `cid` the calendar it names."""
    u = g.users.by_user_id(mb.uid)
    if which == "calendarView":
        b = u.calendar_view.delta
    elif which == "calendar/calendarView":
        b = u.calendar.calendar_view.delta
    else:
        b = u.calendars.by_calendar_id(cid).calendar_view.delta
    q = CalendarViewDelta.DeltaRequestBuilderGetQueryParameters(start_date_time=window[0], end_date_time=window[1])
    what = f"{mb.uid}: {which} delta of calendar {cid}" + (f" ({zone})" if zone else "")
    _, dl = await ck.round(what, "calendarView", lambda: b.get(request_configuration=config(q, zone)), Follow(b, zone), Event)
    if dl:
        mb.calendar_links[cid] = (dl, zone)


async def first_round(ck: Checker, g: GraphServiceClient, mb: Mailbox, window: tuple[str, str]) -> None:
    fb = g.users.by_user_id(mb.uid).mail_folders.delta
    folders, mb.folders_link = await ck.round(f"{mb.uid}: mailFolders delta", "mailFolders", lambda: fb.get(request_configuration=config()), fb.with_url, MailFolder)
    # The inbox by its well-known name first (as outlake may ask), then every folder by id.
    await messages_round(ck, g, mb, "inbox", keep=False)
    for f in folders:
        if f.id and not removed(f):
            await messages_round(ck, g, mb, f.id)
    calendars = await calendars_listing(ck, g, mb)
    default = next((c.id for c in calendars if c.is_default_calendar), None)
    if default is None:
        ck.fail(f"{mb.uid}: calendars listing", ["no calendar has isDefaultCalendar"])
    for c in calendars:
        await view_round(ck, g, mb, "calendars/{id}/calendarView", c.id, window, None)
    # The default calendar by its two other paths, one with a zone; the last link stays.
    for which, zone in (("calendar/calendarView", None), ("calendarView", ZONE)):
        await view_round(ck, g, mb, which, default or "", window, zone)


async def second_round(ck: Checker, g: GraphServiceClient, mb: Mailbox, window: tuple[str, str]) -> None:
    """After a round of changes: every deltaLink followed; deleted containers answer 404 ErrorItemNotFound."""
    u = g.users.by_user_id(mb.uid)
    fb = u.mail_folders.delta
    folders: list[Any] = []
    if mb.folders_link:
        link = mb.folders_link
        folders, _ = await ck.round(f"{mb.uid}: mailFolders deltaLink", "mailFolders", lambda: fb.with_url(link).get(request_configuration=config()), fb.with_url, MailFolder)
    gone = {f.id for f in folders if removed(f)}
    for fid, link in mb.folder_links.items():
        b = u.mail_folders.by_mail_folder_id(fid).messages.delta
        call = lambda b=b, link=link: b.with_url(link).get(request_configuration=config())  # noqa: E731
        if fid in gone:
            await ck.expect_error(f"{mb.uid}: messages deltaLink of deleted folder {fid}", call, 404, "ErrorItemNotFound")
        else:
            await ck.round(f"{mb.uid}: messages deltaLink of folder {fid}", "messages", call, b.with_url, Message)
    for f in folders:
        if f.id and not removed(f) and f.id not in mb.folder_links:
            await messages_round(ck, g, mb, f.id)
    now = {c.id for c in await calendars_listing(ck, g, mb)}
    for cid, (link, zone) in mb.calendar_links.items():
        follow = Follow(u.calendars.by_calendar_id(cid).calendar_view.delta, zone)
        if cid not in now:
            await ck.expect_error(f"{mb.uid}: calendarView deltaLink of deleted calendar {cid}", follow(link).get, 404, "ErrorItemNotFound")
        else:
            what = f"{mb.uid}: calendarView deltaLink of calendar {cid}" + (f" ({zone})" if zone else "")
            await ck.round(what, "calendarView", follow(link).get, follow, Event)
    for cid in now - mb.calendar_links.keys():
        await view_round(ck, g, mb, "calendars/{id}/calendarView", cid, window, None)


async def run(args: argparse.Namespace) -> int:
    control = negative_control()
    if control:
        for f in control:
            print(f"FAIL negative control: {f}", file=sys.stderr)
        print(f"sdk-conformance: 0 passed, {len(control)} failed")
        return 1
    PREFER[:] = [f"odata.maxpagesize={args.page_size}", 'IdType="ImmutableId"']
    started = time.monotonic()
    sim = Sim(args.outlake, ["--users", str(args.users), "--messages", str(args.messages), "--events", str(args.events), "--seed", str(args.seed)])
    try:
        wire = Wire()
        g, tokens = graph_client(sim, wire)
        ck = Checker(wire)
        async with httpx.AsyncClient(base_url=sim.url) as admin:
            truth = (await admin.get("/_sim/truth")).json()
        with_mailbox = {m["id"] for m in truth["mailboxes"] if m["has_mailbox"]}
        users, _ = await ck.round("users listing", "users", lambda: g.users.get(request_configuration=config()), g.users.with_url, User, delta=False)
        ids = [u.id for u in users if u.id]
        if sorted(ids) != sorted(m["id"] for m in truth["mailboxes"]):
            ck.fail("users listing", [f"the SDK listed {len(ids)} users, the simulator's truth has {len(truth['mailboxes'])}"])
        today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        window = ((today - dt.timedelta(days=730)).strftime("%Y-%m-%dT%H:%M:%SZ"), (today + dt.timedelta(days=1090)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        boxes = [Mailbox(uid) for uid in ids if uid in with_mailbox]
        for uid in ids:
            if uid not in with_mailbox:
                fb = g.users.by_user_id(uid).mail_folders.delta
                await ck.expect_error(f"{uid} (no mailbox): mailFolders delta", lambda fb=fb: fb.get(request_configuration=config()), 404, "MailboxNotEnabledForRESTAPI")
        for mb in boxes:
            await first_round(ck, g, mb, window)
        async with httpx.AsyncClient(base_url=sim.url) as admin:
            r = await admin.post("/_sim/random-changes", json={"seed": args.seed, "count_per_kind": 3})
            if r.status_code != 200:
                raise SetupError(f"POST /_sim/random-changes answered {r.status_code}: {r.text[:500]}")
            changes = len(r.json().get("mutations", []))
        for mb in boxes:
            await second_round(ck, g, mb, window)
    finally:
        sim.stop()
    secs = time.monotonic() - started
    print(f"sdk-conformance: msgraph-sdk {version('msgraph-sdk')} against `outlake sim` ({len(ids)} users, {len(boxes)} mailboxes, {changes} changes between rounds)")
    print(f"  {wire.requests} requests, {tokens.fetched} token(s), {sum(ck.pages.values())} pages: " + ", ".join(f"{k} {v}" for k, v in sorted(ck.pages.items())))
    print("  items parsed: " + ", ".join(f"{k} {v}" + (f" ({ck.removed[k]} @removed)" if ck.removed[k] else "") for k, v in sorted(ck.items.items())))
    print("  Graph errors parsed as expected: " + (", ".join(f"{k} {v}" for k, v in sorted(ck.errors.items())) or "none"))
    print(f"  {secs:.1f} s")
    for f in ck.failures:
        print(f"FAIL {f}", file=sys.stderr)
    required = {"users", "mailFolders", "messages", "calendars", "calendarView"}
    if not required <= set(ck.pages):
        print(f"FAIL no page was parsed for: {', '.join(sorted(required - set(ck.pages)))}", file=sys.stderr)
        ck.failed_checks += 1
    print(f"sdk-conformance: {ck.checks - ck.failed_checks} passed, {ck.failed_checks} failed")
    return 1 if ck.failed_checks else 0


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outlake", default=os.path.join(root, "target", "debug", "outlake"), help="the outlake binary (default: target/debug/outlake)")
    p.add_argument("--users", type=int, default=2, help="users with a mailbox (default 2)")
    p.add_argument("--messages", type=int, default=80, help="messages per mailbox (default 80)")
    p.add_argument("--events", type=int, default=30, help="events per mailbox (default 30)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--page-size", type=int, default=10, help="Prefer: odata.maxpagesize (default 10)")
    args = p.parse_args()
    try:
        return asyncio.run(run(args))
    except SetupError as e:
        print(f"sdk-conformance: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
