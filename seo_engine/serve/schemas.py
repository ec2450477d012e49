"""Response models: they document the API in OpenAPI; hot paths serialise with orjson."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """RFC 9457 problem details, served as application/problem+json."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class SiteOut(BaseModel):
    slug: str
    name: str
    base_url: str
    locale: str
    path_pattern: str


class ServiceOut(BaseModel):
    slug: str
    name: str
    category: str
    description: str
    attributes: dict[str, Any]
    updated_at: datetime


class LocationOut(BaseModel):
    slug: str
    name: str
    region_name: str
    region_code: str
    country_code: str
    population: int
    latitude: float
    longitude: float
    timezone: str
    attributes: dict[str, Any]
    updated_at: datetime


class Listing(BaseModel):
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page.")
    next: str | None = Field(description="The URL of the next page; null on the last one.")


class LocationList(Listing):
    items: list[LocationOut]


class ServiceList(BaseModel):
    items: list[ServiceOut]


class PageSummary(BaseModel):
    path: str
    url: str
    service: str | None
    location: str | None
    title: str | None = None
    meta_description: str | None = None
    indexable: bool | None = None
    updated_at: datetime
    deleted: bool = Field(False, description="True for a tombstone (only with updated_since).")
    document: str | None = Field(None, description="API URL of the whole page document.")
    state: Literal["scheduled", "queued", "draft"] | None = Field(
        None, description="With `state`: the page's publishing state (it is not served)."
    )
    publish_at: datetime | None = Field(None, description="When a scheduled page goes live.")


class PageList(Listing):
    items: list[PageSummary]
    sync_token: str = Field(
        description="Pass it as `sync` next time: every page changed since (docs/sync.md)."
    )
    count: int | None = Field(None, description="Present when count=estimated or exact.")
    count_type: Literal["estimated", "exact"] | None = None


class Link(BaseModel):
    path: str
    name: str
    distance_km: int | None = None


class Links(BaseModel):
    nearby: list[Link]
    services: list[Link]


class Section(BaseModel):
    heading: str
    body: str


class Question(BaseModel):
    question: str
    answer: str


class Crumb(BaseModel):
    name: str
    url: str


class ServiceRef(BaseModel):
    slug: str
    name: str
    category: str


class LocationRef(BaseModel):
    slug: str
    name: str
    region_name: str
    region_code: str
    country_code: str
    population: int
    latitude: float
    longitude: float


class QualityReason(BaseModel):
    code: str = Field(description="Machine-readable, e.g. near_duplicate (docs/quality.md).")
    message: str


class NearestSibling(BaseModel):
    path: str
    similarity: float = Field(description="Estimated share of 5-word shingles in common (0-1).")


class Quality(BaseModel):
    """The quality gate's verdict on the page (docs/quality.md)."""

    score: float = Field(description="0-100.")
    indexable: bool
    reasons: list[QualityReason] = Field(description="Why points were lost; blocking first.")
    nearest: NearestSibling | None = Field(
        description="The most similar page of its family found, if any."
    )


class PageDocument(BaseModel):
    """Everything needed to render one page, with no further calls."""

    path: str
    url: str = Field(description="Absolute canonical URL.")
    site: str
    service: ServiceRef
    location: LocationRef
    title: str
    meta_description: str
    h1: str
    intro: str
    local_paragraph: str | None = Field(
        None, description="A hand-written paragraph after the intro (an override); absent if none."
    )
    sections: list[Section]
    faq: list[Question]
    overridden: list[str] | None = Field(
        None,
        description="The fields set by hand (overrides), e.g. title, sections 2 body; absent "
        "if none.",
    )
    links: Links
    breadcrumbs: list[Crumb]
    json_ld: dict[str, Any] = Field(
        description="schema.org @graph: Service, BreadcrumbList, FAQPage"
    )
    indexable: bool
    quality_score: float = Field(description="0-100, as in `quality.score`.")
    quality: Quality
    updated_at: datetime
    etag: str


class Tombstone(BaseModel):
    path: str
    url: str
    deleted: Literal[True]
    updated_at: datetime
