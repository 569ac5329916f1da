// stalwart-poller.mjs: the ES-module form of stalwart-poller.js (keep both files together).
//   import { poll } from "./stalwart-poller.mjs";
//   const poller = poll("/api/status", { onchange: (e) => console.log(e.detail) });
import "./stalwart-poller.js";

const api = globalThis.StalwartPoller;
export const { VERSION, DEFAULTS, Poller, poll, decide, readHint, parseRetryAfter, rateLimitWait } = api;
export default api;
