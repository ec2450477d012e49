// seo-engine's Eleventy data module.
//
// The page set is kept in a local cache (one NDJSON file: a header line with the sync
// token, then the documents). The first build fills it from the export (one streamed
// request). Every later build asks the server what changed since the cached token
// (`/api/v1/pages?sync=…`, summaries and tombstones, a page of 1000 at a time) and fetches
// each changed document with `If-None-Match: <cached etag>`, so a page rewritten with the
// same content costs a 304 and no body. A 410 (the documents changed shape) or a token the
// server no longer knows (a new database) starts again from scratch.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import path from "node:path";

const FORMAT = 1; // of the cache file

export class SeoEngineError extends Error {}

/**
 * An Eleventy global data function returning the page documents (sorted by path).
 *
 * @param {object} [options]
 * @param {string} [options.url] where `seo-engine serve` runs (default $SEO_ENGINE_URL,
 *   else http://127.0.0.1:8000)
 * @param {string} [options.site] site slug (may be left out when the server holds one)
 * @param {string} [options.service] only this service's pages (slug)
 * @param {string} [options.location] only this location's pages (slug)
 * @param {string} [options.region] only pages of locations in this region (code)
 * @param {string} [options.cacheDir] where the cache lives (default ".cache/seo-engine")
 * @param {number} [options.concurrency] document requests in flight at once (default 8)
 * @param {(line: string) => void} [options.log] where the one-line report goes
 */
export function seoEnginePages(options = {}) {
  return async function seoEngineData() {
    const { pages } = await syncPages(options);
    return [...pages.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  };
}

/** Bring the cache up to date; returns the pages (by path) and what it took. */
export async function syncPages(options = {}) {
  const log = options.log ?? ((line) => console.log(line));
  const file = cacheFile(options);
  const cached = await readCache(file, describe(options));
  let report;
  let state;
  if (cached) {
    const changes = await listChanges(options, cached.token);
    if (changes.restart) {
      log(`[seo-engine] ${changes.restart}; syncing every page again`);
    } else {
      state = cached;
      report = await applyChanges(options, state, changes);
    }
  }
  if (!state) {
    state = { token: undefined, pages: new Map() };
    report = await fullSync(options, state);
  }
  await writeCache(file, describe(options), state);
  log(
    `[seo-engine] ${report.mode} sync: ${report.fetched} fetched, ${report.notModified} not ` +
      `modified, ${report.deleted} deleted; ${state.pages.size} pages (${report.requests} requests)`,
  );
  return { pages: state.pages, report };
}

function describe(options) {
  return JSON.stringify({
    format: FORMAT,
    url: baseUrl(options),
    site: options.site ?? null,
    service: options.service ?? null,
    location: options.location ?? null,
    region: options.region ?? null,
  });
}

function baseUrl(options) {
  return options.url ?? process.env.SEO_ENGINE_URL ?? "http://127.0.0.1:8000";
}

function cacheFile(options) {
  const digest = createHash("sha256").update(describe(options)).digest("hex").slice(0, 16);
  return path.join(options.cacheDir ?? ".cache/seo-engine", `pages-${digest}.ndjson`);
}

function endpoint(options, route, extra = {}) {
  const url = new URL(`/api/v1/${route}`, baseUrl(options));
  for (const name of ["site", "service", "location", "region"]) {
    if (options[name]) url.searchParams.set(name, options[name]);
  }
  for (const [name, value] of Object.entries(extra)) url.searchParams.set(name, value);
  return url;
}

async function get(url, headers = {}) {
  try {
    return await fetch(url, { headers });
  } catch (error) {
    throw new SeoEngineError(`seo-engine: cannot reach ${url.origin}: ${error}`);
  }
}

async function failure(response, url) {
  const text = await response.text();
  let detail = text.slice(0, 200);
  try {
    detail = JSON.parse(text).detail ?? detail;
  } catch {
    // not a problem document: keep the text
  }
  return new SeoEngineError(`seo-engine: ${response.status} from ${url.pathname}: ${detail}`);
}

/** The first build (or after a restart): every document, from the export. */
async function fullSync(options, state) {
  const url = endpoint(options, "export.ndjson");
  const response = await get(url);
  if (!response.ok) throw await failure(response, url);
  const text = await response.text();
  const lines = text.split("\n").filter(Boolean);
  const last = lines.length ? JSON.parse(lines.pop()) : {};
  if (typeof last.sync_token !== "string") {
    throw new SeoEngineError("seo-engine: the export ended early (no sync token); try again");
  }
  for (const line of lines) {
    const page = JSON.parse(line);
    state.pages.set(page.path, page);
  }
  state.token = last.sync_token;
  return { mode: "full", fetched: state.pages.size, notModified: 0, deleted: 0, requests: 1 };
}

/** Every change since `token`, a page of the list at a time; or why to start again. */
async function listChanges(options, token) {
  const items = [];
  let url = endpoint(options, "pages", { sync: token, limit: "1000" });
  let next = token;
  let requests = 0;
  while (url) {
    const response = await get(url);
    requests += 1;
    if (response.status === 410 || response.status === 400) {
      const error = await failure(response, url);
      return { restart: error.message };
    }
    if (!response.ok) throw await failure(response, url);
    const body = await response.json();
    items.push(...body.items);
    next = body.sync_token;
    url = body.next ? new URL(body.next) : undefined;
  }
  return { items, token: next, requests };
}

/** Apply the changes: delete tombstones, fetch changed documents conditionally. */
async function applyChanges(options, state, changes) {
  const report = {
    mode: "incremental",
    fetched: 0,
    notModified: 0,
    deleted: 0,
    requests: changes.requests,
  };
  const changed = [];
  for (const item of changes.items) {
    if (item.deleted) {
      if (state.pages.delete(item.path)) report.deleted += 1;
    } else {
      changed.push(item);
    }
  }
  const queue = [...new Map(changed.map((item) => [item.path, item])).values()];
  const worker = async () => {
    for (let item = queue.pop(); item; item = queue.pop()) {
      const known = state.pages.get(item.path);
      const url = new URL(item.document);
      const response = await get(url, known ? { "if-none-match": known.etag } : {});
      report.requests += 1;
      if (response.status === 304) {
        report.notModified += 1;
      } else if (response.status === 404) {
        // gone since the list was read: its tombstone comes with the next sync
        if (state.pages.delete(item.path)) report.deleted += 1;
      } else if (response.ok) {
        state.pages.set(item.path, await response.json());
        report.fetched += 1;
      } else {
        throw await failure(response, url);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  state.token = changes.token;
  return report;
}

async function readCache(file, description) {
  let text;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined; // no cache yet
  }
  const lines = text.split("\n").filter(Boolean);
  const header = JSON.parse(lines.shift() ?? "{}");
  if (header.options !== description || typeof header.token !== "string") return undefined;
  const pages = new Map();
  for (const line of lines) {
    const page = JSON.parse(line);
    pages.set(page.path, page);
  }
  return { token: header.token, pages };
}

/** Written whole to a new file, then renamed over the old: a build cut short keeps the
 * previous cache, and resumes from its token. */
async function writeCache(file, description, state) {
  await mkdir(path.dirname(file), { recursive: true });
  const lines = [JSON.stringify({ options: description, token: state.token })];
  for (const page of state.pages.values()) lines.push(JSON.stringify(page));
  await writeFile(`${file}.tmp`, `${lines.join("\n")}\n`);
  await rename(`${file}.tmp`, file);
}
