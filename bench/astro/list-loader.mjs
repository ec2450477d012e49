// The baseline of bench/sync_bench.py: an Astro loader that syncs the way loaders of CMS
// APIs without sync tokens do: list every page (summaries, 1,000 a request), delete the
// entries not listed, fetch the document of every page new or changed since the stored
// one (by updated_at), a few requests at a time. Never imported by the product.
export function listLoader({ url, fields, concurrency = 16 }) {
  return {
    name: "list-baseline",
    load: async ({ collection, store, logger, parseData }) => {
      const report = { written: 0, unchanged: 0, deleted: 0, requests: 0 };
      const listed = new Map();
      let next = new URL("/api/v1/pages?limit=1000", url).href;
      while (next) {
        const response = await fetch(next);
        report.requests += 1;
        if (!response.ok) throw new Error(`list: ${response.status}`);
        const body = await response.json();
        for (const item of body.items) listed.set(item.path.replace(/^\/+/, ""), item);
        next = body.next;
      }
      for (const id of store.keys()) {
        if (!listed.has(id)) {
          store.delete(id);
          report.deleted += 1;
        }
      }
      const todo = [];
      for (const [id, item] of listed) {
        if (store.get(id)?.digest === item.updated_at) report.unchanged += 1;
        else todo.push([id, item]);
      }
      const keep = fields ? new Set(["path", "etag", ...fields]) : undefined;
      const worker = async () => {
        for (let job = todo.pop(); job; job = todo.pop()) {
          const [id, item] = job;
          const response = await fetch(item.document);
          report.requests += 1;
          if (response.status === 404) continue; // gone since the list
          if (!response.ok) throw new Error(`document: ${response.status}`);
          const page = await response.json();
          const data = keep ? Object.fromEntries(Object.entries(page).filter(([k]) => keep.has(k))) : page;
          store.set({ id, data: await parseData({ id, data }), digest: item.updated_at });
          report.written += 1;
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      logger.info(
        `${collection}: list sync: ${report.written} written, ${report.unchanged} unchanged, ` +
          `${report.deleted} deleted (${report.requests} requests)`,
      );
    },
  };
}
