"""Options the browser target and source share: the remote, and how Chromium runs.

``executable``, ``headless``, ``step_timeout``, ``sandbox`` and ``args`` default to the
config's ``[browser]`` section (handed over in the validation context as
``sections.browser``); a job may override them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import Field, PositiveInt, ValidationInfo, model_validator

from syncd.adapters import Options

from .browser_steps import Step, StepError, parse

SHARED = ("executable", "headless", "step_timeout", "sandbox", "args")


class BrowserOptions(Options):
    remote: str = Field(description="the [remotes.NAME] (base_url, rate_limit, auth "
                        "type = \"form\") whose pages are driven")
    executable: str = Field("", description="Chromium binary; default: [browser] executable")
    headless: bool = Field(True, description="default: [browser] headless")
    step_timeout: float = Field(15.0, gt=0, description="seconds per step; default: "
                                "[browser] step_timeout")
    sandbox: bool = Field(False, description="Chromium's sandbox; default: [browser] sandbox")
    args: list[str] = Field([], description="Chromium switches; default: [browser] args")
    concurrency: PositiveInt = Field(1, description="pages driven at once, in one browser")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any, info: ValidationInfo) -> Any:
        """Keys not set here come from ``[browser]``."""
        browser = ((info.context or {}).get("sections") or {}).get("browser") or {}
        if isinstance(data, dict):
            return {**{k: browser[k] for k in SHARED if k in browser}, **data}
        return data


def recipe(raw: Any, fields: Collection[str] | None, extra: tuple[str, ...] = ()) -> None:
    """Check one recipe (``fields``: what its templates may name; None: unchecked); a
    ``ValueError`` names the step (the key names the recipe)."""
    try:
        parse(raw, fields, extra)
    except StepError as exc:
        raise ValueError(str(exc)) from None


def mapped(info: ValidationInfo) -> Collection[str] | None:
    """The target fields the job maps (the validation context's ``fields``)."""
    return (info.context or {}).get("fields")


def steps(raw: Any, extra: tuple[str, ...] = ()) -> list[Step]:
    """A recipe already checked by ``recipe``: its steps."""
    return parse(raw, None, extra) if raw else []
