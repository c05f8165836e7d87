"""The report's inline CSS and JavaScript (the page loads nothing from the network; the CSP
allows this one script by its hash). The script reads the samples from ``<script
type="application/json" id="lmg-data">`` and renders them with ``textContent`` only: model
output is untrusted."""

CSS = r"""
:root{--fg:#111827;--mut:#6b7280;--bd:#e5e7eb;--bg:#f8fafc;--card:#fff;--ok:#15803d;--bad:#b91c1c;
--warn:#b45309;--err:#7c3aed;--acc:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
header.top{background:#0f172a;color:#f8fafc;padding:14px 24px;display:flex;align-items:baseline;gap:16px;flex-wrap:wrap}
header.top h1{margin:0;font-size:20px;font-weight:650}
header.top .sub{color:#cbd5e1;font-size:13px}
main{max-width:1320px;margin:0 auto;padding:16px 24px 48px}
section{margin:18px 0 26px}
h2{font-size:18px;margin:0 0 10px;padding-bottom:4px;border-bottom:2px solid var(--bd)}
h3{font-size:15px;margin:16px 0 8px}
table{border-collapse:collapse;background:var(--card);border:1px solid var(--bd);font-size:13px}
th,td{padding:5px 9px;border-bottom:1px solid var(--bd);text-align:left;vertical-align:middle;white-space:nowrap}
th{background:#f1f5f9;font-weight:600;color:#334155}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.overall td{font-weight:650;background:#f8fafc}
tr.best td{background:#ecfdf5}
td.wrap{white-space:normal;max-width:520px}
.mut{color:var(--mut)}
.small{font-size:12px}
.scroll{overflow-x:auto;max-width:100%}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--bd);border-radius:8px;padding:12px 14px}
.card h3{margin:0 0 8px;font-size:14px;color:#334155}
.card .row{display:flex;align-items:baseline;gap:8px;margin:3px 0;flex-wrap:wrap}
.card .big{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums}
.card .lab{color:var(--mut);font-size:12px}
.pill{display:inline-block;border-radius:999px;padding:0 8px;font-size:12px;font-weight:600;line-height:18px}
.pill.warn{background:#fef3c7;color:var(--warn)}
.pill.err{background:#ede9fe;color:var(--err)}
.pill.ok{background:#dcfce7;color:var(--ok)}
.delta-up{color:var(--ok)}.delta-down{color:var(--bad)}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:12px}
.chartbox{background:var(--card);border:1px solid var(--bd);border-radius:8px;padding:6px 8px}
.legend{font-size:12px;color:#334155;padding:0 6px 4px;display:flex;flex-wrap:wrap;gap:4px 14px}
.legend .ln{display:inline-block;width:22px;height:0;border-top:2px solid;vertical-align:middle;margin-right:5px}
svg.chart{width:100%;height:auto;display:block}
svg .ct{font-size:13px;font-weight:650;fill:#1f2937}
svg .ck{font-size:11px;fill:#6b7280}
svg .cl{font-size:11px;fill:#374151}
svg .cn{font-size:13px;fill:#9ca3af}
svg .cg{stroke:#eef2f7;stroke-width:1}
svg .ca{stroke:#9ca3af;stroke-width:1}
svg .cib{fill:#e5e7eb}
.bestbox{background:var(--card);border:1px solid #bbf7d0;border-left:4px solid var(--ok);border-radius:6px;padding:8px 12px;margin:10px 0}
.bestbox b{display:inline-block;min-width:250px}
ul.notes{margin:6px 0;padding-left:20px}
details.timeline{background:var(--card);border:1px solid var(--bd);border-radius:8px;padding:6px 10px;margin:8px 0}
details.timeline>summary{cursor:pointer;font-weight:600;color:#334155}
details.timeline .charts{margin-top:6px}
details.level{background:var(--card);border:1px solid var(--bd);border-radius:8px;padding:6px 10px;margin:8px 0}
details.level>summary{cursor:pointer;font-weight:600;color:#334155}
details.level>summary .mut{font-weight:400}
details.level h4{font-size:13px;margin:10px 0 4px;color:#334155}
details.level .scroll{margin-top:6px}
tr.warnrow td{background:#fffbeb}
.sla .answer{background:var(--card);border:1px solid var(--bd);border-left:4px solid var(--acc);border-radius:6px;padding:6px 10px}
svg.frontier .probe.missed{fill:#fff}
details.cfg summary{cursor:pointer;color:var(--acc)}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;background:var(--card);border:1px solid var(--bd);
border-radius:8px;padding:10px 12px;position:sticky;top:0;z-index:2}
.controls select,.controls input{font:inherit;padding:4px 6px;border:1px solid #cbd5e1;border-radius:5px;background:#fff}
.controls input[type=search]{min-width:280px;flex:1}
.seg{display:inline-flex;border:1px solid #cbd5e1;border-radius:6px;overflow:hidden}
.seg button{font:inherit;border:0;border-right:1px solid #cbd5e1;background:#fff;padding:4px 10px;cursor:pointer}
.seg button:last-child{border-right:0}
.seg button.on{background:#1e293b;color:#fff}
.pager{display:flex;gap:10px;align-items:center;margin:10px 0}
.pager button{font:inherit;padding:3px 10px;border:1px solid #cbd5e1;border-radius:5px;background:#fff;cursor:pointer}
.pager button:disabled{opacity:.4;cursor:default}
.sample{background:var(--card);border:1px solid var(--bd);border-left:5px solid #9ca3af;border-radius:6px;margin:10px 0;padding:9px 12px}
.sample.s-correct{border-left-color:var(--ok)}.sample.s-wrong{border-left-color:var(--bad)}
.sample.s-truncated{border-left-color:var(--warn)}.sample.s-error{border-left-color:var(--err)}
.sample .sh{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap;font-size:12.5px}
.sample .badge{font-weight:700;font-size:11px;letter-spacing:.03em;padding:1px 7px;border-radius:4px;color:#fff;background:#6b7280}
.s-correct .badge{background:var(--ok)}.s-wrong .badge{background:var(--bad)}.s-truncated .badge{background:var(--warn)}
.s-error .badge{background:var(--err)}
.sample .sid{font-weight:600}
.sample .kv{display:flex;gap:18px;flex-wrap:wrap;margin:6px 0;font-size:13px}
.sample .kv code{background:#f1f5f9;border-radius:4px;padding:1px 6px;font:12.5px ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all}
.sample .blk{margin:6px 0}
.sample .blk>.lab{font-size:11px;font-weight:700;color:#64748b;text-transform:uppercase;letter-spacing:.04em}
.sample .q pre{max-height:12em;overflow:auto}
.sample .resp pre{max-height:22em;overflow:auto;background:#f8fafc;border:1px solid var(--bd);border-radius:5px;padding:6px 8px}
.sample details summary{cursor:pointer;font-size:12px;color:#475569}
.sample details pre{max-height:22em;overflow:auto;background:#fffbeb;border:1px solid #fde68a;border-radius:5px;padding:6px 8px;margin-top:4px}
.errline{color:var(--err);font-weight:600}
.sample .judge{font-size:12px;font-weight:600;border-radius:4px;padding:0 6px;background:#f1f5f9;color:#334155}
.sample .j-correct{background:#dcfce7;color:var(--ok)}.sample .j-incorrect{background:#fee2e2;color:var(--bad)}
.sample .j-unparsable{background:#fef3c7;color:var(--warn)}.sample .j-error{background:#ede9fe;color:var(--err)}
.sample details.judge-text pre{background:#f8fafc;border-color:var(--bd)}
"""

JS = r"""
(function () {
  "use strict";
  var node = document.getElementById("lmg-data");
  var DATA = node ? JSON.parse(node.textContent) : {};
  var runs = DATA.eval || [];
  if (!runs.length || !document.getElementById("samples")) { document.body.setAttribute("data-ready", "1"); return; }
  var PAGE = DATA.page_size || 25;
  var all = [];
  runs.forEach(function (run, ri) {
    run.s.forEach(function (s) { all.push({run: ri, s: s, q: run.q[s.qi], hay: null}); });
  });
  var state = {run: "", bench: "", status: "all", text: "", page: 0};
  var el = function (id) { return document.getElementById(id); };
  var box = el("samples"), count = el("sample-count");

  function mk(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function chars(text, full) {
    return full ? full.toLocaleString() + " chars, cut to head and tail here: full text in lmgauge serve"
                : text.length.toLocaleString() + " chars";
  }
  function hay(it) {
    if (it.hay === null) {
      var q = it.q, s = it.s;
      it.hay = [q.b, q.id, q.text, q.gold, s.x, s.r, s.th, s.e, s.jt].map(function (v) {
        return v === null || v === undefined ? "" : String(v);
      }).join("\n").toLowerCase();
    }
    return it.hay;
  }
  function baseMatch(it) {
    if (state.run !== "" && String(it.run) !== state.run) { return false; }
    if (state.bench !== "" && it.q.b !== state.bench) { return false; }
    if (state.text && hay(it).indexOf(state.text) < 0) { return false; }
    return true;
  }
  function statusMatch(it, st) {
    return st === "all" || it.s.st === st;
  }
  function renderSample(it) {
    var s = it.s, q = it.q;
    var d = mk("div", "sample s-" + s.st);
    d.setAttribute("data-status", s.st);
    d.setAttribute("data-benchmark", q.b);
    var h = mk("div", "sh");
    h.appendChild(mk("span", "badge", s.st.toUpperCase()));
    h.appendChild(mk("span", "sid", q.b + " · " + q.id + " · repeat " + s.rp));
    if (runs.length > 1) { h.appendChild(mk("span", "mut", runs[it.run].label)); }
    var meta = [];
    if (q.sub && q.sub.length) { meta.push(q.sub.join(", ")); }
    if (s.fr) { meta.push("finish: " + s.fr); }
    if (s.ct !== null && s.ct !== undefined) { meta.push(s.ct + " tokens"); }
    if (s.lat !== null && s.lat !== undefined) { meta.push(s.lat + " s"); }
    h.appendChild(mk("span", "mut", meta.join(" · ")));
    d.appendChild(h);
    var kv = mk("div", "kv");
    var g = mk("span", null, "Gold: "); g.appendChild(mk("code", "gold", q.gold)); kv.appendChild(g);
    var x = mk("span", null, "Extracted: ");
    x.appendChild(mk("code", "extracted", s.x === null || s.x === undefined ? "(none)" : s.x)); kv.appendChild(x);
    if (s.sc !== null && s.sc !== undefined) { kv.appendChild(mk("span", "mut", "score " + s.sc)); }
    if (s.gd) { kv.appendChild(mk("span", "mut", s.gd)); }
    if (s.jv) { kv.appendChild(mk("span", "judge j-" + s.jv, "judge: " + s.jv)); }
    d.appendChild(kv);
    if (s.e) { d.appendChild(mk("div", "errline", "Error: " + s.e)); }
    var qb = mk("div", "blk q"); qb.appendChild(mk("div", "lab", "Question"));
    qb.appendChild(mk("pre", "question", q.text)); d.appendChild(qb);
    if (s.th) {
      var det = mk("details", "reasoning");
      det.appendChild(mk("summary", null, "Reasoning (" + chars(s.th, s.thn) + ")"));
      det.appendChild(mk("pre", null, s.th));
      d.appendChild(det);
    }
    if (s.jt) {
      var jd = mk("details", "judge-text");
      jd.appendChild(mk("summary", null, "Judge's answer"));
      jd.appendChild(mk("pre", null, s.jt));
      d.appendChild(jd);
    }
    var rb = mk("div", "blk resp");
    rb.appendChild(mk("div", "lab", "Response" + (s.r ? " (" + chars(s.r, s.rn) + ")" : "")));
    rb.appendChild(mk("pre", "response", s.r === null || s.r === undefined ? "(no response)" : s.r));
    d.appendChild(rb);
    return d;
  }
  function render() {
    var base = all.filter(baseMatch);
    var counts = {all: base.length, correct: 0, wrong: 0, truncated: 0, error: 0};
    base.forEach(function (it) {
      ["correct", "wrong", "truncated", "error"].forEach(function (k) { if (statusMatch(it, k)) { counts[k]++; } });
    });
    Array.prototype.forEach.call(document.querySelectorAll("#f-status button"), function (b) {
      var k = b.getAttribute("data-status");
      b.querySelector(".n").textContent = String(counts[k]);
      b.classList.toggle("on", k === state.status);
    });
    var rows = base.filter(function (it) { return statusMatch(it, state.status); });
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    if (state.page >= pages) { state.page = pages - 1; }
    var start = state.page * PAGE, end = Math.min(rows.length, start + PAGE);
    box.textContent = "";
    var frag = document.createDocumentFragment();
    for (var i = start; i < end; i++) { frag.appendChild(renderSample(rows[i])); }
    box.appendChild(frag);
    count.textContent = rows.length ? ("samples " + (start + 1) + "–" + end + " of " + rows.length +
      " · page " + (state.page + 1) + "/" + pages) : "no samples match";
    el("pg-prev").disabled = state.page <= 0;
    el("pg-next").disabled = state.page >= pages - 1;
  }
  var runSel = el("f-run");
  if (runSel) { runSel.addEventListener("change", function () { state.run = runSel.value; state.page = 0; render(); }); }
  el("f-bench").addEventListener("change", function () { state.bench = el("f-bench").value; state.page = 0; render(); });
  Array.prototype.forEach.call(document.querySelectorAll("#f-status button"), function (b) {
    b.addEventListener("click", function () { state.status = b.getAttribute("data-status"); state.page = 0; render(); });
  });
  var timer = null;
  el("f-search").addEventListener("input", function () {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(function () {
      state.text = el("f-search").value.trim().toLowerCase(); state.page = 0; render();
    }, 150);
  });
  el("pg-prev").addEventListener("click", function () { if (state.page > 0) { state.page--; render(); } });
  el("pg-next").addEventListener("click", function () { state.page++; render(); });
  render();
  document.body.setAttribute("data-ready", "1");
})();
"""
