"""The APIM policy XML subset the local gateway understands.

A policy document is the same text a real API Management instance takes, so what works
here can be pasted into the Azure portal (or sent with ``az rest``) unchanged::

    <policies>
      <inbound>
        <base />
        <rate-limit calls="5" renewal-period="60" />
        <quota calls="100" renewal-period="604800" />
        <set-header name="Authorization" exists-action="override">
          <value>Bearer {{azureml-api-key}}</value>
        </set-header>
        <set-header name="Ocp-Apim-Subscription-Key" exists-action="delete" />
      </inbound>
      <backend><base /></backend>
      <outbound><base /></outbound>
      <on-error><base /></on-error>
    </policies>

Supported elements: ``base``, ``rate-limit`` and ``rate-limit-by-key`` (sliding window,
``calls`` per ``renewal-period`` seconds, at most 300 s), ``quota`` and ``quota-by-key``
(fixed window, ``calls`` per ``renewal-period`` seconds), ``set-header`` (``override``,
``skip``, ``append``, ``delete``; ``{{named-value}}`` references), and ``forward-request``
(``timeout``) in ``<backend>``. Anything else is refused by :func:`parse_policies` with a
:class:`PolicyError` naming the element and where it is, never silently ignored.

Counters (:class:`SlidingWindow`, :class:`FixedWindow`) live on the policy objects and are
keyed by subscription (or by ``counter-key``), as in APIM.
"""
from __future__ import annotations

import collections
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from ..errors import AzmlError

__all__ = [
    "PolicyError", "Policies", "RateLimit", "Quota", "SetHeader", "ForwardRequest", "Base",
    "parse_policies", "SlidingWindow", "FixedWindow", "format_timespan",
]

SECTIONS = ("inbound", "backend", "outbound", "on-error")
MAX_RATE_LIMIT_PERIOD = 300
_NAMED_VALUE = re.compile(r"\{\{([A-Za-z0-9._-]+)\}\}")
#: the policy expressions ``counter-key`` may hold, and what each reads from the request
COUNTER_KEYS = {
    "@(context.Subscription.Id)": "subscription",
    "@(context.Subscription.Key)": "subscription",   # same counter; the key itself is never stored
    "@(context.Request.IpAddress)": "ip",
}


class PolicyError(AzmlError, ValueError):
    """A policy document the gateway cannot enforce exactly: unknown element, bad attribute."""


# --- counters ----------------------------------------------------------------------------

class SlidingWindow:
    """At most *calls* calls in any *period* seconds, counted per key.

    ``hit(key, now)`` records a call and returns 0, or returns the seconds (> 0) until the
    oldest call in the window leaves it; a refused call is not counted.

    >>> w = SlidingWindow(2, 10)
    >>> [w.hit("s", 0.0), w.hit("s", 1.0), w.hit("s", 2.0), w.hit("s", 10.5)]
    [0, 0, 8.0, 0]
    """

    def __init__(self, calls: int, period: float):
        self.calls, self.period = calls, period
        self._hits: dict[object, collections.deque] = collections.defaultdict(collections.deque)

    def hit(self, key: object, now: float) -> float:
        hits = self._hits[key]
        while hits and hits[0] <= now - self.period:
            hits.popleft()
        if len(hits) >= self.calls:
            return hits[0] + self.period - now
        hits.append(now)
        return 0


class FixedWindow:
    """At most *calls* calls per window of *period* seconds starting at a key's first call.

    ``hit(key, now)`` returns 0 when the call is counted, else the seconds until renewal.

    >>> w = FixedWindow(1, 60)
    >>> [w.hit("s", 0.0), w.hit("s", 30.0), w.hit("s", 60.0)]
    [0, 30.0, 0]
    """

    def __init__(self, calls: int, period: float):
        self.calls, self.period = calls, period
        self._windows: dict[object, list] = {}

    def hit(self, key: object, now: float) -> float:
        window = self._windows.get(key)
        if window is None or now >= window[0] + self.period:
            window = self._windows[key] = [now, 0]
        if window[1] >= self.calls:
            return window[0] + self.period - now
        window[1] += 1
        return 0


def format_timespan(seconds: float) -> str:
    """Format seconds the way APIM's quota message does (.NET ``TimeSpan``: ``[d.]hh:mm:ss``).

    >>> format_timespan(3432), format_timespan(2.5 * 86400)
    ('00:57:12', '2.12:00:00')
    """
    total = max(0, math.ceil(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{clock}" if days else clock


# --- policy statements -------------------------------------------------------------------

@dataclass(frozen=True)
class Base:
    """``<base />``: the enclosing scope's policies run here."""


@dataclass(eq=False)
class RateLimit:
    """``rate-limit`` / ``rate-limit-by-key``: sliding window; 429 with ``Retry-After``."""

    calls: int
    renewal_period: int
    counter_key: str | None = None      # None: per subscription (``rate-limit``)
    window: SlidingWindow = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.window = SlidingWindow(self.calls, self.renewal_period)


@dataclass(eq=False)
class Quota:
    """``quota`` / ``quota-by-key``: fixed window; 403 with ``Retry-After``."""

    calls: int
    renewal_period: int
    counter_key: str | None = None
    window: FixedWindow = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.window = FixedWindow(self.calls, self.renewal_period)


@dataclass(frozen=True)
class SetHeader:
    """``set-header``: set, append, keep or delete a request (inbound) or response (outbound) header."""

    name: str
    exists_action: str = "override"
    values: tuple[str, ...] = ()

    def named_values(self) -> set[str]:
        return {m for v in self.values for m in _NAMED_VALUE.findall(v)}

    def apply(self, headers: list[tuple[str, str]], named: Mapping[str, str]) -> list[tuple[str, str]]:
        """Return *headers* (name, value pairs) with this statement applied."""
        lname = self.name.lower()
        present = any(k.lower() == lname for k, _ in headers)
        if self.exists_action == "delete":
            return [(k, v) for k, v in headers if k.lower() != lname]
        if self.exists_action == "skip" and present:
            return headers
        values = [_NAMED_VALUE.sub(lambda m: named[m.group(1)], v) for v in self.values]
        if self.exists_action == "override":
            headers = [(k, v) for k, v in headers if k.lower() != lname]
        return headers + [(self.name, v) for v in values]


@dataclass(frozen=True)
class ForwardRequest:
    """``forward-request``: send the request to the backend, waiting at most *timeout* seconds."""

    timeout: float = 300.0


Statement = Base | RateLimit | Quota | SetHeader | ForwardRequest


@dataclass
class Policies:
    """A parsed ``<policies>`` document: one statement list per section.

    Use :func:`parse_policies` to build one; :meth:`compose` resolves ``<base />`` against
    the enclosing scope (product -> API -> operation, as APIM does).
    """

    inbound: list = field(default_factory=lambda: [Base()])
    backend: list = field(default_factory=lambda: [Base()])
    outbound: list = field(default_factory=lambda: [Base()])
    on_error: list = field(default_factory=lambda: [Base()])
    xml: str = ""

    def named_values(self) -> set[str]:
        """Names of every ``{{named-value}}`` the document refers to."""
        return {n for sect in (self.inbound, self.outbound)
                for s in sect if isinstance(s, SetHeader) for n in s.named_values()}

    def compose(self, outer: Sequence[Statement], section: str) -> list:
        """This scope's *section* with ``<base />`` replaced by *outer*'s statements."""
        out: list = []
        for s in getattr(self, section.replace("-", "_")):
            out.extend(outer if isinstance(s, Base) else [s])
        return out


def _int_attr(el: ET.Element, name: str, where: str, *, required: bool = True) -> int | None:
    raw = el.get(name)
    if raw is None:
        if required:
            raise PolicyError(f"{where}: <{el.tag}> needs the attribute {name}=\"...\"")
        return None
    try:
        value = int(raw)
    except ValueError:
        raise PolicyError(f"{where}: <{el.tag} {name}=\"{raw}\"> is not a whole number") from None
    if value <= 0:
        raise PolicyError(f"{where}: <{el.tag} {name}=\"{raw}\"> must be positive")
    return value


def _check_attrs(el: ET.Element, allowed: Iterable[str], where: str) -> None:
    extra = sorted(set(el.attrib) - set(allowed))
    if extra:
        raise PolicyError(f"{where}: <{el.tag}> attribute {extra[0]!r} is not supported here "
                          f"(supported: {', '.join(sorted(allowed)) or 'none'})")


def _no_children(el: ET.Element, where: str) -> None:
    if len(el):
        raise PolicyError(f"{where}: <{el.tag}> child <{el[0].tag}> is not supported here")


def _counter_key(el: ET.Element, where: str) -> str:
    raw = el.get("counter-key")
    if raw is None:
        raise PolicyError(f"{where}: <{el.tag}> needs the attribute counter-key=\"...\"")
    if raw.startswith("@"):
        if raw not in COUNTER_KEYS:
            raise PolicyError(f"{where}: <{el.tag} counter-key=\"{raw}\">: the gateway evaluates only "
                              f"these expressions: {', '.join(COUNTER_KEYS)} (or a literal text)")
        return COUNTER_KEYS[raw]
    return "literal:" + raw


def _statement(el: ET.Element, section: str, where: str) -> Statement:
    tag = el.tag
    where = f"{where} <{section}>"
    if tag == "base":
        _check_attrs(el, (), where), _no_children(el, where)
        return Base()
    if section == "inbound" and tag in ("rate-limit", "rate-limit-by-key"):
        by_key = tag == "rate-limit-by-key"
        _check_attrs(el, ("calls", "renewal-period") + (("counter-key",) if by_key else ()), where)
        _no_children(el, where)
        calls, period = _int_attr(el, "calls", where), _int_attr(el, "renewal-period", where)
        if period > MAX_RATE_LIMIT_PERIOD:
            raise PolicyError(f"{where}: <{tag} renewal-period=\"{period}\"> exceeds the maximum of "
                              f"{MAX_RATE_LIMIT_PERIOD} seconds (use <quota> for longer periods)")
        return RateLimit(calls, period, _counter_key(el, where) if by_key else None)
    if section == "inbound" and tag in ("quota", "quota-by-key"):
        by_key = tag == "quota-by-key"
        if "bandwidth" in el.attrib:
            raise PolicyError(f"{where}: <{tag} bandwidth=...> is not supported; use calls=\"N\"")
        _check_attrs(el, ("calls", "renewal-period") + (("counter-key",) if by_key else ()), where)
        _no_children(el, where)
        return Quota(_int_attr(el, "calls", where), _int_attr(el, "renewal-period", where),
                     _counter_key(el, where) if by_key else None)
    if section in ("inbound", "outbound") and tag == "set-header":
        _check_attrs(el, ("name", "exists-action"), where)
        name, action = el.get("name"), el.get("exists-action", "override")
        if not name:
            raise PolicyError(f"{where}: <set-header> needs the attribute name=\"...\"")
        if action not in ("override", "skip", "append", "delete"):
            raise PolicyError(f"{where}: <set-header exists-action=\"{action}\">: expected one of "
                              "override, skip, append, delete")
        values = []
        for child in el:
            if child.tag != "value":
                raise PolicyError(f"{where}: <set-header> child <{child.tag}> is not supported "
                                  "(expected <value>)")
            text = (child.text or "").strip()
            if text.startswith("@"):
                raise PolicyError(f"{where}: <set-header name=\"{name}\">: policy expressions "
                                  f"({text[:30]}...) are not supported; use text and {{{{named-value}}}}")
            values.append(text)
        if action != "delete" and not values:
            raise PolicyError(f"{where}: <set-header name=\"{name}\"> needs a <value> "
                              "(or exists-action=\"delete\")")
        return SetHeader(name, action, tuple(values))
    if section == "backend" and tag == "forward-request":
        _check_attrs(el, ("timeout",), where), _no_children(el, where)
        return ForwardRequest(float(_int_attr(el, "timeout", where, required=False) or 300))
    raise PolicyError(f"{where}: policy element <{tag}> is not supported by the local gateway "
                      f"in <{section}> (supported: base, rate-limit, rate-limit-by-key, quota, "
                      "quota-by-key, set-header; forward-request in <backend>)")


def parse_policies(xml: str, *, where: str = "policy") -> Policies:
    """Parse an APIM ``<policies>`` document, refusing whatever the gateway cannot enforce.

    Parameters
    ----------
    xml : str
        The policy document, as pasted into APIM's policy editor.
    where : str
        Names the scope in error messages, e.g. ``"product 'starter'"``.

    Raises
    ------
    PolicyError
        Malformed XML, an unknown element or attribute, a rate-limit period over 300 s.

    Examples
    --------
    >>> p = parse_policies('<policies><inbound><base /><rate-limit calls="5" '
    ...                    'renewal-period="10" /></inbound></policies>')
    >>> p.inbound[1].calls, p.inbound[1].renewal_period
    (5, 10)
    >>> parse_policies('<policies><inbound><cors /></inbound></policies>')
    Traceback (most recent call last):
    ...
    azml_nb.local.policies.PolicyError: policy <inbound>: policy element <cors> is not supported ...
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise PolicyError(f"{where}: not well-formed XML: {err}") from None
    if root.tag != "policies":
        raise PolicyError(f"{where}: the root element must be <policies>, not <{root.tag}>")
    policies = Policies(inbound=[], backend=[], outbound=[], on_error=[], xml=xml)
    seen = set()
    for sect in root:
        if sect.tag not in SECTIONS:
            raise PolicyError(f"{where}: unknown section <{sect.tag}> (expected "
                              f"{', '.join('<%s>' % s for s in SECTIONS)})")
        if sect.tag in seen:
            raise PolicyError(f"{where}: section <{sect.tag}> appears twice")
        seen.add(sect.tag)
        getattr(policies, sect.tag.replace("-", "_")).extend(
            _statement(el, sect.tag, where) for el in sect)
    for sect in SECTIONS:  # a missing section inherits the enclosing scope, like <base />
        if sect not in seen:
            getattr(policies, sect.replace("-", "_")).append(Base())
    return policies


def ensure_named_values(policies: Policies, known: Callable[[str], bool], where: str) -> None:
    """Raise :class:`PolicyError` when *policies* refer to a named value that does not exist."""
    for name in sorted(policies.named_values()):
        if not known(name):
            raise PolicyError(f"{where}: {{{{{name}}}}} refers to a named value that is not defined; "
                              "add it with Gateway.set_named_value(name, value, secret=True)")
