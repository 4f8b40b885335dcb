"""The email target's messages: a subject with ``{count}``, and text and HTML parts
rendered from one Jinja2 template (the default below, or the user's ``template`` file).

A template defines a ``text`` block and, optionally, an ``html`` block (without it the
mail has a text part only). The text block is rendered without escaping, the HTML
block with autoescaping, so a record's value never becomes markup. Templates run in
Jinja2's sandbox and see only the changes: never a secret of the target.

Variables: ``job``, ``run``, ``count``, ``mode``; ``changes`` (every change) and its
parts ``created``, ``updated``, ``removed``; in ``per_record`` mode also ``record``
(the one change). A change has ``key``, ``change`` ("new", "changed" or "removed")
and ``fields`` (the record's fields; for a removed one, as they were last mailed).
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.adapters import Change

if TYPE_CHECKING:  # Jinja2 loads on the first template, not with the plugin (start-up time)
    from jinja2.sandbox import SandboxedEnvironment

DEFAULT = """\
{% block text -%}
{{ count }} change{{ "" if count == 1 else "s" }} from {{ job }}.
{% for title, part in (("New", created), ("Changed", updated), ("Removed", removed)) %}
{%- if part %}
{{ title }} ({{ part|length }}):
{% for c in part %}- {{ c.key }}: {% for name, value in c.fields.items() %}{{ name }} = \
{{ value }}{{ "; " if not loop.last }}{% endfor %}
{% endfor %}{% endif %}{% endfor %}
{%- endblock %}
{% block html -%}
<!DOCTYPE html>
<html><body>
<p>{{ count }} change{{ "" if count == 1 else "s" }} from {{ job }}.</p>
{% for title, part in (("New", created), ("Changed", updated), ("Removed", removed)) %}
{%- if part %}
<h3>{{ title }} ({{ part|length }})</h3>
<table border="1" cellpadding="4" cellspacing="0">
{% for c in part %}<tr><th align="left">{{ c.key }}</th>{% for name, value in \
c.fields.items() %}<td>{{ name }}: {{ value }}</td>{% endfor %}</tr>
{% endfor %}</table>
{%- endif %}{% endfor %}
</body></html>
{% endblock %}
"""

LABELS = {"create": "new", "update": "changed", "delete": "removed"}


class TemplateProblem(ValueError):
    """A template or subject that cannot be used (the message names the key)."""


@functools.cache
def _environment(html: bool) -> SandboxedEnvironment:
    """The sandbox for text parts (no escaping) or HTML parts (autoescaping)."""
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(autoescape=html, keep_trailing_newline=True)


@dataclass(frozen=True, slots=True)
class Template:
    """One template source, compiled twice: text without escaping, HTML with it."""

    source: str
    name: str = "default template"

    @classmethod
    def load(cls, path: str) -> Template:
        """The default (``""``) or a user's file, checked: readable, valid Jinja2, with a
        ``text`` block. A ``TemplateProblem`` says what is wrong."""
        if not path:
            return cls(DEFAULT)
        try:
            source = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateProblem(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise TemplateProblem(f"{path} is not UTF-8 text") from None
        template = cls(source, path)
        template.check()
        return template

    def check(self) -> None:
        from jinja2 import TemplateSyntaxError, nodes

        try:
            parsed = _environment(html=False).parse(self.source)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(f"{self.name} line {exc.lineno}: {exc.message}") from None
        blocks = {b.name for b in parsed.find_all(nodes.Block)}
        if "text" not in blocks:
            raise TemplateProblem(f"{self.name} has no {{% block text %}}: the text part "
                                  "of the mail (an {% block html %} is optional)")

    def render(self, variables: Mapping[str, Any]) -> tuple[str, str | None]:
        """The text part and the HTML part (None when the template has no html block)."""
        from jinja2 import TemplateError

        try:
            text = _block(_environment(html=False), self.source, "text", variables) or ""
            html = _block(_environment(html=True), self.source, "html", variables)
        except TemplateError as exc:
            raise TemplateProblem(f"{self.name}: {exc}") from None
        return text.strip() + "\n", html


def _block(env: SandboxedEnvironment, source: str, name: str,
           variables: Mapping[str, Any]) -> str | None:
    template = env.from_string(source)
    block = template.blocks.get(name)
    if block is None:
        return None
    return "".join(block(template.new_context(dict(variables))))


def variables(changes: Sequence[Change], *, job: str, run: int, mode: str) -> dict[str, Any]:
    """What a template sees of ``changes`` (never the target's options or secrets)."""
    items = [{"key": c.key, "change": LABELS.get(c.kind, c.kind), "fields": dict(c.record)}
             for c in changes]
    return {"job": job, "run": run, "mode": mode, "count": len(items), "changes": items,
            "created": [i for i in items if i["change"] == "new"],
            "updated": [i for i in items if i["change"] == "changed"],
            "removed": [i for i in items if i["change"] == "removed"],
            "record": items[0] if mode == "per_record" and items else None}


def check_subject(subject: str) -> str:
    """A subject's ``{name}`` placeholders must parse (their names are checked on use)."""
    try:
        list(string.Formatter().parse(subject))
    except ValueError as exc:
        raise TemplateProblem(f"{exc} (write {{{{ and }}}} for braces)") from None
    return subject


def subject_of(subject: str, values: Mapping[str, Any]) -> str:
    """The subject with ``{count}``, ``{job}``, ``{run}`` (and, per record, ``{change}``
    and the record's fields) filled in, on one line."""
    try:
        text = subject.format_map(dict(values))
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise TemplateProblem(f"subject {subject!r}: no value for {exc}; use {{count}}, "
                              "{job}, {run} (per record also {change} and its fields)"
                              ) from None
    return " ".join(text.split())
