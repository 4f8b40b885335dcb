"""Browser recipes are checked before they run (``syncd check-config``), and templates.

No browser is needed: a recipe's errors name the job, the recipe and the step.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from syncd.config import validate
from syncd.engine import resolve_jobs
from syncd.errors import ConfigError
from syncd.testing import make_registry
from syncd_builtin.browser_steps import StepError, fields_of, render
from syncd_builtin.browser_target import BrowserTarget
from syncd_builtin.csv_source import CsvSource
from tests import browser_setup as bs
from tests.syncd_cli import syncd

CREATE = [{"goto": "/calendar"}, {"fill": "#date", "value": "{date}"},
          {"click": "#save"}, {"wait_for": "text=Saved"}]
EXISTS = [{"goto": "/calendar?month={date:%Y-%m}"}, {"present": "td[data-date='{date}']"}]


def config(browser: dict[str, Any] | None = None, **target: Any) -> dict[str, Any]:
    return {"remotes": {"casting": {"base_url": "http://platform.example"}},
            **({"browser": browser} if browser is not None else {}),
            "jobs": {"dates": {"source": {"type": "csv"},
                               "mapping": {"date": "date", "status": "status"},
                               "target": {"type": "browser", "remote": "casting",
                                          "key": ["date"], **target}}}}


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve_jobs(validate(raw), make_registry([CsvSource, BrowserTarget]), "t.toml")
    return str(caught.value)


@pytest.mark.parametrize(("target", "says"), [
    ({"create": [{"goto": "/c"}, {"clik": "#save"}]},
     "jobs.dates.target.create: step 2: unknown action 'clik'; actions: goto, fill"),
    ({"create": [{"goto": "/c"}, {"fill": "#date"}]},
     "jobs.dates.target.create: step 2 (fill): missing key 'value'"),
    ({"create": [{"click": "#save", "value": "x"}]},
     "jobs.dates.target.create: step 1 (click): unknown key 'value'; allowed: none"),
    ({"create": [{"goto": "/c", "click": "#a"}]},
     "jobs.dates.target.create: step 1: one action per step, found goto, click"),
    ({"create": [{"fill": "#n", "value": "{notes}"}]},
     "step 1 (fill): template field {notes} is not mapped; fields: date, status"),
    ({"exists": [{"present": "td[data-date='{day:%Y}']"}]},
     "jobs.dates.target.exists: step 1 (present): template field {day} is not mapped"),
    ({"delete": [{"goto": "/x/{remote_id}"}, {"click": "{oops}"}]},
     "jobs.dates.target.delete: step 2 (click): template field {oops} is not mapped; "
     "fields: date, status, remote_id"),
    ({"create": [{"wait_for": "#x", "timeout": -1}]},
     "step 1 (wait_for): timeout must be a number of seconds > 0"),
    ({"create": [{"upload": "#photo", "value": "{status}", "resize": {"max": 5}}]},
     "step 1 (upload): resize: Input should be greater than or equal to 16"),
    ({"create": [{"click": "#save", "resize": {"max": 500}}]},
     "step 1 (click): unknown key 'resize'; allowed: none"),
])
def test_a_bad_step_is_refused_naming_job_recipe_and_step(target: dict[str, Any],
                                                          says: str) -> None:
    message = error_of(config(**{"exists": EXISTS, "create": CREATE, **target}))
    assert says in message, message


def test_a_create_without_an_exists_check_is_refused_unless_written_on_purpose() -> None:
    message = error_of(config(create=CREATE))
    assert "jobs.dates.target" in message and "exists = false" in message
    config_ok = validate(config(create=CREATE, exists=False))
    plans = resolve_jobs(config_ok, make_registry([CsvSource, BrowserTarget]), "t.toml")
    assert plans["dates"].target_options.exists is False  # type: ignore[attr-defined]


def test_browser_section_defaults_reach_the_target_and_bad_values_name_the_key() -> None:
    raw = config({"executable": "/usr/bin/chromium", "step_timeout": 4}, create=CREATE,
                 exists=EXISTS)
    plans = resolve_jobs(validate(raw), make_registry([CsvSource, BrowserTarget]), "t.toml")
    options: Any = plans["dates"].target_options
    assert (options.executable, options.step_timeout, options.headless) == (
        "/usr/bin/chromium", 4, True)
    with pytest.raises(ConfigError, match=r"browser\.step_timeout: .*greater than 0"):
        validate(config({"step_timeout": 0}))
    with pytest.raises(ConfigError, match=r"browser\.executable: write the absolute path"):
        validate(config({"executable": "chromium"}))
    with pytest.raises(ConfigError, match=r"browser\.headles: unknown key"):
        validate(config({"headles": False}))


def test_check_config_shows_the_step_error(tmp_path: Path) -> None:
    cfg = bs.write_config(tmp_path, "http://platform.example",
                          target=bs.TARGET.replace("{ click = \"#save\" }",
                                                   "{ clik = \"#save\" }"))
    done = syncd("check-config", "--config", str(cfg))
    assert done.returncode == 2
    assert "jobs.availability.target.create: step 5: unknown action 'clik'" in done.stderr


def test_templates_fill_fields_and_format_dates() -> None:
    record = {"date": "2027-03-15", "day": date(2027, 4, 1), "n": 3}
    assert render("/calendar?month={date:%Y-%m}", record) == "/calendar?month=2027-03"
    assert render("td[data-date='{date}'] {day:%d.%m.%Y} {n:03d} {{x}}", record) == \
        "td[data-date='2027-03-15'] 01.04.2027 003 {x}"
    assert fields_of("{a} and {b:%Y}") == ["a", "b"]
    with pytest.raises(StepError, match="not a date"):
        render("{n:%Y}", record)
    with pytest.raises(StepError, match=r"no value for \{missing\}"):
        render("{missing}", record)
