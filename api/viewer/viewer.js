// The analysis viewer: planes are fetched one request each, nearest the shown plane first,
// then windowed and tinted here so presets and overlay toggles redraw without a round trip.
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("viewer-data").textContent);
  const analysis = data.analysis;
  const result = analysis.result;
  const $ = (id) => document.getElementById(id);
  const BLEND = 0.55; // weight of the class colour over grey where there is blood
  const PARALLEL = 6; // plane requests in flight
  const CACHE_BYTES = 384e6; // decoded planes kept; long thin studies keep a window around
  const READY_TRIES = 60; // 409s while the planes are written, a second apart
  const SVG = "http://www.w3.org/2000/svg";
  const CAPTION_PX = 13; // caption height on screen, whatever the zoom

  function element(tag, text, attributes = {}) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    return node;
  }

  function status(text, isError = false) {
    const node = $("status");
    node.textContent = text;
    node.classList.toggle("error", isError);
    document.body.dataset.error = isError ? text : "";
  }

  const model = analysis.model;
  if (model) {
    const digest = model.sha256 ? ` · weights ${model.sha256.slice(0, 12)}` : "";
    $("model").textContent = `${model.name} ${model.version}${digest}`;
  }
  studyDetails();
  warnings();

  if (!result) {
    unavailable();
    return;
  }

  const [planes, rows, columns] = result.shape;
  const [, rowMm, columnMm] = result.spacing_mm;
  const pixels = rows * columns;
  const classes = new Map(data.classes.map((c) => [c.label, c]));
  const byName = new Map(data.classes.map((c) => [c.name, c]));
  const shown = new Set(data.classes.map((c) => c.label));
  const cache = new Map();
  const keep = Math.max(16, Math.min(planes, Math.floor(CACHE_BYTES / (pixels * 3))));
  const reach = keep >= planes ? planes : Math.floor(keep / 2);
  let notReady = 0;
  const pending = new Set();
  let current = firstPlane();
  let windowName = "brain";
  let lut = windowLut(...data.windows.brain);
  let stopped = false;

  const canvas = $("image");
  canvas.width = columns;
  canvas.height = rows;
  const context = canvas.getContext("2d");
  const image = context.createImageData(columns, rows);
  const boxes = $("boxes");
  boxes.setAttribute("viewBox", `0 0 ${columns} ${rows}`);
  boxes.setAttribute("preserveAspectRatio", "none");

  summary();
  classTable();
  hemorrhageList();
  windowButtons();
  const slider = $("slider");
  slider.max = String(planes);
  navigation();
  new ResizeObserver(fit).observe($("stage"));
  fit();
  show(current);
  pump();

  // ---- layout ----

  function fit() {
    const stage = $("stage");
    const aspect = (columns * columnMm) / (rows * rowMm);
    let width = stage.clientWidth;
    let height = width / aspect;
    if (height > stage.clientHeight) {
      height = stage.clientHeight;
      width = height * aspect;
    }
    const frame = $("frame");
    frame.style.width = `${Math.floor(width)}px`;
    frame.style.height = `${Math.floor(height)}px`;
    drawBoxes(); // captions keep their size on screen
  }

  // ---- loading ----

  function nearestMissing() {
    for (let distance = 0; distance < reach; distance += 1) {
      for (const k of [current + distance, current - distance]) {
        if (k >= 0 && k < planes && !cache.has(k) && !pending.has(k)) return k;
      }
    }
    return null;
  }

  function pump() {
    while (!stopped && pending.size < PARALLEL) {
      const k = nearestMissing();
      if (k === null) return;
      load(k);
    }
  }

  async function load(k) {
    pending.add(k);
    let retry = false;
    try {
      const response = await fetch(`${data.planes}${k}`, { credentials: "same-origin" });
      if (response.status === 409) {
        const problem = await response.json();
        if (problem.type.endsWith("/outputs-not-ready") && (notReady += 1) < READY_TRIES) {
          retry = true; // the planes follow a done analysis within seconds
          status("Preparing images…");
          return;
        }
        stop(`${problem.title}: ${problem.detail}`);
        return;
      }
      if (!response.ok) {
        await fail(response);
        return;
      }
      const buffer = await response.arrayBuffer();
      if (buffer.byteLength !== pixels * 3) {
        stop(`Plane ${k + 1} has ${buffer.byteLength} bytes, not ${pixels * 3}.`);
        return;
      }
      cache.set(k, { hu: new Int16Array(buffer, 0, pixels), label: new Uint8Array(buffer, pixels * 2) });
      evict();
      const target = Math.min(planes, keep);
      $("loaded").textContent = cache.size < target ? `${cache.size}/${target} loaded` : "";
      document.body.dataset.loaded = String(cache.size);
      if (cache.size === planes) performance.mark("ich-all-planes");
      if (k === current) draw();
    } catch (error) {
      retry = true;
      status(`Connection lost (${error.message}); retrying…`, true);
    } finally {
      pending.delete(k);
      if (retry) setTimeout(pump, 1000);
      else pump();
    }
  }

  function evict() {
    while (cache.size > keep) {
      let farthest = current;
      for (const k of cache.keys()) {
        if (Math.abs(k - current) > Math.abs(farthest - current)) farthest = k;
      }
      cache.delete(farthest);
    }
  }

  async function fail(response) {
    let detail = `The server answered ${response.status}.`;
    try {
      const problem = await response.json();
      detail = `${problem.title}: ${problem.detail}`;
    } catch (ignored) {
      // not a problem document; keep the status line
    }
    stop(detail);
  }

  function stop(text) {
    stopped = true;
    status(text, true);
  }

  // ---- drawing ----

  function windowLut(level, width) {
    const [low, high] = data.hu_range;
    const table = new Uint8ClampedArray(high - low + 1);
    const bottom = level - width / 2;
    for (let hu = low; hu <= high; hu += 1) table[hu - low] = ((hu - bottom) / width) * 255 + 0.5;
    return table;
  }

  function draw() {
    const plane = cache.get(current);
    document.body.dataset.plane = String(current);
    $("plane-label").textContent = `Plane ${current + 1} / ${planes}`;
    canvas.setAttribute("aria-label", `CT plane ${current + 1} of ${planes}`);
    drawBoxes();
    if (!plane) {
      status(`Loading plane ${current + 1}…`);
      document.body.dataset.drawn = "";
      return;
    }
    if (!stopped) status("");
    const out = image.data;
    const offset = -data.hu_range[0];
    const tint = [];
    for (const [label, c] of classes) tint[label] = shown.has(label) ? c.colour : null;
    for (let p = 0, q = 0; p < pixels; p += 1, q += 4) {
      const grey = lut[plane.hu[p] + offset];
      const colour = plane.label[p] ? tint[plane.label[p]] : null;
      if (colour) {
        out[q] = (1 - BLEND) * grey + BLEND * colour[0];
        out[q + 1] = (1 - BLEND) * grey + BLEND * colour[1];
        out[q + 2] = (1 - BLEND) * grey + BLEND * colour[2];
      } else {
        out[q] = out[q + 1] = out[q + 2] = grey;
      }
      out[q + 3] = 255;
    }
    context.putImageData(image, 0, 0);
    if (!document.body.dataset.drawn && !performance.getEntriesByName("ich-first-plane").length) {
      performance.mark("ich-first-plane"); // what bench/viewer.py times
    }
    document.body.dataset.drawn = String(current);
  }

  function drawBoxes() {
    boxes.replaceChildren();
    const volumes = new Map(result.hemorrhages.map((h) => [h.id, h.volume_ml]));
    const unit = columns / Math.max(1, $("frame").clientWidth); // image pixels per screen pixel
    const fontSize = CAPTION_PX * unit;
    const gap = 3 * unit;
    for (const d of result.detections) {
      const c = byName.get(d.hemorrhage_class);
      if (d.index !== current || !shown.has(c.label)) continue;
      const [c0, r0, c1, r1] = d.box_pixels;
      const colour = `rgb(${c.colour.join(",")})`;
      const rect = document.createElementNS(SVG, "rect");
      const place = { x: c0, y: r0, width: c1 - c0, height: r1 - r0, stroke: colour };
      for (const [key, value] of Object.entries(place)) rect.setAttribute(key, value);
      rect.setAttribute("vector-effect", "non-scaling-stroke");
      rect.dataset.class = d.hemorrhage_class;
      const caption = document.createElementNS(SVG, "text");
      const volume = volumes.get(d.hemorrhage_id) ?? 0;
      caption.textContent = `${d.hemorrhage_class} ${d.score.toFixed(2)} ${volume.toFixed(1)} mL`;
      const above = r0 - gap >= fontSize;
      caption.setAttribute("x", c0);
      caption.setAttribute("y", above ? r0 - gap : r1 + fontSize + gap);
      caption.setAttribute("fill", colour);
      caption.setAttribute("font-size", fontSize);
      caption.setAttribute("stroke-width", 3 * unit);
      boxes.append(rect, caption);
    }
  }

  function show(k) {
    current = Math.min(planes - 1, Math.max(0, k));
    slider.value = String(current + 1);
    draw();
    pump();
  }

  // ---- controls ----

  function navigation() {
    slider.addEventListener("input", () => show(Number(slider.value) - 1));
    const steps = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10, PageDown: -10 };
    document.addEventListener("keydown", (event) => {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.target === slider && event.key.startsWith("Arrow")) return; // it moves itself
      const presets = Object.keys(data.windows);
      if (event.key in steps) show(current + steps[event.key]);
      else if (event.key === "Home") show(0);
      else if (event.key === "End") show(planes - 1);
      else if (/^[1-9]$/.test(event.key) && presets[Number(event.key) - 1]) {
        setWindow(presets[Number(event.key) - 1]);
      } else if (event.key === "o" || event.key === "O") toggleAll();
      else return;
      event.preventDefault();
    });
    let travel = 0;
    $("stage").addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        travel += event.deltaMode === 0 ? event.deltaY / 40 : event.deltaY;
        const step = Math.trunc(travel);
        if (step) {
          travel -= step;
          show(current + step);
        }
      },
      { passive: false },
    );
  }

  function setWindow(name) {
    windowName = name;
    lut = windowLut(...data.windows[name]);
    for (const button of $("windows").children) {
      button.setAttribute("aria-pressed", String(button.dataset.window === name));
    }
    const [level, width] = data.windows[name];
    $("window-label").textContent = `${name} W ${width} L ${level}`;
    document.body.dataset.window = name;
    draw();
  }

  function setShown(label, on) {
    if (on) shown.add(label);
    else shown.delete(label);
    const box = document.querySelector(`input[data-label="${label}"]`);
    if (box) box.checked = on;
    draw();
  }

  function toggleAll() {
    const on = shown.size === 0;
    for (const label of classes.keys()) setShown(label, on);
  }

  function windowButtons() {
    for (const [index, name] of Object.keys(data.windows).entries()) {
      const button = element("button", `${name} (${index + 1})`, { type: "button" });
      button.dataset.window = name;
      button.addEventListener("click", () => setWindow(name));
      $("windows").append(button);
    }
    setWindow(windowName);
  }

  // ---- side panel ----

  function summary() {
    const node = $("summary");
    const flagged = result.any_ich_flagged;
    node.classList.add(flagged ? "positive" : "negative");
    node.append(
      element("strong", flagged ? "Hemorrhage suspected" : "No hemorrhage flagged"),
      element(
        "span",
        `any ICH probability ${result.any_ich_probability.toFixed(2)} ` +
          `(flag at ${result.any_ich_threshold.toFixed(2)})`,
      ),
    );
    node.dataset.flagged = String(flagged);
  }

  function classTable() {
    const body = document.querySelector("#classes tbody");
    for (const finding of result.classes) {
      const c = byName.get(finding.hemorrhage_class);
      const toggle = element("input", null, { type: "checkbox", id: `show-${c.label}` });
      toggle.checked = true;
      toggle.dataset.label = String(c.label);
      toggle.addEventListener("change", () => setShown(c.label, toggle.checked));
      const name = element("label", null, { for: `show-${c.label}` });
      const swatch = element("span", null, { class: "swatch" });
      swatch.style.background = `rgb(${c.colour.join(",")})`;
      name.append(swatch, finding.hemorrhage_class);
      const first = element("td");
      first.append(toggle, name);
      const flag = element("td", finding.flagged ? "flagged" : "–", {
        class: finding.flagged ? "flag" : "dim",
      });
      const volume = element("td", `${finding.total_volume_ml.toFixed(2)} mL`, { class: "num volume" });
      volume.dataset.ml = String(finding.total_volume_ml);
      const row = element("tr");
      row.dataset.class = finding.hemorrhage_class;
      row.append(
        first,
        flag,
        element("td", finding.probability.toFixed(2), { class: "num" }),
        volume,
        element("td", finding.count, { class: "num" }),
      );
      body.append(row);
    }
  }

  function hemorrhageList() {
    const list = $("hemorrhages");
    if (!result.hemorrhages.length) list.append(element("li", "None reported.", { class: "dim" }));
    for (const h of result.hemorrhages) {
      const [k0, , , k1] = h.bbox_voxels;
      const text =
        `${h.hemorrhage_class} · ${h.volume_ml.toFixed(2)} mL · score ${h.score.toFixed(2)} · ` +
        `planes ${k0 + 1}–${k1}` + (h.abc2_ml !== null ? ` · ABC/2 ${h.abc2_ml.toFixed(1)} mL` : "");
      const button = element("button", text, { type: "button" });
      button.dataset.plane = String(bestPlane(h));
      button.addEventListener("click", () => show(bestPlane(h)));
      const item = element("li");
      item.append(button);
      list.append(item);
    }
  }

  function warnings() {
    const seen = new Set();
    const all = [...analysis.warnings, ...(analysis.result ? analysis.result.warnings : [])];
    for (const w of all) {
      const key = `${w.code}\n${w.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      $("warnings").append(element("li", w.message, { "data-code": w.code }));
    }
    if (!seen.size) $("warnings").append(element("li", "None.", { class: "dim" }));
  }

  function studyDetails() {
    const timings = analysis.timings;
    const rows = [
      ["Analysis", analysis.id],
      ["Status", analysis.status],
      ["Source", analysis.source],
      ["Finished", analysis.finished ? new Date(analysis.finished).toLocaleString() : "–"],
      ["Study UID", analysis.result ? analysis.result.study_uid : "–"],
      ["Series UID", analysis.result ? analysis.result.series_uid : "–"],
      ["Time", timings ? `${timings.total_s.toFixed(1)} s` : "–"],
    ];
    for (const [term, value] of rows) $("study").append(element("dt", term), element("dd", value));
  }

  function unavailable() {
    const problem = analysis.problem;
    const text = problem
      ? `This analysis failed: ${problem.title}. ${problem.detail}`
      : `This analysis is ${analysis.status}; the page reloads when it has a result.`;
    status(text, Boolean(problem));
    $("summary").append(element("strong", problem ? "No result" : "Waiting for the result"));
    if (!problem) setTimeout(() => window.location.reload(), 1000 * data.retry_after_s);
  }

  // ---- where to start ----

  function bestPlane(h) {
    let best = null;
    for (const d of result.detections) {
      if (d.hemorrhage_id !== h.id) continue;
      const area = (d.box_pixels[2] - d.box_pixels[0]) * (d.box_pixels[3] - d.box_pixels[1]);
      if (!best || area > best.area) best = { area, index: d.index };
    }
    return best ? best.index : Math.floor((h.bbox_voxels[0] + h.bbox_voxels[3] - 1) / 2);
  }

  function firstPlane() {
    const largest = [...result.hemorrhages].sort((a, b) => b.volume_ml - a.volume_ml)[0];
    return largest ? bestPlane(largest) : Math.floor(planes / 2);
  }
})();
