// The torrent list, kept fresh by stalwart-poller.js at the pace the server's breaker asks for.
// window.torrentUpdater.getDebugInfo() says what it does now and why (seed 000's console API).
"use strict";

(() => {
  const statusLine = document.getElementById("status");
  const table = document.getElementById("torrents");
  const empty = document.getElementById("empty");
  let last = null; // the latest answer's body (or null when the site itself did not answer)

  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  function size(bytes) {
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function render(torrents) {
    const rows = torrents.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.hash = t.hash;
      tr.append(cell(t.name), cell(size(t.size), "num"), cell(`${(t.progress * 100).toFixed(1)} %`, "num"), cell(t.state));
      return tr;
    });
    table.querySelector("tbody").replaceChildren(...rows);
    table.hidden = rows.length === 0;
    empty.hidden = rows.length > 0;
  }

  // The status line, with a countdown to the next try while qBittorrent is away.
  function showStatus() {
    const info = updater.getDebugInfo();
    const wait = info.nextPollIn === null ? null : Math.ceil(info.nextPollIn);
    const retrying = wait === null ? "" : `, retrying in ${wait} s`;
    let state, text;
    if (last === null && info.lastError) {
      state = "unreachable";
      text = `The site does not answer (${info.lastError})${retrying}`;
    } else if (last === null) {
      state = "loading";
      text = "Loading…";
    } else if (last.torrents) {
      state = last.state === "half_open" ? "recovering" : "available";
      text = last.state === "half_open" ? "qBittorrent is back: checking it holds" : "qBittorrent is available";
    } else {
      state = "unavailable";
      text = `qBittorrent unavailable${retrying}`;
    }
    statusLine.dataset.state = state;
    statusLine.dataset.interval = info.currentInterval === null ? "" : String(info.currentInterval);
    statusLine.textContent = text;
    statusLine.title = info.reason || "";
  }

  const updater = StalwartPoller.poll("/api/torrents", {
    name: "TorrentUpdater",
    timeout: 15, // the server answers within 5 s; a hung request is abandoned after 15
    onupdate(event) {
      const body = event.detail.body;
      last = body && typeof body === "object" ? body : null;
      if (last && Array.isArray(last.torrents)) render(last.torrents);
      else {
        table.hidden = true;
        empty.hidden = true;
      }
    },
    onerror(event) {
      if (event.detail.status === null) last = null; // no answer at all: say so
    },
    onpoll: showStatus,
  });
  window.torrentUpdater = updater;
  setInterval(showStatus, 1000);
})();
