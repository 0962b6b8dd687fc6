// The flux console: executions, one execution (its events and a timeline of task attempts),
// workers and schedules, over the server's API under ui/api. Every element is built with
// textContent (never HTML from data), every request carries X-Flux-Console: 1.
"use strict";

const STATES = ["CREATED", "SCHEDULED", "CLAIMED", "RUNNING", "PAUSED", "RESUMING", "RESUME_SCHEDULED",
  "RESUME_CLAIMED", "CANCELLING", "CANCELLED", "COMPLETED", "FAILED"];
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const PAGE = 20;

// ---- helpers -------------------------------------------------------------------------------

/** An element with attributes (`class`, `data-*`, properties for the rest) and children. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("data-") || key === "for" || key === "role" || key.startsWith("aria-")) el.setAttribute(key, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el[key] = value;
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A request to the API; the JSON answer, or an Error with the server's `detail`. */
async function api(path, options = {}) {
  const headers = { "X-Flux-Console": "1" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch("ui/api" + path, {
    method: options.method || "GET", headers, body: options.body, credentials: "same-origin",
  });
  if (response.status === 401) {
    location.href = "ui/login";
    throw new Error("signed out");
  }
  const text = await response.text();
  let data = text;
  try { data = JSON.parse(text); } catch (_) { /* not JSON */ }
  if (!response.ok) throw new Error((data && data.detail) || response.status + " " + response.statusText);
  return data;
}

/**
 * Reads an SSE answer of the API, calling `onEvent` for each event: with fetch (EventSource
 * can neither post nor send the console's header). Posts `body` when given; `signal` stops it.
 */
async function stream(path, body, onEvent, signal) {
  const headers = { "X-Flux-Console": "1", "Accept": "text/event-stream" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch("ui/api" + path, {
    method: body === undefined ? "GET" : "POST", credentials: "same-origin", body, headers, signal,
  });
  if (!response.ok) {
    let detail = response.status + " " + response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* keep the status */ }
    throw new Error(detail);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) {
        try { onEvent(event, JSON.parse(data)); } catch (_) { onEvent(event, data); }
      }
    }
  }
}

/** Replaces the children of `el` with `children`, leaving out the absent ones. */
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function stateBadge(state, id) {
  return h("span", { class: "state state-" + state, id, "data-state": state }, state);
}

function when(text) {
  if (!text) return "";
  const date = new Date(text);
  return isNaN(date) ? text : date.toLocaleString();
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function status(text, problem) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = problem ? "problem" : "";
}

function params(query) {
  return Object.fromEntries(new URLSearchParams(query || ""));
}

/** A button that acts on the second click: the first arms it (on-call hands are tired). */
function confirmButton(label, armedLabel, id, action) {
  const button = h("button", { class: "danger", id, type: "button" }, label);
  button.addEventListener("click", async () => {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = armedLabel;
      return;
    }
    button.disabled = true;
    try { await action(); } catch (e) { status(e.message, true); }
  });
  return button;
}

// ---- a checked JSON input ------------------------------------------------------------------

/** What is wrong with `value` against the (subset of) JSON Schema `schema`, or null. */
function schemaProblem(value, schema, where = "input", root = schema) {
  if (!schema || schema === true) return null;
  if (schema.$ref && schema.$ref.startsWith("#/")) {
    const target = schema.$ref.slice(2).split("/").reduce((node, key) => node && node[key], root);
    return schemaProblem(value, target, where, root);
  }
  for (const key of ["anyOf", "oneOf"]) {
    if (Array.isArray(schema[key])) {
      return schema[key].some((s) => !schemaProblem(value, s, where, root)) ? null : where + " matches none of its allowed shapes";
    }
  }
  if (Array.isArray(schema.allOf)) {
    for (const s of schema.allOf) { const p = schemaProblem(value, s, where, root); if (p) return p; }
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    return where + " must be one of " + schema.enum.map((e) => JSON.stringify(e)).join(", ");
  }
  const types = schema.type === undefined ? null : [].concat(schema.type);
  if (types) {
    const actual = value === null ? "null" : Array.isArray(value) ? "array"
      : Number.isInteger(value) ? "integer" : typeof value;
    const fits = types.some((t) => t === actual || (t === "number" && actual === "integer"));
    if (!fits) return where + " must be " + types.join(" or ") + ", not " + actual;
    if (actual === "integer" || actual === "number") {
      if (schema.minimum !== undefined && value < schema.minimum) return where + " must be at least " + schema.minimum;
      if (schema.maximum !== undefined && value > schema.maximum) return where + " must be at most " + schema.maximum;
    }
  }
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const key of schema.required || []) {
      if (!(key in value)) return where + " lacks the field `" + key + "`";
    }
    for (const [key, sub] of Object.entries(schema.properties || {})) {
      if (key in value) { const p = schemaProblem(value[key], sub, where + "." + key, root); if (p) return p; }
    }
  }
  if (Array.isArray(value) && schema.items && typeof schema.items === "object") {
    for (let i = 0; i < value.length; i++) {
      const p = schemaProblem(value[i], schema.items, where + "[" + i + "]", root);
      if (p) return p;
    }
  }
  return null;
}

/** The JSON in `textarea`, or throws with what is wrong (not JSON, or not the schema). */
function readInput(textarea, schema) {
  const text = textarea.value.trim();
  let value;
  try { value = text === "" ? null : JSON.parse(text); } catch (e) { throw new Error("the input is not JSON: " + e.message); }
  const problem = schemaProblem(value, schema);
  if (problem) throw new Error(problem);
  return value;
}

// ---- views ---------------------------------------------------------------------------------

let refresh = null; // the running view's timer
let following = null; // the running view's stream, stopped when the view changes

async function executionsView(query) {
  const view = document.getElementById("view");
  const filter = params(query);
  const offset = Number(filter.offset || 0);
  const catalog = await api("/workflows");

  const counts = h("div", { class: "counts", id: "counts" });
  const table = h("tbody", { id: "executions" });
  const pager = h("div", { class: "pager" });

  const workflowSelect = (id, chosen, any) => h("select", { id },
    any ? h("option", { value: "" }, "any workflow") : null,
    catalog.map((w) => h("option", { value: w.name, selected: w.name === chosen }, w.name)));
  const filterWorkflow = workflowSelect("filter-workflow", filter.workflow, true);
  const filterState = h("select", { id: "filter-state" }, h("option", { value: "" }, "any state"),
    STATES.map((s) => h("option", { value: s, selected: s === filter.state }, s)));
  const applyFilter = () => {
    const q = new URLSearchParams();
    if (filterWorkflow.value) q.set("workflow", filterWorkflow.value);
    if (filterState.value) q.set("state", filterState.value);
    location.hash = "#/executions" + (q.toString() ? "?" + q : "");
  };
  filterWorkflow.addEventListener("change", applyFilter);
  filterState.addEventListener("change", applyFilter);

  // Run a workflow: its input checked against its schema when the catalog has one.
  const runWorkflow = workflowSelect("run-workflow", filter.workflow || (catalog[0] && catalog[0].name), false);
  const runInput = h("textarea", { id: "run-input", placeholder: "input as JSON, e.g. \"Ada\" or {\"n\": 3}" });
  const schemaNote = h("div", { class: "muted", id: "run-schema" });
  const showSchema = () => {
    const entry = catalog.find((w) => w.name === runWorkflow.value);
    schemaNote.textContent = entry && entry.input_schema ? "input schema: " + JSON.stringify(entry.input_schema) : "";
  };
  runWorkflow.addEventListener("change", showSchema);
  showSchema();
  const runResult = h("div", { id: "run-result" });
  const runButton = h("button", { id: "run-button", type: "submit" }, "Run");
  const runForm = h("form", { class: "inline", id: "run-form" },
    h("label", { for: "run-workflow" }, "Workflow"), runWorkflow, runButton);
  runForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const entry = catalog.find((w) => w.name === runWorkflow.value);
    let input;
    try { input = readInput(runInput, entry && entry.input_schema); } catch (e) {
      fill(runResult, h("span", { class: "error", id: "run-error" }, e.message));
      return;
    }
    runButton.disabled = true;
    const badge = h("span", {});
    const link = h("a", { id: "run-link" });
    fill(runResult, "Execution ", link, " ", badge);
    try {
      await stream("/workflows/" + encodeURIComponent(runWorkflow.value) + "/run/stream", JSON.stringify(input),
        (event, data) => {
          if (!data || !data.execution_id || !data.state) return;
          link.textContent = data.execution_id;
          link.href = "#/executions/" + encodeURIComponent(data.execution_id);
          fill(badge, stateBadge(data.state, "run-state"));
          reload();
        });
    } catch (e) {
      runResult.append(h("span", { class: "error", id: "run-error" }, " " + e.message));
    } finally {
      runButton.disabled = false;
    }
  });

  fill(view,
    h("h1", {}, "Executions"),
    counts,
    h("section", { class: "panel" }, h("h2", {}, "Run a workflow"), runForm, runInput, schemaNote, runResult),
    h("div", { class: "toolbar" }, "Show", filterWorkflow, filterState),
    h("table", {}, h("thead", {}, h("tr", {}, ["Execution", "Workflow", "State", "Worker", "Created", "Updated"].map((t) => h("th", {}, t)))), table),
    pager);

  async function reload() {
    const q = new URLSearchParams();
    if (filter.workflow) q.set("workflow", filter.workflow);
    if (filter.state) q.set("state", filter.state);
    q.set("limit", PAGE);
    q.set("offset", offset);
    const page = await api("/executions?" + q);
    fill(table, ...page.executions.map((e) => {
      const row = h("tr", { class: "row", "data-id": e.execution_id },
        h("td", { class: "mono" }, h("a", { href: "#/executions/" + encodeURIComponent(e.execution_id) }, e.execution_id)),
        h("td", {}, e.workflow_name), h("td", {}, stateBadge(e.state)), h("td", {}, e.worker || ""),
        h("td", {}, when(e.created_at)), h("td", {}, when(e.updated_at)));
      row.addEventListener("click", (ev) => { if (ev.target.tagName !== "A") location.hash = "#/executions/" + encodeURIComponent(e.execution_id); });
      return row;
    }));
    if (page.executions.length === 0) table.append(h("tr", {}, h("td", { colSpan: 6, class: "muted" }, "No executions.")));
    const move = (to) => { const p = new URLSearchParams(filter); p.set("offset", to); location.hash = "#/executions?" + p; };
    fill(pager,
      h("button", { class: "secondary", type: "button", disabled: offset === 0, onclick: () => move(Math.max(0, offset - PAGE)) }, "Newer"),
      h("span", { class: "muted", id: "page-info" }, page.total === 0 ? "0 of 0"
        : (offset + 1) + "–" + (offset + page.executions.length) + " of " + page.total),
      h("button", { class: "secondary", type: "button", disabled: offset + PAGE >= page.total, onclick: () => move(offset + PAGE) }, "Older"));
    // Live counts by state (of the chosen workflow).
    const totals = await Promise.all(STATES.map((s) => {
      const c = new URLSearchParams({ state: s, limit: 1 });
      if (filter.workflow) c.set("workflow", filter.workflow);
      return api("/executions?" + c).then((p) => p.total);
    }));
    fill(counts, ...STATES.filter((s, i) => totals[i] > 0 || s === "RUNNING").map((s) => [s, totals[STATES.indexOf(s)]]).map(([s, total]) =>
      h("a", { href: "#/executions?state=" + s + (filter.workflow ? "&workflow=" + encodeURIComponent(filter.workflow) : ""), "data-count": s },
        stateBadge(s), h("b", {}, String(total)))));
  }
  await reload();
  refresh = setInterval(() => reload().then(() => status("updated " + new Date().toLocaleTimeString()), (e) => status(e.message, true)), 2000);
}

/** The attempts of each task call in `events` (in order): bars from start to end. */
function attemptsOf(events, end) {
  const calls = new Map();
  const bars = [];
  const open = (event, kind, number) => {
    const call = calls.get(event.source_id) || { attempts: 0, current: null };
    calls.set(event.source_id, call);
    call.current = { task: event.name, source: event.source_id, kind, number, start: Date.parse(event.time), end: null, outcome: "running" };
    bars.push(call.current);
    return call;
  };
  const close = (event, outcome) => {
    const call = calls.get(event.source_id);
    if (!call || !call.current) return false;
    call.current.end = Date.parse(event.time);
    call.current.outcome = outcome;
    call.current = null;
    return true;
  };
  for (const event of events) {
    switch (event.type) {
      case "TASK_STARTED": { const c = open(event, "attempt", 1); c.attempts = 1; break; }
      case "TASK_RETRY_STARTED": {
        const c = calls.get(event.source_id) || { attempts: 1 };
        open(event, "retry", (c.attempts || 1) + 1).attempts = (c.attempts || 1) + 1;
        break;
      }
      case "TASK_COMPLETED": case "TASK_RETRY_COMPLETED": close(event, "ok"); break;
      case "TASK_RETRY_FAILED": case "TASK_FAILED": close(event, "failed"); break;
      case "TASK_CANCELLED": close(event, "failed"); break;
      case "TASK_PAUSED": close(event, "paused"); break;
      case "TASK_FALLBACK_STARTED": close(event, "failed"); open(event, "fallback", 0); break;
      case "TASK_FALLBACK_COMPLETED": close(event, "ok"); break;
      case "TASK_FALLBACK_FAILED": close(event, "failed"); break;
      case "TASK_ROLLBACK_STARTED": close(event, "failed"); open(event, "rollback", 0); break;
      case "TASK_ROLLBACK_COMPLETED": close(event, "ok"); break;
      case "TASK_ROLLBACK_FAILED": close(event, "failed"); break;
      default: break;
    }
  }
  for (const bar of bars) if (bar.end === null) bar.end = end;
  return bars;
}

/** The timeline of an execution's task attempts, with its sub-workflows' nested below. */
function timeline(summary, children) {
  const events = summary.events || [];
  const times = events.map((e) => Date.parse(e.time)).filter((t) => !isNaN(t));
  const start = Math.min(...times);
  const end = TERMINAL.has(summary.state) || summary.state === "PAUSED" ? Math.max(...times) : Date.now();
  const bars = attemptsOf(events, end);
  const span = Math.max(end - start, 1);
  const lanes = bars.map((bar) => {
    const el = h("div", {
      class: "bar " + bar.kind + (bar.outcome === "ok" ? "" : " " + bar.outcome),
      "data-task": bar.task, "data-kind": bar.kind, "data-outcome": bar.outcome,
      title: bar.task + " " + bar.kind + (bar.number ? " " + bar.number : "") + ": " + bar.outcome + ", " + (bar.end - bar.start) + " ms",
    });
    el.style.left = ((bar.start - start) / span * 100).toFixed(3) + "%";
    el.style.width = Math.max((bar.end - bar.start) / span * 100, 0.4).toFixed(3) + "%";
    const label = bar.kind === "attempt" ? "attempt 1" : bar.kind === "retry" ? "retry (attempt " + bar.number + ")" : bar.kind;
    return h("div", { class: "lane" }, h("div", { class: "label", title: bar.source }, bar.task + " · " + label),
      h("div", { class: "track" }, el));
  });
  if (lanes.length === 0) lanes.push(h("p", { class: "muted" }, "No task has run yet."));
  const nested = (children || []).map((child) => h("div", { class: "nested" },
    h("div", {}, "Sub-workflow ", h("a", { href: "#/executions/" + encodeURIComponent(child.execution_id) }, child.workflow_name + " " + child.execution_id), " ", stateBadge(child.state)),
    child.events ? timeline(child, []) : null));
  return h("div", { class: "timeline", "data-execution": summary.execution_id }, lanes, nested);
}

function errorView(error) {
  if (!error || typeof error !== "object" || !error.message) return h("pre", {}, json(error));
  return h("div", { class: "error-chain" },
    h("div", {}, h("b", {}, error.kind || "error"), ": ", error.message),
    error.task_id ? h("div", { class: "muted" }, "task " + error.task_id) : null,
    error.type_name ? h("div", { class: "muted" }, "type " + error.type_name) : null,
    Array.isArray(error.chain) && error.chain.length
      ? h("ol", { class: "chain" }, error.chain.map((c) => h("li", {}, "caused by: " + c))) : null);
}

function eventsTable(events) {
  const attempts = new Map();
  return h("table", { id: "events" },
    h("thead", {}, h("tr", {}, ["#", "Time", "Type", "Task", "Attempt", "Value"].map((t) => h("th", {}, t)))),
    h("tbody", {}, events.map((e) => {
      const seq = e.id.slice(e.id.lastIndexOf("-") + 1);
      if (e.type === "TASK_STARTED") attempts.set(e.source_id, 1);
      if (e.type === "TASK_RETRY_STARTED") attempts.set(e.source_id, (attempts.get(e.source_id) || 1) + 1);
      const isTask = e.type.startsWith("TASK_");
      const text = json(e.value);
      const value = text.length <= 60 ? h("code", {}, text)
        : h("details", {}, h("summary", { class: "mono" }, text.replace(/\s+/g, " ").slice(0, 60) + "…"), h("pre", {}, text));
      return h("tr", { "data-type": e.type }, h("td", {}, seq), h("td", {}, when(e.time)), h("td", { class: "mono" }, e.type),
        h("td", { class: "mono", title: e.source_id }, isTask ? e.name : ""),
        h("td", {}, isTask && attempts.has(e.source_id) ? String(attempts.get(e.source_id)) : ""), h("td", {}, value));
    })));
}

async function executionView(id) {
  const view = document.getElementById("view");
  let shownState = null;
  async function reload() {
    const summary = await api("/executions/" + encodeURIComponent(id) + "?detailed=true");
    const page = await api("/executions?parent=" + encodeURIComponent(id) + "&limit=50");
    const children = await Promise.all(page.executions.map((c) =>
      api("/executions/" + encodeURIComponent(c.execution_id) + "?detailed=true").catch(() => c)));
    const wf = encodeURIComponent(summary.workflow_name);
    const actions = h("div", { class: "toolbar", id: "actions" });
    if (summary.state === "PAUSED") {
      const resumeInput = h("textarea", { id: "resume-input", placeholder: "resume input as JSON" });
      const resumeButton = h("button", { id: "resume-button", type: "button" }, "Resume");
      resumeButton.addEventListener("click", async () => {
        let input;
        try { input = readInput(resumeInput, null); } catch (e) { status(e.message, true); return; }
        resumeButton.disabled = true;
        try {
          await api("/workflows/" + wf + "/resume/" + encodeURIComponent(id) + "/async", { method: "POST", body: JSON.stringify(input) });
          status("resumed");
          await reload();
        } catch (e) { status(e.message, true); resumeButton.disabled = false; }
      });
      // The pause it stopped at: the last WORKFLOW_PAUSED, `{name, output}`.
      const pausedAt = (summary.events || []).filter((e) => e.type === "WORKFLOW_PAUSED").pop();
      const pause = pausedAt && pausedAt.value && typeof pausedAt.value === "object" ? pausedAt.value : {};
      actions.append(h("section", { class: "panel", id: "pause" }, h("h2", {}, "Paused"),
        h("div", {}, "At pause ", h("b", { id: "pause-name" }, pause.name || "?"), pause.output === null || pause.output === undefined ? "" : ", with:"),
        pause.output === null || pause.output === undefined ? null : h("pre", { id: "pause-output" }, json(pause.output)),
        resumeInput, resumeButton));
    }
    if (!TERMINAL.has(summary.state) && summary.state !== "CANCELLING") {
      actions.append(confirmButton("Cancel", "Really cancel?", "cancel-button", async () => {
        await api("/workflows/" + wf + "/cancel/" + encodeURIComponent(id));
        status("cancellation asked");
        await reload();
      }));
    }
    const facts = h("dl", { class: "facts" },
      h("dt", {}, "Workflow"), h("dd", {}, summary.workflow_name + (summary.workflow_version ? " (version " + summary.workflow_version + ")" : "")),
      h("dt", {}, "State"), h("dd", {}, stateBadge(summary.state, "state")),
      h("dt", {}, "Created"), h("dd", {}, when(summary.created_at)),
      h("dt", {}, "Updated"), h("dd", {}, when(summary.updated_at)),
      h("dt", {}, "Worker"), h("dd", {}, summary.worker || "this server"),
      summary.parent_id ? [h("dt", {}, "Parent"), h("dd", {}, h("a", { href: "#/executions/" + encodeURIComponent(summary.parent_id) }, summary.parent_id))] : null);
    const result = summary.state === "FAILED" ? h("section", { class: "panel" }, h("h2", {}, "Error"), errorView(summary.output))
      : summary.state === "COMPLETED" ? h("section", { class: "panel" }, h("h2", {}, "Output"), h("pre", { id: "output" }, json(summary.output)))
        : null;
    fill(view,
      h("h1", { class: "mono" }, id),
      h("section", { class: "panel" }, facts),
      actions,
      h("section", { class: "panel" }, h("h2", {}, "Input"), h("pre", { id: "input" }, json(summary.input))),
      result,
      h("section", { class: "panel" }, h("h2", {}, "Timeline"), timeline(summary, children)),
      h("section", { class: "panel" }, h("h2", {}, "Events"), eventsTable(summary.events || [])));
    shownState = summary.state;
  }
  await reload();
  if (TERMINAL.has(shownState)) return;
  // Live while it can still change: each change of state and each progress report arrive over
  // the execution's stream; its log (the timeline, the events) is read again every 2 s meanwhile.
  const stop = new AbortController();
  following = stop;
  stream("/executions/" + encodeURIComponent(id) + "/stream", undefined, (event, data) => {
    if (event === "task.progress" && data && data.name) {
      status("live: " + data.name + " " + JSON.stringify(data.value));
    } else if (data && data.state) {
      if (data.state !== shownState) reload().catch((e) => status(e.message, true));
      status("live: " + data.state);
    }
  }, stop.signal).then(() => reload(), () => {});
  refresh = setInterval(() => {
    if (TERMINAL.has(shownState)) return;
    reload().catch((e) => status(e.message, true));
  }, 2000);
}

async function workersView() {
  const view = document.getElementById("view");
  async function reload() {
    const workers = await api("/workers");
    const gib = (bytes) => (bytes / 1073741824).toFixed(1) + " GiB";
    fill(view, h("h1", {}, "Workers"),
      h("table", { id: "workers" },
        h("thead", {}, h("tr", {}, ["Worker", "Connected", "Workflows", "Claims", "CPUs", "Memory (free / total)", "GPUs", "Last heard"].map((t) => h("th", {}, t)))),
        h("tbody", {}, workers.length === 0 ? h("tr", {}, h("td", { colSpan: 8, class: "muted" }, "No worker has registered."))
          : workers.map((w) => h("tr", { "data-worker": w.name },
            h("td", { class: "mono" }, w.name), h("td", {}, w.connected ? "yes" : "no"), h("td", {}, (w.workflows || []).join(", ")),
            h("td", {}, String(w.claims)), h("td", {}, String(w.resources.cpu_count)),
            h("td", {}, gib(w.resources.memory_available_bytes) + " / " + gib(w.resources.memory_total_bytes)),
            h("td", {}, (w.resources.gpus || []).map((g) => g.name).join(", ") || "none"),
            h("td", {}, Math.round(w.last_seen_seconds_ago) + " s ago"))))));
  }
  await reload();
  refresh = setInterval(() => reload().catch((e) => status(e.message, true)), 2000);
}

async function schedulesView() {
  const view = document.getElementById("view");
  async function reload() {
    let schedules;
    try { schedules = await api("/schedules"); } catch (e) {
      fill(view, h("h1", {}, "Schedules"), h("p", { class: "muted" }, e.message));
      return;
    }
    const act = (name, verb) => h("button", { class: "secondary", type: "button", "data-action": verb + ":" + name,
      onclick: async () => {
        try { await api("/schedules/" + encodeURIComponent(name) + "/" + verb, { method: "POST" }); await reload(); } catch (e) { status(e.message, true); }
      } }, verb === "pause" ? "Pause" : "Resume");
    fill(view, h("h1", {}, "Schedules"),
      h("table", { id: "schedules" },
        h("thead", {}, h("tr", {}, ["Schedule", "Workflow", "Kind", "Status", "Next", "Last", "Fires", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, schedules.length === 0 ? h("tr", {}, h("td", { colSpan: 8, class: "muted" }, "No schedules."))
          : schedules.map((s) => h("tr", { "data-schedule": s.name },
            h("td", { class: "mono" }, s.name), h("td", {}, s.workflow_name), h("td", {}, s.schedule_type),
            h("td", { "data-status": s.status }, s.status), h("td", {}, when(s.next_run_at)), h("td", {},
              s.last_execution_id ? h("a", { href: "#/executions/" + encodeURIComponent(s.last_execution_id) }, when(s.last_run_at)) : ""),
            h("td", {}, String(s.run_count)),
            h("td", {}, s.status === "paused" ? act(s.name, "resume") : s.status === "active" ? act(s.name, "pause") : ""))))));
  }
  await reload();
  refresh = setInterval(() => reload().catch((e) => status(e.message, true)), 5000);
}

async function route() {
  if (refresh) { clearInterval(refresh); refresh = null; }
  if (following) { following.abort(); following = null; }
  const hash = location.hash.replace(/^#/, "") || "/executions";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === parts[0]);
  status("");
  try {
    if (parts[0] === "executions" && parts[1]) await executionView(decodeURIComponent(parts[1]));
    else if (parts[0] === "workers") await workersView();
    else if (parts[0] === "schedules") await schedulesView();
    else await executionsView(query);
    document.body.dataset.view = parts[0] || "executions";
  } catch (e) {
    fill(document.getElementById("view"), h("p", { class: "problem", id: "view-error" }, e.message));
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
