"""Entity tags: how the app writes them and reads them back (RFC 9110 8.8.3).

A page's JSON document is tagged with its stored content hash, `"<hash hex>"`; a rendered
page with the hash and the version of the page templates, `"<hash hex>-<version>"`, so
both are known without reading or rendering the page. Everything else the app tags
(hubs, sitemaps) is tagged with a hash of what it sends.
"""

from __future__ import annotations

import hashlib


def quoted(opaque: str) -> str:
    """A strong entity tag holding `opaque`."""
    return f'"{opaque}"'


def opaque(tag: str) -> str | None:
    """What a strong entity tag holds between its quotes (None when it is not quoted)."""
    return tag[1:-1] if len(tag) > 2 and tag[0] == tag[-1] == '"' else None


def listed(if_none_match: str) -> list[str]:
    """The entity tags an If-None-Match value lists, weak ones in their strong form: it
    compares weakly (RFC 9110 13.1.2), so W/"x" matches "x" (a proxy that compresses may
    have weakened the tag the client holds)."""
    return [part.strip().removeprefix("W/") for part in if_none_match.split(",")]


def none_match(if_none_match: str, tag: str) -> bool:
    """Whether an If-None-Match value names `tag` (or is `*`): the client's copy is current."""
    return if_none_match.strip() == "*" or tag in listed(if_none_match)


def of_document(content_hash: bytes) -> str:
    """A page document's tag: its stored content hash."""
    return quoted(content_hash.hex())


def of_page(content_hash: bytes, template_version: str) -> str:
    """A rendered page's tag: its document's content hash and the template version."""
    return quoted(f"{content_hash.hex()}-{template_version}")


def page_hash(tag: str, template_version: str) -> str | None:
    """The content hash (hex) a rendered page's tag names, if it is of this template version."""
    content_hash, _, version = (opaque(tag) or "").rpartition("-")
    return content_hash if version == template_version and content_hash else None


def of_bytes(body: bytes) -> str:
    """A tag for anything else, from the bytes sent."""
    return quoted(hashlib.blake2b(body, digest_size=16).hexdigest())
