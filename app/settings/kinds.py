"""How one setting is declared and read: :class:`Setting` and the kinds of value it takes.

A kind turns a setting's text into its value and holds it to its bounds, raising
:class:`Refused` with the problem; :meth:`Setting.read` names the variable and the value in the
:class:`~tables.errors.ConfigError` it makes of that. A kind also says in a few words which values
it takes (``bounds``), for ``--help`` and the README.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Final, Generic, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from bridges.connection import SCHEMES, Secret
from bridges.limits import DAY, MIB, UNLIMITED, format_duration, parse_duration, parse_size
from tables.errors import ConfigError

__all__ = [
    "Choice",
    "Duration",
    "ExistingFile",
    "Folder",
    "Host",
    "Integer",
    "Kind",
    "ObjectPath",
    "Refused",
    "SETTING",
    "Seconds",
    "SecretText",
    "ServerUrls",
    "Setting",
    "Size",
    "Text",
    "setting",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: The key of a :class:`Setting` in the metadata of the dataclass field :func:`setting` makes.
SETTING: Final = "setting"

#: How durations and sizes are written (shown when one cannot be read).
_DURATION_RULE: Final = "a duration: seconds, or a number with a d, h, m or s suffix (7d, 12h, 30m, 45s)"
_SIZE_RULE: Final = "a size: bytes, or a number with a K, M, G or T suffix (powers of 1024: 512M, 10G), or -1"
#: The smallest byte cap taken: a cap of a few bytes is a slip (10 meant as 10G), and would make
#: the stream drop or refuse every message.
_MIN_MAX_BYTES: Final = MIB
#: JetStream holds ages in int64 nanoseconds and sizes in int64 bytes; these stay well inside.
_MAX_DURATION: Final = 36500 * DAY
_MAX_MAX_BYTES: Final = 1 << 50


class Refused(ValueError):
    """A kind cannot take a text: ``problem`` says why (``shown`` replaces a value not to print)."""

    def __init__(self, problem: str, *, shown: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.shown = shown


class Kind(Protocol[T_co]):
    """How one kind of setting is read: ``parse`` takes the text (stripped if ``strip``) and
    returns the value or raises :class:`Refused`; ``empty`` is the value of an unset variable
    with no default; ``bounds`` says in a few words which values it takes, for the docs."""

    @property
    def strip(self) -> bool: ...

    @property
    def empty(self) -> T_co | None: ...

    @property
    def bounds(self) -> str: ...

    def parse(self, text: str) -> T_co: ...


@dataclass(frozen=True)
class Text:
    """Any text; ``strip=False`` keeps it as written (a user name), and unset is then None."""

    strip: bool = True
    empty: ClassVar[None] = None
    bounds: ClassVar[str] = ""

    def parse(self, text: str) -> str:
        return text


@dataclass(frozen=True)
class SecretText:
    """A password or token, kept as written, held in a :class:`Secret` so it is never printed."""

    strip: ClassVar[bool] = False
    empty: ClassVar[None] = None
    bounds: ClassVar[str] = "secret: never printed"

    def parse(self, text: str) -> Secret:
        return Secret(text)


@dataclass(frozen=True)
class ExistingFile:
    """The path of a file that exists when the settings are read."""

    strip: ClassVar[bool] = False
    empty: ClassVar[None] = None
    bounds: ClassVar[str] = "a readable file"

    def parse(self, text: str) -> str:
        if not Path(text).is_file():
            raise Refused("is not a readable file")
        return text


@dataclass(frozen=True)
class Folder:
    """A directory, made when needed."""

    strip: ClassVar[bool] = False
    empty: ClassVar[None] = None
    bounds: ClassVar[str] = "a directory"

    def parse(self, text: str) -> Path:
        return Path(text)


@dataclass(frozen=True)
class Choice:
    """One of a few words, in any case."""

    options: tuple[str, ...]
    strip: ClassVar[bool] = True
    empty: ClassVar[None] = None

    @property
    def bounds(self) -> str:
        return f"{', '.join(self.options[:-1])} or {self.options[-1]}"

    def parse(self, text: str) -> str:
        if text.lower() not in self.options:
            raise Refused(f"must be one of {', '.join(self.options)}")
        return text.lower()


@dataclass(frozen=True)
class Integer:
    """A whole number between ``minimum`` and ``maximum``, or one of ``allowed``."""

    minimum: int | None = None
    maximum: int | None = None
    allowed: tuple[int, ...] = ()
    strip: ClassVar[bool] = True
    empty: ClassVar[None] = None

    @property
    def bounds(self) -> str:
        if self.allowed:
            return f"{', '.join(map(str, self.allowed[:-1]))} or {self.allowed[-1]}"
        return _range(self.minimum, self.maximum)

    def parse(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise Refused("is not a valid int") from None
        if self.allowed and value not in self.allowed:
            raise Refused(f"must be one of {', '.join(map(str, self.allowed))}")
        if self.minimum is not None and value < self.minimum:
            raise Refused(f"must be >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise Refused(f"must be <= {self.maximum}")
        return value


@dataclass(frozen=True)
class Seconds:
    """A finite number of seconds of at least ``minimum``; 0 too when ``zero`` says what it means."""

    minimum: float
    zero: str | None = None
    strip: ClassVar[bool] = True
    empty: ClassVar[None] = None

    @property
    def bounds(self) -> str:
        return f"0 ({self.zero}) or >= {self.minimum:g}" if self.zero else f">= {self.minimum:g}"

    def parse(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise Refused("is not a valid float") from None
        if not math.isfinite(value):
            raise Refused("must be a finite number of seconds")
        if value < self.minimum and not (self.zero and value == 0):
            raise Refused(f"must be {self.bounds}")
        return value


@dataclass(frozen=True)
class Duration:
    """A retention: ``7d``, ``12h``, ``30m``, ``45s`` or seconds, of at least ``minimum`` (one
    second at the least: 0 would mean forever); ``why`` says why the minimum is what it is."""

    minimum: float = 1.0
    why: str = ""
    strip: ClassVar[bool] = True
    empty: ClassVar[None] = None

    @property
    def bounds(self) -> str:
        return f"{format_duration(self.minimum)} to {format_duration(_MAX_DURATION)}"

    def parse(self, text: str) -> float:
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise Refused(f"is not {_DURATION_RULE}") from None
        if seconds < self.minimum:
            raise Refused(f"must be at least {format_duration(self.minimum)}{self.why}")
        if seconds > _MAX_DURATION:
            raise Refused(f"must be at most {format_duration(_MAX_DURATION)}")
        return seconds


@dataclass(frozen=True)
class Size:
    """A byte cap: ``512M``, ``10G``, ``1T`` or bytes, of at least 1 MiB; or -1 (none) where
    ``unlimited``, because an age bounds what it limits."""

    unlimited: bool = True
    strip: ClassVar[bool] = True
    empty: ClassVar[None] = None

    @property
    def bounds(self) -> str:
        return "-1 (none) or 1M to 1024T" if self.unlimited else "1M to 1024T"

    def parse(self, text: str) -> int:
        try:
            value = parse_size(text)
        except ValueError:
            raise Refused(f"is not {_SIZE_RULE}") from None
        if value == UNLIMITED and not self.unlimited:
            raise Refused("must be a size, not -1: it is the only bound of what it limits")
        if value != UNLIMITED and value < _MIN_MAX_BYTES:
            raise Refused("must be -1 or at least 1M" if self.unlimited else "must be at least 1M")
        if value > _MAX_MAX_BYTES:
            raise Refused("must be at most 1024T")
        return value


@dataclass(frozen=True)
class ServerUrls:
    """NATS server URLs, comma-separated, naming servers only (credentials and options have
    their own settings). A bare ``host:port`` is a ``nats://`` server, as NATS clients take it."""

    strip: ClassVar[bool] = True
    empty: ClassVar[tuple[str, ...]] = ()
    bounds: ClassVar[str] = "host:port or scheme://host:port, comma-separated"

    def parse(self, text: str) -> tuple[str, ...]:
        urls = []
        for given in (u.strip() for u in text.split(",")):
            if not given:
                continue
            if "@" in given:
                raise Refused(
                    "must not contain credentials; use NATS_USER/NATS_PASSWORD or NATS_TOKEN", shown="<redacted>"
                )
            url = given if "://" in given else f"nats://{given}"
            parts = urlsplit(url)
            if parts.path not in ("", "/") or "?" in url or "#" in url:
                # The transport's options come from their own settings (NATS_PREFIX,
                # SESSION_TIMEOUT, ...): a second source could disagree between processes.
                # The options are not shown: one could be a token.
                raise Refused(
                    "must name servers only (host:port or scheme://host:port), without a path or ?options",
                    shown=f"{parts.scheme}://{parts.netloc}{parts.path}?...",
                )
            if parts.scheme not in SCHEMES:
                raise Refused(
                    f"{parts.scheme}:// is not a NATS scheme; use {', '.join(f'{s}://' for s in sorted(SCHEMES))} "
                    "or host:port alone (nats://)",
                    shown=given,
                )
            try:
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise Refused("has an invalid port (0 to 65535)", shown=given) from None
            if not parts.hostname:
                raise Refused("names no host", shown=given)
            urls.append(url)
        return tuple(urls)


@dataclass(frozen=True)
class Host:
    """An address or host name to listen on, without a port (the port has its own setting)."""

    strip: ClassVar[bool] = True
    empty: ClassVar[None] = None
    bounds: ClassVar[str] = "an IP address or host name"

    def parse(self, text: str) -> str:
        host = text[1:-1] if text.startswith("[") and text.endswith("]") else text  # [::1] as in URLs
        if "/" in host or any(c.isspace() for c in host) or not host:
            raise Refused("must be an IP address or host name, without a scheme or path")
        if host.count(":") == 1:  # IPv6 addresses have two or more
            raise Refused("must be an address without a port (PORT sets the port)")
        return host


@dataclass(frozen=True)
class ObjectPath:
    """Where to find a Python object: ``package.module:attribute``, imported by who uses it."""

    strip: ClassVar[bool] = True
    empty: ClassVar[None] = None
    bounds: ClassVar[str] = "package.module:attribute"

    def parse(self, text: str) -> str:
        module, colon, attribute = text.partition(":")
        if not colon or not all(part.isidentifier() for part in (*module.split("."), attribute)):
            raise Refused("must be package.module:attribute (an importable module and a name in it)")
        return text


def _range(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{minimum:g} to {maximum:g}"
    if minimum is not None:
        return f">= {minimum:g}"
    return f"<= {maximum:g}" if maximum is not None else ""


# -- the declaration of one setting ------------------------------------------------------------


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its ``name``, its ``default`` as the environment would spell it
    ("" for none), the ``kind`` of value it takes and its ``meaning``."""

    name: str
    default: str
    kind: Kind[T]
    meaning: str

    @property
    def default_value(self) -> T | None:
        return self.kind.parse(self.default) if self.default else self.kind.empty

    @property
    def shown_default(self) -> str:
        return self.default or "unset"

    def read(self, environ: Mapping[str, str]) -> T | None:
        """The value ``environ`` gives this setting: its default when unset or blank."""
        raw = environ.get(self.name, "")
        text = raw.strip() if self.kind.strip else raw
        if not text:
            return self.default_value
        try:
            return self.kind.parse(text)
        except Refused as refused:
            raise ConfigError(self.name, raw if refused.shown is None else refused.shown, refused.problem) from None


def setting(name: str, default: str, kind: Kind[T], meaning: str) -> T:
    """A field of :class:`Settings` read from the environment variable ``name``."""
    declared = Setting(name, default, kind, meaning)
    # dataclasses' idiom: the field object stands in for the value it defaults to (None only for
    # a setting declared optional, with no default)
    return cast(T, field(default=declared.default_value, metadata={SETTING: declared}))
