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
  $("results-title").textContent = `Results for ${who}` +
    (result.threshold === null ? " (no match threshold for this pipeline)" :
      ` (match threshold ${result.threshold.toFixed(3)})`);
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
      `<div>similarity ${h.similarity.toFixed(3)} <span class="verdict">${verdict}</span></div>` +
      (h.label ? `<div class="label">${esc(h.label.replaceAll("_", " "))}</div>` : "") + when +
      `<div><a href="${h.media_url}" target="_blank" rel="noopener">${name}</a></div></div>`;
    grid.appendChild(card);
  }
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
  for (const id of ["k", "pipeline", "target"]) $(id).addEventListener("change", () => search());
  window.addEventListener("resize", () => { if (state.query && state.query.kind === "image") drawBoxes(); });
  loadStats();
}

init();
