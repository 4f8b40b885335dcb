"""The REST source's options (SPEC §8 "REST source"), declared once with their meaning."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from syncd.adapters import Options

PageType = Literal["none", "page", "offset", "cursor", "link", "next_url"]
DEFAULT_LIMIT = 100


class Pagination(Options):
    """How to find the next page; every type also ends on an empty page."""

    type: PageType = Field("none", description="none | page | offset | cursor | link | "
                           "next_url")
    page_param: str = Field("page", description="page: the page number's parameter")
    start: int = Field(1, ge=0, description="page: the first page's number")
    limit_param: str | None = Field(None, description="the page size's parameter (any type)")
    limit: int | None = Field(None, ge=1, description="records per page; 100 when "
                              "limit_param is given. page and offset end on a shorter page")
    max_pages: int = Field(0, ge=0, description="pages one run reads at most (0: no limit); "
                           "reaching it with more pages announced cuts the read: the run "
                           "completes with what it read, and on_missing does not apply")
    offset_param: str = Field("offset", description="offset: the offset's parameter")
    cursor_param: str = Field("cursor", description="cursor: the cursor's parameter")
    cursor_path: str = Field("", description="cursor: dotted path of the next cursor in the "
                             "answer; empty or missing ends")
    next_path: str = Field("", description="next_url: dotted path of the next page's URL "
                           "(absolute or relative); empty or missing ends")

    @model_validator(mode="after")
    def _complete(self) -> Pagination:
        if self.type == "cursor" and not self.cursor_path:
            raise ValueError("pagination type cursor needs cursor_path (where the answer "
                             "holds the next cursor)")
        if self.type == "next_url" and not self.next_path:
            raise ValueError("pagination type next_url needs next_path (where the answer "
                             "holds the next page's URL)")
        return self

    @property
    def page_size(self) -> int | None:
        """The page size sent, if any: ``limit``, or 100 when only ``limit_param`` is set."""
        if self.limit_param is None:
            return None
        return self.limit or DEFAULT_LIMIT


class Incremental(Options):
    """Only records changed since the last completed run."""

    field: str = Field(description="dotted path of the field that grows with each change "
                       "(e.g. updated_at)")
    param: str = Field(description="the parameter that sends the largest value of field seen "
                       "by the last completed run (records with field ≥ it are asked for)")


Scalar = str | int | float | bool


class RestOptions(Options):
    """``[jobs.NAME.source]`` with ``type = "rest"`` (or ``"api"``)."""

    remote: str | None = Field(None, description="a [remotes.NAME] this source reads from")
    url: str | None = Field(None, description="or the base URL itself (then auth, rate_limit "
                            "and timeout of its own)")
    auth: dict[str, Any] | None = Field(None, description="with url: as [remotes.NAME.auth] "
                                        "(type none | bearer | basic | api_key | oauth2)")
    rate_limit: str | None = Field(None, description="with url: N/s, N/min, N/h or N/d")
    timeout: float | None = Field(None, gt=0, description="with url: seconds per request")
    headers: dict[str, str] = Field({}, description="extra request headers")
    path: str = Field("", description="appended to the remote's base URL")
    method: Literal["GET", "POST"] = Field("GET", description="GET | POST (with body)")
    params: dict[str, Scalar] = Field({}, description="query parameters of every request")
    body: dict[str, Any] | None = Field(None, description="POST: the JSON body; pagination "
                                        "and incremental parameters are added to it")
    data_path: str = Field("", description="dotted path to the records in each answer; "
                           "\"\" when the answer is the list")
    pagination: Pagination = Field(default_factory=Pagination, description="how pages follow")
    incremental: Incremental | None = Field(None, description="only records changed since "
                                            "the last completed run")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> RestOptions:
        if (self.remote is None) == (self.url is None):
            raise ValueError("give either remote (a [remotes.NAME]) or url")
        if self.remote is not None:
            own = [k for k in ("auth", "rate_limit", "timeout") if getattr(self, k) is not None]
            if own:
                raise ValueError(f"{', '.join(own)}: set on [remotes.{self.remote}], not on a "
                                 "source naming it")
        if self.body is not None and self.method != "POST":
            raise ValueError("body is sent with method = \"POST\" only")
        return self
