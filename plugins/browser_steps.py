"""The browser's step vocabulary (SPEC §9): parsed and checked once, run on a page.

A recipe is a list of one-action tables (``{ fill = "#date", value = "{date}" }``).
``parse`` checks every step before anything runs (``syncd check-config`` shows its
errors): a known action, the keys it needs and no others, and templates naming only
fields the job maps. ``render`` fills ``{field}`` and ``{field:%Y-%m}`` templates.
``present`` and ``absent`` decide, they never fail: a false one ends the recipe
with the answer "no" (for ``exists``: not there; for ``delete``: already gone).
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .media_resize import Resize, resized_path

#: action → (required keys besides the action, optional keys)
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "goto": ((), ()),
    "fill": (("value",), ()),
    "select": (("value",), ()),
    "check": ((), ()),
    "uncheck": ((), ()),
    "click": ((), ()),
    "press": (("key",), ()),
    "upload": (("value",), ("resize",)),
    "wait_for": ((), ("timeout",)),
    "present": ((), ()),
    "absent": ((), ()),
    "extract": (("into",), ("attribute",)),
}
#: actions that may move the page elsewhere (then it may be the login page)
NAVIGATING = ("goto", "click", "press")
_FORMATTER = string.Formatter()


class StepError(ValueError):
    """A recipe that cannot run, or a value its template cannot be filled with."""


@dataclass(frozen=True, slots=True)
class Step:
    number: int  # from 1, as messages show it
    action: str
    target: str  # a selector, or goto's URL (a template)
    value: str = ""  # fill, select, upload: a template; press: the key
    attribute: str = ""  # extract: an attribute; empty: the text
    into: str = ""  # extract: where the value goes
    timeout: float | None = None  # wait_for: seconds instead of step_timeout
    resize: Resize | None = None  # upload: images scaled down first (``syncd[media]``)

    @property
    def selector(self) -> str:
        return "" if self.action == "goto" else self.target

    def describe(self) -> str:
        return f"step {self.number} ({self.action} {self.target!r})"


def fields_of(template: str) -> list[str]:
    """The field names a template uses (``{date:%Y-%m}`` → ``date``)."""
    try:
        return [name for _, name, _, _ in _FORMATTER.parse(template) if name]
    except ValueError as exc:
        raise StepError(f"bad template {template!r}: {exc}") from None


def parse(raw: Any, fields: Collection[str] | None = None,
          extra: Collection[str] = ()) -> list[Step]:
    """Steps of a recipe; ``fields``: names templates may use (None: not checked)."""
    if not isinstance(raw, list):
        raise StepError("a recipe is a list of steps such as [{ goto = \"/path\" }, …]")
    return [_step(i, item, fields, extra) for i, item in enumerate(raw, 1)]


def _step(number: int, item: Any, fields: Collection[str] | None,
          extra: Collection[str]) -> Step:
    where = f"step {number}"
    if not isinstance(item, Mapping):
        raise StepError(f"{where}: expected a table such as {{ click = \"#save\" }}")
    actions = [k for k in item if k in ACTIONS]
    if len(actions) != 1:
        unknown = [k for k in item if k not in ("value", "key", "into", "attribute",
                                                 "timeout", "resize")]
        what = (f"unknown action {unknown[0]!r}" if unknown and not actions
                else f"one action per step, found {', '.join(actions) or 'none'}")
        raise StepError(f"{where}: {what}; actions: {', '.join(ACTIONS)}")
    action = actions[0]
    required, optional = ACTIONS[action]
    missing = [k for k in required if k not in item]
    if missing:
        raise StepError(f"{where} ({action}): missing key {missing[0]!r}")
    stray = [k for k in item if k != action and k not in required and k not in optional]
    if stray:
        allowed = ", ".join((*required, *optional)) or "none"
        raise StepError(f"{where} ({action}): unknown key {stray[0]!r}; allowed: {allowed}")
    texts = {k: item[k] for k in (action, "value", "key", "into", "attribute") if k in item}
    for key, text in texts.items():
        if not isinstance(text, str) or (key == action and not text.strip()):
            raise StepError(f"{where} ({action}): {key} must be a non-empty text")
    timeout = item.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise StepError(f"{where} ({action}): timeout must be a number of seconds > 0")
    step = Step(number, action, item[action], str(item.get("value", item.get("key", ""))),
                str(item.get("attribute", "")).lstrip("@"), str(item.get("into", "")),
                float(timeout) if timeout is not None else None, _resize(item, where))
    if fields is not None:
        templates = [step.target] + ([step.value] if action != "press" else [])
        for name in (n for t in templates for n in fields_of(t)):
            if name not in fields and name not in extra:
                known = ", ".join([*fields, *extra]) or "none"
                raise StepError(f"{where} ({action}): template field {{{name}}} is not "
                                f"mapped; fields: {known}")
    return step


def _resize(item: Mapping[str, Any], where: str) -> Resize | None:
    if "resize" not in item:
        return None
    try:
        return Resize.model_validate(item["resize"])
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise StepError(f"{where} (upload): resize: {message}") from None


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``{field}`` and ``{field:%Y-%m}`` (a date's format) from ``values``."""
    out = []
    for literal, name, spec, _ in _FORMATTER.parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in values:
            raise StepError(f"template {template!r}: no value for {{{name}}}")
        value = values[name]
        out.append(_formatted(value, spec, name) if spec else
                   "" if value is None else str(value))
    return "".join(out)


def _formatted(value: Any, spec: str, name: str) -> str:
    if "%" not in spec:
        return format(value, spec)
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise StepError(f"{{{name}:{spec}}}: {value!r} is not a date") from None
    if not isinstance(when, date):
        raise StepError(f"{{{name}:{spec}}}: {value!r} is not a date")
    return when.strftime(spec)


@dataclass(slots=True)
class Outcome:
    """What a recipe came to: every check held (``decided``), and what it extracted."""

    decided: bool = True
    extracted: dict[str, str] | None = None


class StepFailed(Exception):
    """A step that did not work; the page is kept for the artifacts."""

    def __init__(self, step: Step, message: str) -> None:
        super().__init__(f"{step.describe()}: {message}")
        self.step = step
        self.reason = message
        self.recipe = ""  # which recipe it was in (exists, create …), set by the caller


class LoginPage(Exception):  # a signal rather than an error
    """A step landed on the login page: the session ended."""


#: called before each page action (the remote's rate limit)
Pace = Callable[[], Awaitable[None]]


async def run(page: Any, steps: list[Step], values: Mapping[str, Any], *, base_url: str,
              timeout: float, pace: Pace, on_login: Callable[[str], bool] | None = None,
              state_dir: Path | None = None) -> Outcome:
    """Run ``steps`` on a Playwright ``page``; raise ``StepFailed`` naming the step, or
    ``LoginPage`` when a navigation ended on the login page (``on_login(url)``).
    ``state_dir`` holds the resized copies of uploaded images."""
    outcome = Outcome()
    for step in steps:
        try:
            decided = await _one(page, step, values, base_url, timeout, pace, outcome,
                                 state_dir)
        except StepError as exc:
            raise StepFailed(step, str(exc)) from None
        except Exception as exc:  # Playwright's errors: timeouts, missing elements
            if type(exc).__module__.startswith("playwright"):
                raise StepFailed(step, _short(exc)) from None
            raise
        if on_login is not None and step.action in NAVIGATING and on_login(page.url):
            raise LoginPage(page.url)
        if not decided:
            outcome.decided = False
            break
    return outcome


async def _one(page: Any, step: Step, values: Mapping[str, Any], base_url: str,
               timeout: float, pace: Pace, outcome: Outcome, state_dir: Path | None) -> bool:
    target = render(step.target, values)
    ms = (step.timeout or timeout) * 1000
    await pace()
    act = step.action
    if act == "goto":
        url = target if "://" in target else base_url.rstrip("/") + "/" + target.lstrip("/")
        answer = await page.goto(url, timeout=ms)
        if answer is not None and answer.status >= 400:
            raise StepError(f"{url} answered {answer.status}")
    elif act in ("present", "absent"):
        found = await page.locator(target).count() > 0
        return found if act == "present" else not found
    elif act == "wait_for":
        await page.locator(target).first.wait_for(state="visible", timeout=ms)
    elif act == "extract":
        element = page.locator(target).first
        text = (await element.get_attribute(step.attribute, timeout=ms) if step.attribute
                else await element.inner_text(timeout=ms))
        if not text:
            raise StepError(f"nothing to extract ({step.attribute or 'text'} is empty)")
        outcome.extracted = {**(outcome.extracted or {}), step.into: text.strip()}
    else:
        await _interact(page.locator(target).first, act, step, values, ms, state_dir)
    return True


async def _interact(element: Any, act: str, step: Step, values: Mapping[str, Any],
                    ms: float, state_dir: Path | None) -> None:
    if act == "fill":
        await element.fill(render(step.value, values), timeout=ms)
    elif act == "select":
        await element.select_option(render(step.value, values), timeout=ms)
    elif act == "check":
        await element.check(timeout=ms)
    elif act == "uncheck":
        await element.uncheck(timeout=ms)
    elif act == "click":
        await element.click(timeout=ms)
    elif act == "press":
        await element.press(step.value, timeout=ms)
    elif act == "upload":
        path = render(step.value, values)
        if step.resize is not None and state_dir is not None:  # Pillow's work off the loop
            path = str(await asyncio.to_thread(resized_path, Path(path), step.resize,
                                               state_dir))
        await element.set_input_files(path, timeout=ms)


def _short(exc: Exception) -> str:
    """A Playwright error's first line (its call log follows on later lines)."""
    text = str(getattr(exc, "message", "") or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
