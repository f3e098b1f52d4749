// zsseg web page: upload (or drop, or pick an example), type classes, Segment; draws the overlay from the
// label map PNG the API returns; with "instances" ticked, counts the objects per class and outlines each one
// (decoded from the COCO RLE masks of the answer). Talks only to this server (the Content-Security-Policy
// forbids anything else).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  file: null, photo: null, labels: null, result: null, colourToClass: new Map(), jsonUrl: null, maxUpload: Infinity,
  ids: null, segments: new Map(), outline: null, // with instances: segment id per pixel, id -> entry, edge pixels
};

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot display this image"));
    img.src = src;
  });
}

function pixels(img, w, h) {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img, 0, 0, w, h);
  return ctx.getImageData(0, 0, w, h);
}

// The counts of a compressed COCO RLE string (pycocotools' encoding: 5-bit groups from "0", from the fourth count
// on a difference to the count two before). 32-bit integers suffice for masks of fewer than 2^30 pixels.
function rleCounts(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, c = 0;
    do {
      c = s.charCodeAt(p++) - 48;
      x |= (c & 0x1f) << (5 * k++);
    } while (c & 0x20);
    if (c & 0x10) x |= -1 << (5 * k);
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// Segment id per pixel (row-major) from the instances' RLEs, which run down each column.
function instanceIds(instances, w, h) {
  const ids = new Int32Array(w * h);
  for (const inst of instances) {
    const counts = rleCounts(inst.rle.counts);
    let p = 0;
    for (let i = 0; i < counts.length; i++) {
      if (i % 2) for (let q = p, end = p + counts[i]; q < end; q++) ids[(q % h) * w + Math.floor(q / h)] = inst.id;
      p += counts[i];
    }
  }
  return ids;
}

// 1 where a pixel of a thing instance has a 4-neighbour t pixels away (or the image edge) outside the instance:
// its outline, t pixels wide (t grows with the image, so outlines stay visible when the canvas is scaled down).
function outlinePixels(ids, segments, w, h) {
  const t = Math.max(1, Math.round(Math.max(w, h) / 512));
  const edge = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const id = ids[i];
      if (id === 0 || !segments.get(id).isthing) continue;
      if (x < t || y < t || x >= w - t || y >= h - t ||
          ids[i - t] !== id || ids[i + t] !== id || ids[i - t * w] !== id || ids[i + t * w] !== id) edge[i] = 1;
    }
  }
  return edge;
}

function chooseFile(file) {
  if (!file) return;
  if (file.size > state.maxUpload) {
    const mib = (n) => (n / 1048576).toFixed(1);
    return setStatus(`${file.name} is ${mib(file.size)} MiB; this server accepts up to ${mib(state.maxUpload)} MiB`, true);
  }
  state.file = file;
  $("drop-text").textContent = `${file.name} (${Math.round(file.size / 1024)} KiB)`;
  $("submit").disabled = false;
  setStatus("");
}

function draw() {
  if (!state.labels) return;
  const { width: w, height: h } = state.labels;
  const canvas = $("overlay");
  canvas.width = w;
  canvas.height = h;
  const alpha = Number($("opacity").value) / 100;
  const photo = state.photo.data;
  const lab = state.labels.data;
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(w, h);
  const o = out.data;
  const edge = state.outline;
  for (let i = 0; i < o.length; i += 4) {
    if (edge && edge[i >> 2]) { // instance outlines in white (no class colour is white)
      o[i] = o[i + 1] = o[i + 2] = o[i + 3] = 255;
      continue;
    }
    const unlabelled = lab[i] === 0 && lab[i + 1] === 0 && lab[i + 2] === 0; // no class is drawn black
    const a = unlabelled ? 0 : alpha;
    o[i] = Math.round((1 - a) * photo[i] + a * lab[i]);
    o[i + 1] = Math.round((1 - a) * photo[i + 1] + a * lab[i + 1]);
    o[i + 2] = Math.round((1 - a) * photo[i + 2] + a * lab[i + 2]);
    o[i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
}

function showLegend(result) {
  const legend = $("legend");
  legend.replaceChildren();
  const order = result.classes.map((c, i) => i).sort(
    (a, b) => result.class_pixel_share[result.classes[b]] - result.class_pixel_share[result.classes[a]]);
  for (const i of order) {
    const name = result.classes[i];
    const li = document.createElement("li");
    li.dataset.cls = name;
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = result.colors[i];
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    const share = document.createElement("span");
    share.className = "share";
    share.textContent = `${(100 * result.class_pixel_share[name]).toFixed(1)}%`;
    li.append(sw, label, share);
    legend.append(li);
  }
  showInstances(result);
  const t = result.timings_s;
  $("timings").textContent =
    `${result.model}, ${result.proposals} (${result.num_proposals} regions); ` +
    `proposals ${t.proposals.toFixed(2)} s, classify ${t.classify.toFixed(2)} s, server total ${t.total.toFixed(2)} s`;
}

function showInstances(result) {
  $("objects").hidden = !result.instances;
  if (!result.instances) return;
  const counts = Object.entries(result.counts).sort((a, b) => b[1] - a[1]);
  $("counts").textContent = counts.map(([name, n]) => `${n} x ${name}`).join(", ") || "no objects";
  const source = result.stuff_source === "user" ? "as given" : "built-in list";
  $("stuff-used").textContent = result.stuff.length ? `stuff (${source}): ${result.stuff.join(", ")}` : "no stuff classes";
}

async function segment(event) {
  event.preventDefault();
  if (!state.file) return setStatus("choose an image first", true);
  const body = new FormData();
  body.append("image", state.file, state.file.name || "image");
  body.append("classes", $("classes").value);
  if ($("templates").value) body.append("templates", $("templates").value);
  if ($("instances").checked) {
    body.append("instances", "true");
    if ($("stuff").value.trim()) body.append("stuff", $("stuff").value);
  }
  $("submit").disabled = true;
  setStatus("segmenting…");
  const started = performance.now();
  try {
    const response = await fetch("/v1/segment", { method: "POST", body });
    const result = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(result.error || `HTTP ${response.status}`);
    const roundTrip = ((performance.now() - started) / 1000).toFixed(2);
    const [h, w] = result.image_size;
    const photoUrl = URL.createObjectURL(state.file);
    const [photo, labels] = await Promise.all([
      loadImage(photoUrl), loadImage(`data:image/png;base64,${result.label_map_png_base64}`)]);
    URL.revokeObjectURL(photoUrl);
    state.photo = pixels(photo, w, h);
    state.labels = pixels(labels, w, h);
    state.result = result;
    state.colourToClass = new Map(result.colors.map((c, i) => [c, result.classes[i]]));
    state.segments = new Map((result.instances || []).map((inst) => [inst.id, inst]));
    state.ids = result.instances ? instanceIds(result.instances, w, h) : null;
    state.outline = state.ids ? outlinePixels(state.ids, state.segments, w, h) : null;
    draw();
    showLegend(result);
    $("download-png").href = `data:image/png;base64,${result.label_map_png_base64}`;
    if (state.jsonUrl) URL.revokeObjectURL(state.jsonUrl);
    state.jsonUrl = URL.createObjectURL(new Blob([JSON.stringify(result, null, 2)], { type: "application/json" }));
    $("download-json").href = state.jsonUrl;
    $("result").hidden = false;
    $("overlay").dataset.ready = "1";
    setStatus(`done in ${roundTrip} s`);
  } catch (err) {
    setStatus(`error: ${err.message}`, true);
  } finally {
    $("submit").disabled = false;
  }
}

function hover(event) {
  if (!state.labels) return;
  const canvas = $("overlay");
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * canvas.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * canvas.height);
  if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return;
  const i = 4 * (y * canvas.width + x);
  const d = state.labels.data;
  const hex = "#" + [d[i], d[i + 1], d[i + 2]].map((v) => v.toString(16).padStart(2, "0")).join("");
  let what = state.colourToClass.get(hex) || "unlabelled";
  const inst = state.ids ? state.segments.get(state.ids[y * canvas.width + x]) : undefined;
  if (inst && inst.isthing) what = `${inst.label} #${inst.id} (score ${inst.score.toFixed(2)})`;
  $("hover").textContent = `(${x}, ${y}): ${what}`;
}

async function useExample(event) {
  const name = event.target.dataset.name;
  const response = await fetch(`/v1/examples/${encodeURIComponent(name)}`);
  if (!response.ok) return setStatus(`cannot load the example (HTTP ${response.status})`, true);
  chooseFile(new File([await response.blob()], name, { type: response.headers.get("content-type") || "" }));
  if (!$("classes").value) $("classes").value = "person, american flag, rocket, sky, wall";
}

async function init() {
  $("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => chooseFile(e.dataTransfer.files[0]));
  $("example").addEventListener("click", useExample);
  $("form").addEventListener("submit", segment);
  $("opacity").addEventListener("input", draw);
  $("instances").addEventListener("change", (e) => { $("stuff").disabled = !e.target.checked; });
  $("overlay").addEventListener("mousemove", hover);
  try {
    const info = await (await fetch("/v1/info")).json();
    const byDefault = document.createElement("option");
    byDefault.value = "";
    byDefault.textContent = `server default (${info.templates})`;
    $("templates").append(byDefault);
    for (const name of info.template_sets.filter((n) => n !== info.templates)) {
      const opt = document.createElement("option");
      opt.value = opt.textContent = name;
      $("templates").append(opt);
    }
    state.maxUpload = info.limits.max_upload_bytes;
    $("info").textContent = `zsseg ${info.version} · model ${info.model} · proposals ${info.proposals} · ` +
      `uploads up to ${Math.round(info.limits.max_upload_bytes / 1048576)} MiB`;
  } catch (err) {
    setStatus(`cannot reach the server: ${err.message}`, true);
  }
}

init();
