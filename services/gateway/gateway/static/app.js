// Butakero's dashboard: request a song, watch its stages live over the
// operation's WebSocket, browse the catalog and download DCA files. Plain
// JavaScript, no build step, nothing loaded from elsewhere; every API call
// is same-origin and carries the API key saved in localStorage.
"use strict";

(() => {
  const KEY_STORE = "butakero.apiKey";
  const OPS_STORE = "butakero.operations";
  const MAX_OPS = 10;
  const STAGES = ["resolve", "fetch", "encode"];
  const PAGE = 20;

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };

  // ---- storage (localStorage may be unavailable: private modes) ----
  const store = {
    get(k, def) { try { const v = localStorage.getItem(k); return v === null ? def : v; } catch { return def; } },
    set(k, v) { try { localStorage.setItem(k, v); } catch { /* not kept */ } },
  };
  const apiKey = () => store.get(KEY_STORE, "");

  // ---- the API ----
  class APIError extends Error {
    constructor(status, code, message) {
      super(code ? `${message} (${code})` : message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const key = apiKey();
    if (key) headers.set("X-API-Key", key);
    if (!headers.has("Accept")) headers.set("Accept", "application/json");
    let res;
    try {
      res = await fetch(path, { ...options, headers, credentials: "same-origin" });
    } catch (e) {
      throw new APIError(0, "", "the server cannot be reached");
    }
    if (!res.ok) {
      let code = "", message = `HTTP ${res.status}`;
      try {
        const body = await res.json();
        if (body && body.error) ({ code, message } = body.error);
      } catch { /* not the API's shape */ }
      throw new APIError(res.status, code, message);
    }
    return res;
  }

  // A random Idempotency-Key, so a retried click never starts two
  // operations. crypto.getRandomValues works on plain http too.
  function idempotencyKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return "dash-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // ---- operations ----
  const operations = new Map(); // id -> view

  function rememberOps() {
    const list = [...operations.values()].slice(-MAX_OPS).map((v) => ({ id: v.id, query: v.query }));
    store.set(OPS_STORE, JSON.stringify(list));
  }

  function operationView(id, query) {
    const stages = {};
    const grid = el("div", { class: "stages" });
    for (const s of STAGES) {
      const fill = el("div", { class: "fill" });
      const bar = el("div", { class: "bar", role: "progressbar", "aria-label": s, "aria-valuemin": "0", "aria-valuemax": "100" }, fill);
      const pct = el("span", { class: "stage-pct" });
      const row = el("div", { class: "stage", "data-stage": s, "data-state": "waiting" },
        el("span", { class: "stage-name", text: s }), bar, pct);
      grid.append(row);
      stages[s] = { row, bar, fill, pct, state: "waiting", percent: 0, measured: false };
    }
    const title = el("span", { class: "op-title", text: query || id });
    const status = el("span", { class: "op-status", text: "in progress" });
    const error = el("p", { class: "op-error error", role: "alert" });
    error.hidden = true;
    const actions = el("div", { class: "op-actions" });
    const li = el("li", { class: "op", "data-op": id, "data-status": "in_progress" },
      el("div", { class: "op-head" }, title, status), grid, error, actions);
    $("operations").prepend(li);
    const view = { id, query, li, title, status, error, actions, stages, songID: "", seen: new Set(), final: false, socket: null, tries: 0 };
    operations.set(id, view);
    return view;
  }

  // setStage shows a stage's state; percent, when given, is a measure.
  // A running stage without a measure yet shows an indeterminate bar.
  function setStage(view, name, state, percent) {
    const s = view.stages[name];
    if (!s || s.state === "done" || s.state === "failed") return;
    s.state = state;
    if (typeof percent === "number" && isFinite(percent)) {
      s.percent = Math.max(0, Math.min(100, percent));
      s.measured = true;
    }
    if (state === "done") {
      s.percent = 100;
      s.measured = true;
    }
    s.row.dataset.state = state;
    const indeterminate = state === "running" && !s.measured;
    if (indeterminate) s.row.dataset.indeterminate = "";
    else delete s.row.dataset.indeterminate;
    s.fill.style.width = indeterminate ? "" : s.percent + "%";
    s.bar.setAttribute("aria-valuenow", String(Math.floor(s.percent)));
    s.pct.textContent = {
      done: "done",
      failed: "failed",
      running: indeterminate ? "…" : Math.floor(s.percent) + "%",
    }[state] || "";
  }

  function runningStage(view) {
    return STAGES.find((s) => view.stages[s].state === "running") || "";
  }

  function songOf(data) {
    return data && data.song ? data.song : null;
  }

  // apply takes one message of the operation's socket (or history).
  function apply(view, m) {
    if (m.type === "progress") {
      if (view.final) return;
      setStage(view, m.stage, "running", m.percent);
      return;
    }
    if (m.id) {
      if (view.seen.has(m.id)) return;
      view.seen.add(m.id);
    }
    if (m.song_id) view.songID = m.song_id;
    const song = songOf(m.data);
    if (song && song.title) view.title.textContent = song.title;
    switch (m.kind) {
      case "song.requested":
        setStage(view, "resolve", "running");
        break;
      case "video.resolved":
        setStage(view, "resolve", "done");
        setStage(view, "fetch", "running");
        break;
      case "audio.downloaded":
        setStage(view, "resolve", "done");
        setStage(view, "fetch", "done");
        setStage(view, "encode", "running");
        break;
      case "dca.encoded":
        for (const s of STAGES) setStage(view, s, "done");
        break;
      case "upload.done":
        for (const s of STAGES) setStage(view, s, "done");
        finish(view, "success");
        break;
      case "operation.failed": {
        const d = m.data || {};
        const stage = view.stages[d.stage] ? d.stage : runningStage(view) || "resolve";
        setStage(view, stage, "failed");
        finish(view, "failed", d.message || "the operation failed", d.code || "");
        break;
      }
    }
  }

  function finish(view, status, message, code) {
    if (view.final) return;
    view.final = true;
    view.li.dataset.status = status;
    view.status.textContent = status === "success" ? "stored" : "failed";
    if (status === "failed") {
      view.error.textContent = code ? `${message} (${code})` : message;
      view.error.hidden = false;
    } else if (view.songID) {
      view.actions.append(downloadButton(view.songID, "Download DCA"));
      refreshWhenRecorded(view);
    }
    if (view.socket) view.socket.close(1000);
  }

  // refreshWhenRecorded reloads the catalog once the server's state shows
  // the operation ended: that state lags the live events by a moment, and
  // the song is in the catalog by then.
  async function refreshWhenRecorded(view) {
    for (let i = 0, pause = 50; i < 12; i++, pause = Math.min(pause * 2, 1000)) {
      try {
        const op = await (await api(`/v1/operations/${encodeURIComponent(view.id)}`)).json();
        if (op.status !== "in_progress") break;
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, pause));
    }
    loadSongs(true);
  }

  // follow opens the operation's socket: history, then live events and
  // progress until the server closes it after the last event. A socket
  // that ends early is replaced, a few times, after reading the state.
  function follow(view) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${proto}//${location.host}/v1/operations/${encodeURIComponent(view.id)}/events`;
    const key = apiKey();
    if (key) url += "?api_key=" + encodeURIComponent(key); // a browser cannot set headers here
    const ws = new WebSocket(url);
    view.socket = ws;
    ws.onmessage = (e) => {
      try { apply(view, JSON.parse(e.data)); } catch { /* ignore a bad message */ }
    };
    ws.onclose = () => {
      view.socket = null;
      if (!view.final) recover(view);
    };
  }

  // recover reads the operation's state after a socket ended early: it
  // shows why when the operation cannot be read, and reconnects while it
  // runs.
  async function recover(view) {
    try {
      const res = await api(`/v1/operations/${encodeURIComponent(view.id)}`);
      const op = await res.json();
      for (const ev of op.events || []) apply(view, ev);
      if (!view.final && op.status === "success") finish(view, "success");
      if (!view.final && op.status === "failed") finish(view, "failed", op.message, op.error_code);
    } catch (e) {
      if (e.status === 404 || e.status === 401 || e.status === 400) {
        view.final = true;
        view.li.dataset.status = "failed";
        view.status.textContent = "unavailable";
        view.error.textContent = e.message;
        view.error.hidden = false;
        return;
      }
    }
    if (view.final) return;
    if (view.tries++ >= 6) {
      view.error.textContent = "lost the connection to the server; reload to try again";
      view.error.hidden = false;
      return;
    }
    setTimeout(() => follow(view), Math.min(500 * 2 ** view.tries, 8000));
  }

  async function requestSong(query) {
    const res = await api("/v1/operations", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey() },
      body: JSON.stringify({ query }),
    });
    const op = await res.json();
    const view = operations.get(op.operation_id) || operationView(op.operation_id, query);
    if (op.song_id) view.songID = op.song_id;
    rememberOps();
    follow(view);
  }

  // ---- downloads ----
  function downloadButton(songID, label) {
    const b = el("button", { type: "button", class: "secondary download", "data-song": songID, text: label });
    b.addEventListener("click", () => download(songID, b));
    return b;
  }

  // download saves a DCA file. Without a key the browser streams it to
  // disk itself; with one, a link cannot carry the header, so the file is
  // fetched and handed over as a blob.
  async function download(songID, button) {
    const path = `/v1/songs/${encodeURIComponent(songID)}/dca`;
    const a = el("a", { download: songID + ".dca" });
    if (!apiKey()) {
      a.href = path;
      a.click();
      return;
    }
    button.disabled = true;
    try {
      const res = await api(path, { headers: { Accept: "audio/x-dca" } });
      const url = URL.createObjectURL(await res.blob());
      a.href = url;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (e) {
      showError("catalog-error", e.message);
    } finally {
      button.disabled = false;
    }
  }

  // ---- the player ----
  // play loads the song's Ogg Opus (/ogg, built from the DCA's packets)
  // into the page's audio element. An audio element cannot send the API
  // key, so with a key the stream is fetched and played as a blob.
  let playing = "";
  async function play(s, button) {
    const audio = $("player-audio");
    const path = `/v1/songs/${encodeURIComponent(s.id)}/ogg`;
    $("player").hidden = false;
    $("player-title").textContent = s.title || s.id;
    const shown = $("player-duration");
    shown.textContent = "";
    delete shown.dataset.seconds;
    if (playing.startsWith("blob:")) URL.revokeObjectURL(playing);
    button.disabled = true;
    try {
      if (apiKey()) {
        const res = await api(path, { headers: { Accept: "audio/ogg" } });
        playing = URL.createObjectURL(await res.blob());
      } else {
        playing = path;
      }
      audio.src = playing;
      audio.load();
    } catch (e) {
      showError("catalog-error", e.message);
    } finally {
      button.disabled = false;
    }
  }
  $("player-audio").addEventListener("loadedmetadata", () => {
    const d = $("player-audio").duration;
    const shown = $("player-duration");
    if (Number.isFinite(d)) {
      shown.textContent = formatDuration(d * 1000);
      shown.dataset.seconds = String(d);
    }
  });
  $("player-audio").addEventListener("error", () => {
    showError("catalog-error", "the browser cannot play this song");
  });

  function playButton(s) {
    const b = el("button", { type: "button", class: "secondary play", "data-song": s.id, text: "Play" });
    b.addEventListener("click", () => play(s, b));
    return b;
  }

  // ---- the catalog ----
  let cursor = "";
  let loading = 0;

  function formatDuration(ms) {
    if (!ms) return "";
    const s = Math.round(ms / 1000);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
  }

  function formatSize(n) {
    if (!n) return "";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }

  // songRow is one catalog entry. Without a known duration, a stored
  // song's length is its DCA's: 20 ms frames.
  function songRow(s) {
    const title = el("td");
    if (s.thumbnail_url && s.thumbnail_url.startsWith("https://")) {
      title.append(el("img", { src: s.thumbnail_url, alt: "", loading: "lazy", referrerpolicy: "no-referrer" }));
    }
    if (/^https?:\/\//.test(s.url || "")) {
      title.append(el("a", { href: s.url, rel: "noopener noreferrer", target: "_blank", text: s.title || s.id }));
    } else {
      title.append(s.title || s.id);
    }
    const action = el("td");
    if (s.stored) action.append(playButton(s), downloadButton(s.id, "Download"));
    return el("tr", { "data-song": s.id }, title, el("td", { text: s.channel || "" }),
      el("td", { class: "num", text: formatDuration(s.duration_ms || (s.dca_frames || 0) * 20) }),
      el("td", { class: "num", text: s.stored ? formatSize(s.dca_size) : "not stored" }), action);
  }

  async function loadSongs(reset) {
    const ticket = ++loading;
    const q = $("search").value.trim();
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (q) params.set("q", q);
    if (!reset && cursor) params.set("cursor", cursor);
    try {
      const res = await api("/v1/songs?" + params);
      const page = await res.json();
      if (ticket !== loading) return; // a newer search answered first
      hideError("catalog-error");
      const body = $("songs");
      if (reset) body.replaceChildren();
      for (const s of page.songs || []) body.append(songRow(s));
      cursor = page.next_cursor || "";
      $("more").hidden = !cursor;
      $("catalog-empty").hidden = body.children.length > 0;
    } catch (e) {
      if (ticket === loading) showError("catalog-error", e.message);
    }
  }

  function showError(id, message) {
    const p = $(id);
    p.textContent = message;
    p.hidden = false;
  }

  function hideError(id) {
    $(id).hidden = true;
  }

  // ---- start ----
  function init() {
    const keyInput = $("api-key");
    keyInput.value = apiKey();
    $("key-state").textContent = apiKey() ? "saved" : "";
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      store.set(KEY_STORE, keyInput.value.trim());
      $("key-state").textContent = keyInput.value.trim() ? "saved" : "cleared";
      loadSongs(true);
    });
    $("request-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const input = $("query");
      const query = input.value.trim();
      if (!query) return;
      const button = $("request-button");
      button.disabled = true;
      hideError("request-error");
      try {
        await requestSong(query);
        input.value = "";
      } catch (err) {
        showError("request-error", err.message);
      } finally {
        button.disabled = false;
      }
    });
    $("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      loadSongs(true);
    });
    $("more").addEventListener("click", () => loadSongs(false));

    // Operations of earlier visits: their history replays to the end.
    let saved = [];
    try { saved = JSON.parse(store.get(OPS_STORE, "[]")) || []; } catch { saved = []; }
    for (const o of saved.slice(-MAX_OPS)) {
      if (o && typeof o.id === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(o.id) && !operations.has(o.id)) {
        follow(operationView(o.id, typeof o.query === "string" ? o.query : ""));
      }
    }
    loadSongs(true);
  }

  init();
})();
