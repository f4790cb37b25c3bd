
(function () {
"use strict";
var root = document.documentElement;
var api = window.protlabExplorer = {};
var TYPES = {u1: Uint8Array, i1: Int8Array, u2: Uint16Array, i4: Int32Array, u4: Uint32Array, f4: Float32Array};
var MISSING_CLUSTER = -2147483648, MISSING_CONFIDENCE = 65535, MISSING_ATTRIBUTION = -128, TABLE_ROWS = 1000;
var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
  "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8", "#fdae6b"];
var NONE_COLOUR = "#d0d0d0";
var D = null, viewer = null;
var state = {selection: [], query: "", scope: "all", sort: null, sortDir: 1, current: -1, colour: "cluster",
  summarySort: null, summaryDir: 1};

function $(id) { return document.getElementById(id); }
function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function status(text, error) { var s = $("status"); s.textContent = text; s.className = error ? "error" : ""; }
// plotly draws hover text as markup: ids and labels go in as text
function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

async function decode() {
  if (typeof DecompressionStream === "undefined")
    throw new Error("this browser cannot read the page's data (no DecompressionStream): open it in a current " +
                    "Chrome, Edge, Firefox or Safari");
  var text = $("protlab-explorer-data").textContent.replace(/\s+/g, "");
  var bin = atob(text), bytes = new Uint8Array(bin.length);
  for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  var buf = await new Response(stream).arrayBuffer();
  var size = new DataView(buf).getUint32(0, true);
  var h = JSON.parse(new TextDecoder("utf-8").decode(new Uint8Array(buf, 4, size)));
  var start = Math.ceil((4 + size) / 8) * 8, a = {};
  Object.keys(h.sections).forEach(function (name) {
    var s = h.sections[name];
    a[name] = new TYPES[s[2]](buf, start + s[0], s[1]);
  });
  return prepare(h, a);
}

function prepare(h, a) {
  var n = h.ids.length, i, k;
  var d = {h: h, a: a, n: n, index: new Map(), seqStart: new Float64Array(n + 1), attrOf: new Int32Array(n).fill(-1),
    attrStart: new Float64Array(a.attr_protein.length + 1), onMap: new Int32Array(n).fill(-1), structureOf: new Map(),
    idsLower: new Array(n), labelsLower: h.labels.map(function (s) { return s.toLowerCase(); }),
    clusterRank: new Map(), members: null, ascii: new TextDecoder("latin1")};
  for (i = 0; i < n; i++) {
    d.index.set(h.ids[i], i);
    d.idsLower[i] = h.ids[i].toLowerCase();
    d.seqStart[i + 1] = d.seqStart[i] + a.length[i];
  }
  for (k = 0; k < a.attr_protein.length; k++) {
    d.attrOf[a.attr_protein[k]] = k;
    d.attrStart[k + 1] = d.attrStart[k] + a.attr_length[k];
  }
  for (k = 0; k < a.map_protein.length; k++) d.onMap[a.map_protein[k]] = k;
  h.structures.forEach(function (s) { d.structureOf.set(s.protein, s); });
  h.summary.forEach(function (row, r) { d.clusterRank.set(row[0], r); });
  return d;
}

function sequence(i) { return D.ascii.decode(D.a.sequences.subarray(D.seqStart[i], D.seqStart[i + 1])); }
function clusterOf(i) { var c = D.a.cluster[i]; return c === MISSING_CLUSTER ? null : c; }
function labelOf(i) { var l = D.a.label[i]; return l < 0 ? "" : D.h.labels[l]; }
function confidenceOf(i) {
  var c = D.a.confidence[i];
  return c === MISSING_CONFIDENCE ? NaN : c / (MISSING_CONFIDENCE - 1);
}
function lengthOf(i) { return D.a.length[i]; }
function fmt(x, digits) { return isNaN(x) ? "" : x.toFixed(digits); }

// ---------------------------------------------------------------- map
var COLOURS = {cluster: "cluster", label: "label", confidence: "confidence", length: "length"};
function mapValues(mode) {
  var m = D.a.map_protein.length, out = new Array(m), j, i;
  for (j = 0; j < m; j++) {
    i = D.a.map_protein[j];
    if (mode === "cluster") {
      var c = clusterOf(i);
      out[j] = c === null ? NONE_COLOUR : PALETTE[D.clusterRank.get(c) % PALETTE.length];
    }
    else if (mode === "label") { var l = D.a.label[i]; out[j] = l < 0 ? NONE_COLOUR : PALETTE[l % PALETTE.length]; }
    else if (mode === "confidence") out[j] = confidenceOf(i);
    else out[j] = lengthOf(i);
  }
  return out;
}

function legend(mode) {
  var box = $("legend");
  box.textContent = "";
  var entries = [], more = 0;
  if (mode === "cluster") {
    D.h.summary.forEach(function (row, r) {
      if (r < 40) entries.push(["cluster " + row[0] + " (" + row[1] + ")", PALETTE[r % PALETTE.length]]); else more++;
    });
  } else if (mode === "label") {
    D.h.labels.forEach(function (name, r) {
      if (r < 40) entries.push([name, PALETTE[r % PALETTE.length]]); else more++;
    });
  } else {
    box.appendChild(el("span", mode === "confidence" ? "confidence of the cluster assignment (0..1)" :
                                                       "sequence length (residues)", "note"));
    return;
  }
  entries.forEach(function (e) {
    var s = el("span", null, "swatch"); s.style.background = e[1];
    box.appendChild(s); box.appendChild(el("span", e[0]));
  });
  if (more || entries.length > PALETTE.length) box.appendChild(el("span", " … " + (more ? more + " more; " : "") +
    "colours repeat every " + PALETTE.length + " (hover a point for its " + mode + ")", "note"));
}

function colour(mode) {
  if (!COLOURS[mode]) return;
  state.colour = mode;
  $("colour").value = mode;
  legend(mode);
  if (!D.a.map_protein.length) return;
  var numeric = mode === "confidence" || mode === "length";
  var update = {"marker.color": [mapValues(mode)], "marker.showscale": numeric};
  if (numeric) {
    update["marker.colorscale"] = "Viridis";
    update["marker.colorbar"] = {title: {text: mode}, thickness: 12};
    update["marker.cmin"] = mode === "confidence" ? 0 : null;
    update["marker.cmax"] = mode === "confidence" ? 1 : null;
  }
  Plotly.restyle("map", update, [0]);
}

function drawMap() {
  var m = D.a.map_protein.length;
  if (!m) {
    $("map").style.height = "auto";
    $("map").appendChild(el("p", "no map (no embeddings, or max_map_points=0)", "note"));
    return Promise.resolve();
  }
  var x = new Float32Array(m), y = new Float32Array(m), text = new Array(m), j, i;
  for (j = 0; j < m; j++) {
    i = D.a.map_protein[j];
    x[j] = D.a.map_xy[2 * j]; y[j] = D.a.map_xy[2 * j + 1];
    var c = clusterOf(i), l = labelOf(i);
    text[j] = esc(D.h.ids[i]) + "<br>cluster " + (c === null ? "–" : c) + (l ? "<br>label " + esc(l) : "") +
      "<br>confidence " + fmt(confidenceOf(i), 3) + "<br>length " + lengthOf(i);
  }
  var traces = [
    {type: "scattergl", mode: "markers", x: x, y: y, hovertext: text, hoverinfo: "text",
     marker: {size: m > 5000 ? 3 : 5, color: mapValues(state.colour)}, selected: {marker: {opacity: 1}},
     unselected: {marker: {opacity: 0.15}}},
    {type: "scattergl", mode: "markers", x: [], y: [], hoverinfo: "skip",
     marker: {size: 15, symbol: "circle-open", color: "#000", line: {width: 2}}}];
  var name = D.h.map_method || "map";
  var layout = {dragmode: "lasso", hovermode: "closest", showlegend: false, margin: {l: 45, r: 10, t: 10, b: 40},
    xaxis: {title: {text: name + " 1"}, zeroline: false}, yaxis: {title: {text: name + " 2"}, zeroline: false}};
  return Plotly.newPlot("map", traces, layout, {displaylogo: false, responsive: true}).then(function (gd) {
    gd.on("plotly_selected", function (ev) {
      if (!ev || !ev.points) return;
      var sel = [];
      ev.points.forEach(function (p) { if (p.curveNumber === 0) sel.push(D.a.map_protein[p.pointIndex]); });
      setSelection(sel, false);
    });
    gd.on("plotly_deselect", function () { setSelection([], false); });
    gd.on("plotly_click", function (ev) {
      var p = ev && ev.points && ev.points[0];
      if (p && p.curveNumber === 0) show(D.a.map_protein[p.pointIndex]);
    });
  });
}

// ---------------------------------------------------------------- proteins table
var COLUMNS = [["id", "id"], ["cluster", "cluster"], ["label", "label"], ["confidence", "confidence", "num"],
  ["length", "length", "num"]];
function cell(i, key) {
  if (key === "id") return D.h.ids[i];
  if (key === "cluster") return clusterOf(i);
  if (key === "label") return labelOf(i);
  if (key === "confidence") return confidenceOf(i);
  return lengthOf(i);
}
function matches(i, q) {
  if (D.idsLower[i].indexOf(q) >= 0) return true;
  var l = D.a.label[i];
  return l >= 0 && D.labelsLower[l].indexOf(q) >= 0;
}
function tableRows() {
  var q = state.query.trim().toLowerCase(), rows = [], i;
  if (!q) rows = state.selection.slice();
  else if (state.scope === "selection") rows = state.selection.filter(function (i) { return matches(i, q); });
  else for (i = 0; i < D.n; i++) if (matches(i, q)) rows.push(i);
  if (state.sort) {
    var key = state.sort, dir = state.sortDir;
    rows.sort(function (a, b) {
      var x = cell(a, key), y = cell(b, key);
      if (x === y) return a - b;
      if (x === null || (typeof x === "number" && isNaN(x))) return 1;
      if (y === null || (typeof y === "number" && isNaN(y))) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  return rows;
}
function header(table, columns, sortKey, dir, onSort) {
  var head = table.querySelector("thead"), tr = el("tr");
  head.textContent = "";
  columns.forEach(function (c) {
    var th = el("th", c[1] + (sortKey === c[0] ? (dir > 0 ? " ▲" : " ▼") : ""), c[2]);
    th.addEventListener("click", function () { onSort(c[0]); });
    tr.appendChild(th);
  });
  head.appendChild(tr);
}
function renderTable() {
  var rows = tableRows(), table = $("proteins"), body = table.querySelector("tbody");
  header(table, COLUMNS, state.sort, state.sortDir, function (key) {
    state.sortDir = state.sort === key ? -state.sortDir : 1; state.sort = key; renderTable();
  });
  body.textContent = "";
  var frag = document.createDocumentFragment();
  rows.slice(0, TABLE_ROWS).forEach(function (i) {
    var tr = el("tr", null, i === state.current ? "current" : "");
    tr.dataset.index = i;
    COLUMNS.forEach(function (c) {
      var v = cell(i, c[0]);
      tr.appendChild(el("td", c[0] === "confidence" ? fmt(v, 3) : (v === null ? "–" : v), c[2]));
    });
    tr.addEventListener("click", function () { show(i); });
    frag.appendChild(tr);
  });
  body.appendChild(frag);
  var q = state.query.trim(), what;
  if (q) what = rows.length + " protein" + (rows.length === 1 ? "" : "s") + " match “" + q + "”" +
    (state.scope === "selection" ? " in the selection" : "");
  else what = state.selection.length ? rows.length + " protein" + (rows.length === 1 ? "" : "s") + " selected" :
    "select proteins on the map (lasso or box), click a cluster, or search";
  if (rows.length > TABLE_ROWS) what += " (the first " + TABLE_ROWS + " shown; the exports hold all)";
  $("table-status").textContent = what;
  return rows;
}
function setSelection(indices, fromApi) {
  var seen = new Set(), sel = [];
  indices.forEach(function (i) { if (i >= 0 && i < D.n && !seen.has(i)) { seen.add(i); sel.push(i); } });
  state.selection = sel;
  if (fromApi && D.a.map_protein.length) {
    var points = [];
    sel.forEach(function (i) { if (D.onMap[i] >= 0) points.push(D.onMap[i]); });
    Plotly.restyle("map", {selectedpoints: [sel.length ? points : null]}, [0]);
  }
  renderTable();
}

function csvField(v) {
  v = v === null || v === undefined ? "" : String(v);
  return /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
}
function csv(rows) {
  var lines = ["id,cluster,label,confidence,length"];
  rows.forEach(function (i) {
    lines.push([D.h.ids[i], clusterOf(i), labelOf(i), fmt(confidenceOf(i), 4), lengthOf(i)].map(csvField).join(","));
  });
  return lines.join("\n") + "\n";
}
function fasta(rows) {
  var out = [];
  rows.forEach(function (i) {
    var s = sequence(i), l = labelOf(i), c = clusterOf(i);
    out.push(">" + D.h.ids[i].replace(/[\r\n]+/g, " ") + " cluster=" + (c === null ? "none" : c) +
      (l ? " label=" + l.replace(/[\r\n]+/g, " ") : ""));
    for (var p = 0; p < s.length; p += 60) out.push(s.slice(p, p + 60));
  });
  return out.join("\n") + "\n";
}
function download(name, text, type) {
  var a = el("a"), url = URL.createObjectURL(new Blob([text], {type: type}));
  a.href = url; a.download = name; a.style.display = "none";
  document.body.appendChild(a); a.click();
  setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 2000);
}

// ---------------------------------------------------------------- one protein
function diverging(t) {  // -1..1 -> blue, white, red
  var end = t < 0 ? [33, 102, 172] : [178, 24, 43], f = Math.min(1, Math.abs(t));
  var c = end.map(function (e) { return Math.round(255 + (e - 255) * f); });
  return "rgb(" + c.join(",") + ")";
}
function attribution(i) {
  var k = D.attrOf[i];
  if (k < 0) return null;
  var L = D.a.attr_length[k], scale = D.a.attr_scale[k];
  var q = D.a.attr_values.subarray(D.attrStart[k], D.attrStart[k] + L), values = new Array(L);
  for (var p = 0; p < L; p++) values[p] = q[p] === MISSING_ATTRIBUTION ? null : q[p] * scale;
  return {values: values, largest: 127 * scale, residues: D.h.attr_residues[String(k)] || sequence(i)};
}
function show(i) {
  if (typeof i !== "number" || i < 0 || i >= D.n) return false;
  state.current = i;
  var c = clusterOf(i), l = labelOf(i);
  $("protein-title").textContent = D.h.ids[i];
  $("protein-facts").textContent = "cluster " + (c === null ? "–" : c) + (l ? " · label " + l : "") +
    " · confidence " + (fmt(confidenceOf(i), 3) || "–") + " · " + lengthOf(i) + " residues" +
    (D.onMap[i] >= 0 ? "" : " · not on the map (subsample)");
  if (D.a.map_protein.length) {
    var j = D.onMap[i];
    Plotly.restyle("map", {x: [j >= 0 ? [D.a.map_xy[2 * j]] : []], y: [j >= 0 ? [D.a.map_xy[2 * j + 1]] : []]}, [1]);
  }
  Array.prototype.forEach.call(document.querySelectorAll("#proteins tbody tr"), function (tr) {
    tr.className = Number(tr.dataset.index) === i ? "current" : "";
  });
  var attr = attribution(i), strip = $("strip");
  if (!attr) {
    Plotly.purge(strip);
    strip.style.display = "none";
    $("strip-note").textContent = D.a.attr_protein.length ? "no residue attribution for this protein" :
      "no residue attribution for this protein (the run has none: 04 writes it for the families and scan methods)";
  } else {
    var x = [], y = [], text = [], colours = [], p;
    for (p = 0; p < attr.values.length; p++) {
      var v = attr.values[p];
      if (v === null) continue;
      var r = attr.residues.charAt(p) || "?";
      x.push(p + 1); y.push(v); colours.push(diverging(v / (attr.largest || 1)));
      text.push(esc(r) + " " + (p + 1) + ": " + v.toPrecision(3));
    }
    strip.style.display = "block";
    $("strip-note").textContent = "residue attribution along the sequence (" + x.length + " residues; red: towards " +
      "the protein's cluster, blue: away)";
    Plotly.react(strip, [{type: "bar", x: x, y: y, hovertext: text, hoverinfo: "text", marker: {color: colours}}],
      {margin: {l: 50, r: 10, t: 6, b: 36}, bargap: 0,
       xaxis: {title: {text: "position"}, range: [0.5, attr.values.length + 0.5]},
       yaxis: {title: {text: "attribution"}, zeroline: true}}, {displaylogo: false, responsive: true});
  }
  draw3d(i, attr);
  return true;
}
function draw3d(i, attr) {
  var box = $("structure"), note = $("structure-note"), s = D.structureOf.get(i);
  if (!s) {
    box.style.display = "none";
    note.textContent = D.h.structure_notes[String(i)] || D.h.structure_notes.all ||
      (D.h.structures.length ? "no structure given for this protein" : "");
    return;
  }
  if (typeof $3Dmol === "undefined") {
    box.style.display = "none";
    note.textContent = "3Dmol.js is not in this page";
    return;
  }
  box.style.display = "block";
  note.textContent = "structure " + s.name + " (" + Math.round(100 * s.identity) +
    "% identical over the aligned residues)" +
    (attr ? ", coloured by attribution; grey: no value" : ": no attribution to colour it by");
  if (!viewer) viewer = $3Dmol.createViewer(box, {backgroundColor: "white"});
  viewer.clear();
  viewer.addModel(s.pdb, "pdb");
  var pos = s.atom_position, style = s.full ? {} : {style: "trace", thickness: 0.6};
  style.colorfunc = function (atom) {
    var p = pos[atom.serial - 1];
    var v = attr && p ? attr.values[p - 1] : null;
    return v === null || v === undefined ? "#cccccc" : diverging(v / (attr.largest || 1));
  };
  viewer.setStyle({}, {cartoon: style});
  viewer.zoomTo();
  viewer.render();
}

// ---------------------------------------------------------------- clusters
var SUMMARY = [["cluster", "cluster", "num", 0], ["size", "size", "num", 1],
  ["confidence", "mean confidence", "num", 2], ["length", "median length", "num", 3]];
function renderSummary() {
  var rows = D.h.summary.slice(), columns = SUMMARY.slice();
  if (D.h.labels.length) columns.push(["purity", "purity", "num", 4], ["top", "label", "", 5]);
  if (state.summarySort) {
    var col = columns.filter(function (c) { return c[0] === state.summarySort; })[0], dir = state.summaryDir;
    rows.sort(function (a, b) {
      var x = a[col[3]], y = b[col[3]];
      if (x === y) return a[0] - b[0];
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  var table = $("clusters"), body = table.querySelector("tbody");
  header(table, columns, state.summarySort, state.summaryDir, function (key) {
    state.summaryDir = state.summarySort === key ? -state.summaryDir : 1; state.summarySort = key; renderSummary();
  });
  body.textContent = "";
  var frag = document.createDocumentFragment();
  rows.slice(0, 5000).forEach(function (row) {
    var tr = el("tr");
    columns.forEach(function (c) {
      var v = row[c[3]];
      var text = v === null ? "–" : (c[0] === "confidence" || c[0] === "purity") ? v.toFixed(3) : v;
      tr.appendChild(el("td", text, c[2]));
    });
    tr.addEventListener("click", function () { selectCluster(row[0]); });
    frag.appendChild(tr);
  });
  body.appendChild(frag);
  $("summary-status").textContent = rows.length ? rows.length + " clusters" +
    (D.h.method ? " (" + D.h.method + ")" : "") +
    (rows.length > 5000 ? ", the 5000 first shown" : "") + "; a click on one selects its members" +
    (D.h.labels.length ? "; purity: the share of its labelled members carrying its most common label" : "") :
    "no clusters";
}
function selectCluster(c) {
  var members = [];
  for (var i = 0; i < D.n; i++) if (D.a.cluster[i] === c) members.push(i);
  setSelection(members, true);
}

// ---------------------------------------------------------------- api
api.select = function (ids) {
  var idx = [];
  (ids || []).forEach(function (id) { var i = D.index.get(String(id)); if (i !== undefined) idx.push(i); });
  setSelection(idx, true);
  return idx.length;
};
api.show = function (id) { var i = D.index.get(String(id)); return i === undefined ? false : show(i); };
api.search = function (text, scope) {
  state.query = String(text || ""); $("search").value = state.query;
  if (scope) { state.scope = scope; $("scope").value = scope; }
  renderTable();
};
api.colour = colour;
api.tableIds = function () { return tableRows().map(function (i) { return D.h.ids[i]; }); };
api.csv = function () { return csv(tableRows()); };
api.fasta = function () { return fasta(tableRows()); };
api.selectCluster = selectCluster;

function applyHash() {
  var hash = location.hash.replace(/^#/, "");
  if (!hash) return;
  var params = new URLSearchParams(hash);
  if (params.has("colour")) colour(params.get("colour"));
  if (params.has("select")) api.select(JSON.parse(params.get("select")));
  if (params.has("search")) api.search(params.get("search"), params.get("scope"));
  if (params.has("show")) api.show(params.get("show"));
}

function controls() {
  var select = $("colour");
  Object.keys(COLOURS).forEach(function (mode) {
    if (mode === "label" && !D.h.labels.length) return;
    var opt = el("option", mode);
    opt.value = mode;
    select.appendChild(opt);
  });
  select.addEventListener("change", function () { colour(select.value); });
  var timer = null;
  $("search").addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.query = $("search").value; renderTable(); }, 150);
  });
  $("scope").addEventListener("change", function () { state.scope = $("scope").value; renderTable(); });
  $("export-csv").addEventListener("click", function () { download("proteins.csv", csv(tableRows()), "text/csv"); });
  $("export-fasta").addEventListener("click", function () {
    download("proteins.fasta", fasta(tableRows()), "text/plain");
  });
  $("clear").addEventListener("click", function () { setSelection([], true); });
}

api.ready = decode().then(function (d) {
  D = d;
  var h = D.h, n = D.n;
  status(n + " proteins · " + h.summary.length + " clusters" + (h.method ? " (" + h.method + ")" : "") + " · " +
    D.a.map_protein.length + " on the map" + (D.a.map_protein.length ? " (" + h.map_method + ")" : "") + " · " +
    D.a.attr_protein.length + " with residue attribution" + (h.structures.length ? " · " + h.structures.length +
    " structures" : "") + (h.labels.length ? " · " + h.labels.length + " labels" : ""));
  h.notes.forEach(function (note) { $("notes").appendChild(el("li", note)); });
  controls();
  renderTable();
  renderSummary();
  return drawMap();
}).then(function () {
  colour(state.colour);
  applyHash();
  window.addEventListener("hashchange", applyHash);
  root.dataset.state = "ready";
}).catch(function (err) {
  root.dataset.state = "error";
  status("the explorer could not start: " + (err && err.message ? err.message : err), true);
  console.error(err);
});
})();
