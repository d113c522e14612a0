import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Served by `dsgen serve` from the same origin as the API; `npm run dev` proxies /api to it.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, chunkSizeWarningLimit: 600 },
  server: { proxy: { "/api": "http://127.0.0.1:8000" } },
});
