"""The config file, declared once: every key with its type, default and meaning.

Models are frozen and reject unknown keys. Source and target sections keep the
keys their adapter declares; ``syncd.config.loader`` validates those against the
adapter's own ``Options`` once plugins are loaded.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    field_validator,
    model_validator,
)

from syncd.config.fleet import FleetConfig
from syncd.config.notify import NotifyConfig, WebhookTrigger
from syncd.config.remotes import RemoteConfig
from syncd.config.secrets import Secret

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """``"15m"``, ``"2h"``, ``"30s"``, ``"1d"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and value > 0:
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match or float(match[1]) <= 0:
        raise ValueError("expected a duration such as \"30s\", \"15m\", \"2h\" or \"1d\"")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def check_cron(value: Any) -> str:
    """A 5-field crontab expression, as APScheduler reads it."""
    if not isinstance(value, str) or len(value.split()) != 5:
        raise ValueError("expected a 5-field cron expression such as \"0 3 * * *\"")
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"bad cron expression: {exc}") from None
    return value


def check_max_missing(value: Any) -> str | int:
    """``"50%"`` (of the job's records) or a whole number of records."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            return int(text)
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
        if match and float(match[1]) <= 100:
            return f"{match[1]}%"
    raise ValueError("expected a share such as \"50%\" (0-100%) or a number of records "
                     "such as 1000")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Cron = Annotated[str, BeforeValidator(check_cron)]
#: a cron expression, or "" for never
CronOrOff = Annotated[str, BeforeValidator(lambda v: check_cron(v) if v != "" else v)]
MaxMissing = Annotated[str | int, BeforeValidator(check_max_missing)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonConfig(Section):
    state_dir: Path = Field(Path("/var/lib/syncd"), description="where runs, copies and the "
                            "default SQLite database live")
    database: str | Secret = Field("", description="empty for SQLite in state_dir, or a "
                                   "postgresql://… or mysql://… URL (or a secret holding one)")
    max_concurrent_runs: PositiveInt = Field(4, description="runs executing at once")
    retry_failed: Cron = Field("0 3 * * *", description="when failed runs with retryable "
                               "errors are retried")
    keep_runs_days: int = Field(30, ge=0, description="run history (and ingested-file "
                                "records) older than this is removed; 0 keeps it for good")
    keep_content_days: int = Field(90, ge=0, description="records unavailable for longer "
                                   "than this are deleted; 0 keeps them for good")
    cleanup: CronOrOff = Field("17 4 * * *", description="when the cleanup runs "
                                        "(also `syncd cleanup`); empty: only by hand")
    log_format: Literal["auto", "json", "console"] = Field("auto", description="auto: console "
                                                           "on a TTY, JSON otherwise")
    host: str = Field("", description="this daemon's name in a fleet; empty: the host name")
    stall_seconds: float = Field(900, gt=0, description="a run with no progress for this "
                                 "long stops the watchdog pings: systemd restarts syncd")
    isolate_runs: bool | Literal["auto"] = Field(
        "auto", description="true: runs that load a local source into the store's database "
        "execute in a worker process of their own, at a lower CPU priority, so the API "
        "keeps its pace under load; auto: only those of a source of 16 MiB or more")


class UsbConfig(Section):
    enabled: bool = Field(True, description="watch for USB drives")
    match: dict[str, str] = Field({"ID_BUS": "usb"}, description="udev properties a device "
                                  "must have")
    mount: Literal["auto"] = Field("auto", description="use an existing mount, else mount "
                                   "read-only ourselves")
    max_file_mb: PositiveInt = Field(512, description="larger files on a drive are refused")


class ApiConfig(Section):
    listen: str | list[str] = Field("127.0.0.1:8765", description="host:port or "
                                    "unix:/path, or a list of them")
    token_file: str | Secret = Field("", description="bearer token file; empty for no auth")
    allowed_paths: list[Path] = Field([], description="extra roots API-triggered runs may read")


class BrowserConfig(Section):
    """``[browser]``: how the browser target and source launch Chromium (SPEC §9)."""

    executable: str = Field("", description="the Chromium binary (Debian's "
                            "/usr/bin/chromium works); empty: Playwright's own")
    headless: bool = Field(True, description="run without a window")
    step_timeout: float = Field(15.0, gt=0, description="seconds a step may take")
    sandbox: bool = Field(False, description="Chromium's own sandbox; it needs user "
                          "namespaces, which the hardened systemd unit does not allow")
    args: list[str] = Field(["--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync"],
                            description="more Chromium command-line switches")

    @field_validator("executable")
    @classmethod
    def _binary(cls, value: str) -> str:
        if value and not Path(value).is_absolute():
            raise ValueError("write the absolute path of the Chromium binary, such as "
                             "\"/usr/bin/chromium\"")
        return value


class AdapterSection(BaseModel):
    """A source or target: ``type`` picks the adapter, the other keys are its options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SourceSection(AdapterSection):
    type: str = Field("csv", description="csv, inventory, rest, browser or a plugin's name")


class TargetSection(AdapterSection):
    type: str = Field("sql", description="sql, rest, browser, email, file or a plugin's name")


class WatchConfig(Section):
    path: Path = Field(description="folder to watch")
    patterns: list[str] = Field(["*.csv"], description="file names that feed the job")
    after: Literal["archive", "delete", "keep"] = Field("archive", description="what to do "
                                                        "with a file after its run completed")


class JobUsbConfig(Section):
    patterns: list[str] = Field([], description="files on a plugged-in drive that feed the job")


class RetryConfig(Section):
    attempts: PositiveInt = Field(5, description="tries of a run on transient errors")
    initial_s: float = Field(1.0, gt=0, description="first backoff, doubled each try")
    max_s: float = Field(300.0, gt=0, description="longest backoff")


class PairConfig(Section):
    """``[jobs.IMPORT.pair]``: this import job and an export job on the same table and
    key are one bidirectional pair (SPEC §8)."""

    job: str = Field(description="the export job (SQL → remote) of the same table and key")
    new_key: str = Field("{remote_id}", description="the local key given to a record "
                         "created on the remote ({remote_id} is its remote id)")


class JobConfig(Section):
    schedule: Cron | None = Field(None, description="5-field cron")
    every: Duration | None = Field(None, description="interval such as \"15m\"")
    on_missing: Literal["keep", "mark_unavailable", "delete"] = Field(
        "keep", description="after a full sync, what happens to records no longer in the source")
    max_missing: MaxMissing = Field("50%", description="most records one full sync may "
                                    "delete or mark unavailable: \"50%\" or a count")
    depends_on: list[str] = Field([], description="upstream jobs whose completed runs "
                                  "trigger this one")
    references: dict[str, str] = Field({}, description="target field = upstream job: the "
                                       "field holds a local key of that job, sent as its "
                                       "remote id (implies depends_on)")
    pair: PairConfig | None = Field(None, description="this import and an export job "
                                    "form a bidirectional pair: {job = \"EXPORT\"}")
    source: SourceSection = Field(default_factory=SourceSection)
    target: TargetSection = Field(default_factory=TargetSection)
    mapping: dict[str, str] = Field({}, description="target field = source field")
    constants: dict[str, str | int | float | bool] = Field({}, description="fixed target values")
    watch: WatchConfig | None = None
    usb: JobUsbConfig | None = None
    retry: RetryConfig = Field(default_factory=RetryConfig)
    webhook: WebhookTrigger | None = Field(None, description="POST /v1/hooks/<job>, signed")
    batch_rows: PositiveInt = Field(100_000, description="most rows committed per "
                                    "transaction (a transaction is also committed once it "
                                    "is a second old)")

    @model_validator(mode="after")
    def _one_schedule(self) -> JobConfig:
        if self.schedule and self.every:
            raise ValueError("set either schedule or every, not both")
        return self

    @property
    def triggers(self) -> list[str]:
        found = ["cli", "api"]
        if self.schedule:
            found.append(f"schedule {self.schedule!r}")
        if self.every:
            found.append(f"every {self.every}")
        if self.watch:
            found.append(f"watch {self.watch.path}")
        if self.usb and self.usb.patterns:
            found.append(f"usb {', '.join(self.usb.patterns)}")
        if self.upstreams:
            found.append(f"after {', '.join(self.upstreams)}")
        if self.webhook:
            found.append("webhook")
        return found

    @property
    def upstreams(self) -> list[str]:
        """``depends_on`` and the jobs named by ``references``, each once."""
        return list(dict.fromkeys([*self.depends_on, *self.references.values()]))


class Config(Section):
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    usb: UsbConfig = Field(default_factory=UsbConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    remotes: dict[str, RemoteConfig] = Field({}, description="remote systems jobs name "
                                             "with `remote = \"NAME\"`")
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    browser: BrowserConfig = Field(default_factory=BrowserConfig)
    jobs: dict[str, JobConfig] = Field({})

    @field_validator("remotes")
    @classmethod
    def _remote_names(cls, remotes: dict[str, RemoteConfig]) -> dict[str, RemoteConfig]:
        for name in remotes:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"remote name {name!r}: use letters, digits, '_', '.' and '-'")
        return remotes

    @field_validator("jobs")
    @classmethod
    def _job_names(cls, jobs: dict[str, JobConfig]) -> dict[str, JobConfig]:
        for name in jobs:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"job name {name!r}: use letters, digits, '_', '.' and '-'")
        return jobs
