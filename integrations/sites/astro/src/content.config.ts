import { defineCollection } from "astro:content";
import { seoEngineLoader } from "seo-engine-astro-loader";

// Only what the pages render: a large set then fits in Astro's data store.
const fields = ["title", "meta_description", "h1", "intro", "sections", "faq", "json_ld", "links"];

export const collections = {
  // Every page of the site ($SEO_ENGINE_URL, one site on the server).
  pages: defineCollection({ loader: seoEngineLoader({ fields }) }),
  // One service's pages, synced by a token of their own.
  gutters: defineCollection({
    loader: seoEngineLoader({ service: "gutter-cleaning", fields: ["title"] }),
  }),
};
