"""What a browser does with Set-Cookie: the Cookie header it sends next."""

from __future__ import annotations


def cookie_header_from_set_cookie(previous: str, set_cookies: list[str]) -> str:
    jar = dict(part.split("=", 1) for part in previous.split("; ") if "=" in part)
    for header in set_cookies:
        pair, _, attributes = header.partition(";")
        name, _, value = pair.partition("=")
        if "Max-Age=0" in attributes:
            jar.pop(name, None)
        else:
            jar[name] = value
    return "; ".join(f"{k}={v}" for k, v in jar.items())
