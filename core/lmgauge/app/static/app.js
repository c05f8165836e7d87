/* lmgauge serve: the page's only script (no framework, no build step, no network but this
   server). Every text from a run folder (model output, questions, ids, settings) is put into
   the page with textContent, never as markup; the sections the server renders are escaped
   by its templates. */
"use strict";

(function () {
  // -- small helpers ----------------------------------------------------------------------
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (!Object.prototype.hasOwnProperty.call(attrs, k) || attrs[k] === null || attrs[k] === undefined) continue;
        if (k === "text") e.textContent = String(attrs[k]);
        else if (k === "cls") e.className = attrs[k];
        else if (k === "on") { for (var ev in attrs.on) e.addEventListener(ev, attrs.on[ev]); }
        else e.setAttribute(k, String(attrs[k]));
      }
    }
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(parent, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(parent, c); }); return; }
    parent.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function readJSON(id) { var n = document.getElementById(id); return n ? JSON.parse(n.textContent) : null; }
  function idPath(id) { return encodeURIComponent(id); }
  function num(v, d) {
    if (v === null || v === undefined || (typeof v === "number" && isNaN(v))) return "-";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v) && d === undefined) return v.toLocaleString("en-US");
    return v.toLocaleString("en-US", { minimumFractionDigits: d === undefined ? 3 : d, maximumFractionDigits: d === undefined ? 3 : d });
  }
  function dur(s) {
    if (s === null || s === undefined || isNaN(s)) return "-";
    s = Math.round(s);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  }
  function chars(n) { return n === null || n === undefined ? "" : n.toLocaleString("en-US") + " chars"; }
  function get(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { throw new Error(r.status + ": " + t.slice(0, 300)); });
      var ct = r.headers.get("Content-Type") || "";
      return ct.indexOf("json") >= 0 ? r.json() : r.text();
    });
  }
  function qs(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      if (v === null || v === undefined || v === "") return;
      (Array.isArray(v) ? v : [v]).forEach(function (x) { parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(x)); });
    });
    return parts.join("&");
  }
  function debounce(fn, ms) { var t = null; return function () { var a = arguments; clearTimeout(t); t = setTimeout(function () { fn.apply(null, a); }, ms); }; }
  function ready() {
    document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));  // for bench/app_scale.py
    document.body.setAttribute("data-ready", "1");
  }
  function pill(text, cls) { return el("span", { cls: "pill " + (cls || ""), text: text }); }
  function statusPill(s) { return el("span", { cls: "pill st-" + s, text: s }); }

  // -- live updates (Server-Sent Events) ----------------------------------------------------
  // one EventSource while the tab is visible: a browser gives an origin about six
  // connections, so hidden tabs let theirs go and catch up when shown again
  function listen(runIds, onRun) {
    var dot = $("#live");
    var url = "/api/events" + (runIds && runIds.length ? "?" + qs({ run: runIds }) : "");
    var src = null;
    function open() {
      if (src) return;
      src = new EventSource(url);
      src.addEventListener("open", function () { if (dot) { dot.className = "live on"; dot.title = "live updates: on"; } });
      src.addEventListener("error", function () { if (dot) { dot.className = "live off"; dot.title = "live updates: reconnecting"; } });
      src.addEventListener("run", function (ev) {
        var data;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        onRun(data);
      });
    }
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        if (src) { src.close(); src = null; }
        if (dot) { dot.className = "live off"; dot.title = "live updates: paused while the tab is hidden"; }
      } else if (!src) {
        open();
        onRun({ resync: true });
      }
    });
    if (!document.hidden) open();
  }

  // a function that runs fn now, or once more after the call in flight ends
  function coalesce(fn) {
    var busy = false, again = false;
    function go() {
      if (busy) { again = true; return; }
      busy = true; again = false;
      Promise.resolve().then(fn).catch(function () {}).then(function () { busy = false; if (again) go(); });
    }
    return go;
  }

  // swap server-rendered sections, keeping which <details> are open
  function swapSections(box, html) {
    var open = {};
    $$("details[id]", box).forEach(function (d) { open[d.id] = d.open; });
    box.innerHTML = html;
    $$("details[id]", box).forEach(function (d) { if (d.id in open) d.open = open[d.id]; });
    wireCopy(box);
  }
  function wireCopy(root) {
    $$("code.copy", root).forEach(function (c) {
      c.title = "click to copy";
      c.addEventListener("click", function () {
        if (navigator.clipboard) navigator.clipboard.writeText(c.textContent).catch(function () {});
        c.classList.add("copied");
        setTimeout(function () { c.classList.remove("copied"); }, 800);
      });
    });
  }

  // -- the runs page ----------------------------------------------------------------------
  function runsPage() {
    var data = readJSON("runs-data") || { runs: [] };
    var runs = {};
    data.runs.forEach(function (r) { runs[r.id] = r; });
    var picked = {};
    var sort = { key: "created", dir: -1 };
    var body = $("#runs-body");
    var filter = $("#runs-filter"), kind = $("#runs-kind"), status = $("#runs-status");
    var params = new URLSearchParams(location.search);
    if (params.get("q")) filter.value = params.get("q");
    if (params.get("kind")) kind.value = params.get("kind");
    if (params.get("status")) status.value = params.get("status");

    function text(r) {
      return [r.id, r.model, r.kind, r.backend, (r.benchmarks || []).join(" "), r.status].join(" ").toLowerCase();
    }
    function progressValue(r) { return r.total ? r.done / r.total : (r.status === "complete" ? 1 : 0); }
    function cmp(a, b) {
      var k = sort.key, x, y;
      if (k === "progress") { x = progressValue(a); y = progressValue(b); }
      else { x = a[k]; y = b[k]; }
      if (x === null || x === undefined) x = "";
      if (y === null || y === undefined) y = "";
      if (typeof x === "number" && typeof y === "number") return (x - y) * sort.dir;
      return String(x).localeCompare(String(y)) * sort.dir;
    }
    function scoresCell(r) {
      var td = el("td", { cls: "small scores-cell" });
      (r.scores || []).forEach(function (s) {
        td.appendChild(el("div", null, el("span", { cls: "mut", text: s.benchmark + " " }), el("b", { text: num(s.score, 4) }),
          s.ci_low !== null && s.ci_low !== undefined ? el("span", { cls: "mut", text: " [" + num(s.ci_low, 3) + ", " + num(s.ci_high, 3) + "]" }) : null));
      });
      (r.perf || []).forEach(function (f) {
        td.appendChild(el("div", null, el("span", { cls: "mut", text: f.label + " " }), el("b", { text: f.text }), " " + f.unit));
      });
      return td;
    }
    function progressCell(r) {
      var td = el("td", { cls: "small" });
      if (r.total) td.appendChild(el("progress", { value: r.done, max: r.total }));
      td.appendChild(el("span", { cls: "prog", text: num(r.done) + (r.total ? " / " + (r.total_exact ? "" : "≤ ") + num(r.total) : "") }));
      if (r.eta_s) td.appendChild(el("span", { cls: "mut", text: " · ETA " + dur(r.eta_s) }));
      if (r.errors) td.appendChild(el("span", { cls: "pill err", text: r.errors + " err" }));
      return td;
    }
    function row(r, child) {
      var box = el("input", { type: "checkbox", "aria-label": "pick " + r.id, "data-id": r.id });
      box.checked = !!picked[r.id];
      box.addEventListener("change", function () { if (box.checked) picked[r.id] = true; else delete picked[r.id]; updateButton(); });
      var link = el("a", { href: "/runs/" + idPath(r.id), cls: "mono", text: r.path === "." ? r.id : r.path });
      var name = el("td", { cls: child ? "child" : null }, link);
      if (r.values) name.appendChild(el("div", { cls: "mut small mono", text: Object.keys(r.values).map(function (k) { return k + "=" + r.values[k]; }).join(" ") }));
      if (r.source) name.appendChild(el("div", { cls: "mut small", text: "regrade of " + r.source }));
      if (r.error) name.appendChild(el("div", { cls: "errtext small", text: r.error }));
      var st = el("td", null, statusPill(r.status));
      if (r.resume) st.appendChild(el("div", { cls: "small mono mut", text: r.resume }));
      return el("tr", { "data-id": r.id, cls: "st-row-" + r.status },
        el("td", { cls: "pick" }, box), name, el("td", null, el("span", { cls: "kind k-" + r.kind, text: r.kind })),
        el("td", { text: r.model || "?" }), st, progressCell(r), scoresCell(r),
        el("td", { cls: "small", text: (r.created || "").replace("T", " ").replace("+00:00", " UTC") }),
        el("td", { cls: "num small", text: dur(r.duration_s) }));
    }
    function render() {
      var t = filter.value.trim().toLowerCase(), k = kind.value, s = status.value;
      var all = Object.keys(runs).map(function (id) { return runs[id]; });
      var visible = function (r) { return (!t || text(r).indexOf(t) >= 0) && (!k || r.kind === k) && (!s || r.status === s); };
      var tops = all.filter(function (r) { return !r.sweep || !runs[r.sweep]; });
      var kids = {};
      all.forEach(function (r) { if (r.sweep && runs[r.sweep]) (kids[r.sweep] = kids[r.sweep] || []).push(r); });
      tops.sort(cmp);
      var frag = document.createDocumentFragment(), shown = 0;
      tops.forEach(function (r) {
        var children = (kids[r.id] || []).slice().sort(function (a, b) { return a.id.localeCompare(b.id); });
        var anyChild = children.some(visible);
        if (!visible(r) && !anyChild) return;
        frag.appendChild(row(r, false)); shown++;
        children.forEach(function (c) { if (visible(c) || visible(r)) { frag.appendChild(row(c, true)); shown++; } });
      });
      body.textContent = "";
      body.appendChild(frag);
      $("#runs-empty").hidden = all.length > 0;
      $("#runs-count").textContent = shown + " of " + all.length + " runs";
      $$("#runs-table th[data-sort]").forEach(function (th) {
        th.classList.toggle("sorted", th.getAttribute("data-sort") === sort.key);
        th.setAttribute("aria-sort", th.getAttribute("data-sort") === sort.key ? (sort.dir > 0 ? "ascending" : "descending") : "none");
      });
      updateButton();
    }
    function updateButton() {
      var ids = Object.keys(picked).filter(function (id) { return runs[id]; });
      var btn = $("#compare-btn");
      btn.disabled = ids.length < 2;
      btn.textContent = ids.length >= 2 ? "Compare " + ids.length + " runs" : "Compare selected";
    }
    $("#compare-btn").addEventListener("click", function () {
      var ids = Object.keys(picked).filter(function (id) { return runs[id]; });
      if (ids.length >= 2) location.href = "/compare?" + qs({ run: ids });
    });
    $$("#runs-table th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-sort");
        if (sort.key === key) sort.dir = -sort.dir; else { sort.key = key; sort.dir = key === "created" || key === "progress" ? -1 : 1; }
        render();
      });
    });
    var syncUrl = function () {
      history.replaceState(null, "", "/" + (qs({ q: filter.value.trim(), kind: kind.value, status: status.value }) ? "?" + qs({ q: filter.value.trim(), kind: kind.value, status: status.value }) : ""));
    };
    filter.addEventListener("input", function () { render(); syncUrl(); });
    kind.addEventListener("change", function () { render(); syncUrl(); });
    status.addEventListener("change", function () { render(); syncUrl(); });
    var pending = false;
    listen(null, function (ev) {
      if (ev.resync) {
        get("/api/runs").then(function (d) { runs = {}; d.runs.forEach(function (r) { runs[r.id] = r; }); render(); });
        return;
      }
      if (ev.removed) delete runs[ev.id]; else if (ev.run) runs[ev.id] = ev.run;
      if (!pending) { pending = true; requestAnimationFrame(function () { pending = false; render(); }); }
    });
    render();
    ready();
  }

  // -- one sample -------------------------------------------------------------------------
  function textBlock(title, text, opts) {
    opts = opts || {};
    if (text === null || text === undefined || text === "") return null;
    var pre = el("pre", { cls: "text" + (opts.mono ? " mono" : ""), text: text });
    if (opts.collapsed) {
      return el("details", { cls: "tx " + (opts.cls || "") },
        el("summary", null, title, el("span", { cls: "mut small", text: " (" + chars(opts.full !== undefined ? opts.full : text.length) + ")" })), pre);
    }
    return el("div", { cls: "tx " + (opts.cls || "") },
      el("div", { cls: "lab" }, title, opts.full !== undefined && opts.full > 2000 ? el("span", { cls: "mut small", text: " (" + chars(opts.full) + ")" }) : null), pre);
  }
  function cellValue(v) {
    if (v && typeof v === "object" && "text" in v) return el("span", { cls: "cellst " + (v.status || ""), text: v.text });
    return document.createTextNode(v === null || v === undefined ? "-" : String(v));
  }
  function viewBlock(b) {
    var box = el("div", { cls: "block" });
    if (b.title) box.appendChild(el("h4", { text: b.title }));
    if (b.kind === "table") {
      var thead = el("tr", null, (b.columns || []).map(function (c) { return el("th", { text: c }); }));
      var rows = (b.rows || []).map(function (r) { return el("tr", null, r.map(function (v) { return el("td", null, cellValue(v)); })); });
      box.appendChild(el("div", { cls: "scroll" }, el("table", { cls: "grid small" }, el("thead", null, thead), el("tbody", null, rows))));
    } else if (b.kind === "fields") {
      var dl = el("dl", { cls: "fields" });
      (b.items || []).forEach(function (it) { dl.appendChild(el("dt", { text: it[0] })); dl.appendChild(el("dd", null, cellValue(it[1]))); });
      box.appendChild(dl);
    } else {
      box.appendChild(el("pre", { cls: "text mono", text: b.text || "" }));
    }
    return box;
  }
  function sampleKey(s) { return s.benchmark + "\u0000" + s.sample_id + "\u0000" + s.repeat; }

  function sampleCard(s, runId, opts) {
    opts = opts || {};
    var head = el("div", { cls: "shead" },
      statusPill(s.status),
      opts.compact ? null : el("span", { cls: "mono", text: s.benchmark }),
      opts.compact ? null : el("span", { cls: "mono sid", text: s.sample_id }),
      el("span", { cls: "lab", text: "repeat " + s.repeat }),
      s.score !== null && s.score !== undefined ? el("span", { cls: "lab", text: "score " + num(s.score, 2) }) : null,
      s.completion_tokens ? el("span", { cls: "lab", text: num(s.completion_tokens) + " tokens" }) : null,
      s.latency_s ? el("span", { cls: "lab", text: num(s.latency_s, 1) + " s" }) : null,
      s.finish_reason && s.finish_reason !== "stop" ? pill(s.finish_reason, "warn") : null,
      (s.subsets || []).length && !opts.compact ? el("span", { cls: "mut small", text: s.subsets.join(" · ") }) : null);
    var card = el("article", { cls: "sample st-" + s.status, "data-key": sampleKey(s) }, head);
    if (!opts.compact && !opts.noRepeats && runId) {
      head.appendChild(el("button", { type: "button", cls: "link", text: "all repeats", on: { click: function () { showRepeats(runId, s, card); } } }));
    }
    if (!opts.compact) add(card, textBlock(opts.sameQuestion ? "Question (as above)" : "Question", s.question, { cls: "q", collapsed: !!opts.sameQuestion }));
    var facts = el("div", { cls: "facts" },
      el("span", null, el("span", { cls: "lab", text: "gold " }), el("code", { text: s.gold === null ? "-" : s.gold })),
      el("span", null, el("span", { cls: "lab", text: "extracted " }), el("code", { text: s.extracted === null ? "-" : s.extracted })),
      s.judge_verdict ? el("span", null, el("span", { cls: "lab", text: "judge " }), pill(s.judge_verdict, s.judge_verdict === "correct" ? "ok" : "err")) : null,
      s.grade_detail ? el("span", { cls: "mut small", text: s.grade_detail }) : null);
    card.appendChild(facts);
    if (s.error) card.appendChild(el("div", { cls: "errtext", text: s.error }));
    (s.views || []).forEach(function (b) { card.appendChild(viewBlock(b)); });
    add(card, textBlock("Reasoning", s.reasoning, { collapsed: true, full: s.reasoning_chars, cls: "th" }));
    add(card, textBlock("Response", s.response, { cls: "resp", full: s.response_chars }));
    if (s.judge_text) add(card, textBlock("Judge's answer", s.judge_text, { collapsed: true }));
    if (s.cut && runId) {
      card.appendChild(el("button", { type: "button", cls: "link", text: "show the full texts", on: { click: function () {
        get("/api/runs/" + idPath(runId) + "/samples?" + qs({ benchmark: s.benchmark, sample_id: s.sample_id, repeat: s.repeat, limit: 1 })).then(function (d) {
          if (d.samples && d.samples[0]) {
            var full = sampleCard(d.samples[0], runId, opts);
            var th = $("details.th", card);
            if (th && th.open) { var t2 = $("details.th", full); if (t2) t2.open = true; }
            card.replaceWith(full);
          }
        });
      } } }));
    }
    return card;
  }

  function showRepeats(runId, s, card) {
    var old = card.nextElementSibling;
    if (old && old.classList.contains("repeats")) { old.remove(); return; }
    get("/api/runs/" + idPath(runId) + "/samples?" + qs({ benchmark: s.benchmark, sample_id: s.sample_id, cut: 4000, limit: 100 })).then(function (d) {
      var box = el("div", { cls: "repeats" }, el("div", { cls: "lab", text: "all " + d.total + " repeats of " + s.sample_id }));
      var cols = el("div", { cls: "cols" });
      d.samples.forEach(function (x) { cols.appendChild(sampleCard(x, runId, { compact: true })); });
      box.appendChild(cols);
      card.after(box);
    });
  }

  // -- the sample browser of a run page ------------------------------------------------------
  function sampleBrowser() {
    var data = readJSON("samples-data");
    if (!data) return null;
    var runId = data.run;
    var st = { benchmark: "", subset: "", status: "", repeat: "", correct: "", q: "", offset: 0, sort: "id" };
    Object.keys(data.filters || {}).forEach(function (k) { if (k in st) st[k] = k === "offset" ? parseInt(data.filters[k], 10) || 0 : data.filters[k]; });
    var size = data.page_size || 25, cut = data.cut || 4000;
    var page = data.page, shownKeys = [];
    var bSel = $("#s-benchmark"), subSel = $("#s-subset"), rSel = $("#s-repeat"), cSel = $("#s-correct"), sortSel = $("#s-sort"), qIn = $("#s-q");

    function fillSelects() {
      var keep = bSel.value || st.benchmark;
      bSel.length = 1;
      (data.benchmarks || []).forEach(function (b) { bSel.appendChild(el("option", { value: b, text: b })); });
      bSel.value = keep;
      var subs = {};
      Object.keys(data.subsets || {}).forEach(function (b) { if (!st.benchmark || b === st.benchmark) (data.subsets[b] || []).forEach(function (x) { subs[x] = 1; }); });
      var keepS = st.subset;
      subSel.length = 1;
      Object.keys(subs).sort().forEach(function (x) { subSel.appendChild(el("option", { value: x, text: x })); });
      subSel.value = keepS;
      rSel.length = 1;
      (data.repeats || []).forEach(function (r) { rSel.appendChild(el("option", { value: String(r), text: "repeat " + r })); });
      rSel.value = st.repeat;
      cSel.value = st.correct;
      sortSel.value = st.sort;
      qIn.value = st.q;
    }
    function params(extra) {
      var p = { benchmark: st.benchmark, subset: st.subset, status: st.status, repeat: st.repeat, correct: st.correct, q: st.q, sort: st.sort === "id" ? "" : st.sort };
      for (var k in extra) p[k] = extra[k];
      return p;
    }
    function syncUrl() {
      var p = params({ offset: st.offset || "" });
      var s = qs(p);
      history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
    }
    function statusBar(counts) {
      var bar = $("#s-status");
      bar.textContent = "";
      var total = 0;
      Object.keys(counts || {}).forEach(function (k) { total += counts[k]; });
      [["", "all", total], ["correct", "correct"], ["wrong", "wrong"], ["truncated", "truncated"], ["error", "error"]].forEach(function (b) {
        var n = b[2] !== undefined ? b[2] : (counts || {})[b[0]] || 0;
        var btn = el("button", { type: "button", "data-status": b[0] || "all", cls: "seg st-" + (b[0] || "all") + (st.status === b[0] ? " on" : "") },
          b[1] + " ", el("span", { cls: "n", text: num(n) }));
        btn.addEventListener("click", function () { st.status = b[0]; st.offset = 0; load(); });
        bar.appendChild(btn);
      });
    }
    function pager(d) {
      var box = $("#s-pager");
      box.textContent = "";
      var pages = Math.max(1, Math.ceil(d.total / size)), cur = Math.floor(d.offset / size) + 1;
      var go = function (p) { st.offset = (p - 1) * size; load(true); };
      box.appendChild(el("button", { type: "button", text: "‹ prev", disabled: cur <= 1 ? "disabled" : null, on: { click: function () { go(cur - 1); } } }));
      var input = el("input", { type: "number", min: 1, max: pages, value: cur, "aria-label": "page", cls: "pageno" });
      input.addEventListener("change", function () { var p = Math.min(pages, Math.max(1, parseInt(input.value, 10) || 1)); go(p); });
      box.appendChild(el("span", { cls: "mut" }, "page ", input, " of " + num(pages)));
      box.appendChild(el("button", { type: "button", text: "next ›", disabled: cur >= pages ? "disabled" : null, on: { click: function () { go(cur + 1); } } }));
    }
    function show(d) {
      page = d;
      var list = $("#s-list");
      list.textContent = "";
      var prev = null;
      d.samples.forEach(function (s) {
        var q = s.benchmark + "\u0000" + s.sample_id;
        list.appendChild(sampleCard(s, runId, { sameQuestion: q === prev }));
        prev = q;
      });
      if (!d.samples.length) list.appendChild(el("p", { cls: "empty", text: d.total ? "No samples on this page." : "No sample matches these filters." }));
      shownKeys = d.samples.map(sampleKey);
      $("#s-total").textContent = num(d.total) + " match" + (d.total === 1 ? "" : "es");
      statusBar(d.counts);
      pager(d);
      $("#s-new").hidden = true;
    }
    var seq = 0;
    function load(scroll) {
      var mine = ++seq;
      syncUrl();
      $("#s-list").classList.add("loading");
      return get("/api/runs/" + idPath(runId) + "/samples?" + qs(params({ offset: st.offset, limit: size, cut: cut }))).then(function (d) {
        if (mine !== seq) return;
        $("#s-list").classList.remove("loading");
        show(d);
        if (scroll) $("#samples").scrollIntoView({ block: "start" });
      }).catch(function (e) {
        $("#s-list").classList.remove("loading");
        $("#s-list").textContent = "";
        $("#s-list").appendChild(el("p", { cls: "errtext", text: String(e.message || e) }));
      });
    }
    // live: the counts always; the list when this page shows the newest samples or was not full
    function live() {
      return get("/api/runs/" + idPath(runId) + "/samples?" + qs(params({ offset: st.offset, limit: size, cut: cut }))).then(function (d) {
        var keys = d.samples.map(sampleKey);
        var same = keys.length === shownKeys.length && keys.every(function (k, i) { return k === shownKeys[i]; });
        var follow = (st.sort === "new" && st.offset === 0) || shownKeys.length < size;
        if (same) {
          $("#s-total").textContent = num(d.total) + " match" + (d.total === 1 ? "" : "es");
          statusBar(d.counts);
          pager(d);
          page = d;
        } else if (follow) {
          var open = {};
          $$("#s-list details.th").forEach(function (x) { if (x.open) open[x.closest(".sample").getAttribute("data-key")] = 1; });
          show(d);
          $$("#s-list .sample").forEach(function (c) { if (open[c.getAttribute("data-key")]) { var t = $("details.th", c); if (t) t.open = true; } });
        } else {
          var n = $("#s-new");
          n.textContent = "";
          n.appendChild(document.createTextNode(num(d.total) + " samples match now. "));
          n.appendChild(el("button", { type: "button", cls: "link", text: "show", on: { click: function () { show(d); } } }));
          n.hidden = false;
          statusBar(d.counts);
        }
        if (d.benchmarks) data.benchmarks = d.benchmarks;
      });
    }
    bSel.addEventListener("change", function () { st.benchmark = bSel.value; st.subset = ""; st.offset = 0; fillSelects(); load(); });
    subSel.addEventListener("change", function () { st.subset = subSel.value; st.offset = 0; load(); });
    rSel.addEventListener("change", function () { st.repeat = rSel.value; st.offset = 0; load(); });
    cSel.addEventListener("change", function () { st.correct = cSel.value; st.offset = 0; load(); });
    sortSel.addEventListener("change", function () { st.sort = sortSel.value; st.offset = 0; load(); });
    qIn.addEventListener("input", debounce(function () { st.q = qIn.value.trim(); st.offset = 0; load(); }, 300));
    fillSelects();
    show(page);
    return { live: coalesce(live) };
  }

  function runPage() {
    var box = $("#sections");
    var runId = box.getAttribute("data-run");
    wireCopy(document);
    var browser = sampleBrowser();
    var refresh = coalesce(function () {
      return get("/runs/" + idPath(runId) + "/part").then(function (html) { swapSections(box, html); });
    });
    listen([runId], function (ev) {
      if (ev.removed) return;
      refresh();
      if (browser && (ev.resync || ev.id === runId)) browser.live();
    });
    ready();
  }

  // -- comparison -------------------------------------------------------------------------
  function comparePage() {
    var box = $("#sections");
    var ids = (box.getAttribute("data-compare") || "").split("\n").filter(Boolean);
    var refresh = coalesce(function () {
      return get("/compare/part?" + qs({ run: ids })).then(function (html) { swapSections(box, html); });
    });
    var data = readJSON("compare-data");
    var browser = data ? compareBrowser(data) : null;
    listen(ids, function () { refresh(); if (browser) browser.live(); });
    ready();
  }

  var OUTCOMES = ["right", "wrong", "mixed", "error", "missing"];
  var MARK = { correct: "✓", wrong: "✗", truncated: "…", error: "!" };

  function compareBrowser(data) {
    var runs = data.runs, labels = data.labels;
    var st = { benchmark: "", q: "", offset: 0 };
    var outs = runs.map(function () { return ""; });
    var f = data.filters || {};
    if (f.benchmark) st.benchmark = f.benchmark;
    if (f.q) st.q = f.q;
    if (f.offset) st.offset = parseInt(f.offset, 10) || 0;
    runs.forEach(function (_, i) { if (f["o" + i]) outs[i] = f["o" + i]; });
    var size = 25;
    var bSel = $("#c-benchmark"), qIn = $("#c-q");
    (data.benchmarks || []).forEach(function (b) { bSel.appendChild(el("option", { value: b, text: b })); });
    bSel.value = st.benchmark;
    qIn.value = st.q;
    var oBox = $("#c-outcomes");
    var sels = runs.map(function (id, i) {
      var s = el("select", { "aria-label": "outcome in " + labels[i], "data-run": i },
        el("option", { value: "", text: labels[i] + ": any" }),
        OUTCOMES.map(function (o) { return el("option", { value: o, text: labels[i] + ": " + o }); }));
      s.value = outs[i];
      s.addEventListener("change", function () { outs[i] = s.value; st.offset = 0; load(); });
      oBox.appendChild(el("span", { cls: "sw-wrap" }, el("span", { cls: "sw c" + (i % 8) }), s));
      return s;
    });
    var quick = $("#c-quick");
    if (runs.length >= 2) {
      [[0, 1], [1, 0]].forEach(function (p) {
        quick.appendChild(el("button", { type: "button", cls: "seg", "data-quick": p.join("-"),
          text: "right in " + labels[p[0]] + ", wrong in " + labels[p[1]], on: { click: function () {
            outs = runs.map(function () { return ""; });
            outs[p[0]] = "right"; outs[p[1]] = "wrong";
            sels.forEach(function (s, i) { s.value = outs[i]; });
            st.offset = 0; load();
          } } }));
      });
      quick.appendChild(el("button", { type: "button", cls: "seg", text: "clear", on: { click: function () {
        outs = runs.map(function () { return ""; }); sels.forEach(function (s) { s.value = ""; }); st.offset = 0; load();
      } } }));
    }
    function params(extra) {
      var p = { run: runs, benchmark: st.benchmark, q: st.q };
      outs.forEach(function (o, i) { if (o) p["o" + i] = o; });
      for (var k in extra) p[k] = extra[k];
      return p;
    }
    function syncUrl() {
      var p = params({ offset: st.offset || "" });
      history.replaceState(null, "", "/compare?" + qs(p));
    }
    function row(q) {
      var head = el("div", { cls: "shead" }, el("span", { cls: "mono", text: q.benchmark }), el("span", { cls: "mono sid", text: q.sample_id }));
      var chips = el("div", { cls: "chips" });
      q.runs.forEach(function (r, i) {
        chips.appendChild(el("span", { cls: "chip oc-" + r.outcome, "data-run": i },
          el("span", { cls: "sw c" + (i % 8) }), labels[i] + " ", el("b", { text: r.outcome }),
          " " + r.statuses.map(function (s) { return MARK[s] || "?"; }).join(""),
          r.score !== null && r.score !== undefined ? el("span", { cls: "mut", text: " " + num(r.score, 2) }) : null));
      });
      var card = el("article", { cls: "sample cmp-row" }, head, chips, textBlock("Question", q.question, { cls: "q" }),
        el("div", { cls: "facts" }, el("span", null, el("span", { cls: "lab", text: "gold " }), el("code", { text: q.gold === null ? "-" : q.gold }))));
      var btn = el("button", { type: "button", cls: "link", text: "responses side by side" });
      btn.addEventListener("click", function () { sideBySide(q, card); });
      head.appendChild(btn);
      return card;
    }
    function sideBySide(q, card) {
      var old = $(".cols", card);
      if (old) { old.remove(); return; }
      var cols = el("div", { cls: "cols" });
      card.appendChild(cols);
      runs.forEach(function (id, i) {
        var col = el("div", { cls: "col" }, el("div", { cls: "lab" }, el("span", { cls: "sw c" + (i % 8) }), labels[i]));
        cols.appendChild(col);
        get("/api/runs/" + idPath(id) + "/samples?" + qs({ benchmark: q.benchmark, sample_id: q.sample_id, cut: 4000, limit: 100 })).then(function (d) {
          if (!d.samples.length) col.appendChild(el("p", { cls: "mut", text: "not in this run" }));
          d.samples.forEach(function (s) { col.appendChild(sampleCard(s, id, { compact: true })); });
        });
      });
    }
    function show(d) {
      var list = $("#c-list");
      list.textContent = "";
      d.questions.forEach(function (q) { list.appendChild(row(q)); });
      if (!d.questions.length) list.appendChild(el("p", { cls: "empty", text: "No question matches these filters." }));
      $("#c-total").textContent = num(d.total) + " question" + (d.total === 1 ? "" : "s");
      var box = $("#c-pager");
      box.textContent = "";
      var pages = Math.max(1, Math.ceil(d.total / size)), cur = Math.floor(d.offset / size) + 1;
      box.appendChild(el("button", { type: "button", text: "‹ prev", disabled: cur <= 1 ? "disabled" : null, on: { click: function () { st.offset -= size; load(); } } }));
      box.appendChild(el("span", { cls: "mut", text: "page " + cur + " of " + pages }));
      box.appendChild(el("button", { type: "button", text: "next ›", disabled: cur >= pages ? "disabled" : null, on: { click: function () { st.offset += size; load(); } } }));
    }
    var seq = 0;
    function load() {
      var mine = ++seq;
      syncUrl();
      return get("/api/compare/samples?" + qs(params({ offset: st.offset, limit: size }))).then(function (d) { if (mine === seq) show(d); })
        .catch(function (e) { $("#c-list").textContent = ""; $("#c-list").appendChild(el("p", { cls: "errtext", text: String(e.message || e) })); });
    }
    bSel.addEventListener("change", function () { st.benchmark = bSel.value; st.offset = 0; load(); });
    qIn.addEventListener("input", debounce(function () { st.q = qIn.value.trim(); st.offset = 0; load(); }, 300));
    show(data.page);
    return { live: coalesce(function () { return get("/api/compare/samples?" + qs(params({ offset: st.offset, limit: size }))).then(function (d) {
      $("#c-total").textContent = num(d.total) + " question" + (d.total === 1 ? "" : "s");
    }); }) };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.getAttribute("data-page");
    try {
      if (page === "runs") runsPage();
      else if (page === "run") runPage();
      else if (page === "compare") comparePage();
      else ready();
    } catch (e) {
      document.body.setAttribute("data-error", String(e && e.message || e));
      ready();
      throw e;
    }
  });
})();
