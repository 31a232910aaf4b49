// simlink's page: three tabs over the public API (no build step, no network beyond this server).
"use strict";

const FLOW_MIN_MASS = 0.001; // plan cells lighter than this draw no flow line
const SVG = "http://www.w3.org/2000/svg";
// Viridis, sampled at 9 points: dark blue (low) to yellow (high).
const RAMP = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];

const byId = (id) => document.getElementById(id);
const state = { info: null, compare: null };

function colour(t) {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const mix = (a, b) => Math.round(a + (b - a) * (x - i));
  const [a, b] = [RAMP[i], RAMP[i + 1]].map((hex) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16)));
  return `rgb(${mix(a[0], b[0])}, ${mix(a[1], b[1])}, ${mix(a[2], b[2])})`;
}

function element(name, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function format(value, digits = 4) {
  return Number(value).toFixed(digits);
}

// --- requests and errors -------------------------------------------------------------------

async function call(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch (error) {
    payload = { message: `${response.status} ${response.statusText}` };
  }
  return { status: response.status, ok: response.ok, payload };
}

function clearErrors(form) {
  for (const slot of form.querySelectorAll(".error")) slot.textContent = "";
}

// Puts each error next to the field it names ("pairs[0].a", "candidates[3]" -> "candidates", ...).
function showErrors(form, result) {
  const slot = (field) =>
    form.querySelector(`.error[data-field="${CSS.escape(field)}"]`) ||
    form.querySelector(`.error[data-field="${CSS.escape(field.replace(/\[\d+\]$/, "").replace(/\..*$/, ""))}"]`);
  const entries = Array.isArray(result.payload.detail) ? result.payload.detail : [];
  if (result.status === 422 && entries.length) {
    for (const entry of entries) {
      const target = slot(entry.field) || slot("body");
      target.textContent = [target.textContent, `${entry.field}: ${entry.msg}`].filter(Boolean).join("; ");
    }
  } else {
    slot("body").textContent = result.payload.message || `request failed (${result.status})`;
  }
}

function busy(form, on) {
  for (const button of form.querySelectorAll("button")) button.disabled = on;
}

// --- tabs ------------------------------------------------------------------------------------

function showTab(name) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.getAttribute("aria-controls") === name;
    tab.setAttribute("aria-selected", String(selected));
    byId(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

// --- compare: score, flow lines, heat-map ----------------------------------------------------

async function compare(event) {
  event.preventDefault();
  const form = byId("compare-form");
  clearErrors(form);
  busy(form, true);
  const method = byId("compare-method").value;
  const described = state.info ? state.info.methods[method] : null;
  const body = {
    pairs: [{ a: byId("compare-a").value, b: byId("compare-b").value }],
    method,
    alignment: described && described.alignment ? "full" : false,
    tokens: true,
    cosine: true,
    skip_special_tokens: byId("compare-skip").checked,
  };
  const result = await call("/similarity", body);
  busy(form, false);
  if (!result.ok) {
    byId("compare-result").hidden = true;
    showErrors(form, result);
    return;
  }
  state.compare = result.payload.results[0];
  byId("compare-similarity").textContent = format(state.compare.similarity);
  byId("compare-distance").textContent = format(state.compare.distance);
  byId("compare-note").textContent = state.compare.alignment
    ? ""
    : `${method} has no transport plan: the flow shows the tokens and their masses only.`;
  byId("compare-result").hidden = false;
  drawFlow(state.compare);
  drawHeatmap(state.compare);
}

function tokenRow(tokens, widths) {
  const positions = [];
  let x = 0;
  tokens.forEach((token, i) => {
    positions.push(x + widths[i] / 2);
    x += widths[i];
  });
  return { positions, width: x };
}

function tokenWidth(token) {
  return Math.max(34, token.length * 8 + 14);
}

function drawFlow(pair) {
  const svg = byId("flow");
  svg.replaceChildren();
  svg.classList.remove("focused");
  const a = pair.a_tokens;
  const b = pair.b_tokens;
  const rowA = tokenRow(a, a.map((t) => tokenWidth(t.token)));
  const rowB = tokenRow(b, b.map((t) => tokenWidth(t.token)));
  const width = Math.max(rowA.width, rowB.width) + 20;
  const height = 190;
  const shiftA = (width - rowA.width) / 2;
  const shiftB = (width - rowB.width) / 2;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const cells = (pair.alignment || []).filter((cell) => cell.mass >= FLOW_MIN_MASS);
  const maxCost = Math.max(1e-9, ...cells.map((cell) => cell.cost));
  const lines = element("g");
  for (const cell of cells) {
    const x1 = shiftA + rowA.positions[cell.a_index];
    const x2 = shiftB + rowB.positions[cell.b_index];
    const path = element("path", {
      class: "flow",
      d: `M ${x1} 44 C ${x1} 95, ${x2} 95, ${x2} 146`,
      stroke: colour(cell.cost / maxCost),
      "stroke-width": Math.max(1, cell.mass * 60).toFixed(2),
      "data-a": cell.a_index,
      "data-b": cell.b_index,
    });
    path.appendChild(
      element("title", {}, `${cell.a_token} → ${cell.b_token}: mass ${format(cell.mass)}, cost ${format(cell.cost)}`),
    );
    lines.appendChild(path);
  }
  svg.appendChild(lines);
  const drawRow = (tokens, row, shift, side, tokenY, weightY) =>
    tokens.forEach((token, i) => {
      const x = shift + row.positions[i];
      const label = element(
        "text",
        {
          class: `token${token.span[0] === token.span[1] ? " special" : ""}`,
          x,
          y: tokenY,
          "text-anchor": "middle",
          "data-side": side,
          "data-index": i,
        },
        token.token,
      );
      label.addEventListener("mouseenter", () => focusToken(side, i));
      label.addEventListener("mouseleave", () => focusToken(null, null));
      svg.appendChild(label);
      svg.appendChild(element("text", { class: "weight", x, y: weightY, "text-anchor": "middle" }, format(token.weight, 3)));
    });
  drawRow(a, rowA, shiftA, "a", 20, 35);
  drawRow(b, rowB, shiftB, "b", 166, 182);
}

// Highlights a token's lines in the flow and its row (a) or column (b) in the heat-map.
function focusToken(side, index) {
  const flow = byId("flow");
  flow.classList.toggle("focused", side !== null);
  for (const node of document.querySelectorAll("#flow .highlight, #heatmap .highlight")) node.classList.remove("highlight");
  if (side === null) return;
  const key = side === "a" ? "a" : "b";
  for (const path of flow.querySelectorAll(`path.flow[data-${key}="${index}"]`)) path.classList.add("highlight");
  for (const label of document.querySelectorAll(`text.token[data-side="${side}"][data-index="${index}"]`)) {
    label.classList.add("highlight");
  }
  const attribute = side === "a" ? "data-row" : "data-col";
  for (const cell of document.querySelectorAll(`#heatmap rect.cell[${attribute}="${index}"]`)) cell.classList.add("highlight");
}

function drawHeatmap(pair) {
  const svg = byId("heatmap");
  svg.replaceChildren();
  const showCosine = byId("show-cosine").checked;
  const a = pair.a_tokens;
  const b = pair.b_tokens;
  const size = 22;
  // Column labels are rotated by 60 degrees: they rise about 0.87 of their length and lean right by half.
  const longestColumn = Math.max(...b.map((t) => t.token.length)) * 7.5;
  const left = Math.max(...a.map((t) => t.token.length)) * 7.5 + 12;
  const top = longestColumn * 0.87 + 16;
  const width = left + b.length * size + longestColumn * 0.5 + 8;
  const height = top + a.length * size + 4;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const mass = a.map(() => b.map(() => 0));
  const cost = a.map(() => b.map(() => null));
  for (const cell of pair.alignment || []) {
    mass[cell.a_index][cell.b_index] = cell.mass;
    cost[cell.a_index][cell.b_index] = cell.cost;
  }
  const maxMass = Math.max(1e-12, ...mass.flat());
  byId("heatmap-title").textContent = showCosine
    ? "Cosine matrix: rows = tokens of a, columns = tokens of b"
    : "Transport plan: rows = tokens of a, columns = tokens of b";
  a.forEach((rowToken, i) => {
    const label = element("text", { class: "token", x: left - 6, y: top + i * size + 15, "text-anchor": "end", "data-side": "a", "data-index": i }, rowToken.token);
    label.addEventListener("mouseenter", () => focusToken("a", i));
    label.addEventListener("mouseleave", () => focusToken(null, null));
    svg.appendChild(label);
    b.forEach((colToken, j) => {
      const cosine = pair.cosine ? pair.cosine[i][j] : null;
      const value = showCosine ? (cosine + 1) / 2 : mass[i][j] / maxMass;
      const rect = element("rect", {
        class: "cell",
        x: left + j * size,
        y: top + i * size,
        width: size,
        height: size,
        fill: showCosine || mass[i][j] > 0 ? colour(value) : "#f2f4f7",
        "data-row": i,
        "data-col": j,
      });
      const parts = [`${rowToken.token} → ${colToken.token}`, `mass ${format(mass[i][j])}`];
      if (cost[i][j] !== null) parts.push(`cost ${format(cost[i][j])}`);
      if (cosine !== null) parts.push(`cosine ${format(cosine)}`);
      rect.appendChild(element("title", {}, parts.join(", ")));
      svg.appendChild(rect);
    });
  });
  b.forEach((colToken, j) => {
    const x = left + j * size + 15;
    const label = element("text", { class: "token", x, y: top - 6, transform: `rotate(-60 ${x} ${top - 6})`, "data-side": "b", "data-index": j }, colToken.token);
    label.addEventListener("mouseenter", () => focusToken("b", j));
    label.addEventListener("mouseleave", () => focusToken(null, null));
    svg.appendChild(label);
  });
}

// --- rank ------------------------------------------------------------------------------------

async function rank(event) {
  event.preventDefault();
  const form = byId("rank-form");
  clearErrors(form);
  busy(form, true);
  const candidates = byId("rank-candidates").value.split("\n").filter((line) => line.trim());
  const body = {
    source: byId("rank-source").value,
    candidates,
    method: byId("rank-method").value,
    top_k: Number(byId("rank-top-k").value),
  };
  const result = await call("/similarity/rank", body);
  busy(form, false);
  if (!result.ok) {
    byId("rank-result").hidden = true;
    showErrors(form, result);
    return;
  }
  const ranking = result.payload;
  byId("rank-summary").textContent =
    `${ranking.exact_solves} exact transport solves; ${ranking.pruned} of ${candidates.length} candidates ` +
    "skipped by the lower bounds (the answer is the same as solving all).";
  byId("rank-rows").replaceChildren(
    ...ranking.results.map((row, position) => {
      const tr = document.createElement("tr");
      for (const [text, number] of [
        [String(position + 1), true],
        [candidates[row.index], false],
        [format(row.similarity), true],
        [format(row.distance), true],
      ]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (number) td.className = "number";
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  byId("rank-result").hidden = false;
}

// --- link ------------------------------------------------------------------------------------

const mention = { span: null };

function showMention() {
  const text = byId("link-text").value;
  byId("link-mention").textContent = mention.span
    ? `mention [${mention.span[0]}, ${mention.span[1]}): "${text.slice(mention.span[0], mention.span[1])}"`
    : "no mention: the whole text is the input";
  byId("link-clear-mention").hidden = !mention.span;
}

// Offsets in Unicode code points, as the API counts them (JavaScript counts UTF-16 units).
function codePoints(text, units) {
  return Array.from(text.slice(0, units)).length;
}

function useSelection() {
  const area = byId("link-text");
  if (area.selectionEnd > area.selectionStart) {
    mention.span = [codePoints(area.value, area.selectionStart), codePoints(area.value, area.selectionEnd)];
  }
  showMention();
}

async function link(event) {
  event.preventDefault();
  const form = byId("link-form");
  clearErrors(form);
  byId("link-notice").hidden = true;
  busy(form, true);
  const task = byId("link-task").value;
  const body = {
    text: byId("link-text").value,
    task,
    top_k: Number(byId("link-top-k").value),
    num_beams: Number(byId("link-beams").value),
  };
  if (mention.span && task === "entity") body.mention = { start: mention.span[0], end: mention.span[1] };
  if (byId("link-auto").checked) body.candidates = "auto";
  if (byId("link-several").checked && task === "entity") body.several = true;
  const result = await call("/link-entity", body);
  busy(form, false);
  if (!result.ok) {
    byId("link-result").hidden = true;
    if (result.status === 503) {
      byId("link-notice").textContent = result.payload.message;
      byId("link-notice").hidden = false;
    } else {
      showErrors(form, result);
    }
    return;
  }
  // disambiguation: how entities sharing the generated name were ordered (absent for a name's only entity);
  // mention: where the text writes the name (absent when it does not)
  const columns =
    task === "kbqa"
      ? ["subject", "predicate", "answers", "score"]
      : ["id", "name", "score", "disambiguation", "mention"];
  const head = document.createElement("tr");
  for (const column of columns) {
    const th = document.createElement("th");
    th.textContent = column;
    head.appendChild(th);
  }
  byId("link-head").replaceChildren(head);
  byId("link-rows").replaceChildren(
    ...result.payload.results.map((row) => {
      const tr = document.createElement("tr");
      for (const column of columns) {
        const td = document.createElement("td");
        const value = column === "mention" ? written(body.text, row.mention) : row[column];
        const numeric = column === "score" || column === "disambiguation";
        td.textContent =
          value === undefined || value === null ? "" : numeric ? format(value) : Array.isArray(value) ? value.join(", ") : value;
        if (numeric) td.className = "number";
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  byId("link-result").hidden = false;
}

// A result's mention as the text writes it, with its code-point offsets: "python" 9–15.
function written(text, span) {
  if (!span) return "";
  return `"${Array.from(text).slice(span.start, span.end).join("")}" ${span.start}–${span.end}`;
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => showTab(tab.getAttribute("aria-controls")));
  }
  byId("compare-form").addEventListener("submit", compare);
  byId("rank-form").addEventListener("submit", rank);
  byId("link-form").addEventListener("submit", link);
  byId("show-cosine").addEventListener("change", () => state.compare && drawHeatmap(state.compare));
  byId("link-use-selection").addEventListener("click", useSelection);
  byId("link-clear-mention").addEventListener("click", () => {
    mention.span = null;
    showMention();
  });
  byId("link-text").addEventListener("input", () => {
    mention.span = null;
    showMention();
  });
  document.querySelector(".legend .ramp").style.background = `linear-gradient(to right, ${RAMP.join(", ")})`;
  const requested = location.hash.slice(1);
  if (["compare", "rank", "link"].includes(requested)) showTab(requested);
  const info = await call("/info");
  if (info.ok) {
    state.info = info.payload;
    for (const select of document.querySelectorAll("select.method")) {
      select.replaceChildren(
        ...Object.entries(state.info.methods).map(([name, method]) => {
          const option = document.createElement("option");
          option.value = name;
          option.textContent = `${name}: ${method.description}`;
          return option;
        }),
      );
      select.value = state.info.default_method;
    }
    if (state.info.linker === null) {
      byId("link-notice").textContent = "No linker is loaded on this server; /link-entity will answer 503.";
      byId("link-notice").hidden = false;
    }
  }
  document.body.dataset.ready = "true";
}

start();
