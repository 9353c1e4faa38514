"""Who is calling, how often, and from where: client IPs, rate limits, allowlists.

* :func:`client_ip` believes ``X-Forwarded-For`` only when the direct peer
  (``REMOTE_ADDR``) is one of ``PAYGATE["TRUSTED_PROXIES"]`` (addresses or
  CIDR networks), and then walks the header from the right, skipping trusted
  hops: the first untrusted address is the client. Anything a client writes
  into the header itself sits further left and is never reached.
* :func:`check_rate_limit` applies ``PAYGATE["RATE_LIMITS"]``: fixed-window
  counters per endpoint, per user and per IP, kept in the cache named by
  ``PAYGATE["CACHE"]`` (``cache.add`` then ``cache.incr``, so concurrent
  workers share one counter when the cache is shared: Redis, Memcached,
  the database cache; ``LocMemCache`` counts per process).
* :func:`record_decline` / :func:`check_decline_velocity` count declined
  payment attempts per user and per IP (the ``"declines"`` entry of
  ``RATE_LIMITS``): a card tester is stopped after a few declines.
* :func:`webhook_ip_allowed` enforces the optional per-provider allowlist
  ``PAYGATE["PROVIDERS"][alias]["WEBHOOK_ALLOWED_IPS"]``.

A cache that fails (a Redis outage) never takes the API down: the limit is
skipped and a warning is logged.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest

from django_paygate.conf import paygate_settings
from django_paygate.exceptions import ConfigurationError

logger = logging.getLogger("django_paygate.security")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: What ``client_ip`` answers when ``REMOTE_ADDR`` is missing or malformed.
UNKNOWN_IP = "0.0.0.0"

#: Built-in limits, merged per endpoint and per scope with ``PAYGATE["RATE_LIMITS"]``.
#: A scope set to ``None`` (or a whole endpoint set to ``None``) is not limited.
DEFAULT_RATE_LIMITS: Mapping[str, Mapping[str, str | None]] = {
    "create_intent": {"user": "20/m", "ip": "60/m"},
    "confirm_payment": {"user": "20/m", "ip": "60/m"},
    "process_refund": {"user": "30/m", "ip": "60/m"},
    "payment_status": {"user": "120/m", "ip": "300/m"},
    # payment_status with sync=1: each call reaches the provider.
    "payment_sync": {"user": "10/m", "ip": "30/m"},
    "payment_analytics": {"user": "30/m", "ip": "60/m"},
    "openapi_json": {"user": None, "ip": "60/m"},
    # Declined payment attempts (not requests): the velocity limit.
    "declines": {"user": "5/h", "ip": "20/h"},
}

SCOPES = ("user", "ip")

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


def now() -> float:
    """The clock of the rate limiter (tests patch this to move between windows)."""
    return time.time()


# ---------------------------------------------------------------------------
# Client IP
# ---------------------------------------------------------------------------


def parse_ip(value: str) -> IPAddress | None:
    """An address from a header value: ``"1.2.3.4"``, ``"1.2.3.4:80"``, ``"[::1]:80"``.

    IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``) become IPv4. Anything else
    is ``None``.
    """
    text = value.strip().strip('"')
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]  # no zone ids
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=64)
def _networks(entries: tuple[str, ...], where: str) -> tuple[IPNetwork, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            # Fail closed: a typo never opens anything; it is reported once per value.
            logger.warning("Ignoring %r in %s: not an IP address or CIDR network.", entry, where)
    return tuple(networks)


def parse_networks(entries: object, where: str) -> tuple[IPNetwork, ...]:
    """CIDR networks (or single addresses) from a setting; invalid entries are skipped."""
    if entries is None:
        return ()
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, Iterable):
        raise ConfigurationError(f"{where} must be a list of IP addresses or CIDR networks.")
    return _networks(tuple(str(e) for e in entries), where)


def invalid_network_entries(entries: object) -> list[str]:
    """The entries of a setting that are not addresses or networks (for system checks)."""
    if entries is None:
        return []
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, Iterable):
        return [repr(entries)]
    bad = []
    for entry in entries:
        try:
            ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            bad.append(str(entry))
    return bad


def overly_broad_network_entries(entries: object, *, shortest: int = 8) -> list[str]:
    """The entries that cover a large part of the public Internet (``0.0.0.0/0``, ``10.0.0.1/0``).

    Private ranges (``10.0.0.0/8``, ``fd00::/8``) are where proxies live: never reported.
    """
    if entries is None or invalid_network_entries(entries):
        return []
    broad = []
    for entry in [entries] if isinstance(entries, str) else list(entries):  # type: ignore[call-overload]
        network = ipaddress.ip_network(str(entry).strip(), strict=False)
        short = network.prefixlen < (shortest if network.version == 4 else shortest * 4)
        if short and not _within_private_ranges(network):
            broad.append(str(entry))
    return broad


#: Where proxies live: private, shared (CGNAT), loopback and link-local ranges.
_PRIVATE_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
              "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128")
)  # fmt: skip


def _within_private_ranges(network: IPNetwork) -> bool:
    """Whether all of ``network`` is private. (``is_private`` cannot say: on Python 3.10 it
    asks only whether the first and last addresses are, so ``0.0.0.0/0`` is "private".)"""
    return any(
        network.version == private.version and network.subnet_of(private)  # type: ignore[arg-type]
        for private in _PRIVATE_RANGES
    )


def _in(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def trusted_proxies() -> tuple[IPNetwork, ...]:
    return parse_networks(paygate_settings.TRUSTED_PROXIES, "PAYGATE['TRUSTED_PROXIES']")


def client_ip(request: HttpRequest) -> str:
    """The address of the client that sent ``request``, as a string.

    ``X-Forwarded-For`` is read only when ``REMOTE_ADDR`` is a trusted proxy.
    The header is walked right to left, each trusted hop skipped; the first
    untrusted address is the client. When every hop is trusted, the leftmost
    one is. A malformed hop ends the walk at the last address we could trust.
    """
    peer = parse_ip(str(request.META.get("REMOTE_ADDR") or ""))
    if peer is None:
        return UNKNOWN_IP
    proxies = trusted_proxies()
    if not proxies or not _in(peer, proxies):
        return str(peer)
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    current = peer
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        address = parse_ip(hop)
        if address is None:
            break
        current = address
        if not _in(address, proxies):
            break
    return str(current)


# ---------------------------------------------------------------------------
# Webhook allowlist
# ---------------------------------------------------------------------------


def webhook_ip_allowed(request: HttpRequest, alias: str) -> bool:
    """Whether a webhook for provider ``alias`` may come from this request's client IP.

    ``PAYGATE["PROVIDERS"][alias]["WEBHOOK_ALLOWED_IPS"]`` is a list of
    addresses or CIDR networks; missing or empty allows every address (the
    signature check still applies). An alias that is not configured is
    allowed here, so the webhook pipeline answers its own 404. Invalid
    entries are ignored (and logged): they never widen the list.
    """
    config = paygate_settings.PROVIDERS.get(alias)
    if not config:
        return True
    entries = config.get("WEBHOOK_ALLOWED_IPS")
    if not entries:
        return True
    networks = parse_networks(entries, f"PAYGATE['PROVIDERS'][{alias!r}]['WEBHOOK_ALLOWED_IPS']")
    address = parse_ip(client_ip(request))
    allowed = address is not None and _in(address, networks)
    if not allowed:
        logger.warning(
            "Webhook for %r refused from %s: not in WEBHOOK_ALLOWED_IPS.", alias, address
        )
    return allowed


# ---------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """``limit`` events per ``period`` seconds."""

    limit: int
    period: int

    @classmethod
    def parse(cls, value: object, where: str) -> Rate | None:
        """``"10/m"``, ``"100/h"``, ``"5/30s"``, ``"1000/d"``; ``None`` is no limit."""
        if value is None:
            return None
        match = _RATE.match(value) if isinstance(value, str) else None
        if not match:
            raise ConfigurationError(
                f"{where} must be a rate such as '10/m', '100/h' or '5/30s', not {value!r}."
            )
        limit, multiplier, unit = match.groups()
        period = int(multiplier or 1) * _PERIODS[unit]
        if period <= 0:
            raise ConfigurationError(f"{where}: the period of {value!r} must be positive.")
        return cls(int(limit), period)


def rates_for(endpoint: str) -> dict[str, Rate | None]:
    """The effective rate per scope (``"user"``, ``"ip"``) of ``endpoint``."""
    configured = paygate_settings.RATE_LIMITS or {}
    if not isinstance(configured, Mapping):
        raise ConfigurationError("PAYGATE['RATE_LIMITS'] must be a dict of endpoint -> limits.")
    default = dict(DEFAULT_RATE_LIMITS.get(endpoint, {}))
    if endpoint in configured:
        override = configured[endpoint]
        if override is None:
            return dict.fromkeys(SCOPES)
        if not isinstance(override, Mapping):
            raise ConfigurationError(
                f"PAYGATE['RATE_LIMITS'][{endpoint!r}] must be a dict such as "
                "{'user': '10/m', 'ip': '30/m'} or None."
            )
        unknown = set(override) - set(SCOPES)
        if unknown:
            raise ConfigurationError(
                f"Unknown scope {sorted(unknown)[0]!r} in PAYGATE['RATE_LIMITS'][{endpoint!r}]; "
                "use 'user' and 'ip'."
            )
        default.update(override)
    return {
        scope: Rate.parse(default.get(scope), f"PAYGATE['RATE_LIMITS'][{endpoint!r}][{scope!r}]")
        for scope in SCOPES
    }


def validate_rate_limits() -> list[str]:
    """Every problem with ``PAYGATE["RATE_LIMITS"]`` as a message (for system checks)."""
    configured = paygate_settings.RATE_LIMITS or {}
    if not isinstance(configured, Mapping):
        return ["PAYGATE['RATE_LIMITS'] must be a dict of endpoint -> limits."]
    problems = []
    for endpoint in configured:
        if endpoint not in DEFAULT_RATE_LIMITS:
            problems.append(
                f"Unknown endpoint {endpoint!r} in PAYGATE['RATE_LIMITS']; known: "
                f"{', '.join(sorted(DEFAULT_RATE_LIMITS))}."
            )
            continue
        try:
            rates_for(endpoint)
        except ConfigurationError as exc:
            problems.append(str(exc))
    return problems


def _cache() -> BaseCache:
    return caches[str(paygate_settings.CACHE)]


def _key(kind: str, endpoint: str, scope: str, ident: str, window: int) -> str:
    # Hashed: safe for memcached (no spaces, bounded length) whatever a user pk looks like.
    digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
    return f"paygate:{kind}:{endpoint}:{scope}:{digest}:{window}"


def identities(request: HttpRequest) -> dict[str, str]:
    """The identities a request is counted under: its IP, and its user when logged in."""
    found = {"ip": client_ip(request)}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        found["user"] = str(user.pk)
    return found


def _window(rate: Rate, at: float) -> tuple[int, int]:
    """The index of the window containing ``at``, and the seconds until it ends (>= 1)."""
    index = int(at // rate.period)
    retry_after = max(1, math.ceil((index + 1) * rate.period - at))
    return index, retry_after


def _hit(cache: BaseCache, key: str, rate: Rate) -> int:
    """Count one event under ``key`` in ``rate``'s window; the count after it."""
    cache.add(key, 0, timeout=rate.period + 1)
    try:
        return int(cache.incr(key))
    except ValueError:  # evicted or expired between add and incr
        cache.set(key, 1, timeout=rate.period + 1)
        return 1


def check_rate_limit(request: HttpRequest, endpoint: str) -> int | None:
    """Count this request against ``endpoint``'s limits.

    Returns ``None`` when it is allowed, else the number of seconds until the
    tightest exceeded window ends (the ``Retry-After`` value). Every scope
    is counted, allowed or not, so hammering a limited endpoint keeps it limited.
    """
    return _retry_after(request, endpoint, "rl", endpoint, _hit)


def check_decline_velocity(request: HttpRequest) -> int | None:
    """Seconds to wait when this user or IP had too many declines lately, else ``None``."""

    def peek(cache: BaseCache, key: str, rate: Rate) -> int:
        return int(cache.get(key) or 0) + 1  # this attempt would be one more

    return _retry_after(request, "declines", "declines", "confirm", peek)


def _retry_after(
    request: HttpRequest,
    limits: str,
    kind: str,
    counter: str,
    count: Callable[[BaseCache, str, Rate], int],
) -> int | None:
    """The longest wait among the request's identities over their ``limits``, else ``None``.

    ``count`` returns the count to compare with each limit. A failing cache
    skips the limit (with a warning) rather than taking the API down.
    """
    rates = rates_for(limits)
    at = now()
    retry_after: int | None = None
    try:
        cache = _cache()
        for scope, ident in identities(request).items():
            rate = rates.get(scope)
            if rate is None:
                continue
            index, wait = _window(rate, at)
            if count(cache, _key(kind, counter, scope, ident, index), rate) > rate.limit:
                retry_after = max(retry_after or 0, wait)
    except Exception:
        logger.warning("Rate limit %s skipped: the cache failed.", limits, exc_info=True)
        return None
    return retry_after


def record_decline(request: HttpRequest) -> None:
    """Count one declined payment attempt for this request's user and IP."""
    _retry_after(request, "declines", "declines", "confirm", _hit)


__all__ = [
    "DEFAULT_RATE_LIMITS",
    "Rate",
    "check_decline_velocity",
    "check_rate_limit",
    "client_ip",
    "identities",
    "invalid_network_entries",
    "parse_ip",
    "parse_networks",
    "rates_for",
    "record_decline",
    "trusted_proxies",
    "validate_rate_limits",
    "webhook_ip_allowed",
]
