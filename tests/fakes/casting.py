"""A casting platform without an API (seeds 000 and 001), as a real aiohttp server.

What a browser adapter meets on Filmmakers or Casting Network: a login form carrying a
CSRF token that sets a session cookie; a calendar whose "Save" button posts by script
after a short delay and only then shows "Saved"; a month view listing blocked dates as
``td[data-date='YYYY-MM-DD'].blocked`` with a "Remove" button (then "Removed") and an
edit link; a media upload form; a paginated bookings table. A session ends after
``expire_after`` pages, so the next page redirects to ``/login``. Every create, update
and removal is counted per date, so a test can assert that nothing was created twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.threaded import ThreadedServer

SID = "sid"  # the session cookie's name
STATUSES = ("blocked", "tentative", "available")

PAGE = """<!doctype html><html><head><title>{title}</title></head><body>
<nav>{nav}</nav><h1>{title}</h1>{body}</body></html>"""
NAV = '<a id="logout" href="/logout">Log out</a> <a href="/calendar">Calendar</a>'

LOGIN = """<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<label>E-mail <input id="email" name="email" type="email"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button type="submit">Log in</button></form><p class="error">{error}</p>"""

#: the form posts by script after ``delay`` ms and shows what the server answered
CALENDAR = """<form id="add" onsubmit="return false">
<input type="hidden" id="csrf" value="{csrf}">
<label>Date <input id="date" name="date"></label>
<label>Status <select id="status" name="status">{options}</select></label>
<label>Note <input id="note" name="note"></label>
<button id="save" type="button">Save</button></form>
<p id="msg"></p>{month}
<script>
function post(url, data) {{
  data.append("csrf", document.getElementById("csrf").value);
  setTimeout(async () => {{
    const answer = await fetch(url, {{method: "POST", body: data}});
    document.getElementById("msg").textContent = await answer.text();
  }}, {delay});
}}
document.getElementById("save").addEventListener("click", () => {{
  const data = new FormData();
  for (const name of ["date", "status", "note"])
    data.append(name, document.getElementById(name).value);
  post("/calendar/save", data);
}});
for (const button of document.querySelectorAll(".remove"))
  button.addEventListener("click", () => {{
    const data = new FormData();
    data.append("date", button.closest("td").dataset.date);
    post("/calendar/remove", data);
  }});
</script>"""

EDIT = """<form method="post" action="/calendar/update">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="date" value="{date}">
<label>Status <select id="status" name="status">{options}</select></label>
<label>Note <input id="note" name="note" value="{note}"></label>
<button id="save" type="submit">Save</button></form>"""

MEDIA = """<form method="post" action="/media" enctype="multipart/form-data">
<input type="hidden" name="csrf" value="{csrf}">
<input id="photo" name="photo" type="file"><button id="upload" type="submit">Upload</button>
</form><ul>{items}</ul>"""


@dataclass(slots=True)
class Session:
    pages_left: int | None  # None: never ends
    csrf: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class CastingFake(ThreadedServer):
    """``with CastingFake() as site:``; log in as ``user`` / ``password`` at ``site.url``."""

    user: str = "actor@example.com"
    password: str = "s3cret-pass"
    expire_after: int | None = None  # pages a session serves before it ends
    delay_ms: int = 50  # the calendar script's delay before it posts
    bookings: list[dict[str, str]] = field(default_factory=list)
    page_size: int = 10  # bookings per page
    #: date → {"status", "note"}: what the calendar holds now
    entries: dict[str, dict[str, str]] = field(default_factory=dict)
    creates: Counter[str] = field(default_factory=Counter)
    updates: Counter[str] = field(default_factory=Counter)
    removes: Counter[str] = field(default_factory=Counter)
    uploads: list[tuple[str, str]] = field(default_factory=list)  # (file name, sha256)
    logins: int = 0
    pages: Counter[str] = field(default_factory=Counter)  # path → GETs answered
    page_times: list[float] = field(default_factory=list)  # monotonic time of each GET
    refused: list[str] = field(default_factory=list)  # why a post was refused
    booking_pages: Counter[int] = field(default_factory=Counter)  # page number → GETs
    #: a bookings page that waits for ``gate`` before it answers (a run caught mid-read)
    gate_page: int | None = None
    gate: threading.Event = field(default_factory=threading.Event)
    _sessions: dict[str, Session] = field(default_factory=dict)
    _login_tokens: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/", self._home), web.get("/login", self._login_page),
            web.post("/login", self._login), web.get("/logout", self._logout),
            web.get("/calendar", self._calendar), web.post("/calendar/save", self._save),
            web.post("/calendar/remove", self._remove),
            web.get("/calendar/edit", self._edit), web.post("/calendar/update", self._update),
            web.get("/media", self._media), web.post("/media", self._upload),
            web.get("/bookings", self._bookings),
        ])
        return app

    # -- what tests look at -----------------------------------------------------------

    def duplicates(self) -> dict[str, int]:
        """Dates created more than once."""
        return {d: n for d, n in self.creates.items() if n > 1}

    def block(self, date: str, status: str = "blocked", note: str = "") -> None:
        """A date entered on the platform by someone else (by hand)."""
        with self._lock:
            self.entries[date] = {"status": status, "note": note}

    def end_sessions(self) -> None:
        with self._lock:
            self._sessions.clear()

    # -- sessions ----------------------------------------------------------------------

    def _session(self, request: web.Request, page: bool) -> Session | None:
        """The request's live session; a page GET uses one of its pages up."""
        with self._lock:
            sid = request.cookies.get(SID, "")
            session = self._sessions.get(sid)
            if session is None or not page or session.pages_left is None:
                return session
            if session.pages_left <= 0:
                del self._sessions[sid]
                return None
            session.pages_left -= 1
            return session

    def _page(self, request: web.Request, title: str, body: str) -> web.Response:
        self.pages[request.path] += 1
        self.page_times.append(time.monotonic())
        return web.Response(text=PAGE.format(title=title, nav=NAV, body=body),
                            content_type="text/html")

    def _to_login(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/login?next={request.path_qs}")

    async def _home(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/calendar" if self._session(request, page=False) else "/login")

    async def _login_page(self, request: web.Request, error: str = "") -> web.Response:
        token = secrets.token_hex(8)
        with self._lock:
            self._login_tokens.add(token)
        self.pages["/login"] += 1
        self.page_times.append(time.monotonic())
        body = LOGIN.format(csrf=token, error=html.escape(error))
        return web.Response(text=PAGE.format(title="Log in", nav="", body=body),
                            content_type="text/html")

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        with self._lock:
            token_ok = str(form.get("csrf", "")) in self._login_tokens
            self._login_tokens.discard(str(form.get("csrf", "")))
        if not token_ok:
            self.refused.append("login without a valid CSRF token")
            return await self._login_page(request, "Your form expired; try again.")
        if form.get("email") != self.user or form.get("password") != self.password:
            return await self._login_page(request, "Wrong e-mail or password.")
        sid = secrets.token_hex(16)
        with self._lock:
            self._sessions[sid] = Session(self.expire_after)
            self.logins += 1
        answer = web.HTTPFound(request.query.get("next") or "/calendar")
        answer.set_cookie(SID, sid, httponly=True)
        raise answer

    async def _logout(self, request: web.Request) -> web.Response:
        with self._lock:
            self._sessions.pop(request.cookies.get(SID, ""), None)
        raise web.HTTPFound("/login")

    def _posted(self, request: web.Request, form: Any) -> Session | None:
        """A post's session, if its CSRF token is the session's."""
        session = self._session(request, page=False)
        if session is None or form.get("csrf") != session.csrf:
            self.refused.append(f"{request.path}: no session or a bad CSRF token")
            return None
        return session

    # -- the calendar ---------------------------------------------------------------------

    async def _calendar(self, request: web.Request) -> web.Response:
        session = self._session(request, page=True)
        if session is None:
            return self._to_login(request)
        month = request.query.get("month", "")
        listing = ""
        if month:
            with self._lock:
                days = sorted((d, e) for d, e in self.entries.items() if d.startswith(month))
            cells = "".join(
                f'<tr><td data-date="{d}" data-status="{e["status"]}" class="blocked">{d} '
                f'<span class="status">{e["status"]}</span> '
                f'<span class="note">{html.escape(e["note"])}</span> '
                f'<a class="edit" href="/calendar/edit?date={d}">Edit</a> '
                f'<button type="button" class="remove">Remove</button></td></tr>'
                for d, e in days)
            listing = f'<table id="month" data-month="{month}">{cells}</table>'
        options = "".join(f"<option>{s}</option>" for s in STATUSES)
        return self._page(request, "Calendar", CALENDAR.format(
            csrf=session.csrf, options=options, month=listing, delay=self.delay_ms))

    async def _save(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self._posted(request, form) is None:
            return web.Response(status=403, text="Forbidden")
        date = str(form.get("date", ""))
        if len(date) != 10:
            return web.Response(status=422, text="Invalid date")
        with self._lock:
            self.creates[date] += 1  # a second save of a date is a duplicate entry
            self.entries[date] = {"status": str(form.get("status", "")),
                                  "note": str(form.get("note", ""))}
        return web.Response(text="Saved")

    async def _remove(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self._posted(request, form) is None:
            return web.Response(status=403, text="Forbidden")
        date = str(form.get("date", ""))
        with self._lock:
            found = self.entries.pop(date, None)
            if found is not None:
                self.removes[date] += 1
        return web.Response(text="Removed" if found else "Not found")

    async def _edit(self, request: web.Request) -> web.Response:
        session = self._session(request, page=True)
        if session is None:
            return self._to_login(request)
        date = request.query.get("date", "")
        entry = self.entries.get(date)
        if entry is None:
            raise web.HTTPNotFound(text="no such date")
        options = "".join(f"<option{' selected' if s == entry['status'] else ''}>{s}</option>"
                          for s in STATUSES)
        return self._page(request, f"Edit {date}", EDIT.format(
            csrf=session.csrf, date=date, options=options, note=html.escape(entry["note"])))

    async def _update(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self._posted(request, form) is None:
            return web.Response(status=403, text="Forbidden")
        date = str(form.get("date", ""))
        with self._lock:
            if date not in self.entries:
                raise web.HTTPNotFound(text="no such date")
            self.entries[date] = {"status": str(form.get("status", "")),
                                  "note": str(form.get("note", ""))}
            self.updates[date] += 1
        raise web.HTTPFound(f"/calendar?month={date[:7]}&updated={date}")

    # -- media and bookings ---------------------------------------------------------------

    async def _media(self, request: web.Request) -> web.Response:
        session = self._session(request, page=True)
        if session is None:
            return self._to_login(request)
        items = "".join(f'<li class="upload" data-sha256="{h}">{html.escape(n)}</li>'
                        for n, h in self.uploads)
        return self._page(request, "Media", MEDIA.format(csrf=session.csrf, items=items))

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self._posted(request, form) is None:
            return web.Response(status=403, text="Forbidden")
        photo = form.get("photo")
        if not isinstance(photo, web.FileField):
            return web.Response(status=422, text="No file")
        digest = hashlib.sha256(photo.file.read()).hexdigest()
        with self._lock:
            self.uploads.append((photo.filename, digest))
        return self._page(request, "Uploaded", f'<p id="uploaded" data-sha256="{digest}">'
                          f"Uploaded {html.escape(photo.filename)}</p>")

    async def _bookings(self, request: web.Request) -> web.Response:
        if self._session(request, page=True) is None:
            return self._to_login(request)
        page = max(1, int(request.query.get("page", "1")))
        self.booking_pages[page] += 1
        if page == self.gate_page:
            await asyncio.to_thread(self.gate.wait, 60)
        rows = self.bookings[(page - 1) * self.page_size: page * self.page_size]
        body = "".join(
            f'<tr class="booking" data-id="{html.escape(b["id"])}">'
            f'<td class="date">{html.escape(b["date"])}</td>'
            f'<td class="production">{html.escape(b["production"])}</td>'
            f'<td class="role">{html.escape(b["role"])}</td></tr>' for b in rows)
        more = page * self.page_size < len(self.bookings)
        link = f'<a class="next" href="/bookings?page={page + 1}">Next</a>' if more else ""
        return self._page(request, "Bookings",
                          f'<table id="bookings">{body}</table>{link}')
