// revsearch web page: upload or pick a query, click the person, see where they appear.
// Plain JavaScript, no build step and no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
// File names and labels come from the user's folders: never let them become markup.
const esc = (text) => String(text).replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const state = { query: null, face: null, track: null, localUrl: null };

function setStatus(text, busy = false) {
  $("status").textContent = text;
  $("status").classList.toggle("busy", busy);
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("the server cannot be reached: " + err.message);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail
      : (body.detail ? JSON.stringify(body.detail) : response.statusText);
    const prefix = { 413: "File too large", 415: "Unsupported file", 422: "No face",
                     400: "Bad file", 404: "Not found" }[response.status] || "Error";
    throw new Error(prefix + ": " + detail);
  }
  return body;
}

// A timer, so a long video shows that work is going on and for how long.
async function withProgress(label, work) {
  const started = Date.now();
  setStatus(label + "…", true);
  const timer = setInterval(() => {
    setStatus(`${label}… ${Math.round((Date.now() - started) / 1000)} s`, true);
  }, 500);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    setStatus("");
  }
}

async function loadStats() {
  try {
    const s = await api("/api/stats");
    $("stats").textContent = `${s.images} photos (${s.faces} faces), ${s.videos} videos ` +
      `(${s.tracks} face tracks) indexed.`;
    $("file").dataset.limit = s.max_upload_bytes;
  } catch (err) { /* the page still works without the counts */ }
}

async function sendFile(file) {
  showError("");
  const limit = Number($("file").dataset.limit || 0);
  if (limit && file.size > limit) {
    showError(`File too large: ${file.name} is ${file.size} bytes; the limit is ${limit}.`);
    return;
  }
  const form = new FormData();
  form.append("file", file);
  const isVideo = file.type.startsWith("video/") || /\.(mp4|avi|mpg|mpeg|mkv|webm|mov)$/i.test(file.name);
  if (state.localUrl) URL.revokeObjectURL(state.localUrl);
  state.localUrl = isVideo ? null : URL.createObjectURL(file);
  await startQuery(form, isVideo ? "Processing the video (sampling frames, tracking faces)"
                                 : "Finding faces");
}

async function pickMedia(item) {
  showError("");
  const form = new FormData();
  form.append("media", item.image_id);
  state.localUrl = item.media_type === "image" ? `/api/media/${item.image_id}` : null;
  await startQuery(form, item.media_type === "video" ? "Processing the video" : "Finding faces");
}

async function startQuery(form, label) {
  try {
    const query = await withProgress(label, () => api("/api/queries", { method: "POST", body: form }));
    state.query = query;
    state.face = null;
    state.track = null;
    renderQuery();
    const faces = query.kind === "video" ? query.tracks : query.faces;
    if (!faces.length) {
      showError(query.kind === "video" ? "No face found in the sampled frames of this video."
                                       : "No face found in this photo. Try a larger or sharper one.");
      $("results").innerHTML = "";
      return;
    }
    const chosen = faces.find((f) => f.default) || faces[0];
    await choose(chosen.index);
  } catch (err) {
    $("query-view").hidden = true;
    showError(err.message);
  }
}

function renderQuery() {
  const q = state.query;
  $("query-view").hidden = false;
  $("boxes").innerHTML = "";
  $("tracks").innerHTML = "";
  const img = $("query-img");
  if (q.kind === "image") {
    $("query-help").textContent = `${q.faces.length} face(s) found. Click a face to search for that person.`;
    img.hidden = false;
    img.onload = () => drawBoxes();
    img.src = state.localUrl;
  } else {
    $("query-help").textContent = `${q.tracks.length} face track(s) in this video. Click one to search for that person.`;
    img.hidden = true;
    img.removeAttribute("src");
    for (const t of q.tracks) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "track";
      b.dataset.index = t.index;
      b.innerHTML = `<img alt="track ${t.index}" src="${t.thumb_url}">` +
        `track ${t.index}: ${t.start.toFixed(1)}–${t.end.toFixed(1)} s`;
      b.onclick = () => choose(t.index);
      $("tracks").appendChild(b);
    }
  }
}

function drawBoxes() {
  const q = state.query;
  const img = $("query-img");
  const scale = img.clientWidth / q.width;
  $("boxes").innerHTML = "";
  for (const f of q.faces) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "facebox" + (f.index === state.face ? " selected" : "");
    b.dataset.index = f.index;
    b.title = `face ${f.index}`;
    b.setAttribute("aria-label", `face ${f.index}`);
    Object.assign(b.style, { left: f.box[0] * scale + "px", top: f.box[1] * scale + "px",
                             width: f.box[2] * scale + "px", height: f.box[3] * scale + "px" });
    b.innerHTML = `<span>${f.index}</span>`;
    b.onclick = () => choose(f.index);
    $("boxes").appendChild(b);
  }
}

async function choose(index) {
  const q = state.query;
  if (q.kind === "video") {
    state.track = index;
    document.querySelectorAll(".track").forEach((el) =>
      el.classList.toggle("selected", Number(el.dataset.index) === index));
  } else {
    state.face = index;
    drawBoxes();
  }
  await search();
}

async function search() {
  const q = state.query;
  if (!q) return;
  showError("");
  const form = new FormData();
  form.append("query", q.id);
  form.append("k", $("k").value || "12");
  form.append("pipeline", $("pipeline").value);
  form.append("target", $("target").value);
  if ($("far").value) form.append("far", $("far").value);
  if (q.kind === "video" && state.track !== null) form.append("track", state.track);
  if (q.kind === "image" && state.face !== null) form.append("face", state.face);
  try {
    const data = await withProgress("Searching", () => api("/api/search", { method: "POST", body: form }));
    renderResults(data);
  } catch (err) {
    showError(err.message);
  }
}

function renderResults(data) {
  const grid = $("results");
  grid.innerHTML = "";
  const result = data.results[0];
  $("results-title").hidden = false;
  if (!result || !result.hits.length) {
    $("results-title").textContent = "No results: the collection is empty for this choice.";
    return;
  }
  const who = result.track ? `track ${result.track.index}` : `face ${result.face.index}`;
  const known = result.person ? `, who is ${result.person.replaceAll("_", " ")}` : "";
  $("results-title").textContent =
    `Results for ${who}${known} (${describeDecision(result.decision)})`;
  const covered = $("occlusion-note");
  const where = {eyes: "the eyes", lower: "the lower face", other: "part of the face"};
  covered.hidden = !result.occlusion_handled;
  covered.textContent = result.occlusion_handled
    ? `The face looks covered over ${where[result.occlusion] || "part of the face"}: ` +
      "the best results were re-ranked on the visible part." : "";
  for (const h of result.hits) {
    const card = document.createElement("article");
    card.className = "hit" + (h.match ? " match" : "");
    card.dataset.label = h.label || "";
    const verdict = h.match === null ? "" : (h.match ? "match" : "no match");
    const when = h.media_type === "video"
      ? `<div>seen ${h.start.toFixed(1)}–${h.end.toFixed(1)} s (frame ${h.frame})</div>` : "";
    const name = esc(h.path.split("/").pop());
    card.innerHTML =
      `<a href="${h.media_url}" target="_blank" rel="noopener"><img loading="lazy" alt="${name}" src="${h.thumb_url}"></a>` +
      `<div class="meta"><div class="kind">${h.media_type} #${h.rank}</div>` +
      `<div>similarity ${h.similarity.toFixed(3)}` +
      (h.score === null ? "" : `, ${esc(result.decision.score)} ${h.score.toFixed(2)}`) +
      (h.visible == null ? "" : `, visible part ${h.visible.toFixed(3)}`) +
      ` <span class="verdict">${verdict}</span></div>` +
      (h.label ? `<div class="label">${esc(h.label.replaceAll("_", " "))}</div>` : "")
      + (h.person ? `<div class="person-of">person: ${esc(h.person.replaceAll("_", " "))}</div>` : "") + when +
      `<div><a href="${h.media_url}" target="_blank" rel="noopener">${name}</a></div></div>`;
    grid.appendChild(card);
  }
}

// How matches were decided: the operating point (FAR and threshold), or why none.
function describeDecision(d) {
  if (d.threshold === null) return `no match decision: ${d.note}`;
  const far = d.far === null ? "threshold set by hand" : `FAR ${d.far}`;
  const kinds = Object.entries(d.by_kind || {})
    .map(([k, t]) => `${k.replace("_", "-")} ${t.toFixed(3)}`).join(", ");
  const text = `match when ${d.score} ≥ ${d.threshold.toFixed(3)}` +
    (kinds ? ` (video comparisons: ${kinds})` : "") + `, ${far}`;
  return d.note ? `${text}; ${d.note}` : text;
}

async function browse(label = "") {
  const box = $("collection");
  box.hidden = false;
  try {
    const data = await api(`/api/collection?limit=60&label=${encodeURIComponent(label)}`);
    const grid = $("collection-grid");
    grid.innerHTML = "";
    for (const item of data.items) {
      const b = document.createElement("button");
      b.type = "button";
      b.title = item.label || item.name;
      b.innerHTML = `<img loading="lazy" alt="${esc(item.name)}" src="${item.thumb_url}">`;
      b.onclick = () => pickMedia(item);
      grid.appendChild(b);
    }
    if (!data.items.length) grid.textContent = "Nothing indexed matches.";
  } catch (err) {
    showError(err.message);
  }
}

// Background ingests (watched folders, `revsearch index` handed over, POST /api/jobs):
// the running job's progress, then the last job's report with the files not indexed.
const jobs = { timer: null, active: false };

function clock(seconds) {
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

function jobText(job, waiting) {
  const where = job.paths.join(", ") + (job.origin === "watch" ? " (watched)" : "");
  const problems = job.problems.length ? `; ${job.problems.length} problem(s) so far` : "";
  if (job.state === "queued") return `Waiting to index ${where}`;
  if (job.state === "running") {
    if (job.total === null) return `Indexing ${where}: looking for new and changed files…`;
    const rate = job.rate ? `, ${job.rate.toFixed(1)} files/s` : "";
    const eta = job.eta !== null ? `, about ${clock(job.eta)} left` : "";
    const more = waiting ? `; ${waiting} more job(s) waiting` : "";
    return `Indexing ${where}: ${job.done}/${job.total} files${rate}${eta}${problems}${more}`;
  }
  if (job.state === "done") {
    const r = job.report;
    return `Indexed ${where}: ${r.indexed} new or changed file(s) (${r.faces} faces), ` +
      `${r.unchanged} unchanged, ${r.removed} removed, ${r.problems.length} not indexed; ` +
      `${clock(r.seconds)}`;
  }
  if (job.state === "cancelled") return `Indexing ${where} was cancelled after ${job.done} file(s)`;
  return `Indexing ${where} failed: ${job.error}`;
}

function renderJob(job, waiting) {
  $("job").hidden = false;
  $("job").dataset.state = job.state;
  $("job-line").textContent = jobText(job, waiting);
  const bar = $("job-progress");
  bar.hidden = job.state !== "running" && job.state !== "queued";
  if (job.total) {
    bar.max = job.total;
    bar.value = job.done;
  } else {
    bar.removeAttribute("value");  // indeterminate while the folders are scanned
  }
  const list = $("job-problems");
  list.hidden = !job.problems.length;
  list.querySelector("summary").textContent = `${job.problems.length} file(s) not indexed`;
  const ul = list.querySelector("ul");
  ul.replaceChildren(...job.problems.slice(0, 200).map((p) => {
    const li = document.createElement("li");
    li.textContent = `${p.path}: ${p.reason}`;  // names from the user's folders: text only
    return li;
  }));
}

async function pollJobs() {
  let list = [];
  try {
    list = (await api("/api/jobs")).jobs;
  } catch (err) { /* an older server, or a hiccup: try again later */ }
  const active = list.filter((j) => j.state === "running" || j.state === "queued");
  const shown = active.find((j) => j.state === "running") || active[0] || list[0];
  if (shown) renderJob(shown, active.length - 1);
  if (jobs.active && !active.length) loadStats();  // a job just ended: new counts
  jobs.active = active.length > 0;
  clearTimeout(jobs.timer);
  jobs.timer = setTimeout(pollJobs, jobs.active ? 1000 : 5000);
}

function init() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { if (e.target.files[0]) sendFile(e.target.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) sendFile(e.dataTransfer.files[0]);
  });
  $("browse").addEventListener("click", () => browse());
  let timer = null;
  $("collection-filter").addEventListener("input", (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => browse(e.target.value.replace(/[^A-Za-z0-9 _-]/g, "")), 300);
  });
  for (const id of ["k", "pipeline", "target", "far"]) $(id).addEventListener("change", () => search());
  window.addEventListener("resize", () => { if (state.query && state.query.kind === "image") drawBoxes(); });
  loadStats();
  pollJobs();
}

// -- People: the persons the faces were grouped into; rename, merge, correct ------------
const people = { list: [], selected: new Set(), current: null };

function peopleStatus(text, busy = false) {
  $("people-status").textContent = text;
  $("people-status").classList.toggle("busy", busy);
}

function peopleError(text) {
  $("people-error").textContent = text;
  $("people-error").hidden = !text;
}

function showPage(name) {
  const onPeople = name === "people";
  $("people-page").hidden = !onPeople;
  $("search-page").hidden = onPeople;
  $("tab-people").classList.toggle("active", onPeople);
  $("tab-search").classList.toggle("active", !onPeople);
  $("tab-people").setAttribute("aria-pressed", String(onPeople));
  $("tab-search").setAttribute("aria-pressed", String(!onPeople));
  if (onPeople && !people.list.length) loadPeople();
}

function displayName(p) {
  return p.name ? p.name.replaceAll("_", " ") : `person ${p.person_id}`;
}

async function loadPeople() {
  peopleError("");
  peopleStatus("Grouping faces into persons…", true);
  try {
    const data = await api("/api/people?limit=500");
    people.list = data.people;
    // A reload (after a rename, say) keeps what the user picked, if those persons remain.
    const present = new Set(data.people.map((p) => p.person_id));
    for (const id of [...people.selected]) if (!present.has(id)) people.selected.delete(id);
    $("people-count").textContent = `${data.total} persons with two or more faces or a name`;
    renderPeople();
  } catch (err) {
    peopleError(err.message);
  } finally {
    peopleStatus("");
  }
}

function renderPeople() {
  const grid = $("people-grid");
  grid.innerHTML = "";
  const filter = $("people-filter").value.trim().toLowerCase().replaceAll("_", " ");
  for (const p of people.list) {
    if (filter && !displayName(p).toLowerCase().includes(filter)) continue;
    const card = document.createElement("article");
    card.className = "person" + (people.selected.has(p.person_id) ? " selected" : "");
    card.dataset.id = p.person_id;
    card.dataset.name = p.name;
    const nameClass = p.name ? (p.name_source === "label" ? "name seeded" : "name") : "name unnamed";
    const thumb = p.cover ? `<img loading="lazy" alt="${esc(displayName(p))}" src="${p.cover.thumb_url}">` : "";
    card.innerHTML = thumb +
      `<div class="meta"><div class="${nameClass}">${esc(displayName(p))}</div>` +
      `<div>${p.faces} faces, ${p.media} files</div>` +
      `<label><input type="checkbox" class="pick"> select to merge</label></div>`;
    const img = card.querySelector("img");
    if (img) img.onclick = () => openPerson(p.person_id);
    card.querySelector(".pick").checked = people.selected.has(p.person_id);
    card.querySelector(".pick").onchange = (e) => {
      if (e.target.checked) people.selected.add(p.person_id); else people.selected.delete(p.person_id);
      card.classList.toggle("selected", e.target.checked);
      $("people-merge").disabled = people.selected.size < 2;
    };
    grid.appendChild(card);
  }
  $("people-merge").disabled = people.selected.size < 2;
  if (!grid.children.length) grid.textContent = people.list.length ? "Nobody matches." : "No persons yet: index some photos first.";
}

async function openPerson(id) {
  peopleError("");
  try {
    const p = await api(`/api/people/${id}`);
    people.current = p;
    $("person-view").hidden = false;
    $("people-grid").hidden = true;
    $("person-title").textContent = `${displayName(p)}: ${p.faces} faces in ${p.media} files`;
    $("person-name").value = p.name.replaceAll("_", " ");
    const grid = $("person-items");
    grid.innerHTML = "";
    for (const item of p.items) {
      const card = document.createElement("article");
      card.className = "person-item";
      card.dataset.item = item.item_id;
      const name = esc(item.path.split("/").pop());
      card.innerHTML = `<a href="${item.media_url}" target="_blank" rel="noopener">` +
        `<img loading="lazy" alt="${name}" src="${item.thumb_url}"></a>` +
        `<div class="meta"><div>${name}</div>` +
        (item.similarity === null ? "" : `<div>similarity ${item.similarity.toFixed(3)}</div>`) +
        `<button type="button" class="link not-them">not this person</button></div>`;
      card.querySelector(".not-them").onclick = () => removeFace(item.item_id);
      grid.appendChild(card);
    }
  } catch (err) {
    peopleError(err.message);
  }
}

function closePerson() {
  people.current = null;
  $("person-view").hidden = true;
  $("people-grid").hidden = false;
}

async function postForm(path, fields) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return api(path, { method: "POST", body: form });
}

async function renamePerson(event) {
  event.preventDefault();
  const p = people.current;
  if (!p) return;
  peopleError("");
  try {
    await postForm(`/api/people/${p.person_id}/name`, { name: $("person-name").value });
    await openPerson(p.person_id);
    await loadPeople();
  } catch (err) {
    peopleError(err.message);
  }
}

async function mergeSelected() {
  const ids = [...people.selected];
  if (ids.length < 2) return;
  // The largest (or the first named) keeps its id and name; the others join it.
  const chosen = people.list.filter((p) => ids.includes(p.person_id));
  chosen.sort((a, b) => (b.name_source === "user") - (a.name_source === "user") || b.faces - a.faces);
  peopleError("");
  try {
    for (const other of chosen.slice(1)) {
      await postForm(`/api/people/${chosen[0].person_id}/merge`, { other: other.person_id });
    }
    people.selected.clear();
    await loadPeople();
  } catch (err) {
    peopleError(err.message);
  }
}

async function removeFace(itemId) {
  const p = people.current;
  peopleError("");
  try {
    await postForm("/api/people/remove-face", { item: itemId });
    if (p) await openPerson(p.person_id);
    people.list = [];
  } catch (err) {
    peopleError(err.message);
  }
}

async function refreshPeople() {
  peopleError("");
  try {
    peopleStatus("Placing new faces…", true);
    await postForm("/api/people/cluster", { recluster: "false" });
  } catch (err) {
    peopleError(err.message);
  } finally {
    peopleStatus("");
  }
  await loadPeople();
}

function initPeople() {
  $("tab-search").addEventListener("click", () => showPage("search"));
  $("tab-people").addEventListener("click", () => showPage("people"));
  $("people-filter").addEventListener("input", () => renderPeople());
  $("people-merge").addEventListener("click", () => mergeSelected());
  $("people-refresh").addEventListener("click", () => refreshPeople());
  $("person-rename").addEventListener("submit", renamePerson);
  $("person-back").addEventListener("click", () => { closePerson(); if (!people.list.length) loadPeople(); });
}

init();
initPeople();
