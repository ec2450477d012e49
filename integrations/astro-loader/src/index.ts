/**
 * seo-engine's Astro content-layer loader.
 *
 * One streamed request per build: the NDJSON export, the first time whole, afterwards only
 * what changed since the sync token of the last build (kept in the loader's meta store).
 * The server's content hash (`etag`) is the entry digest, so an unchanged page is not
 * written again; tombstones delete entries. A 410 (the documents changed shape) or a
 * token the server no longer knows (a new database) starts again from scratch.
 */
import type { Loader, LoaderContext } from "astro/loaders";

export interface SeoEngineLoaderOptions {
  /** Where `seo-engine serve` runs. Default: $SEO_ENGINE_URL, else http://127.0.0.1:8000. */
  url?: string;
  /** Site slug; may be left out when the server holds one site. */
  site?: string;
  /** Only this service's pages (slug). */
  service?: string;
  /** Only this location's pages (slug). */
  location?: string;
  /** Only the pages of locations in this region (its code, e.g. "TX"). */
  region?: string;
  /**
   * The document fields to keep in the data store (`path` and `etag` are always kept).
   * Default: every field. Keeping only what the pages render keeps a large set under
   * the size Astro's data store can hold.
   */
  fields?: string[];
  /** Extra request headers (an API gateway's key, say). */
  headers?: Record<string, string>;
}

/** A page document as the export sends it (docs/sync.md on the server's side). */
export interface PageDocument {
  path: string;
  etag: string;
  [field: string]: unknown;
}

/** What one load did: also logged, and returned for tests and benchmarks. */
export interface SyncReport {
  mode: "full" | "incremental";
  /** Entries written (new or changed content). */
  written: number;
  /** Pages sent again with the content already stored (digest unchanged). */
  unchanged: number;
  deleted: number;
  requests: number;
  /** Bytes of NDJSON read (after decompression). */
  bytes: number;
}

const TOKEN_KEY = "seo-engine:sync-token";
const OPTIONS_KEY = "seo-engine:options";
const ALWAYS_KEPT = ["path", "etag"];

export class SeoEngineError extends Error {}

/** The entry id of a page: its path without the leading slash ("roof-repair/austin-tx"). */
export function entryId(path: string): string {
  return path.replace(/^\/+/, "");
}

export function seoEngineLoader(options: SeoEngineLoaderOptions = {}): Loader {
  return {
    name: "seo-engine",
    load: async (context) => {
      await syncCollection(context, options);
    },
  };
}

type SyncContext = Pick<LoaderContext, "collection" | "store" | "meta" | "logger" | "parseData">;

/** Bring the collection's store up to date with the server. */
export async function syncCollection(
  context: SyncContext,
  options: SeoEngineLoaderOptions,
): Promise<SyncReport> {
  const { meta, logger } = context;
  const name = context.collection; // the logger already says "[seo-engine]"
  // A token resumes the list it was issued for: other filters or fields mean a full sync.
  const fingerprint = JSON.stringify(describe(options));
  const sameOptions = meta.get(OPTIONS_KEY) === fingerprint;
  let token = sameOptions ? meta.get(TOKEN_KEY) : undefined;
  let requests = 1;
  let response = await request(options, token);
  if (token && (response.status === 410 || response.status === 400)) {
    const reason = await problemDetail(response);
    logger.warn(`${name}: ${reason}; syncing every page again`);
    token = undefined;
    requests += 1;
    response = await request(options, undefined);
  }
  if (!response.ok) {
    throw new SeoEngineError(
      `seo-engine: ${response.status} from ${endpoint(options, undefined)}: ${await problemDetail(response)}`,
    );
  }
  if (!sameOptions) context.store.clear(); // entries kept other fields: none can stay
  const report = await apply(context, options, response, token ? "incremental" : "full");
  report.requests = requests;
  meta.set(OPTIONS_KEY, fingerprint);
  logger.info(
    `${name}: ${report.mode} sync: ${report.written} written, ${report.unchanged} unchanged, ` +
      `${report.deleted} deleted (${report.requests} request${report.requests > 1 ? "s" : ""}, ` +
      `${(report.bytes / 1e6).toFixed(1)} MB)`,
  );
  if (report.mode === "full" && report.written + report.unchanged === 0) {
    logger.warn(`${name}: the server sent no pages: check the site and filters`);
  }
  return report;
}

/** What the stored entries depend on. Not the URL: another server refuses the token (its
 * key signed it), and the full sync that follows keeps the entries whose digest it has. */
function describe(options: SeoEngineLoaderOptions): Record<string, unknown> {
  return {
    site: options.site ?? null,
    service: options.service ?? null,
    location: options.location ?? null,
    region: options.region ?? null,
    fields: options.fields ?? null,
  };
}

function baseUrl(options: SeoEngineLoaderOptions): string {
  return options.url ?? process.env.SEO_ENGINE_URL ?? "http://127.0.0.1:8000";
}

function endpoint(options: SeoEngineLoaderOptions, token: string | undefined): URL {
  const url = new URL("/api/v1/export.ndjson", baseUrl(options));
  for (const name of ["site", "service", "location", "region"] as const) {
    const value = options[name];
    if (value) url.searchParams.set(name, value);
  }
  if (token) url.searchParams.set("sync", token);
  return url;
}

async function request(options: SeoEngineLoaderOptions, token: string | undefined) {
  const url = endpoint(options, token);
  try {
    return await fetch(url, { headers: { accept: "application/x-ndjson", ...options.headers } });
  } catch (error) {
    throw new SeoEngineError(`seo-engine: cannot reach ${url.origin}: ${String(error)}`);
  }
}

async function problemDetail(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const problem = JSON.parse(text) as { detail?: string; title?: string };
    return problem.detail ?? problem.title ?? text;
  } catch {
    return text.slice(0, 200);
  }
}

/** Apply the export's lines in order; the token (the last line) is kept only once every
 * line before it is in the store, so a sync cut short is resumed from the old token. */
async function apply(
  context: SyncContext,
  options: SeoEngineLoaderOptions,
  response: Response,
  mode: SyncReport["mode"],
): Promise<SyncReport> {
  const { store, meta, parseData } = context;
  const report: SyncReport = { mode, written: 0, unchanged: 0, deleted: 0, requests: 1, bytes: 0 };
  const seen = mode === "full" ? new Set<string>() : undefined;
  const keep = options.fields ? new Set([...ALWAYS_KEPT, ...options.fields]) : undefined;
  let token: string | undefined;
  for await (const line of lines(response, report)) {
    const page = JSON.parse(line) as Partial<PageDocument> & {
      deleted?: boolean;
      sync_token?: string;
    };
    if (page.sync_token !== undefined) {
      token = page.sync_token;
      continue;
    }
    if (token !== undefined) throw new SeoEngineError("seo-engine: lines after the sync token");
    const id = entryId(String(page.path));
    if (page.deleted) {
      if (store.has(id)) {
        store.delete(id);
        report.deleted += 1;
      }
      continue;
    }
    seen?.add(id);
    const digest = String(page.etag);
    if (store.get(id)?.digest === digest) {
      report.unchanged += 1;
      continue;
    }
    const data = keep ? pick(page, keep) : page;
    store.set({ id, data: await parseData({ id, data }), digest });
    report.written += 1;
  }
  if (token === undefined) {
    throw new SeoEngineError("seo-engine: the export ended early (no sync token); try again");
  }
  if (seen) {
    // A full sync replaces the collection: what the server no longer has goes.
    for (const id of store.keys()) {
      if (!seen.has(id)) {
        store.delete(id);
        report.deleted += 1;
      }
    }
  }
  meta.set(TOKEN_KEY, token);
  return report;
}

function pick(page: Record<string, unknown>, keep: Set<string>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const name of keep) {
    if (name in page) kept[name] = page[name];
  }
  return kept;
}

/** The response body's lines, decoded as they stream in (memory stays flat). */
async function* lines(response: Response, report: SyncReport): AsyncGenerator<string> {
  if (!response.body) return;
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    report.bytes += chunk.byteLength;
    buffered += decoder.decode(chunk, { stream: true });
    let start = 0;
    let newline: number;
    while ((newline = buffered.indexOf("\n", start)) >= 0) {
      if (newline > start) yield buffered.slice(start, newline);
      start = newline + 1;
    }
    buffered = buffered.slice(start);
  }
  buffered += decoder.decode();
  if (buffered.trim()) yield buffered;
}
