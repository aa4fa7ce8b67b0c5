"""Tell public internet hosts from local ones (loopback, private, link-local, ...).

A page fetched from the public internet may redirect anywhere; following it into the
machine's own network (a router's admin page, a cloud metadata service, a database's
HTTP port) would put whatever answers there into an issue. ``host_is_public`` is the
test ``fetch`` applies to redirect targets.

In: a host name or IP literal (IPv4, IPv6 with or without brackets, IPv4-mapped IPv6).
Out: True when every address it stands for is a global unicast address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

Resolver = Callable[[str], list[str]]


def resolve_host(host: str) -> list[str]:
    """Every IP address ``host`` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def address_is_public(text: str) -> bool:
    """True for a global unicast IP address; False for anything local or special.

    Loopback, private (RFC 1918, unique local), shared (100.64/10), link-local,
    multicast, reserved and unspecified addresses are not public, whether written as
    IPv4, IPv6 or IPv4-mapped / IPv4-compatible IPv6. Text that is no address is False.
    """
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and int(address) >> 32 == 0 and int(address) > 1:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)  # ::a.b.c.d
        if embedded is not None:
            return address_is_public(str(embedded))
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
    return address.is_global and not special


def host_is_public(host: str, *, resolve: Resolver = resolve_host) -> bool:
    """True when ``host`` (a name or IP literal) stands only for public addresses.

    A name is resolved (``resolve``) and is public only if all its addresses are; a
    name that does not resolve counts as public, since nothing local answers it
    either (the fetch then fails with "host not found").
    """
    bare = host.strip("[]").rstrip(".")
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        addresses = resolve(bare)
        return all(address_is_public(address) for address in addresses)
    return address_is_public(bare)
