// The syncd status page: reads the control API with the bearer token (kept in this
// tab's sessionStorage only) and follows /v1/events with fetch streaming, since
// EventSource cannot send an Authorization header. No framework, no build step.

const TOKEN_KEY = "syncd-token";
const PAGE_SIZE = 20;
const FINAL = new Set(["completed", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);

const state = {
  jobs: [],
  runs: [],
  before: null,         // the page shown now (null: newest)
  nextBefore: null,
  progress: new Map(),  // run id -> the last progress event: processed, position, size, rate
  detail: null,         // run id shown in the detail panel
  streaming: false,
};

// -- the API ------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function api(path, options = {}) {
  const init = { ...options, headers: headers(options.body ? { "Content-Type": "application/json" } : {}) };
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", `the daemon does not answer (${err.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status, "bad_answer", `HTTP ${response.status} without a JSON answer`);
  }
  if (response.status === 401) {
    askToken("The daemon wants a valid API token.");
  }
  if (!body.success) {
    const error = body.error || {};
    throw new ApiError(response.status, error.code || "error", error.message || `HTTP ${response.status}`);
  }
  return body.data;
}

// -- messages and the token -----------------------------------------------------------

function say(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = !text;
}

function failed(err) {
  if (err.status === 401) return;  // the token dialog says it
  say(err.code && err.code !== "error" ? `${err.message} (${err.code})` : err.message);
}

function askToken(why) {
  const dialog = $("token-dialog");
  if (why) $("token-why").textContent = why;
  if (!dialog.open) {
    dialog.showModal();
    $("token-input").focus();
  }
}

function setupToken() {
  $("token-button").addEventListener("click", () => askToken(
    "Enter the daemon's bearer token. It is kept in this tab only."));
  $("token-cancel").addEventListener("click", () => $("token-dialog").close());
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token-input").value = "";
    $("token-dialog").close();
    say("");
    refresh();
    restartStream();
  });
}

// -- small DOM helpers ----------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return el("time", { datetime: iso, title: iso, text: date.toLocaleString() });
}

function badge(status) {
  return el("span", { class: `badge s-${status}`, text: status.replace("_", " ") });
}

function duration(seconds) {
  if (!isFinite(seconds) || seconds < 0) return "";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

// -- jobs -----------------------------------------------------------------------------

async function loadJobs() {
  const data = await api("v1/jobs");
  state.jobs = data.jobs;
  renderJobs();
  const select = $("filter-job");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "all jobs" }),
    ...state.jobs.map((job) => el("option", { value: job.name, text: job.name })));
  select.value = chosen;
}

function renderJobs() {
  const body = $("jobs-body");
  if (!state.jobs.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 5, text: "no jobs configured" })));
    return;
  }
  body.replaceChildren(...state.jobs.map((job) => {
    const last = job.lastRun;
    const lastCell = last
      ? el("td", {}, badge(last.status), " ",
          el("button", { type: "button", class: "link", onclick: () => showRun(last.syncRunId),
                         "aria-label": `Show run ${last.syncRunId} of ${job.name}` },
             `#${last.syncRunId}`))
      : el("td", { text: "never ran" });
    const form = el("form", { class: "trigger", onsubmit: (event) => {
      event.preventDefault();
      triggerJob(job, form);
    } });
    if (job.source && job.source.path) {
      const id = `file-${job.name}`;
      form.append(el("label", { for: id, class: "sr-only", text: `File for ${job.name}` }),
        el("input", { id, name: "file", type: "text", placeholder: job.source.path,
                      "aria-label": `File for ${job.name} (optional)`, autocomplete: "off" }));
    }
    form.append(el("button", { type: "submit", "aria-label": `Trigger ${job.name}` }, "Trigger"));
    return el("tr", {},
      el("th", { scope: "row", text: job.name }),
      el("td", { text: job.triggers.join(", ") }),
      el("td", {}, when(job.nextRunAt)),
      lastCell,
      el("td", {}, form));
  }));
}

async function triggerJob(job, form) {
  const body = { job: job.name };
  const file = form.elements.file ? form.elements.file.value.trim() : "";
  if (file) body.sourceIdentifier = file;
  try {
    const data = await api("v1/sync/trigger", { method: "POST", body: JSON.stringify(body) });
    say(`Run ${data.syncRunId} of ${job.name} started.`, "info");
    await loadRuns();
  } catch (err) {
    failed(err);
  }
}

// -- runs -----------------------------------------------------------------------------

function filterQuery() {
  const params = new URLSearchParams({ limit: PAGE_SIZE });
  const job = $("filter-job").value;
  const status = $("filter-status").value;
  if (job) params.set("job", job);
  if (status) params.set("status", status);
  if (state.before) params.set("before", state.before);
  return params.toString();
}

async function loadRuns() {
  const data = await api(`v1/sync/runs?${filterQuery()}`);
  state.runs = data.runs;
  state.nextBefore = data.nextBefore;
  renderRuns();
}

function renderRuns() {
  const body = $("runs-body");
  $("older").disabled = !state.nextBefore;
  $("newest").disabled = !state.before;
  if (!state.runs.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7, text: "no runs" })));
    return;
  }
  body.replaceChildren(...state.runs.map(runRow));
}

function runRow(run) {
  const id = run.syncRunId;
  const actions = el("td", { class: "actions" },
    el("button", { type: "button", onclick: () => showRun(id), "aria-label": `Show run ${id}` }, "Show"));
  if (run.status === "failed") {
    actions.append(el("button", { type: "button", onclick: () => act(id, "retry"),
                                  "aria-label": `Retry run ${id}` }, "Retry"));
  }
  if (run.status === "pending" || run.status === "in_progress") {
    actions.append(el("button", { type: "button", class: "danger", onclick: () => act(id, "cancel"),
                                  "aria-label": `Cancel run ${id}` }, "Cancel"));
  }
  return el("tr", { id: `run-${id}`, "data-status": run.status },
    el("th", { scope: "row", text: `#${id}` }),
    el("td", { text: run.job }),
    el("td", { text: run.trigger }),
    el("td", { class: "status" }, badge(run.status)),
    el("td", { class: "progress" }, progressCell(run)),
    el("td", {}, when(run.startedAt || run.createdAt)),
    actions);
}

function progressCell(run) {
  const live = state.progress.get(run.syncRunId);
  const processed = live ? live.processed : run.itemsProcessed;
  const wrap = el("div", { class: "progress-wrap" });
  if (live && live.size && !FINAL.has(run.status)) {
    const share = Math.min(1, live.position / live.size);
    const percent = Math.round(share * 100);
    wrap.append(el("progress", { max: 100, value: percent,
                                 "aria-label": `Run ${run.syncRunId}: ${percent}% read` }));
    // bytes left over bytes per item is items left; over items per second, seconds left
    const perItem = processed > 0 ? live.position / processed : NaN;
    const eta = live.rate > 0 ? (live.size - live.position) / perItem / live.rate : NaN;
    const text = `${percent}% · ${processed} items · ${live.rate}/s` + (isFinite(eta) ? ` · ETA ${duration(eta)}` : "");
    wrap.append(el("span", { class: "progress-text", text }));
  } else if (live && !FINAL.has(run.status)) {
    wrap.append(el("span", { class: "progress-text", text: `${processed} items · ${live.rate}/s` }));
  } else {
    const failedItems = run.itemsFailed ? ` · ${run.itemsFailed} failed` : "";
    wrap.append(el("span", { class: "progress-text", text: `${processed} items${failedItems}` }));
  }
  return wrap;
}

function updateRow(runId) {
  const run = state.runs.find((r) => r.syncRunId === runId);
  const row = document.getElementById(`run-${runId}`);
  if (!run || !row) return;
  row.querySelector("td.progress").replaceChildren(progressCell(run));
}

async function act(runId, action) {
  try {
    const data = await api(`v1/sync/${runId}/${action}`, { method: "POST", body: "{}" });
    if (action === "retry") say(`Run ${data.syncRunId} retries run ${runId}.`, "info");
    else say(`Run ${runId}: ${data.status}.`, "info");
    await loadRuns();
  } catch (err) {
    failed(err);
  }
}

// -- one run --------------------------------------------------------------------------

const COUNTERS = ["Processed", "Inserted", "Updated", "Unchanged", "Skipped", "Failed", "Missing"];

async function showRun(runId, focus = true) {
  let run;
  try {
    run = await api(`v1/sync/${runId}`);
  } catch (err) {
    failed(err);
    return;
  }
  state.detail = runId;
  const panel = $("detail");
  $("detail-title").textContent = `Run #${run.syncRunId} · ${run.job}`;
  const facts = el("dl", { class: "facts" });
  const fact = (name, value) => facts.append(el("dt", { text: name }), el("dd", {}, value));
  fact("Status", badge(run.status));
  fact("Trigger", run.trigger);
  fact("Source", run.sourceIdentifier || "—");
  fact("Started", when(run.startedAt));
  fact("Completed", when(run.completedAt));
  if (run.parentRun) fact("Retry of", `#${run.parentRun}`);
  if (run.errorMessage) fact("Message", run.errorMessage);
  const counters = el("dl", { class: "counters" });
  for (const name of COUNTERS) {
    counters.append(el("div", {}, el("dt", { text: name.toLowerCase() }),
      el("dd", { text: String(run[`items${name}`] ?? 0) })));
  }
  const parts = [facts, el("h3", { text: "Counters" }), counters];
  parts.push(el("h3", { text: "Checkpoint" }),
    run.checkpoint ? el("pre", { class: "checkpoint", text: JSON.stringify(run.checkpoint, null, 2) })
                   : el("p", { text: "none" }));
  parts.push(el("h3", { text: `Errors (${run.errorsTotal})` }));
  if (run.errors.length) {
    const rows = run.errors.map((e) => el("tr", { class: "error-row" },
      el("td", { text: e.item || "—" }), el("td", { text: e.type }), el("td", { text: e.code }),
      el("td", { text: e.message }), el("td", { text: e.retryable ? "yes" : "no" })));
    parts.push(el("div", { class: "scroll", tabindex: 0, role: "region", "aria-label": "Errors table" },
      el("table", { class: "errors" },
      el("caption", { class: "sr-only", text: `Errors of run ${run.syncRunId}` }),
      el("thead", {}, el("tr", {}, ...["Line / item", "Type", "Code", "Message", "Retryable"]
        .map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...rows))));
    if (run.errorsTotal > run.errors.length) {
      parts.push(el("p", { text: `First ${run.errors.length} of ${run.errorsTotal} errors shown.` }));
    }
  } else {
    parts.push(el("p", { text: "none" }));
  }
  const artifacts = run.artifacts || [];
  if (artifacts.length) {
    parts.push(el("h3", { text: "Artifacts" }), el("ul", { class: "artifacts" },
      ...artifacts.map((a) => el("li", {}, a.url && /\.(png|jpe?g|webp)$/i.test(a.url)
        ? el("a", { href: a.url }, el("img", { src: a.url, alt: a.name || `artifact of run ${run.syncRunId}` }))
        : el("a", { href: a.url || "#", text: a.name || a.url })))));
  }
  const buttons = el("div", { class: "buttons" });
  if (run.status === "failed") buttons.append(el("button", { type: "button", onclick: () => act(run.syncRunId, "retry") }, "Retry this run"));
  if (!FINAL.has(run.status)) buttons.append(el("button", { type: "button", class: "danger", onclick: () => act(run.syncRunId, "cancel") }, "Cancel this run"));
  buttons.append(el("button", { type: "button", onclick: closeRun }, "Close"));
  parts.push(buttons);
  $("detail-body").replaceChildren(...parts);
  panel.hidden = false;
  if (focus) panel.focus();
}

function closeRun() {
  state.detail = null;
  $("detail").hidden = true;
  $("runs").focus();
}

// -- live events ------------------------------------------------------------------------

let streamAbort = null;
let refreshTimer = null;

function soonRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    loadRuns().catch(failed);
    loadJobs().catch(failed);
  }, 150);
}

function onEvent(kind, data) {
  const id = data.runId;
  if (kind === "progress") {
    state.progress.set(id, { processed: data.processed, position: data.position, size: data.size,
      rate: data.rate });
    const run = state.runs.find((r) => r.syncRunId === id);
    if (run && run.status === "pending") {
      run.status = "in_progress";
      soonRefresh();
    }
    updateRow(id);
  } else if (kind === "run_started") {
    soonRefresh();
  } else if (kind === "run_finished") {
    state.progress.delete(id);
    soonRefresh();
    if (state.detail === id) showRun(id, false);
  } else if (kind === "error" && state.detail === id) {
    showRun(id, false);
  }
}

function live(text, ok) {
  const box = $("live");
  box.textContent = text;
  box.className = ok ? "live ok" : "live";
}

async function stream() {
  streamAbort = new AbortController();
  const response = await fetch("v1/events", { headers: headers(), signal: streamAbort.signal });
  if (response.status === 401) {
    askToken("The daemon wants a valid API token.");
    throw new ApiError(401, "unauthorized", "token needed");
  }
  if (!response.ok || !response.body) throw new Error(`events: HTTP ${response.status}`);
  live("live", true);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let kind = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) {
        try {
          onEvent(kind, JSON.parse(data));
        } catch (err) {
          console.error("bad event", err);
        }
      }
    }
  }
}

async function follow() {
  if (state.streaming) return;
  state.streaming = true;
  let wait = 1000;
  while (state.streaming) {
    try {
      await stream();
      wait = 1000;
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status === 401) {
        state.streaming = false;
        live("token needed", false);
        return;
      }
    }
    live("reconnecting…", false);
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 15000);
    soonRefresh();  // catch up on what the gap missed
  }
}

function restartStream() {
  state.streaming = false;
  if (streamAbort) streamAbort.abort();
  follow();
}

// -- start ------------------------------------------------------------------------------

async function refresh() {
  try {
    await Promise.all([loadJobs(), loadRuns()]);
  } catch (err) {
    failed(err);
  }
}

function setupRuns() {
  $("filter").addEventListener("change", () => {
    state.before = null;
    loadRuns().catch(failed);
  });
  $("filter").addEventListener("submit", (event) => event.preventDefault());
  $("older").addEventListener("click", () => {
    state.before = state.nextBefore;
    loadRuns().catch(failed);
  });
  $("newest").addEventListener("click", () => {
    state.before = null;
    loadRuns().catch(failed);
  });
}

setupToken();
setupRuns();
refresh().then(follow);
