// Clinician console page: a thin view. It renders the server's snapshot and posts
// what the clinician does; every rule (limits, units, order of steps) is the server's.

const $ = (id) => document.getElementById(id);
const CSRF = document.querySelector('meta[name="csrf-token"]').content;

// each quantity input's unit: the server's units.FORM (a test keeps them and the labels equal)
const QTY = { volume: "uL", depth: "mm", needle_length: "mm", cadence: "Hz", flow_rate: "uL/s", prime_volume: "uL" };
const INTS = ["needle_gauge", "count"];
const TEXTS = ["name", "technique", "drug", "syringe"];
const PATIENT = ["patient_ref", "operator", "lot"];
// check/start error field -> input id; anything else only goes to the summary line
const FIELD_INPUT = {
  volume_per_point: "volume", volume_per_shot: "volume", points: "count", shots: "count",
  "total volume": "count", needle: "needle_length", "needle.length": "needle_length", "needle.gauge": "needle_gauge",
};
const STATES = {
  IDLE: ["○", "Idle"], CONFIGURED: ["○", "Configured, not primed"], PRIMING: ["…", "Priming"],
  PRIMED: ["✔", "Primed, not armed"], ARMED: ["●", "Armed: the trigger delivers"],
  DELIVERING: ["▶", "Delivering"], PAUSED: ["❚❚", "Paused: the trigger does nothing"],
  COMPLETE: ["✔", "Complete"], FAULT: ["⚠", "Stopped on an alarm"],
};
// the outcome's words are the server's (mesoinject.outcomes, as stored); the page adds an icon
const OUTCOME_ICONS = { complete: "✔", aborted: "■", fault: "⚠", interrupted: "⚠" };
const ABORTABLE = ["configured", "priming", "primed", "running"];

let snap = null;
let lastPhase = null;
let localError = "";
let dismissedError = "";
let checkOk = false;
let checkTimer = 0;
let checkSeq = 0;
let listsKey = "";
let notesFor = null;
let elapsed = { base: 0, at: 0, ticking: false };

// ---------- server calls ----------

async function post(path, body = {}) {
  try {
    const res = await fetch(path, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
    });
    const data = await res.json().catch(() => ({}));
    return { ok: res.ok, status: res.status, data };
  } catch (e) {
    return { ok: false, status: 0, data: { error: `Could not reach the console (${e.message}). Is mesoinject ui still running?` } };
  }
}

async function getJSON(path) {
  const res = await fetch(path, { credentials: "same-origin" });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `${path}: HTTP ${res.status}`);
  return data;
}

// A clinician action: one request at a time per button (a gloved double tap sends one).
async function act(button, path, body = {}) {
  if (button) button.disabled = true;
  localError = dismissedError = "";
  renderError();
  const r = await post(path, body);
  if (button) button.disabled = false;
  if (!r.ok) showError(r.data.error || r.data.message || `The console refused (HTTP ${r.status}).`);
  else if (r.data && r.data.phase) render(r.data);
  updateStart();
  return r;
}

function showError(msg) {
  localError = msg;
  dismissedError = "";
  renderError();
}

// ---------- rendering ----------

const text = (id, value) => { $(id).textContent = value == null ? "" : String(value); };
const fixed = (n, d = 1) => (typeof n === "number" ? n.toFixed(d) : "-");
const when = (iso) => (iso ? String(iso).replace("T", " ").slice(0, 16) : "-"); // local ISO time to the minute
const mmss = (s) => {
  const t = Math.max(0, Math.floor(s || 0));
  return `${String(Math.floor(t / 60)).padStart(2, "0")}:${String(t % 60).padStart(2, "0")}`;
};

function render(s) {
  if (snap && s.seq < snap.seq) return; // a POST's reply can arrive after a newer event-stream snapshot
  snap = s;
  const dev = s.device || {};
  document.body.dataset.phase = s.phase || "";
  document.body.dataset.deviceState = dev.state || "";
  text("hdr-board", dev.board || "-");
  text("hdr-serial", dev.serial || "-");
  text("hdr-firmware", dev.firmware || "-");
  text("hdr-state", dev.connected === false ? "⚠ Not connected" : stateWords(dev.state));
  for (const sec of document.querySelectorAll("[data-screen]")) sec.hidden = sec.dataset.screen !== s.phase;

  renderSetup(s);
  renderSession(s);
  renderLive(s);
  renderZones(s);
  renderFinished(s);
  const running = s.phase === "running";
  $("pause").hidden = !(running && dev.state !== "PAUSED");
  $("resume").hidden = !(running && dev.state === "PAUSED");
  $("abort").hidden = !ABORTABLE.includes(s.phase);
  renderAlarm(s.alarm);
  renderError();
  lastPhase = s.phase;
}

function stateWords(state) {
  const [icon, words] = STATES[state] || ["?", state || "Unknown"];
  return `${icon} ${words}`;
}

function renderError() {
  const msg = localError || (snap && snap.error) || "";
  text("error-text", msg);
  $("error").hidden = !msg || msg === dismissedError;
}

function setOptions(select, items, keep) {
  const value = select.value;
  select.replaceChildren(...keep, ...items.map(([v, label, broken]) => {
    const o = new Option(label, v);
    o.disabled = Boolean(broken);
    return o;
  }));
  select.value = value;
  if (select.selectedIndex < 0) select.selectedIndex = 0;
}

function renderFault(s) {
  const fault = (s.device && s.device.fault) || null;
  $("fault-panel").hidden = !(s.phase === "setup" && s.device && s.device.state === "FAULT");
  if (!fault) return;
  // a routine power-on is no hazard: a plain panel, named, one click to acknowledge
  $("fault-panel").className = `panel ${fault.routine ? "info" : "stop"}`;
  text("fault-heading", `${fault.routine ? "ⓘ" : "⚠"} ${fault.heading}`);
  text("fault-what", fault.what);
  text("fault-todo", fault.todo);
  text("clear-fault", fault.routine ? "Acknowledge" : "Clear fault");
}

// a plan session: the step and its zone, the map with the zone highlighted, what each zone got so far
let zonesKey = "";
function renderZones(s) {
  const z = s.zones;
  $("zone-panel").hidden = !z;
  if (!z) return;
  const key = JSON.stringify(z);
  if (key === zonesKey) return; // the map and table change only when a step or a record does
  zonesKey = key;
  const ss = s.session || {};
  const current = z.steps.find((x) => x.step === z.current) || {};
  text("zone-heading", `Step ${z.current} of ${z.steps.length}: ${current.zone_name || "-"}`);
  for (const g of document.querySelectorAll("#zone-svg .zone")) {
    g.classList.toggle("current", g.dataset.zone === z.zone);
    g.classList.toggle("given", z.steps.some((x) => x.zone === g.dataset.zone && x.given > 0));
  }
  $("zone-totals").tBodies[0].replaceChildren(...z.steps.map((x) => {
    const tr = document.createElement("tr");
    tr.dataset.zone = x.zone;
    if (x.step === z.current) tr.className = "current";
    for (const [v, cls] of [[x.step, ""], [x.zone_name, ""], [`${x.given} / ${x.planned}`, "num"],
      [fixed(x.delivered_ul, 3), "num zone-ul"]]) {
      const td = tr.insertCell();
      td.textContent = String(v);
      if (cls) td.className = cls;
    }
    return tr;
  }));
  const marks = document.querySelector("#zone-svg .marks");
  if (marks) {
    marks.replaceChildren(...(z.marks || []).map((m) => {
      const c = document.createElementNS("http://www.w3.org/2000/svg", "circle");
      c.setAttribute("cx", m.x);
      c.setAttribute("cy", m.y);
      c.setAttribute("r", "5");
      c.classList.add("mark");
      return c;
    }));
  }
  const next = z.steps.find((x) => x.step === z.current + 1);
  text("step-done-text", `Step ${z.current} done: ${current.zone_name || ""} (${fixed(current.delivered_ul, 1)} µL)`);
  text("next-step-text", next ? `Next: step ${next.step}, ${next.zone_name}. Move to this zone, then start it.` : "");
}

// a tap on a zone of the map: where the last point went (optional, one tap)
$("zone-svg").addEventListener("click", async (e) => {
  const g = e.target.closest && e.target.closest(".zone");
  if (!g) return;
  const svg = $("zone-svg");
  const at = new DOMPoint(e.clientX, e.clientY).matrixTransform(svg.getScreenCTM().inverse());
  const r = await post("/api/session/mark", { zone: g.dataset.zone, x: Math.round(at.x * 10) / 10, y: Math.round(at.y * 10) / 10 });
  if (!r.ok) showError(r.data.error || "The mark was not stored.");
});

function renderSetup(s) {
  renderFault(s);
  const key = JSON.stringify([s.syringes, s.programs, s.plans]);
  if (key !== listsKey) {
    listsKey = key;
    setOptions($("plan"), (s.plans || []).map((p) => [p.file, p.steps ? p.name : `${p.name} - unusable: ${p.error}`, !p.steps]),
      [$("plan").options[0]]);
    showPlan();
    setOptions($("syringe"), (s.syringes || []).map((x) => [x.name, `${x.name} (${Math.round(x.capacity_ul)} µL)`]), []);
    // a library file that does not parse is listed, with why, but cannot be chosen
    setOptions($("program"), (s.programs || []).map((p) => [p.file, p.form ? p.name : `${p.name} - unusable: ${p.error}`, !p.form]),
      [$("program").options[0]]);
  }
  applyLimits();
  if (s.phase === "setup" && lastPhase !== "setup") {
    if (lastPhase === "finished") $("patient_ref").value = ""; // never carry a patient into the next session
    clearFieldErrors();
    text("check-summary", "");
    scheduleCheck();
  }
}

function applyLimits() {
  const L = (snap && snap.limits) || {};
  const tech = $("technique").value;
  const nappage = tech === "nappage";
  const unit = nappage ? "shots" : "points";
  $("cadence-field").hidden = !nappage;
  text("volume-label", nappage ? "Volume per shot" : "Volume per point");
  text("count-label", `Number of ${unit}`);
  text("count-unit", unit);
  const maxVol = nappage ? L.max_shot_ul : tech === "test-dose" ? Math.min(L.max_point_ul, L.max_test_dose_ul) : L.max_point_ul;
  const maxCount = nappage ? L.max_shots : L.max_points;
  bound("volume", L.min_volume_ul, maxVol, `min ${L.min_volume_ul}, max ${maxVol} µL per ${nappage ? "shot" : "point"}`);
  bound("depth", L.min_depth_mm, L.max_depth_mm,
    `min ${L.min_depth_mm}, max ${L.max_depth_mm} mm and needle length - ${L.needle_margin_mm} mm`);
  bound("needle_length", undefined, undefined, `at least depth + ${L.needle_margin_mm} mm`);
  bound("count", 1, maxCount, `max ${maxCount} ${unit}; session max ${L.max_session_ul} µL`);
  bound("cadence", L.min_cadence_hz, L.max_cadence_hz, `min ${L.min_cadence_hz}, max ${L.max_cadence_hz} Hz`);
  bound("flow_rate", L.min_flow_ul_s, L.max_flow_ul_s, `min ${L.min_flow_ul_s}, max ${L.max_flow_ul_s} µL/s`);
  bound("prime_volume", 0, L.max_prime_ul, `max ${L.max_prime_ul} µL`);
}

function bound(id, min, max, label) {
  const input = $(id);
  if (Number.isFinite(min)) input.min = min; else input.removeAttribute("min");
  if (Number.isFinite(max)) input.max = max; else input.removeAttribute("max");
  if (snap && snap.limits) text(`lim-${id}`, label);
}

function facts(dl, rows) {
  dl.replaceChildren(...rows.filter(([, v]) => v != null && v !== "").flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = String(v);
    return [dt, dd];
  }));
}

function renderSession(s) {
  const ss = s.session;
  if (!ss) return;
  facts($("session-facts"), [
    ["Program", ss.summary], ["Patient reference", ss.patient_ref], ["Operator", ss.operator],
    ["Drug", ss.drug], ["Lot", ss.lot], ["Planned", `${ss.planned} ${ss.unit}, ${fixed(ss.planned_ul)} µL`],
    ["Depth", `${fixed(ss.depth_mm)} mm`], ["Cadence", ss.cadence_hz == null ? null : `${ss.cadence_hz} Hz`],
    ["Prime", `${fixed(ss.prime_ul)} µL`],
  ]);
  text("prime", `Prime ${fixed(ss.prime_ul)} µL`);
}

function renderLive(s) {
  const p = s.progress || {};
  const ss = s.session || {};
  const dev = s.device || {};
  text("done", Math.round(p.done || 0));
  text("planned", Math.round(p.planned ?? ss.planned ?? 0));
  text("unit-name", ss.unit || "points");
  text("delivered-ul", fixed(p.delivered_ul || 0));
  text("planned-ul", fixed(ss.planned_ul));
  text("depth-mm", fixed(p.depth_mm ?? dev.depth_mm));
  $("cadence-tile").hidden = ss.technique !== "nappage";
  text("cadence-hz", fixed(p.cadence_hz));
  text("cadence-prog", ss.cadence_hz ?? "-");
  text("syringe-left-ul", fixed(p.syringe_left_ul ?? dev.syringe_left_ul, 0));
  const [icon, words] = STATES[dev.state] || ["?", dev.state || "Unknown"];
  text("state-icon", icon);
  text("device-state", words);
  // elapsed advances locally between snapshots while the device can deliver
  elapsed = { base: p.elapsed_s || 0, at: performance.now(), ticking: s.phase === "running" && dev.state !== "PAUSED" };
  showElapsed();
  const n = p.unstored || 0;
  $("unstored").hidden = !(n > 0);
  text("unstored", `⚠ ${n} record${n === 1 ? "" : "s"} waiting on the device (store unavailable; kept safe on the device)`);
}

function showElapsed() {
  const extra = elapsed.ticking ? (performance.now() - elapsed.at) / 1000 : 0;
  text("elapsed", mmss(elapsed.base + extra));
}

function renderFinished(s) {
  const ss = s.session;
  if (s.phase !== "finished" || !ss) return;
  const p = s.progress || {};
  const words = s.outcome_text || s.outcome || "Unknown";
  // the record's code alongside when the words do not carry it ("Stopped on OCCLUSION (fault)")
  const code = s.outcome && !words.includes(s.outcome) ? ` (${s.outcome})` : "";
  text("outcome", `${OUTCOME_ICONS[s.outcome] || "?"} ${words.charAt(0).toUpperCase()}${words.slice(1)}${code}`);
  const clean = s.outcome === "complete" && !p.partial;
  $("outcome").className = `outcome ${clean ? "complete" : s.outcome === "complete" ? "partial" : "bad"}`;
  facts($("finished-facts"), [
    ["Done", `${p.done ?? 0} / ${p.planned ?? ss.planned} ${ss.unit}`],
    ["Delivered", `${fixed(p.delivered_ul || 0)} µL of ${fixed(ss.planned_ul)} µL`],
    ["Partial (stopped before the full volume)", p.partial ?? 0],
    ["Primed (into the air)", `${fixed(p.primed_ul || 0)} µL`],
    ["Patient reference", ss.patient_ref], ["Program", ss.summary],
  ]);
  renderRemaining(s);
  const base = `/sessions/${encodeURIComponent(ss.id)}`;
  $("report-link").href = `${base}/report`;
  $("export-csv").href = `${base}/export.csv`;
  $("export-json").href = `${base}/export.json`;
  $("export-fhir").href = `${base}/export.fhir.json`;
  if (notesFor !== ss.id) {
    notesFor = ss.id;
    text("notes-status", "");
    $("notes-list").replaceChildren();
  }
}

// after an alarm: the cause dealt with, the fault cleared, then the points left, in the same session
function renderRemaining(s) {
  const left = s.remaining || 0;
  $("remaining-panel").hidden = !(left > 0);
  if (!left) return;
  const faulted = s.device && s.device.state === "FAULT";
  const unit = (s.session && s.session.unit) || "points";
  text("remaining-text", `${left} ${unit} of this session left. ` + (faulted
    ? "Deal with the alarm's cause, then clear the fault."
    : `The fault is cleared: give the remaining ${unit} in this same session (the device keeps its session total).`));
  $("finished-clear-fault").hidden = !faulted;
  $("give-remaining").hidden = faulted;
  text("give-remaining", `Give the remaining ${left} ${unit}`);
}

function renderAlarm(a) {
  const d = $("alarm");
  if (!a) {
    if (d.open) d.close();
    return;
  }
  text("alarm-name", a.name || a.code);
  text("alarm-what", a.what);
  text("alarm-delivered", a.delivered);
  text("alarm-todo", a.todo);
  if (!d.open) {
    if ($("sessions-dialog").open) $("sessions-dialog").close();
    d.showModal();
    d.focus(); // the dialog, not its button: a stray key press must not acknowledge
  }
}

// ---------- the set-up form ----------

// the program form plus who and what lot: checked (patient_ref must be a pseudonym) and sent as one
function startForm() {
  if ($("plan").value) {
    const f = { plan: $("plan").value };
    for (const k of PATIENT) f[k] = $(k).value.trim();
    return f;
  }
  const f = { program: $("program").value };
  for (const k of [...TEXTS, ...PATIENT]) f[k] = $(k).value.trim();
  for (const [k, unit] of Object.entries(QTY)) {
    const v = $(k).value.trim();
    f[k] = v === "" ? "" : `${v} ${unit}`;
  }
  if (f.technique !== "nappage") f.cadence = "";
  for (const k of INTS) {
    const v = $(k).value.trim();
    f[k] = v === "" ? null : Number.isInteger(Number(v)) ? Number(v) : v;
  }
  return f;
}

function fillForm(p) {
  const form = p.form;
  $("name").value = form.name ?? p.name ?? "";
  for (const k of ["technique", "drug", "syringe"]) $(k).value = form[k] ?? "";
  for (const k of INTS) $(k).value = form[k] ?? "";
  // a library program's quantities come as numbers in each input's unit: the server parsed them
  for (const k of Object.keys(QTY)) $(k).value = form[k] == null ? "" : String(Number(form[k].toPrecision(6)));
  clearFieldErrors();
  text("check-summary", "");
  applyLimits();
}

function clearFieldErrors() {
  for (const el of document.querySelectorAll("#start-form .field-error")) el.textContent = "";
  for (const el of document.querySelectorAll("#start-form [aria-invalid]")) el.removeAttribute("aria-invalid");
  text("check-message", "");
}

function showFieldError(field, message) {
  const id = FIELD_INPUT[field] || field;
  const input = id && $(id);
  const known = input && $(`err-${id}`);
  // the server's messages start "field: "; beside the input the label already says which
  const bare = field && message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
  if (known) {
    text(`err-${id}`, bare);
    input.setAttribute("aria-invalid", "true");
  }
  const label = known && document.querySelector(`label[for="${id}"]`);
  text("check-message", label ? `${label.textContent}: ${bare}` : field && bare === message ? `${field}: ${message}` : message);
  return known ? input : null;
}

function updateStart() {
  $("start").disabled = !checkOk;
}

// Start keeps its last verdict until the new one arrives (the server checks again on start anyway),
// so the button and the message always change together.
function scheduleCheck() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(runCheck, 250);
}

async function runCheck() {
  const seq = ++checkSeq;
  const r = await post("/api/program/check", startForm());
  if (seq !== checkSeq) return; // a newer edit is being checked
  clearFieldErrors();
  checkOk = r.ok && r.data.ok === true;
  if (checkOk) {
    const total = typeof r.data.total_ul === "number" ? ` (total ${fixed(r.data.total_ul)} µL)` : "";
    text("check-summary", `✔ ${r.data.summary || "Program accepted"}${total}`);
  } else {
    text("check-summary", "");
    showFieldError(r.data.field, r.data.message || r.data.error || "The program could not be checked.");
  }
  updateStart();
}

function showPlan() {
  const p = ((snap && snap.plans) || []).find((x) => x.file === $("plan").value);
  $("program-fields").hidden = !!$("plan").value;
  $("plan-steps").replaceChildren(...(p && p.steps ? p.steps : []).map((st) => {
    const li = document.createElement("li");
    li.textContent = st.summary;
    return li;
  }));
}

$("start-form").addEventListener("input", (e) => {
  if (e.target.id === "plan") showPlan();
  if (e.target.id === "program") {
    const p = ((snap && snap.programs) || []).find((x) => x.file === e.target.value);
    if (p && p.form) fillForm(p);
  }
  if (e.target.id === "technique") applyLimits();
  scheduleCheck();
});

$("start-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearTimeout(checkTimer); // a click right after an edit: check what is on screen now, then start
  await runCheck();
  if (!checkOk) return; // runCheck showed why
  checkOk = false;
  const r = await act($("start"), "/api/session/start", startForm());
  checkOk = !r.ok; // same form again only after a refusal
  if (r.status === 422) {
    localError = "";
    renderError();
    const input = showFieldError(r.data.field, r.data.message || r.data.error || "Refused.");
    if (input) input.focus();
  }
  updateStart();
});

// ---------- buttons and keys ----------

const ACTIONS = {
  "clear-fault": "/api/device/clear-fault", prime: "/api/session/prime", arm: "/api/session/arm",
  pause: "/api/session/pause", resume: "/api/session/resume", abort: "/api/session/abort",
  "alarm-ack": "/api/session/acknowledge", "new-session": "/api/session/new",
  "finished-clear-fault": "/api/device/clear-fault", "give-remaining": "/api/session/give-remaining",
  "next-step": "/api/session/next-step", "end-plan": "/api/session/end-plan",
};
for (const [id, path] of Object.entries(ACTIONS)) $(id).addEventListener("click", (e) => act(e.currentTarget, path));

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  if ($("alarm").open || $("sessions-dialog").open) return;
  if (e.target.closest && e.target.closest("input, textarea, select")) return;
  const key = e.key.toLowerCase();
  // Escape is what people press to get out of something: it pauses (undoable), it never aborts
  const id = key === "p" || key === " " || key === "escape" ? "pause" : key === "r" ? "resume" : key === "a" ? "abort" : null;
  const button = id && $(id);
  if (!button || button.hidden) return;
  e.preventDefault(); // Space must pause, not press whichever button has focus
  button.click();
});

// The alarm leaves only on acknowledgement (a snapshot with alarm null), never on Escape.
$("alarm").addEventListener("cancel", (e) => e.preventDefault());
$("alarm").addEventListener("close", () => {
  if (snap && snap.alarm) renderAlarm(snap.alarm);
});

$("error-dismiss").addEventListener("click", () => {
  dismissedError = $("error-text").textContent;
  localError = "";
  renderError();
});

$("note-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await act($("note-submit"), "/api/session/note",
    { text: $("note-text").value.trim(), adverse_event: $("note-adverse").checked });
  if (!r.ok) return text("notes-status", `✖ Not added: ${r.data.error || r.data.message || "refused"}`);
  const adverse = $("note-adverse").checked ? " (adverse event)" : "";
  text("notes-status", `✔ Note added${adverse} at ${new Date().toLocaleTimeString()}: ${$("note-text").value.trim()}`);
  $("note-text").value = "";
  $("note-adverse").checked = false;
  if (Array.isArray(r.data.notes)) {
    $("notes-list").replaceChildren(...r.data.notes.map((n) => {
      const li = document.createElement("li");
      const adverseNote = n.kind === "adverse-event" || n.adverse_event;
      li.textContent = `${when(n.at)} ${adverseNote ? "⚠ Adverse event" : "Note"}: ${n.text ?? ""}`;
      return li;
    }));
  }
});

// ---------- past sessions ----------

function link(href, label, download) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = label;
  if (download) a.download = "";
  else { a.target = "_blank"; a.rel = "noopener"; }
  return a;
}

// one patient's history: their sessions, and what they received of each drug over time
function drugTotals(history) {
  const box = $("history-drugs");
  if (!history) return void box.replaceChildren();
  const h = document.createElement("h3");
  h.textContent = `Patient ${history.patient_ref}: totals per drug (primes excluded)`;
  const list = document.createElement("ul");
  for (const d of history.drugs) {
    const li = document.createElement("li");
    const months = d.months.map((m) => `${m.month}: ${fixed(m.delivered_ul)} µL`).join(", ");
    li.textContent = `${d.drug}: ${fixed(d.delivered_ul)} µL in ${d.sessions} session${d.sessions > 1 ? "s" : ""}` +
      ` (${months})`;
    list.append(li);
  }
  box.replaceChildren(h, list);
}

async function showSessions(patient = "") {
  const box = $("sessions");
  box.textContent = "Loading…";
  if (!$("sessions-dialog").open) $("sessions-dialog").showModal();
  let rows, history = null;
  try {
    if (patient) {
      history = await getJSON(`/api/history?patient=${encodeURIComponent(patient)}`);
      rows = history.sessions;
    } else rows = await getJSON("/api/sessions");
  } catch (e) {
    drugTotals(null);
    box.textContent = `✖ Could not load past sessions: ${e.message}`;
    return;
  }
  drugTotals(history);
  if (!rows.length) return void (box.textContent = patient ? `No sessions for patient ${patient}.` : "No sessions recorded yet.");
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const h of ["Started", "Ended", "Patient ref", "Operator", "Program", "Outcome", "µL", "Points", "Files"]) {
    const th = document.createElement("th");
    th.textContent = h;
    th.scope = "col";
    head.append(th);
  }
  const body = table.createTBody();
  for (const s of rows) {
    const tr = body.insertRow();
    const outcome = `${s.outcome ?? "open"}${s.adverse_events ? ` (⚠ ${s.adverse_events} adverse event${s.adverse_events > 1 ? "s" : ""})` : ""}`;
    const cells = [when(s.started_at), when(s.ended_at), s.patient_ref, s.operator, s.program_name, outcome,
      typeof s.delivered_ul === "number" ? fixed(s.delivered_ul) : s.delivered_ul, s.points];
    cells.forEach((v, i) => {
      const td = tr.insertCell();
      td.textContent = v == null ? "-" : String(v);
      if (i >= 6) td.className = "num";
      if (i < 2) td.className = "when";
    });
    const base = `/sessions/${encodeURIComponent(s.id)}`;
    const files = tr.insertCell();
    files.className = "files";
    files.append(link(`${base}/report`, "Report"), link(`${base}/export.csv`, "CSV", true),
      link(`${base}/export.json`, "JSON", true), link(`${base}/export.fhir.json`, "FHIR", true));
  }
  box.replaceChildren(table);
}

$("sessions-button").addEventListener("click", () => showSessions($("history-patient").value.trim()));
$("history-form").addEventListener("submit", (e) => {
  e.preventDefault();
  showSessions($("history-patient").value.trim());
});
$("history-all").addEventListener("click", () => {
  $("history-patient").value = "";
  showSessions();
});
$("sessions-close").addEventListener("click", () => $("sessions-dialog").close());

// ---------- live connection ----------

let streamed = false; // a snapshot from the stream is never older than the initial GET

async function loadState() {
  try {
    const s = await getJSON("/api/state");
    if (!streamed) render(s);
  } catch (e) {
    showError(`Could not load the console state: ${e.message}`);
  }
}

function connected(yes) {
  $("connection-lost").hidden = yes;
  document.body.dataset.connection = yes ? "" : "lost"; // greys the figures: they are stale
}

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("open", () => connected(true));
  es.addEventListener("state", (e) => {
    connected(true);
    streamed = true;
    render(JSON.parse(e.data));
  });
  es.addEventListener("error", () => {
    connected(false);
    // the browser retries by itself unless the server answered with an error: then we retry
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  });
}

setInterval(showElapsed, 1000);
loadState();
connect();
