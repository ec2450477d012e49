import { seoEnginePages } from "seo-engine-eleventy";

// The page set of the site at $SEO_ENGINE_URL, cached in .cache/seo-engine between builds.
export default seoEnginePages();
