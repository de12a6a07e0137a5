"""The daemon's configuration: YAML validated into typed models, every error named by its path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ari_controller.numbers import Number
from ari_controller.oncall.models import EscalationPolicy, Schedule, User
from ari_controller.screening.callerid import dialled_matches, did_key, is_country
from ari_controller.screening.lists import list_references
from ari_controller.screening.settings import GlobalScreening


class ConfigError(Exception):
    """A configuration that cannot be used, with every problem as (path, message)."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {path}: {message}" for path, message in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class _Secretive(BaseModel):
    """A section whose password may come from an environment variable (`password_env`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    password: str | None = None
    password_env: str | None = None

    def resolved_password(self) -> str | None:
        if self.password_env:
            return os.environ.get(self.password_env, self.password)
        return self.password


class AsteriskSettings(_Secretive):
    url: str = "http://127.0.0.1:8088/ari"
    username: str = "callrouting"
    app: str = "callrouting"
    # Where a call handed back by the controller (while it shuts down) goes: the dialplan
    # context whose `s` extension reaches a person (asterisk/extensions.conf: `fallback`).
    fallback_context: str = "fallback"
    request_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # How often to look for channels in the application that no call owns (adopted when seen
    # on two sweeps in a row).
    sweep_interval_s: float = Field(default=30.0, gt=0, le=3600)
    # Connections the controller opens to ARI at most, its events websocket not included.
    # Asterisk's http.conf `sessionlimit` (100 unless set) caps every HTTP connection to it,
    # from all ARI clients and websockets together; one beyond it is closed at once.
    max_connections: int = Field(default=32, ge=1, le=1000)
    # The formats of a channel originated with no caller to copy them from (a notification
    # call): without them Asterisk may pick one that costs ten times the CPU to play to.
    formats: str = Field(default="ulaw", pattern=r"^[a-z0-9_]+(,[a-z0-9_]+)*$")


class DatabaseSettings(_Secretive):
    dsn: str = "postgresql://callrouting@127.0.0.1:5432/callrouting"
    spool_dir: str = "var/spool"

    def resolved_dsn(self) -> str:
        """The DSN with the password from the environment put in, when one is configured."""
        password = self.resolved_password()
        if not password:
            return self.dsn
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(self.dsn)
        # Only the user part changes: the hosts stay as written (a list of several, for a
        # Postgres cluster, or an IPv6 address in brackets).
        userinfo, _, hosts = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{quote(password, safe='')}@{hosts}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class HttpSettings(BaseModel):
    """The daemon's own HTTP server: health, metrics and (optionally) prompt audio for Asterisk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)


class ConsoleSettings(BaseModel):
    """The web console under /console on the daemon's HTTP server (console/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # The key that encrypts the session cookies: a Fernet key (`ari-controller console-users
    # key` prints a new one), from the environment variable named here, else `session_key`.
    # The same key on every daemon keeps people signed in across restarts and daemons; without
    # one, each start makes its own and everybody signs in again.
    session_key_env: str | None = "CALLROUTING_CONSOLE_KEY"
    session_key: str | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Behind a TLS reverse proxy: cookies only over HTTPS.
    secure_cookies: bool = False
    # Wrong passwords in a row before an account is locked, and for how long.
    lockout_failures: int = Field(default=5, ge=1, le=100)
    lockout_minutes: float = Field(default=15.0, gt=0, le=24 * 60)

    def resolved_session_key(self) -> str | None:
        if self.session_key_env and os.environ.get(self.session_key_env):
            return os.environ[self.session_key_env]
        return self.session_key

    @field_validator("session_key")
    @classmethod
    def _fernet_key(cls, key: str | None) -> str | None:
        if key is not None:
            fernet_key_problem(key, "session_key")
        return key


def fernet_key_problem(key: str, what: str) -> None:
    """Raises ValueError unless `key` is 32 bytes in URL-safe base64 (a Fernet key)."""
    import base64
    import binascii

    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(
            f"{what} is not a Fernet key (32 bytes, URL-safe base64; "
            "`ari-controller console-users key` prints one)"
        )


class FailoverSettings(BaseModel):
    """Several daemons for one Asterisk and one Postgres: one active, the others standby.

    The active one holds a lease in Postgres (renewed every `renew_every_s`, good for
    `lease_s`); a standby connects to Asterisk only once the lease expired and it took it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    lease_s: float = Field(default=2.0, ge=0.5, le=60)
    renew_every_s: float = Field(default=0.5, ge=0.05, le=20)
    # This daemon's name among its application's daemons (default: host name and process id).
    member: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _renewed_in_time(self) -> FailoverSettings:
        if self.renew_every_s * 3 > self.lease_s:
            raise ValueError(
                f"renew_every_s {self.renew_every_s:g} must be at most a third of lease_s"
                f" {self.lease_s:g}: a lease must survive a late renewal or two"
            )
        return self


class PromptSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["espeak-ng", "espeak-ng-command", "piper"] = "espeak-ng"
    engine_options: dict[str, str | int | float] = Field(default_factory=dict)
    # With media "sound" this is <Asterisk sounds dir>/<sound_prefix>, shared with Asterisk.
    cache_dir: str = "var/sounds/callrouting"
    media: Literal["sound", "http"] = "sound"
    sound_prefix: str = "callrouting"
    http_base: str | None = None


class Destination(BaseModel):
    """Where alert messages go: a chat incoming webhook (Slack, Mattermost, Microsoft Teams
    Workflows) or a generic webhook signed per Standard Webhooks with a secret from the
    environment (`secret_env`, "whsec_..." or any string)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    type: Literal["slack", "mattermost", "teams", "webhook"]
    url: str | None = None
    url_env: str | None = None  # chat webhook URLs are secrets too
    secret_env: str | None = None
    # At most this many messages a minute to this destination; the rest wait their turn.
    rate_per_minute: int = Field(default=60, ge=1, le=6000)
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _complete(self) -> Destination:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url '{self.url}' is not an http(s) URL")
        if self.type == "webhook" and not self.secret_env:
            raise ValueError("a webhook destination signs its messages: give secret_env")
        return self

    def resolved_url(self) -> str | None:
        return os.environ.get(self.url_env) if self.url_env else self.url

    def resolved_secret(self) -> str | None:
        return os.environ.get(self.secret_env) if self.secret_env else None


class EmailSettings(BaseModel):
    """The SMTP server alert e-mails go through (credentials from the environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    from_address: str = Field(min_length=3)
    timeout_s: float = Field(default=30.0, gt=0, le=300)
    attach_voicemail: bool = True

    def resolved_password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None


class PhoneSettings(BaseModel):
    """Notification calls through the daemon's own Asterisk, to a person's contacts in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # At most this many notification calls at once: live hotline calls always come first.
    max_concurrent_calls: int = Field(default=2, ge=1, le=50)
    ring_timeout_s: float = Field(default=30.0, gt=0, le=300)
    # After the message, how long to wait for a key before saying it again.
    key_window_s: float = Field(default=8.0, gt=0, le=120)
    # How many times the message is said before the call counts as not reached.
    repeats: int = Field(default=2, ge=1, le=5)
    caller_id: str | None = None  # what the called phone shows; default: the first number


class AlertEngineSettings(BaseModel):
    """The alert engine's timing; any number of daemons on one database may run it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # How often due escalation steps and deliveries are looked for.
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    # A claimed delivery not reported back within this is claimed again (its sender died).
    lease_s: float = Field(default=60.0, gt=0, le=3600)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_initial_s: float = Field(default=5.0, gt=0, le=3600)
    backoff_max_s: float = Field(default=900.0, gt=0, le=86400)
    default_escalation_delay_minutes: float = Field(default=5.0, ge=0, le=1440)


class AlertsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    destinations: list[Destination] = Field(default_factory=list)
    # Links in messages point here (`<public_base_url>/alerts/<id>`) when it is set.
    public_base_url: str | None = None
    # Signs the acknowledge/resolve links in e-mails (an environment variable's name).
    link_secret_env: str | None = None
    link_ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    email: EmailSettings | None = None
    phone: PhoneSettings = Field(default_factory=PhoneSettings)
    engine: AlertEngineSettings = Field(default_factory=AlertEngineSettings)

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"'{url}' is not an http(s) URL")
        return url

    def destination(self, destination_id: str) -> Destination | None:
        return next((d for d in self.destinations if d.id == destination_id), None)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    asterisk: AsteriskSettings = Field(default_factory=AsteriskSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    failover: FailoverSettings = Field(default_factory=FailoverSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    users: list[User] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    escalation_policies: list[EscalationPolicy] = Field(default_factory=list)
    numbers: list[Number] = Field(min_length=1)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    # The default country of caller IDs and DIDs, and the shared lists numbers refer to (@name).
    screening: GlobalScreening = Field(default_factory=GlobalScreening)

    def number(self, did: str) -> Number | None:
        """The number dialled as `did`: the one configured exactly so, else the one that is
        the same phone number in another form (`030 123456`, `004930123456` for
        `+4930123456`, read with the number's country)."""
        for number in self.numbers:
            if number.did == did:
                return number
        for number in self.numbers:
            if dialled_matches(number.did, did, self.country_of(number)):
                return number
        return None

    def country_of(self, number: Number) -> str | None:
        """The country a number's caller IDs and DID are read with (ISO 3166 alpha-2)."""
        return number.screening.country_or(self.screening.default_country)


def format_path(loc: Sequence[int | str]) -> str:
    """('numbers', 0, 'routes', 1, 'policy') -> 'numbers[0].routes[1].policy'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _validation_problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        # pydantic puts the validator's name for tagged unions/after-validators into loc, and
        # "[key]" after a mapping's key that failed: drop them
        loc = [
            p
            for p in item["loc"]
            if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))
        ]
        message = item["msg"].removeprefix("Value error, ")
        problems.append((format_path(loc), message))
    return problems


def reference_problems(config: Config) -> list[tuple[str, str]]:
    """Everything that points at something that does not exist, or is there twice."""
    from ari_controller.oncall.validate import validate_references

    problems = list(validate_references(config.users, config.schedules, config.escalation_policies))
    policies = {p.id for p in config.escalation_policies}
    seen_dids: dict[str, int] = {}
    for n, number in enumerate(config.numbers):
        # The same phone number in two forms (+4930123456, 030 123456) is one DID.
        key = did_key(number.did, config.country_of(number))
        if key in seen_dids:
            problems.append(
                (f"numbers[{n}].did", f"'{number.did}' is also numbers[{seen_dids[key]}]")
            )
        seen_dids.setdefault(key, n)
        problems.extend(_list_problems(config, n, number))
        for key, routes in (
            ("routes", number.routes),
            ("outside_hours.routes", number.outside_hours.routes),
        ):
            for r, route in enumerate(routes):
                if route.policy not in policies:
                    problems.append(
                        (
                            f"numbers[{n}].{key}[{r}].policy",
                            f"unknown escalation policy '{route.policy}'",
                        )
                    )
    problems.extend(_destination_problems(config))
    return problems


def _list_problems(config: Config, n: int, number: Number) -> list[tuple[str, str]]:
    """A number's block and allow lists that name shared lists nobody defined."""
    problems = []
    for key, patterns in (("block", number.screening.block), ("allow", number.screening.allow)):
        for i, name in list_references(patterns):
            if name not in config.screening.lists:
                known = ", ".join(f"@{k}" for k in config.screening.lists) or "none"
                problems.append(
                    (
                        f"numbers[{n}].screening.{key}[{i}]",
                        f"unknown list '@{name}' (screening.lists has {known})",
                    )
                )
    return problems


def _destination_problems(config: Config) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for d, destination in enumerate(config.alerts.destinations):
        if destination.id in ("phone", "email"):
            problems.append(
                (f"alerts.destinations[{d}].id", f"'{destination.id}' is the name of a method")
            )
        if destination.id in seen:
            problems.append((f"alerts.destinations[{d}].id", f"'{destination.id}' is there twice"))
        seen.add(destination.id)
    for n, number in enumerate(config.numbers):
        for a, action in enumerate(number.alerts.actions):
            if action.destination not in seen:
                problems.append(
                    (
                        f"numbers[{n}].alerts.actions[{a}].destination",
                        f"unknown destination '{action.destination}'",
                    )
                )
    for u, user in enumerate(config.users):
        for r, rule in enumerate(user.notify):
            where = f"users[{u}].notify[{r}]"
            if rule.method == "email" and not user.email:
                problems.append((where, "an email rule needs the user's email"))
            if rule.method == "email" and config.alerts.email is None:
                problems.append((where, "an email rule needs alerts.email (the SMTP server)"))
            if rule.to is None:
                continue
            target = config.alerts.destination(rule.to)
            if target is None:
                problems.append((f"users[{u}].notify[{r}].to", f"unknown destination '{rule.to}'"))
            elif (rule.method == "webhook") != (target.type == "webhook"):
                problems.append(
                    (
                        f"users[{u}].notify[{r}].to",
                        f"'{rule.to}' is a {target.type} destination, not {rule.method}",
                    )
                )
    return problems


def alert_notes(config: Config) -> list[str]:
    """What `check-config` says about alerts (and the console) that is allowed but probably
    not meant."""
    notes = []
    console = config.console
    if console.enabled and console.resolved_session_key() is None:
        where = (
            f"environment variable {console.session_key_env} is not set"
            if console.session_key_env
            else "no console.session_key_env"
        )
        notes.append(
            f"console: {where} and there is no console.session_key, so every start makes a"
            " key of its own: people sign in again after each restart, and several daemons do"
            " not share sign-ins (`ari-controller console-users key` prints a key)"
        )
    engine = config.alerts.engine
    for destination in config.alerts.destinations:
        if destination.timeout_s >= engine.lease_s:
            notes.append(
                f"destination '{destination.id}': timeout_s {destination.timeout_s:g} is not"
                f" shorter than alerts.engine.lease_s {engine.lease_s:g}: a slow send may be"
                " sent twice"
            )
    notified = {user.id for user in config.users if user.notify}
    # Without destinations nothing is sent anyway; with them, a policy nobody hears is a slip.
    for policy in config.escalation_policies if config.alerts.destinations else []:
        named = {u for rule in policy.rules for u in rule.users}
        if named and not named & notified and not any(r.schedules for r in policy.rules):
            notes.append(
                f"escalation policy '{policy.id}': nobody on it has notification rules, so its"
                " escalated alerts reach no one (only the numbers' actions)"
            )
    return notes


def environment_problems(config: Config) -> list[tuple[str, str]]:
    """Secrets the configuration names but the environment does not hold (check-config)."""
    problems = []
    alerts = config.alerts
    for key, variable in (
        ("alerts.link_secret_env", alerts.link_secret_env),
        ("alerts.email.password_env", alerts.email.password_env if alerts.email else None),
    ):
        if variable and not os.environ.get(variable):
            problems.append((key, f"environment variable {variable} is not set"))
    console = config.console
    session_key = console.resolved_session_key()
    from_environment = session_key is not None and session_key != console.session_key
    if console.enabled and session_key is not None and from_environment:
        try:
            fernet_key_problem(session_key, f"environment variable {console.session_key_env}")
        except ValueError as exc:
            problems.append(("console.session_key_env", str(exc)))
    for d, destination in enumerate(config.alerts.destinations):
        for key in ("url_env", "secret_env"):
            variable = getattr(destination, key)
            if variable and not os.environ.get(variable):
                path = f"alerts.destinations[{d}].{key}"
                problems.append((path, f"environment variable {variable} is not set"))
    return problems


def parse_config(data: Any, source: str = "config", base_dir: Path | None = None) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(source, [("(top level)", "expected a mapping of sections")])
    context = {"base_dir": base_dir or Path.cwd(), "default_country": _default_country(data)}
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(source, _validation_problems(exc)) from None
    problems = reference_problems(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def _default_country(data: dict[str, Any]) -> str | None:
    """`screening.default_country` as written, for the numbers' patterns to be read with
    (a malformed one is reported at its own path, and reads no pattern)."""
    screening = data.get("screening")
    country = screening.get("default_country") if isinstance(screening, dict) else None
    if isinstance(country, str) and len(country) == 2 and is_country(country):
        return country.upper()
    return None


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [("(file)", f"cannot read: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(str(path), [(where, f"not valid YAML: {exc}")]) from None
    return parse_config(data, str(path), path.parent)
