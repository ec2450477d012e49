"""schema.org JSON-LD for the hubs: who the site is on the home page (Google takes the
site name it shows in results from the home page's WebSite), the breadcrumb trail on the
others. Pages carry their own, built with their documents (generate/documents.py)."""

from __future__ import annotations

from typing import Any

from seo_engine.ingest.sites import Site

CONTEXT = "https://schema.org"


def home(site: Site) -> dict[str, Any]:
    """The WebSite and the Organization behind it, linked by @id, in one @graph."""
    url = f"{site.base_url}/"
    organization = f"{url}#organization"
    return {
        "@context": CONTEXT,
        "@graph": [
            {
                "@type": "WebSite",
                "@id": f"{url}#website",
                "name": site.name,
                "url": url,
                "inLanguage": site.locale,
                "publisher": {"@id": organization},
            },
            {"@type": "Organization", "@id": organization, "name": site.name, "url": url},
        ],
    }


def breadcrumb_list(crumbs: list[dict[str, str]]) -> dict[str, Any]:
    """The trail a hub shows (each crumb's name and absolute URL), as a BreadcrumbList."""
    return {
        "@context": CONTEXT,
        "@type": "BreadcrumbList",
        "itemListElement": [
            {"@type": "ListItem", "position": number, "name": crumb["name"], "item": crumb["url"]}
            for number, crumb in enumerate(crumbs, start=1)
        ],
    }
