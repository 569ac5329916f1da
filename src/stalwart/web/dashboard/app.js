// stalwart ops dashboard: renders the ops app's own JSON routes and keeps them live.
// No framework, no build step, no third-party requests; polling is stalwart-poller.js's. Every URL is relative to the app's
// mount point (the folder above this script), so the page works under any prefix.
"use strict";

(() => {
  const here = document.currentScript ? document.currentScript.src : location.href;
  const base = new URL("../", here);
  const url = (path) => new URL(path, base).href;

  const DEFAULT_POLL = 5; // seconds, until the breakers' poll hints are known
  const MIN_POLL = 1;
  const MAX_POLL = 120;
  const RESYNC = 30; // while live: refresh figures that change without an event (p95, ...)
  const RECONNECT = 30; // after the server refused the stream (404, 503): try again

  // Each section renders one route. Another section is one more entry here, its
  // <section> in index.html, and the event types that touch it. /breakers is polled by
  // stalwart-poller.js at the breakers' own hint; the other sections refresh after each
  // of its polls and on their events.
  const sections = {
    checks: { path: "health/detailed", render: renderChecks },
    journal: { path: "journal", render: renderJournal },
    connections: { path: "connections", render: renderConnections },
  };
  const EVENTS = {
    state_transition: ["breakers", "journal"],
    health_changed: ["checks"],
    check_changed: ["checks"],
    batch_started: ["journal"],
    batch_paused: ["journal"],
    batch_resumed: ["journal"],
    batch_finished: ["journal"],
  };
  const BATCH_REFRESH = 2; // seconds between refreshes of a batch in progress (no event per item)
  let batchTimer = null;
  const CONNECTION_REFRESH = 2; // seconds: uptime and counters move without events
  let connectionTimer = null;
  for (const section of Object.values(sections)) {
    Object.assign(section, { running: null, again: false, stale: true });
  }

  let checksShowBreakers = false;
  let mode = "starting"; // live | polling | starting
  let source = null;

  // -- the breakers, polled at their hint ------------------------------------------------

  // The pace is the most urgent breaker's: the shortest poll_interval among them.
  function paceOf(data) {
    const breakers = Object.values((data && data.breakers) || {}).filter(
      (b) => typeof b.poll_interval === "number",
    );
    if (!breakers.length) return null;
    const first = breakers.reduce((a, b) => (b.poll_interval < a.poll_interval ? b : a));
    return {
      poll_interval: first.poll_interval,
      state: first.state,
      available: first.available,
      message: first.message,
    };
  }

  const poller = new StalwartPoller.Poller(url("breakers"), {
    name: "stalwart-dashboard",
    interval: DEFAULT_POLL,
    minInterval: MIN_POLL,
    maxInterval: MAX_POLL,
    hint: paceOf,
    onupdate(event) {
      const { body, status } = event.detail;
      if (body && typeof body === "object" && status < 400) {
        renderBreakers(body);
        setProblem("breakers", null);
        stamp();
      }
    },
    onerror(event) {
      setProblem("breakers", event.detail.error);
    },
  });
  // After each poll: the other sections too, and the mode line (interval now and why).
  poller.addEventListener("poll", () => {
    refreshOthers();
    showMode();
  });

  function stamp() {
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  // -- fetching the other sections -----------------------------------------------------

  // One request per section at a time: a refresh asked for meanwhile runs once afterwards.
  function refresh(name) {
    if (name === "breakers") {
      poller.pollNow();
      return Promise.resolve();
    }
    const section = sections[name];
    if (document.visibilityState === "hidden") {
      section.stale = true;
      return Promise.resolve();
    }
    if (section.running) {
      section.again = true;
      return section.running;
    }
    section.running = load(name, section).finally(() => {
      section.running = null;
      if (section.again) {
        section.again = false;
        return refresh(name);
      }
      return undefined;
    });
    return section.running;
  }

  async function load(name, section) {
    section.stale = false;
    try {
      const response = await fetch(url(section.path), {
        cache: "no-store",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const type = response.headers.get("content-type") || "";
      if (!type.startsWith("application/json")) {
        throw new Error(`${section.path} answered ${response.status}`);
      }
      section.render(await response.json());
      setProblem(name, null);
      stamp();
    } catch (error) {
      section.stale = true;
      setProblem(name, error instanceof Error ? error.message : String(error));
    }
  }

  function refreshOthers() {
    return Promise.all(Object.keys(sections).map(refresh));
  }

  function refreshAll() {
    poller.pollNow();
    return refreshOthers();
  }

  // -- mode: live (the stream brings changes; polls only resync) or polling ---------------

  function setMode(next) {
    if (mode === next) return;
    mode = next;
    poller.setFloor(next === "live" ? RESYNC : null);
    showMode();
    if (next === "polling") poller.pollNow();
  }

  function showMode() {
    const el = document.getElementById("mode");
    const hidden = document.visibilityState === "hidden";
    const info = poller.getDebugInfo();
    const every = info.currentInterval === null ? DEFAULT_POLL : info.currentInterval;
    el.dataset.mode = hidden ? "paused" : mode;
    el.title = info.reason || "";
    el.textContent = hidden
      ? "paused while the page is hidden"
      : mode === "live"
        ? `live (event stream); resync every ${every} s`
        : mode === "polling"
          ? `polling every ${every} s (no event stream): ${info.reason || "starting"}`
          : "connecting";
  }

  // The poller pauses and resumes /breakers by itself; the other sections follow here.
  document.addEventListener("visibilitychange", () => {
    showMode();
    if (document.visibilityState === "hidden") return;
    const stale = Object.keys(sections).filter((name) => sections[name].stale);
    stale.forEach(refresh);
  });

  // -- event stream --------------------------------------------------------------------

  function connect() {
    if (typeof EventSource !== "function") {
      setMode("polling");
      return;
    }
    source = new EventSource(url("events"));
    source.addEventListener("open", () => {
      setMode("live");
      refreshAll(); // whatever changed while the stream was down
    });
    source.addEventListener("error", () => {
      setMode("polling"); // the browser retries the stream by itself meanwhile
      if (source && source.readyState === EventSource.CLOSED) {
        source = null; // refused (404, 503): the browser gave up; so do we, for a while
        setTimeout(connect, RECONNECT * 1000);
      }
    });
    for (const [type, names] of Object.entries(EVENTS)) {
      source.addEventListener(type, () => {
        const affected = new Set(names);
        if (type === "state_transition" && checksShowBreakers) affected.add("checks");
        for (const name of affected) refresh(name);
      });
    }
  }

  // -- rendering -----------------------------------------------------------------------

  const DASH = "\u2014";

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined || text === "" ? DASH : String(text);
    if (className) td.className = className;
    return td;
  }

  function badge(text) {
    const td = document.createElement("td");
    const span = document.createElement("span");
    span.className = "badge";
    span.textContent = String(text).replace("_", " ");
    td.append(span);
    return td;
  }

  const seconds = (v) => (typeof v === "number" ? `${v < 10 ? v.toFixed(1) : Math.round(v)} s` : null);
  const millis = (v) => (typeof v === "number" ? `${(v * 1000).toFixed(1)} ms` : null);
  const percent = (v) => (typeof v === "number" ? `${(v * 100).toFixed(1)} %` : null);
  const number = (v) => (typeof v === "number" ? v : null);

  function fill(id, rows) {
    const section = document.getElementById(id);
    section.querySelector("tbody").replaceChildren(...rows);
    section.querySelector(".empty").hidden = rows.length > 0;
  }

  function renderBreakers(data) {
    const breakers = Object.values((data && data.breakers) || {});
    breakers.sort((a, b) => String(a.name).localeCompare(String(b.name)));
    fill(
      "breakers",
      breakers.map((b) => {
        const snap = b.snapshot || {};
        const tr = document.createElement("tr");
        tr.dataset.name = b.name;
        tr.dataset.state = b.state;
        const failures =
          typeof snap.failure_count === "number"
            ? `${snap.failure_count} (total ${snap.total_failures ?? 0})`
            : null;
        const name = cell(b.shared ? `${b.name} (shared)` : b.name, "name");
        if (b.shared) name.title = b.shared; // every process shows the same state
        tr.append(
          name,
          badge(b.state),
          cell(failures, "num"),
          cell(number(snap.total_calls), "num"),
          cell(percent(snap.failure_rate), "num"),
          cell(b.retry_in ? seconds(b.retry_in) : null, "num"),
          cell(seconds(b.poll_interval), "num"),
          cell(b.message),
        );
        return tr;
      }),
    );
  }

  function renderChecks(data) {
    const overall = document.getElementById("overall");
    overall.dataset.status = (data && data.status) || "unknown";
    document.getElementById("overall-status").textContent = overall.dataset.status;
    document.getElementById("overall-message").textContent = (data && data.message) || "";
    const checks = Object.values((data && data.checks) || {});
    checks.sort((a, b) => String(a.name).localeCompare(String(b.name)));
    checksShowBreakers = checks.some((c) => c.breaker_state);
    fill(
      "checks",
      checks.map((c) => {
        const tr = document.createElement("tr");
        tr.dataset.name = c.name;
        tr.dataset.status = c.status;
        const status = badge(c.status);
        if (c.breaker_state) status.append(` breaker ${String(c.breaker_state).replace("_", " ")}`);
        if (c.slow) {
          tr.dataset.slow = "true";
          status.append(" slow");
        }
        tr.append(
          cell(c.name, "name"),
          status,
          cell(c.critical ? "yes" : "no"),
          cell((c.groups || []).join(", ")),
          cell(millis(c.duration), "num"),
          cell(percent(c.availability), "num"),
          cell(millis(c.p95_duration), "num"),
          cell(number(c.consecutive_failures), "num"),
          cell(c.error, "error"),
        );
        return tr;
      }),
    );
  }

  function renderJournal(data) {
    const runs = new Map(((data && data.runs) || []).map((r) => [r.session, r]));
    const rows = [];
    const listed = new Set();
    for (const journal of (data && data.journals) || []) {
      for (const s of journal.sessions || []) {
        listed.add(s.id);
        rows.push({ ...s, run: runs.get(s.id) });
      }
    }
    for (const [id, run] of runs) {
      if (!listed.has(id)) {
        rows.push({ id, status: "running", done: run.done, failed: run.failed, total: run.total, run });
      }
    }
    fill(
      "journal",
      rows.map((s) => {
        const run = s.run;
        const tr = document.createElement("tr");
        tr.dataset.name = s.id;
        const status = run && run.paused ? "paused" : s.status;
        tr.dataset.status = status;
        const recorded = run ? run.recorded : (s.done || 0) + (s.failed || 0);
        const share = s.total ? recorded / s.total : null;
        let pause = null;
        if (run && run.paused) pause = `for ${seconds(run.paused_for)} (${run.pause_reason || "paused"})`;
        else if (run && run.pauses) pause = `${run.pauses} so far, ${seconds(run.paused_seconds)}`;
        tr.append(
          cell(s.id, "name"),
          badge(status),
          cell(number(run ? run.done + run.skipped : s.done), "num"),
          cell(number(run ? run.failed : s.failed), "num"),
          cell(number(s.total), "num"),
          cell(percent(share), "num"),
          cell(run ? run.rate.toFixed(1) : null, "num"),
          cell(run ? seconds(run.eta) : null, "num"),
          cell(pause),
        );
        return tr;
      }),
    );
    // Items complete without events: while a batch runs here, follow it a little faster.
    clearTimeout(batchTimer);
    if (runs.size) batchTimer = setTimeout(() => refresh("journal"), BATCH_REFRESH * 1000);
  }

  function renderConnections(data) {
    const connections = (data && data.connections) || [];
    fill(
      "connections",
      connections.map((c) => {
        const tr = document.createElement("tr");
        tr.dataset.name = c.name;
        // The badge tone: open on the primary, open on a fallback, or not open.
        const tone = c.connected ? (c.endpoint_index ? "degraded" : "healthy") : "unhealthy";
        tr.dataset.status = tone;
        const wait = !c.connected && typeof c.retry_in === "number" ? `next try in ${seconds(c.retry_in)}` : null;
        tr.append(
          cell(c.name, "name"),
          badge(c.state),
          cell(c.endpoint),
          cell(c.connected ? seconds(c.uptime) : wait, "num"),
          cell(number(c.reconnect_count), "num"),
          cell(number(c.messages_sent), "num"),
          cell(number(c.messages_received), "num"),
          cell(number(c.buffered), "num"),
          cell(millis(c.ping_rtt), "num"),
          cell(c.last_error, "error"),
        );
        return tr;
      }),
    );
    clearTimeout(connectionTimer);
    if (connections.length) connectionTimer = setTimeout(() => refresh("connections"), CONNECTION_REFRESH * 1000);
  }

  function setProblem(name, text) {
    const section = document.getElementById(name);
    let note = section.querySelector(".problem");
    if (!text) {
      if (note) note.remove();
      return;
    }
    if (!note) {
      note = document.createElement("p");
      note.className = "problem";
      section.querySelector("h2").after(note);
    }
    note.textContent = `Could not refresh: ${text}`;
  }

  // -- start ---------------------------------------------------------------------------

  showMode();
  poller.start(); // polls at the hint until the stream is open (it may never be, behind a proxy)
  connect();
})();
