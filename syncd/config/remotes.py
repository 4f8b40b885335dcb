"""``[remotes.NAME]``: one remote system described once, named by every job that uses it.

Secret values (tokens, passwords, client secrets) are ``Secret`` objects — where the
value lives, never the value. A plain string there is a config error; only an
ad-hoc API request may pass a value inline (``parse_auth(..., inline=True)``), and
it becomes an ``InlineSecret`` that prints as ``<secret>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from syncd.config.secrets import InlineSecret, Secret
from syncd.remote.limits import parse_rate

PLAIN_SECRET = ("a secret is not written in the config: use { file = \"…\" }, "
                "{ env = \"NAME\" } or { credential = \"NAME\" }")


def _secret(value: Any, info: ValidationInfo) -> Secret | InlineSecret:
    if isinstance(value, Secret | InlineSecret):
        return value
    if isinstance(value, str):
        if info.context and info.context.get("inline_secrets"):
            return InlineSecret(value)
        raise PydanticCustomError("plain_secret", PLAIN_SECRET)  # the value is not echoed
    try:
        return Secret.model_validate(value)
    except ValidationError:
        raise PydanticCustomError(
            "bad_secret", "a secret is exactly one of { file = … }, { env = … }, "
            "{ credential = … }") from None


def _name_or_secret(value: Any, info: ValidationInfo) -> str | Secret | InlineSecret:
    return value if isinstance(value, str) else _secret(value, info)


#: a secret: ``{file|env|credential}`` (or, from the ad-hoc API only, a value)
SecretValue = Annotated[Secret | InlineSecret, PlainValidator(_secret)]
#: a name that may be kept secret too (a user name)
NameOrSecret = Annotated[str | Secret | InlineSecret, PlainValidator(_name_or_secret)]


class _Auth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NoAuth(_Auth):
    type: Literal["none"] = Field("none", description="no credentials")


class BearerAuth(_Auth):
    type: Literal["bearer"] = Field(description="Authorization: Bearer TOKEN")
    token: SecretValue = Field(description="the token (a secret)")


class BasicAuth(_Auth):
    type: Literal["basic"] = Field(description="HTTP basic authentication")
    username: NameOrSecret = Field(description="user name (text or a secret)")
    password: SecretValue = Field(description="password (a secret)")


class ApiKeyAuth(_Auth):
    type: Literal["api_key"] = Field(description="a key in a header or query parameter")
    name: str = Field(description="the header's or query parameter's name")
    in_: Literal["header", "query"] = Field("header", alias="in",
                                            description="header | query")
    value: SecretValue = Field(description="the key (a secret)")


class OAuth2Auth(_Auth):
    type: Literal["oauth2"] = Field(description="OAuth2 client credentials or refresh token")
    token_url: str = Field(description="the token endpoint")
    client_id: str = Field(description="the client's id")
    client_secret: SecretValue | None = Field(None, description="the client's secret "
                                              "(a secret); none for a public client")
    scope: str = Field("", description="space-separated scopes asked for; empty: none")
    refresh_token: SecretValue | None = Field(
        None, description="refresh-token grant (a secret; a rotated one is kept in "
        "state_dir/remotes/NAME.json and supersedes it); without it: client credentials")
    client_auth: Literal["basic", "post"] = Field(
        "basic", description="how the client authenticates at the token endpoint: HTTP "
        "basic, or client_id/client_secret in the form body")
    refresh_margin: float = Field(60.0, ge=0, description="seconds before expiry a token "
                                  "is renewed")


class FormAuth(_Auth):
    """A login form, driven by the browser adapter (§9); other keys are passed to it."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    type: Literal["form"] = Field(description="log in through a web form (browser adapter)")
    login_url: str = Field("", description="the login page (or the first step's goto)")
    username: NameOrSecret | None = Field(None, description="user name (text or a secret)")
    password: SecretValue | None = Field(None, description="password (a secret)")
    steps: list[dict[str, Any]] = Field([], description="browser steps that log in")


AuthConfig = Annotated[NoAuth | BearerAuth | BasicAuth | ApiKeyAuth | OAuth2Auth | FormAuth,
                       Field(discriminator="type")]
AUTH_TYPES = ("none", "bearer", "basic", "api_key", "oauth2", "form")
_AUTH: TypeAdapter[Any] = TypeAdapter(AuthConfig)


def parse_auth(value: Any, inline: bool = False) -> Any:
    """An auth model from ``[remotes.NAME.auth]``'s shape; ``inline`` allows secret values.

    Raises ``ValueError`` naming the key, never a value.
    """
    if isinstance(value, _Auth):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"auth: expected a table with type = {' | '.join(AUTH_TYPES)}")
    try:
        return _AUTH.validate_python(dict(value), context={"inline_secrets": inline})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"][1:] if p not in AUTH_TYPES)
        raise ValueError(f"auth{'.' + loc if loc else ''}: {first['msg']}") from None


class RemoteRetry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: PositiveInt = Field(5, description="tries of one request on network errors, "
                                  "429 and 5xx")
    max_delay: float = Field(60.0, gt=0, description="longest wait between tries, seconds; "
                             "a longer Retry-After fails the request (the run retries later)")


class RemoteConfig(BaseModel):
    """How to reach one remote system; its rate limit holds across all jobs and runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field("", description="prefix of every relative request path")
    timeout: float = Field(30.0, gt=0, description="seconds per request")
    rate_limit: str | None = Field(None, description="N/s, N/min, N/h or N/d, shared by "
                                   "every job and run using this remote; none: no limit")
    concurrency: PositiveInt = Field(4, description="requests in flight at once, per run")
    retry: RemoteRetry = Field(default_factory=RemoteRetry)
    headers: dict[str, str] = Field({}, description="sent with every request")
    auth: AuthConfig = Field(default_factory=NoAuth)

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value
