"""Which endpoint URLs and addresses a webhook may be sent to (the SSRF rule).

A URL is accepted when it is http(s) (https only when `webhook_require_https`), carries no
credentials, and every address its host resolves to is public. Public means `is_global` and not
multicast, after unwrapping IPv4 carried inside IPv6 (IPv4-mapped `::ffff:a.b.c.d`, 6to4, Teredo,
NAT64 `64:ff9b::/96`). This refuses loopback, private ranges, link-local (169.254.169.254, the
cloud metadata address), carrier-grade NAT 100.64/10, unique-local fc00::/7, unspecified, reserved
and documentation ranges. Addresses inside `webhook_allowed_networks` are accepted anyway.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from tasks.settings import get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeEndpointError(ValueError):
    """The endpoint URL is not acceptable, or its host resolves to a refused address."""


@dataclass(frozen=True)
class Endpoint:
    """A checked endpoint: where to connect (`address`) and its name (`host`, for Host and SNI)."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, e.g. "/hooks?x=1"
    address: IPAddress

    def connect_url(self) -> str:
        """The URL with the vetted address in place of the host name (no second DNS lookup)."""
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{literal}:{self.port}{self.target}"

    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The configured CIDRs exempt from the private-address refusal."""
    cidrs = get_settings().webhook_allowed_networks
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def is_allowed_address(address: IPAddress, allowed: list | None = None) -> bool:
    """True when a webhook may be sent to `address` (public, or inside an allowed network)."""
    allowed = allowed_networks() if allowed is None else allowed
    candidates = [address]
    inner = _embedded_ipv4(address)
    if inner is not None:
        candidates.append(inner)
    if any(c in net for c in candidates for net in allowed if c.version == net.version):
        return True
    checked = inner if inner is not None else address
    return checked.is_global and not checked.is_multicast and address.is_global


def parse_endpoint_url(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and target of an acceptable URL, or UnsafeEndpointError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeEndpointError("the endpoint URL cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeEndpointError("the endpoint URL must start with http:// or https://")
    if scheme == "http" and get_settings().webhook_require_https:
        raise UnsafeEndpointError("the endpoint URL must use https")
    if parts.username is not None or parts.password is not None:
        raise UnsafeEndpointError("the endpoint URL must not carry credentials")
    if not parts.hostname:
        raise UnsafeEndpointError("the endpoint URL has no host")
    if parts.fragment:
        raise UnsafeEndpointError("the endpoint URL must not have a #fragment")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), target


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal address resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeEndpointError(f"the host {host!r} cannot be resolved") from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check_endpoint(url: str) -> Endpoint:
    """Validate `url` and resolve its host now; refuse it if ANY address is not allowed.

    Called when a subscription is added and again right before each send, so the connection goes
    to the address that was just checked (a DNS answer that changed to a private address since
    the subscription was added is refused).
    """
    scheme, host, port, target = parse_endpoint_url(url)
    addresses = resolve_host(host, port)
    allowed = allowed_networks()
    refused = [a for a in addresses if not is_allowed_address(a, allowed)]
    if refused:
        raise UnsafeEndpointError(
            f"the host {host!r} resolves to {refused[0]}, a private or reserved address; "
            "add its network to WATERLINE_WEBHOOK_ALLOWED_NETWORKS to allow it"
        )
    if not addresses:
        raise UnsafeEndpointError(f"the host {host!r} has no address")
    return Endpoint(scheme=scheme, host=host, port=port, target=target, address=addresses[0])
