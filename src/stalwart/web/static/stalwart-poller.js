// stalwart-poller.js: poll a URL at the pace its answers ask for (seed 000's adaptive poller).
//
// A classic script: <script src=".../stalwart-poller.js"></script> defines
// window.StalwartPoller. As an ES module: import { poll } from ".../stalwart-poller.mjs".
// No dependencies, no build step. The decisions are the same as Python's
// stalwart.poller.AdaptivePoller (one table of cases is run against both), in this order:
//   1. a JSON body's poll_interval (else retry_in), whatever the status code;
//   2. Retry-After (seconds or an HTTP-date) and a drained RateLimit (r=0, t) are a floor:
//      they replace any backoff and may go past maxInterval;
//   3. a failed poll without a hint (network error, timeout, 4xx/5xx, not JSON) backs off:
//      floor((random + 0.5) * 2 ** min(n, 8)) * errorInterval after n failures in a row;
//   4. otherwise `interval`. Hints and backoff stay within [minInterval, maxInterval].
// One request at a time; each is aborted at `timeout`. While the page is hidden or the
// browser offline nothing is sent; on return a poll that fell due meanwhile runs at once.
"use strict";

(function (root) {
  const VERSION = "1";
  // Events: "update" (an answer with a body or a status), "change" (state or availability),
  // "error" (a failed poll), "poll" (after every poll, with the decision).
  const HANDLERS = ["onupdate", "onchange", "onerror", "onpoll"];
  const MAX_DOUBLINGS = 8;
  const DEFAULTS = Object.freeze({
    interval: 5, // seconds between polls whose answer has no hint
    errorInterval: 5, // the base of the backoff after failed polls
    minInterval: 1,
    maxInterval: 300,
    timeout: 10, // a request taking longer is aborted and counts as failed
    jitter: true,
    background: false, // true: keep polling while the page is hidden
    hint: null, // (body) => ({poll_interval, retry_in, available, state, message}) | null
    name: "stalwart-poller", // the prefix of console lines
    log: true, // false, or an object with info/warn/debug (default: console)
    fetchOptions: {}, // merged into every fetch() (credentials, headers, ...)
    random: Math.random,
  });

  // -- the decision core (pure; mirrors stalwart/poller/_plan.py) -------------------------

  function seconds(value) {
    return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : null;
  }

  function readHint(body) {
    if (body === null || typeof body !== "object" || Array.isArray(body)) return null;
    const retryIn = seconds(body.retry_in);
    const interval = seconds(body.poll_interval) || retryIn;
    if (interval === null) return null;
    return {
      interval,
      available: typeof body.available === "boolean" ? body.available : null,
      state: typeof body.state === "string" ? body.state : null,
      message: typeof body.message === "string" ? body.message : null,
      retryIn,
    };
  }

  const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
  const DAYS = "(?:mon|tue|wed|thu|fri|sat|sun)";
  const LONG_DAYS = "(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)";
  const TIME = "(\\d\\d):(\\d\\d):(\\d\\d)";
  const IMF_FIXDATE = new RegExp(`^${DAYS}, (\\d\\d) ([a-z]{3}) (\\d{4}) ${TIME} gmt$`);
  const RFC850_DATE = new RegExp(`^${LONG_DAYS}, (\\d\\d)-([a-z]{3})-(\\d\\d) ${TIME} gmt$`);
  const ASCTIME_DATE = new RegExp(`^${DAYS} ([a-z]{3}) (\\d{1,2}) ${TIME} (\\d{4})$`);

  function fullYear(twoDigits, now) {
    // RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is in the past century.
    const thisYear = new Date(now * 1000).getUTCFullYear();
    let year = thisYear - (thisYear % 100) + twoDigits;
    if (year > thisYear + 50) year -= 100;
    return year;
  }

  function httpDate(text, now) {
    let m, day, month, year, hh, mm, ss;
    if ((m = IMF_FIXDATE.exec(text))) [, day, month, year, hh, mm, ss] = m;
    else if ((m = RFC850_DATE.exec(text))) {
      [, day, month, year, hh, mm, ss] = m;
      year = String(fullYear(Number(year), now));
    } else if ((m = ASCTIME_DATE.exec(text))) [, month, day, hh, mm, ss, year] = m;
    else return null;
    const number = MONTHS.indexOf(month);
    if (number < 0 || Number(ss) > 60) return null;
    const fields = [Number(year), number, Number(day), Number(hh), Number(mm), Math.min(Number(ss), 59)];
    const probe = new Date(Date.UTC(...fields));
    // Validates the calendar (Feb 30 is junk); a leap second (:60) is allowed.
    if (probe.getUTCMonth() !== number || probe.getUTCDate() !== fields[2] || fields[3] > 23 || fields[4] > 59) {
      return null;
    }
    return Date.UTC(fields[0], number, fields[2], fields[3], fields[4], Number(ss)) / 1000;
  }

  // Seconds to wait from a Retry-After value (RFC 9110 §10.2.3), or null if it is not one.
  function parseRetryAfter(value, now) {
    if (typeof value !== "string") return null;
    const text = value.split(/\s+/).filter(Boolean).join(" ").toLowerCase();
    if (/^[+-]?\d+(?:\.\d+)?$/.test(text)) return Math.max(0, Number(text));
    const when = httpDate(text, now);
    return when === null ? null : Math.max(0, when - now);
  }

  const TOKEN = /^(?:"[^"]*"|[A-Za-z*][\w.:/*-]*)$/;

  // Seconds until quota returns from a RateLimit field whose r is 0; null otherwise or if malformed.
  function rateLimitWait(value) {
    if (!value) return null;
    let wait = null;
    for (const item of value.split(",")) {
      const [name, ...pairs] = item.split(";").map((part) => part.trim());
      if (!TOKEN.test(name)) return null;
      const params = {};
      for (const pair of pairs) {
        const at = pair.indexOf("=");
        if (at < 0) return null;
        params[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
      }
      const remaining = params.r === undefined ? "" : params.r;
      const windowed = params.t;
      if (!/^\d+$/.test(remaining) || (windowed !== undefined && !/^\d+$/.test(windowed))) return null;
      if (Number(remaining) === 0 && windowed !== undefined) wait = Math.max(wait || 0, Number(windowed));
    }
    return wait;
  }

  const clamp = (value, low, high) => Math.min(Math.max(value, low), high);
  const plural = (n, word) => (n === 1 ? `${n} ${word}` : `${n} ${word}s`);
  const fmt = (value) => String(Number(value.toPrecision(6))); // like Python's :g for these values

  // The wait after one answer: {status, body, headers (lower-case names), error}.
  function decide(answer, { errors, settings, random, now, hint }) {
    const ok = answer.status !== null && answer.status >= 200 && answer.status < 400 && !answer.error;
    if (hint === undefined || hint === null) hint = answer.error ? null : readHint(answer.body);
    const failed = hint === null && !ok;
    errors = failed ? errors + 1 : 0;
    const low = settings.minInterval;
    const high = settings.maxInterval;
    let delay, reason;
    if (hint !== null) {
      delay = clamp(hint.interval, low, high);
      reason = hint.message || `the server asks for ${fmt(hint.interval)} s`;
      if (hint.state && !hint.message) reason = `${reason} (state ${hint.state})`;
    } else if (failed) {
      const spread = settings.jitter ? random + 0.5 : 1;
      const backoff = Math.floor(spread * 2 ** Math.min(errors, MAX_DOUBLINGS)) * settings.errorInterval;
      delay = clamp(backoff, low, high);
      const why = answer.error || `HTTP ${answer.status}`;
      reason = `backing off after ${plural(errors, "failed poll")} (${why})`;
    } else {
      delay = clamp(settings.interval, low, high);
      reason = "no hint in the answer: the default interval";
    }
    const headers = answer.headers || {};
    let floor = parseRetryAfter(headers["retry-after"], now);
    let source = "Retry-After";
    if (floor === null) {
      floor = rateLimitWait(headers.ratelimit);
      source = "RateLimit";
    }
    if (floor !== null) {
      // Retry-After overrides any backoff; a longer wait the server asked for stands.
      const floored = Math.max(floor, failed ? 0 : delay, low);
      if (floored !== delay || failed) {
        delay = floored;
        reason = `${source}: ${fmt(floor)} s (${reason})`;
      }
    }
    return { delay, reason, failed, errors, hint };
  }

  function view(decision) {
    if (decision.failed) return { state: "unreachable", available: false };
    const hint = decision.hint;
    return {
      state: hint && hint.state ? hint.state : "ok",
      available: hint && hint.available !== null ? hint.available : true,
    };
  }

  // -- the poller --------------------------------------------------------------------------

  const hasDocument = typeof document !== "undefined";
  const pageHidden = () => hasDocument && document.visibilityState === "hidden";

  class Poller extends EventTarget {
    constructor(url, options = {}) {
      super();
      const unknown = Object.keys(options).filter(
        (key) => !(key in DEFAULTS) && !HANDLERS.includes(key),
      );
      if (unknown.length) throw new TypeError(`unknown StalwartPoller option(s): ${unknown.join(", ")}`);
      this.url = String(url);
      this.settings = { ...DEFAULTS, ...options };
      for (const key of ["interval", "errorInterval", "minInterval", "maxInterval", "timeout"]) {
        if (!(seconds(this.settings[key]) !== null)) {
          throw new TypeError(`StalwartPoller option ${key} must be a number of seconds > 0`);
        }
      }
      if (this.settings.minInterval > this.settings.maxInterval) {
        throw new TypeError("StalwartPoller option minInterval must be <= maxInterval");
      }
      for (const key of HANDLERS) this[key] = options[key] || null;
      const log = this.settings.log;
      this._log = log === true ? console : log || null;
      this._running = false;
      this._timer = null;
      this._dueAt = null; // ms (Date.now) when the next poll is due
      this._due = false; // a poll fell due while paused
      this._inFlight = false;
      this._again = false; // pollNow() during a poll: poll once more after it
      this._queued = false; // a poll "at once" is queued as a microtask
      this._floor = null; // setFloor(): the least seconds between polls, whatever the hint
      this._online = typeof navigator === "undefined" || navigator.onLine !== false;
      this._last = null; // {answer, decision, state, available, at}
      this._polls = 0;
      this._failures = 0;
      this._onVisibility = () => this._resume("visible");
      this._onOnline = () => {
        this._online = true;
        this._resume("online");
      };
      this._onOffline = () => {
        this._online = false;
        this._pause();
      };
    }

    get running() {
      return this._running;
    }

    get paused() {
      return (!this.settings.background && pageHidden()) || !this._online;
    }

    // Start polling: the first poll runs at once.
    start() {
      if (this._running) return this;
      this._running = true;
      if (hasDocument) document.addEventListener("visibilitychange", this._onVisibility);
      if (typeof window !== "undefined") {
        window.addEventListener("online", this._onOnline);
        window.addEventListener("offline", this._onOffline);
      }
      this._schedule(0);
      return this;
    }

    stop() {
      this._running = false;
      clearTimeout(this._timer);
      this._timer = null;
      this._dueAt = null;
      if (hasDocument) document.removeEventListener("visibilitychange", this._onVisibility);
      if (typeof window !== "undefined") {
        window.removeEventListener("online", this._onOnline);
        window.removeEventListener("offline", this._onOffline);
      }
      return this;
    }

    // Poll as soon as possible: now, or right after the poll in flight.
    pollNow() {
      if (this._inFlight) this._again = true;
      else this._schedule(0);
    }

    // Ask for at least this many seconds between polls from now on (e.g. while an event
    // stream delivers the changes); null lifts it. Takes effect from the next decision.
    setFloor(seconds_) {
      this._floor = seconds(seconds_);
    }

    getDebugInfo() {
      const last = this._last;
      const hint = last ? last.decision.hint : null;
      return {
        name: this.settings.name,
        url: this.url,
        isPolling: this._running,
        inFlight: this._inFlight,
        paused: this._running && this.paused,
        hidden: pageHidden(),
        online: this._online,
        currentInterval: last ? last.delay : null,
        reason: last ? last.reason : null,
        nextPollIn: this._dueAt === null ? null : Math.max(0, (this._dueAt - Date.now()) / 1000),
        failureCount: last ? last.decision.errors : 0,
        polls: this._polls,
        failures: this._failures,
        state: last ? last.state : null,
        available: last ? last.available : null,
        status: hint ? { available: hint.available, state: hint.state, message: hint.message, retryIn: hint.retryIn } : null,
        lastStatus: last ? last.answer.status : null,
        lastError: last ? last.answer.error : null,
        lastPollAgo: last ? (Date.now() - last.at) / 1000 : null,
      };
    }

    // -- scheduling: one timer; the next poll is set only once the previous one finished --

    _schedule(delaySeconds) {
      clearTimeout(this._timer);
      this._timer = null;
      if (!this._running) return;
      this._dueAt = Date.now() + delaySeconds * 1000;
      if (this.paused) {
        this._due = true;
        return;
      }
      if (delaySeconds > 0) {
        this._timer = setTimeout(() => this._tick(), delaySeconds * 1000);
      } else if (!this._queued) {
        // At once (not a 0 ms timer, which a paused or throttled clock would hold back).
        this._queued = true;
        queueMicrotask(() => {
          this._queued = false;
          this._tick();
        });
      }
    }

    _pause() {
      if (this._timer !== null) {
        clearTimeout(this._timer);
        this._timer = null;
        this._due = true;
      }
    }

    _resume(why) {
      if (!this._running) return;
      if (this.paused) {
        this._pause();
        return;
      }
      if (!this._due || this._inFlight) return;
      this._due = false;
      const lost = this._last && this._last.answer.status === null;
      // Back online after failing for want of a network: ask at once. Otherwise keep the
      // wait the server asked for, and poll at once only if it ran out while paused.
      const left = why === "online" && lost ? 0 : Math.max(0, (this._dueAt - Date.now()) / 1000);
      this._schedule(left);
    }

    async _tick() {
      this._timer = null;
      if (!this._running) return;
      if (this.paused) {
        this._due = true;
        return;
      }
      if (this._inFlight) {
        this._again = true;
        return;
      }
      this._inFlight = true;
      let answer;
      try {
        answer = await this._fetch();
      } finally {
        this._inFlight = false;
      }
      const decision = this._settle(answer);
      if (this._again) {
        this._again = false;
        this._schedule(0);
      } else {
        this._schedule(decision.delay);
      }
    }

    async _fetch() {
      const controller = new AbortController();
      const limit = this.settings.timeout;
      const abort = setTimeout(() => controller.abort(), limit * 1000);
      const extra = this.settings.fetchOptions || {};
      try {
        const response = await fetch(this.url, {
          cache: "no-store",
          credentials: "same-origin",
          ...extra,
          headers: { Accept: "application/json", ...(extra.headers || {}) },
          signal: controller.signal,
        });
        const headers = {};
        response.headers.forEach((value, name) => {
          headers[name.toLowerCase()] = value;
        });
        let body = null;
        let error = null;
        if ((headers["content-type"] || "").includes("json")) {
          try {
            body = await response.json();
          } catch (exc) {
            if (controller.signal.aborted) throw exc;
            error = `HTTP ${response.status} with a body that is not valid JSON`;
          }
        }
        return { status: response.status, body, headers, error };
      } catch (exc) {
        const error = controller.signal.aborted
          ? `no answer within ${fmt(limit)} s`
          : `network error: ${exc && exc.message ? exc.message : String(exc)}`;
        return { status: null, body: null, headers: {}, error };
      } finally {
        clearTimeout(abort);
      }
    }

    _settle(answer) {
      const previous = this._last;
      const s = this.settings;
      let hint = null;
      if (typeof s.hint === "function" && !answer.error) {
        try {
          hint = readHint(s.hint(answer.body));
        } catch (exc) {
          this._say("warn", `hint() failed: ${exc}`);
        }
      }
      let decision = decide(answer, {
        errors: previous ? previous.decision.errors : 0,
        settings: s,
        random: s.random(),
        now: Date.now() / 1000,
        hint,
      });
      if (this._floor && decision.delay < this._floor) {
        decision = { ...decision, delay: this._floor, reason: `${decision.reason}; at least ${fmt(this._floor)} s` };
      }
      const { state, available } = view(decision);
      const changed = !previous || previous.state !== state || previous.available !== available;
      const last = { answer, decision, state, available, delay: decision.delay, reason: decision.reason, at: Date.now() };
      this._last = last;
      this._polls += 1;
      if (decision.failed) this._failures += 1;
      this._report(last, previous, changed);
      return decision;
    }

    _report(last, previous, changed) {
      const { answer, decision } = last;
      if (answer.body !== null || answer.status !== null) {
        this._emit("update", { body: answer.body, status: answer.status, headers: answer.headers, decision });
      }
      if (decision.failed) {
        const error = answer.error || `HTTP ${answer.status}`;
        this._say("warn", `\u26a0\ufe0f poll failed (attempt ${decision.errors}): ${error}`);
        this._emit("error", { error, failures: decision.errors, delay: decision.delay, status: answer.status });
      }
      if (changed) {
        if (previous) {
          const line = last.available ? "\u2705 available again" : "\u26a0\ufe0f unavailable";
          this._say(last.available ? "info" : "warn", `${line}: ${decision.reason}`);
        }
        this._emit("change", {
          oldState: previous ? previous.state : null,
          state: last.state,
          available: last.available,
          interval: decision.delay,
          reason: decision.reason,
        });
      }
      if (previous && previous.delay !== decision.delay) {
        this._say("info", `interval ${fmt(previous.delay)} s \u2192 ${fmt(decision.delay)} s (${decision.reason})`);
      }
      this._say("debug", `next poll in ${fmt(decision.delay)} s`);
      this._emit("poll", { decision, status: answer.status, error: answer.error });
    }

    _say(level, text) {
      const log = this._log;
      if (log && typeof log[level] === "function") log[level](`[${this.settings.name}] ${text}`);
    }

    _emit(type, detail) {
      const event = new CustomEvent(type, { detail });
      const handler = this[`on${type}`];
      try {
        if (typeof handler === "function") handler.call(this, event);
      } catch (exc) {
        this._say("warn", `on${type} failed: ${exc}`);
      }
      this.dispatchEvent(event);
    }
  }

  function poll(url, options) {
    return new Poller(url, options).start();
  }

  root.StalwartPoller = Object.freeze({
    VERSION,
    DEFAULTS,
    Poller,
    poll,
    decide,
    readHint,
    parseRetryAfter,
    rateLimitWait,
  });
})(typeof globalThis !== "undefined" ? globalThis : window);
