"""One option parser for every backend: declared options, precedence, conversion, and errors that name names.

Why one parser: a store is configured from three places (keyword options
given when it is opened, its URI's query, the environment), and every backend
must agree on precedence (keyword > URI query > environment > default), on
how a value is spelled (``8MiB``, ``true``/``off``, ``2.5`` seconds), on what
an unknown option does (:class:`~tensordb_core.errors.InvalidURI` naming it and
listing the known ones) and on never echoing a value that may be a secret.  A
backend declares its options once as an :class:`OptionSet`; the cloud stores,
MongoDB, SQLite and the file store all parse through it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tensordb_core.errors import InvalidURI
from tensordb_core.store.uri import StoreURI, declare_harmless, looks_secret

MiB = 1024 * 1024

#: Spellings of true and false accepted in URI queries and options (case-insensitive).
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

_SIZE_RE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": MiB,
    "mb": 1000**2,
    "mib": MiB,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def _for(where: str | None) -> str:
    return f", for {where}" if where else ""


# -- one value ---------------------------------------------------------------------------------------------------


def to_size(name: str, value: Any, *, where: str | None = None) -> int:
    """A positive byte count: an int, or text such as ``8388608``, ``8MiB``, ``256KiB``, ``1GB``."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE_RE.match(str(value))
        if match is None:
            raise InvalidURI(f"option {name}={value!r} must be a byte count such as 8388608 or 8MiB{_for(where)}")
        number = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if number < 1:
        raise InvalidURI(f"option {name}={number} must be positive{_for(where)}")
    return number


def to_bool(name: str, value: Any, *, where: str | None = None, blank_is_false: bool = True) -> bool:
    """Real booleans and the usual spellings in URI query strings (``?flag=`` is false unless ``blank_is_false=False``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS or (blank_is_false and text == ""):
        return False
    raise InvalidURI(f"option {name}={value!r} must be true or false{_for(where)}")


def to_int(name: str, value: Any, *, minimum: int, maximum: int | None = None, where: str | None = None) -> int:
    """A whole number of at least ``minimum`` (and at most ``maximum``); ``True`` is not a number."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidURI(f"option {name}={value!r} must be a whole number{_for(where)}") from None
    if number < minimum:
        raise InvalidURI(f"option {name}={number} must be at least {minimum}{_for(where)}")
    if maximum is not None and number > maximum:
        raise InvalidURI(f"option {name}={number} must be at most {maximum}{_for(where)}")
    return number


def to_float(name: str, value: Any, *, minimum: float, exclusive: bool = False, where: str | None = None) -> float:
    """A number of seconds of at least ``minimum`` (more than ``minimum`` when ``exclusive``, which also refuses NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidURI(f"option {name}={value!r} must be a number of seconds{_for(where)}") from None
    if exclusive and not number > minimum:
        raise InvalidURI(f"option {name}={number} must be more than {minimum}{_for(where)}")
    if not exclusive and not number >= minimum:
        raise InvalidURI(f"option {name}={number} must be at least {minimum}{_for(where)}")
    return number


def to_choice(name: str, value: Any, allowed: Iterable[str], *, where: str | None = None) -> str:
    """One of ``allowed``, compared case-insensitively and returned as spelled in ``allowed``."""
    spelled = {a.lower(): a for a in allowed}
    text = str(value).strip().lower()
    if text not in spelled:
        raise InvalidURI(f"option {name} must be one of {', '.join(spelled.values())}, not {value!r}{_for(where)}")
    return spelled[text]


#: How an :class:`Option` turns what was given into its value: ``(name, value, where) -> value``.
Convert = Callable[[str, Any, "str | None"], Any]


def text(name: str, value: Any, where: str | None = None) -> str:
    """The value as a string (the default conversion)."""
    return str(value)


def anything(name: str, value: Any, where: str | None = None) -> Any:
    """The value as given: for keyword-only objects (a boto3 session, a credentials object)."""
    return value


def size(name: str, value: Any, where: str | None = None) -> int:
    return to_size(name, value, where=where)


def flag(*, blank_is_false: bool = True) -> Convert:
    return lambda name, value, where=None: to_bool(name, value, where=where, blank_is_false=blank_is_false)


def whole(minimum: int, maximum: int | None = None) -> Convert:
    return lambda name, value, where=None: to_int(name, value, minimum=minimum, maximum=maximum, where=where)


def seconds(minimum: float, *, exclusive: bool = False) -> Convert:
    return lambda name, value, where=None: to_float(name, value, minimum=minimum, exclusive=exclusive, where=where)


def one_of(*allowed: str) -> Convert:
    return lambda name, value, where=None: to_choice(name, value, allowed, where=where)


# -- a backend's options -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One setting a store understands.

    ``default=None`` means unset (left to the driver); ``None`` given by the
    caller is unset too and is never converted.  ``env`` names environment
    variables read below the URI query, first non-empty wins.  ``in_uri=False``
    marks options that may only be keywords: objects, or secrets that a URI
    would show and log.
    """

    name: str
    default: Any = None
    convert: Convert = text
    aliases: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    in_uri: bool = True


class OptionSet:
    """The options of one store: parse a URI's query, keyword options and the environment in one call."""

    def __init__(self, what: str, options: Iterable[Option]) -> None:
        self.what = what  #: e.g. "S3 option": used in messages
        self.options: dict[str, Option] = {o.name: o for o in options}
        # An option is harmless to print when it belongs in a URI and none of its spellings looks secret
        # (an alias of a token is hidden with it; a keyword-only option in a URI is a mistake: hidden).
        declare_harmless(s for o in self.options.values()
                         if o.in_uri and not any(map(looks_secret, (o.name, *o.aliases)))
                         for s in (o.name, *o.aliases))
        self._spelling: dict[str, str] = {}
        for option in self.options.values():
            for spelling in (option.name, *option.aliases):
                self._spelling[spelling.lower()] = option.name

    @property
    def names(self) -> frozenset[str]:
        """Every accepted spelling (names and aliases)."""
        return frozenset(s for o in self.options.values() for s in (o.name, *o.aliases))

    @property
    def defaults(self) -> dict[str, Any]:
        return {name: option.default for name, option in self.options.items()}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._spelling

    def __or__(self, other: OptionSet) -> OptionSet:
        """Both sets, for a URI two stores read (``file://``: the SQLite index and the file blobs)."""
        return OptionSet(f"{self.what} or {other.what}", [*self.options.values(), *other.options.values()])

    def split(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``given`` as (ours, the rest): for backends that pass unknown options on to their driver."""
        ours = {k: v for k, v in given.items() if k in self}
        return ours, {k: v for k, v in given.items() if k not in self}

    def fold(self, given: Mapping[str, Any], *, source: str, where: str) -> dict[str, Any]:
        """``given`` keyed by canonical names; unknown names and two spellings that disagree are refused."""
        reject_unknown([n for n in given if n not in self], self.names, what=f"{self.what}(s) in the {source}",
                       where=where)
        out: dict[str, Any] = {}
        for name, value in given.items():
            canonical = self._spelling[name.lower()]
            if canonical in out and out[canonical] != value:
                raise InvalidURI(f"the {source} set {canonical!r} twice (under two spellings) for {where}")
            out[canonical] = value
        return out

    def layers(
        self,
        uri: StoreURI,
        keyword: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        shared: Iterable[str] = (),
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """``(environment, query, keyword)``, each folded and checked; ``shared``: query names another reader owns.

        A name in ``shared`` may stand in the URI's query (another store or the
        driver reads it) and is skipped here; keywords are always checked.
        """
        where = uri.redacted()
        skip = {s.lower() for s in shared} - {s.lower() for s in self.names}
        query = self.fold({k: v for k, v in uri.options if k.lower() not in skip}, source="URI query", where=where)
        for name in query:
            if not self.options[name].in_uri:
                raise InvalidURI(
                    f"{name} may not be written in a URI (it would be shown and logged); pass {name}=... as a "
                    f"keyword option instead, for {where}"
                )
        env = os.environ if environ is None else environ
        from_env: dict[str, Any] = {}
        for option in self.options.values():
            found = next((env[v] for v in option.env if env.get(v)), None)
            if found is not None:
                from_env[option.name] = found
        given = {k: v for k, v in (keyword or {}).items() if v is not None}  # None: not given
        return from_env, query, self.fold(given, source="options", where=where)

    def convert(self, values: Mapping[str, Any], *, where: str) -> dict[str, Any]:
        """Every option's value: the given one converted, else its default (``None`` stays ``None``)."""
        out: dict[str, Any] = {}
        for name, option in self.options.items():
            value = values.get(name)
            out[name] = option.default if value is None else option.convert(name, value, where)
        return out

    def parse(
        self,
        uri: StoreURI,
        keyword: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        shared: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Every option's value by precedence: keyword > URI query > environment > default."""
        from_env, query, given = self.layers(uri, keyword, environ=environ, shared=shared)
        return self.convert(layered({}, from_env, query, given), where=uri.redacted())


# -- helpers -----------------------------------------------------------------------------------------------------


def reject_unknown(unknown: Iterable[str], known: Iterable[str], *, what: str, where: str) -> None:
    """Raise :class:`InvalidURI` naming ``unknown`` options and listing ``known`` ones; nothing when none.

    Names only, never values: a mistyped secret option must not echo its value.
    """
    names = sorted(unknown)
    if names:
        raise InvalidURI(f"unknown {what} {', '.join(names)} for {where}; known: {', '.join(sorted(set(known)))}")


def unknown_options(uri: StoreURI, options: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """The option names in ``uri``'s query or in ``options`` that are not in ``known``, sorted."""
    allowed = set(known)
    return sorted((set(uri.query) - allowed) | (set(options) - allowed))


def layered(
    defaults: Mapping[str, Any],
    environment: Mapping[str, Any] | None = None,
    query: Mapping[str, Any] | None = None,
    keyword: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One settings dict by precedence: ``keyword`` > URI ``query`` > ``environment`` > ``defaults``."""
    return {**defaults, **(environment or {}), **(query or {}), **(keyword or {})}
