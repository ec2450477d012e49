// The collection bench/sync_bench.py syncs: by the seo-engine loader (sync token) or, for
// the baseline, by listing every page (list-loader.mjs); BENCH_LOADER picks.
import { defineCollection } from "astro:content";
import { seoEngineLoader } from "seo-engine-astro-loader";
import { listLoader } from "./list-loader.mjs";

const url = process.env.SEO_ENGINE_URL!;
const fields = process.env.BENCH_FIELDS ? process.env.BENCH_FIELDS.split(",") : undefined;
const loader =
  process.env.BENCH_LOADER === "list" ? listLoader({ url, fields }) : seoEngineLoader({ url, fields });

export const collections = { pages: defineCollection({ loader }) };
