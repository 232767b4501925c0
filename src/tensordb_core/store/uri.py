"""Parse, hold and redact store URIs.

A ``StoreURI`` is immutable and never shows a secret: ``repr``, ``str`` and
``redacted()`` replace the password, any user name that is not a plain name,
and every query value not known to be harmless with ``***``.  Known harmless
means declared by a backend's option set (:mod:`tensordb_core.store.kit.options`
calls :func:`declare_harmless`) or a common driver setting listed here, and
not secret-looking (``secret``, ``key``, ``token``, ``sig``, ``password``,
``credential``...).  An allow-list, because a misspelt or unknown option
(``?pasword=...``, ``?sas=...``, a connection string) is exactly the one
nobody thought to hide.  Only ``reveal()`` gives the original string back, for handing to a
driver.  Multi-host authorities (``mongodb://h1:1,h2:2/db``) are kept as a
tuple of hosts; ``mongodb+srv`` is one scheme, never split on ``+``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode

from tensordb_core.errors import InvalidURI

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.DOTALL)
# "mechanismproperties": MongoDB's authMechanismProperties can carry AWS_SESSION_TOKEN:<token>.
_SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "sig", "credential", "accountkey", "key",
                 "mechanismproperties", "connectionstring", "sas")
REDACTED = "***"
#: Driver settings users put in URIs that carry no secret (MongoDB's connection options, mostly).
_HARMLESS: set[str] = {
    name.lower() for name in (
        "directConnection", "replicaSet", "authSource", "authMechanism", "tls", "ssl", "retryWrites",
        "retryReads", "w", "journal", "wTimeoutMS", "readPreference", "readConcernLevel", "appName",
        "serverSelectionTimeoutMS", "connectTimeoutMS", "socketTimeoutMS", "maxPoolSize", "minPoolSize",
        "maxIdleTimeMS", "heartbeatFrequencyMS", "localThresholdMS", "compressors", "zlibCompressionLevel",
        "uuidRepresentation", "loadBalanced", "srvMaxHosts", "srvServiceName", "timeoutMS",
    )
}
_PLAIN_USER = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


def declare_harmless(names: Iterable[str]) -> None:
    """Let these option names show their values in printed URIs (a backend's declared, non-secret options)."""
    _HARMLESS.update(n.lower() for n in names if not looks_secret(n))


def looks_secret(name: str) -> bool:
    """True for names that say they hold a secret (keys, tokens, signatures, passwords, connection strings)."""
    lowered = name.lower().replace("_", "").replace("-", "")
    return any(word in lowered for word in _SECRET_WORDS)


def is_secret_option(name: str) -> bool:
    """True for query options whose value must not be shown: secret-looking or not known to be harmless."""
    return looks_secret(name) or name.lower() not in _HARMLESS


def shown_user(username: str) -> str:
    """A user name as printed: kept when it is a plain name, else ``***`` (``user%3Apw`` hides a password)."""
    return quote(username, safe="") if _PLAIN_USER.match(username) else REDACTED


@dataclass(frozen=True)
class StoreURI:
    """One parsed store address.  Build it with :func:`parse_uri`."""

    scheme: str
    hosts: tuple[tuple[str, int | None], ...] = ()
    path: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: tuple[tuple[str, str], ...] = ()

    @property
    def host(self) -> str | None:
        """The first host, or None for host-less URIs (``file:///dir``, ``memory://``)."""
        return self.hosts[0][0] if self.hosts else None

    @property
    def port(self) -> int | None:
        return self.hosts[0][1] if self.hosts else None

    @property
    def query(self) -> dict[str, str]:
        """Options as a dict (the last value wins for repeated names)."""
        return dict(self.options)

    def option(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def _render(self, *, secret: bool) -> str:
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="") if secret else shown_user(self.username)
            if self.password is not None:
                auth += ":" + (quote(self.password, safe="") if secret else REDACTED)
            auth += "@"
        hosts = ",".join(h if p is None else f"{h}:{p}" for h, p in self.hosts)
        opts = [(k, v if secret or not is_secret_option(k) else REDACTED) for k, v in self.options]
        query = ("?" + urlencode(opts, safe="*/:")) if opts else ""
        path = self.path.replace("%", "%25").replace("#", "%23").replace("?", "%3F")  # parse_uri unquotes it
        return f"{self.scheme}://{auth}{hosts}{path}{query}"

    def reveal(self) -> str:
        """The full URI including secrets — only for passing to a driver, never for printing."""
        return self._render(secret=True)

    def redacted(self) -> str:
        """The URI with the password and secret options replaced by ``***``."""
        return self._render(secret=False)

    def with_options(self, **changes: str | None) -> StoreURI:
        """A copy with options set (or removed where the value is None)."""
        opts = dict(self.options)
        for k, v in changes.items():
            if v is None:
                opts.pop(k, None)
            else:
                opts[k] = v
        return StoreURI(self.scheme, self.hosts, self.path, self.username, self.password, tuple(opts.items()))

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"StoreURI({self.redacted()!r})"


def _parse_hosts(hostlist: str, raw_for_errors: str) -> tuple[tuple[str, int | None], ...]:
    hosts: list[tuple[str, int | None]] = []
    if not hostlist:
        return ()
    for item in hostlist.split(","):
        if not item:
            raise InvalidURI(f"empty host in {raw_for_errors!r}: remove the stray comma")
        if item.startswith("["):  # IPv6 literal
            end = item.find("]")
            if end < 0:
                raise InvalidURI(f"unclosed IPv6 bracket in {raw_for_errors!r}")
            name, rest = item[: end + 1], item[end + 1 :]
            port_text = rest[1:] if rest.startswith(":") else None
            if rest and not rest.startswith(":"):
                raise InvalidURI(f"junk after IPv6 host in {raw_for_errors!r}")
        else:
            name, _, port_text = item.partition(":")
            port_text = port_text if ":" in item else None
        port: int | None = None
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise InvalidURI(f"port {port_text!r} in {raw_for_errors!r} must be a number from 1 to 65535")
            port = int(port_text)
        if not name:
            raise InvalidURI(f"missing host name in {raw_for_errors!r}")
        hosts.append((unquote(name), port))
    return tuple(hosts)


def redact_text(text: str) -> str:
    """Hide credentials anywhere in free text (an error message, a log line) without reformatting it.

    Userinfo with a password (``user:pw@``, after ``//`` or not) and query
    values not known to be harmless (``?sas=...``, ``;AccountKey=...``) become
    ``***``; everything else, ``://`` included, is left exactly as written.
    """
    text = re.sub(r"//[^\s/@'\"]*@", "//" + REDACTED + "@", text)
    text = re.sub(r"(?<![\w/])[^\s/@:'\"]+:[^\s/@'\"]*@", REDACTED + "@", text)
    return re.sub(
        r"([?&;]([^=&;\s]*)=)([^&;\s'\"]*)",
        lambda m: m.group(1) + (REDACTED if is_secret_option(m.group(2)) else m.group(3)),
        text,
    )


_redact_raw = redact_text  # parse_uri's name for it: the input could not be parsed as a URI


def parse_uri(uri: str | os.PathLike[str] | StoreURI) -> StoreURI:
    """Parse a store URI or a plain filesystem path.

    A path without a scheme (``./warehouse``, ``/data/w``, ``C:\\w``) means the
    embedded store in that directory: ``file:///absolute/path``.
    """
    if isinstance(uri, StoreURI):
        return uri
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str):
        raise InvalidURI(f"a store URI must be a string or path, not {type(uri).__name__}")
    text = uri.strip()
    if "\x00" in text:
        raise InvalidURI("a store URI or path cannot contain a NUL character")
    if not text:
        raise InvalidURI("empty store URI: give a directory (./warehouse) or a URI such as mongodb://host/db")
    if text.startswith("://"):
        raise InvalidURI(f"{_redact_raw(text)!r} has an empty scheme: write e.g. file:///dir or s3://bucket")
    match = _SCHEME_RE.match(text)
    if match is None:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]+:", text):  # one letter + ':' is a Windows drive
            raise InvalidURI(
                f"{_redact_raw(text)!r} looks like a URI without '//': write scheme://..., "
                f"or ./{_redact_raw(text)} for a directory"
            )
        return StoreURI("file", (), os.path.abspath(os.path.expanduser(text)))
    scheme, rest = match.group(1).lower(), match.group(2)
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise InvalidURI(f"fragments ('#...') are not allowed in store URIs: {_redact_raw(text)!r}")
    rest, _, query_text = rest.partition("?")
    authority, slash, path = rest.partition("/")
    path = slash + path
    username = password = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        user, colon, pw = userinfo.partition(":")
        username = unquote(user)
        password = unquote(pw) if colon else None
    hosts = _parse_hosts(authority, _redact_raw(text))
    try:
        options = tuple(parse_qsl(query_text, keep_blank_values=True, strict_parsing=bool(query_text)))
    except ValueError as exc:
        raise InvalidURI(f"malformed query string in {_redact_raw(text)!r}: use ?name=value&other=value") from exc
    if scheme == "file":
        if hosts and hosts[0][0] not in ("localhost",):
            raise InvalidURI(f"file URIs take no host: write file:///absolute/path, not {_redact_raw(text)!r}")
        if not path:
            raise InvalidURI("file URI without a path: write file:///absolute/path")
        return StoreURI("file", (), os.path.abspath(unquote(path)), None, None, options)
    return StoreURI(scheme, hosts, unquote(path), username, password, options)


def redact(uri: str | StoreURI) -> str:
    """A printable form of any URI-ish string, with secrets replaced by ``***``."""
    if isinstance(uri, StoreURI):
        return uri.redacted()
    try:
        return parse_uri(uri).redacted()
    except InvalidURI:
        return _redact_raw(str(uri))
