import { defineConfig } from "astro/config";

export default defineConfig({
  output: "static",
  // The data store (and with it the sync token) lives here between builds.
  cacheDir: "./.astro-cache",
  build: { format: "directory" },
});
