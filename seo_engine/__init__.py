"""seo-engine: programmatic-SEO page data backend on PostgreSQL."""

__version__ = "0.1.0"
