"""The contact sheet's stylesheet and script, inlined into every page (no network, works from file://)."""

from __future__ import annotations

__all__ = ["CSS", "JS", "PAGE_SIZE"]

#: Cards rendered at a time; more follow on scrolling or "Show more".
PAGE_SIZE = 120

CSS = """
:root{--edge:160px;--fg:#1d2329;--muted:#5d6873;--line:#d9dee3;--bg:#f4f6f8;--card:#fff}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:16px 20px 8px;background:var(--card);border-bottom:1px solid var(--line)}
h1{font-size:20px;margin:0 0 8px}
.summary{display:flex;flex-wrap:wrap;gap:6px 24px;align-items:baseline}
.summary dl{display:flex;flex-wrap:wrap;gap:4px 16px;margin:0}
.summary dt{color:var(--muted);font-size:12px}
.summary dd{margin:0 0 0 4px;font-weight:600}
.summary .pair{display:flex;align-items:baseline}
.chips{display:flex;flex-wrap:wrap;gap:4px;margin:4px 0}
.chip{padding:1px 8px;border-radius:10px;background:#e8ecf0;font-size:12px}
.chip b{margin-left:4px}
.controls{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;
 padding:10px 20px;background:rgba(244,246,248,.96);border-bottom:1px solid var(--line)}
.controls label{color:var(--muted);font-size:12px}
.controls select,.controls input{font:inherit;padding:4px 6px;border:1px solid #b9c1c9;border-radius:4px;background:#fff}
.controls input{width:18em}
#count{color:var(--muted)}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(calc(var(--edge) + 60px),1fr));gap:12px;padding:16px 20px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;overflow:hidden;display:flex;flex-direction:column}
.thumb{height:calc(var(--edge) + 16px);display:flex;align-items:center;justify-content:center;background:#e9edf0}
.thumb img{max-width:100%;max-height:var(--edge);display:block}
.ph{width:calc(var(--edge) * .75);height:calc(var(--edge) * .6);border:2px dashed #aab3bc;border-radius:6px;
 display:flex;align-items:center;justify-content:center;color:var(--muted);font-size:12px;text-align:center}
.body{padding:8px 10px 10px;display:flex;flex-direction:column;gap:4px;min-width:0}
.name{font-weight:600;overflow-wrap:anywhere}
.rel{color:var(--muted);font-size:11px;overflow-wrap:anywhere}
.cap{margin:2px 0;overflow-wrap:anywhere}
.kw{display:flex;flex-wrap:wrap;gap:3px;margin:0;padding:0;list-style:none}
.kw li{font-size:11px;padding:0 6px;border-radius:8px;background:#eef1f4;overflow-wrap:anywhere}
.meta{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin-top:auto;font-size:12px}
.status{padding:0 6px;border-radius:4px;color:#fff;background:#6c757d}
.s-completed{background:#2f7d32}.s-failed{background:#c62828}.s-timeout{background:#b26a00}
.s-not-found{background:#6a1b9a}.s-pending{background:#1565c0}.s-skipped{background:#6c757d}
.reason{color:var(--muted)}
.reused{padding:0 6px;border-radius:4px;border:1px dashed #1565c0;color:#1565c0}
#more{display:block;margin:0 auto 24px;font:inherit;padding:6px 18px}
#more[hidden]{display:none}
.empty{padding:40px;text-align:center;color:var(--muted)}
"""

# Builds every card with textContent and properties, never innerHTML: captions
# are untrusted text. Only one page of cards is in the DOM at first, and a
# thumbnail's data: URI is attached only when its card nears the viewport.
JS = """
(function () {
  "use strict";
  var PAGE = %(page)d;
  var recs = JSON.parse(document.getElementById("records").textContent);
  var thumbs = JSON.parse(document.getElementById("thumbs").textContent);
  var grid = document.getElementById("grid");
  var statusSel = document.getElementById("status");
  var reasonSel = document.getElementById("reason");
  var search = document.getElementById("search");
  var countEl = document.getElementById("count");
  var more = document.getElementById("more");
  var NONE = "\\u0000none";
  var hay = null;
  var matches = [];
  var shown = 0;

  function tally(field) {
    var counts = new Map();
    recs.forEach(function (r) {
      var v = r[field] === null || r[field] === "" ? NONE : r[field];
      counts.set(v, (counts.get(v) || 0) + 1);
    });
    return Array.from(counts.entries()).sort(function (a, b) { return b[1] - a[1] || String(a[0]).localeCompare(String(b[0])); });
  }
  function fill(sel, field, noneLabel) {
    tally(field).forEach(function (e) {
      var o = document.createElement("option");
      o.value = e[0];
      o.textContent = (e[0] === NONE ? noneLabel : e[0]) + " (" + e[1] + ")";
      sel.appendChild(o);
    });
  }
  fill(statusSel, 4, "(none)");
  fill(reasonSel, 5, "(no reason)");

  function haystack(i) {
    if (hay === null) {
      hay = recs.map(function (r) {
        return [r[0], r[1], r[2] || "", r[3].join(" ")].join("\\n").toLowerCase();
      });
    }
    return hay[i];
  }

  var thumbIO = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (!e.isIntersecting) { return; }
      var img = e.target;
      img.src = "data:image/jpeg;base64," + thumbs[img.dataset.t];
      thumbIO.unobserve(img);
    });
  }, { rootMargin: "300px 0px" });

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined && text !== null) { n.textContent = text; }
    return n;
  }
  function statusClass(s) { return "s-" + String(s).toLowerCase().replace(/[^a-z0-9]+/g, "-"); }

  function card(i) {
    var r = recs[i];
    var c = el("article", "card");
    c.dataset.i = i;
    var box = el("div", "thumb");
    if (r[6] !== null && thumbs[r[6]]) {
      var img = el("img");
      img.alt = r[2] || r[0];
      img.dataset.t = r[6];
      img.decoding = "async";
      box.appendChild(img);
      thumbIO.observe(img);
    } else {
      box.appendChild(el("div", "ph", "no preview"));
    }
    c.appendChild(box);
    var body = el("div", "body");
    body.appendChild(el("div", "name", r[0]));
    var rel = el("div", "rel", r[1]);
    rel.title = r[7];
    body.appendChild(rel);
    if (r[2]) { body.appendChild(el("p", "cap", r[2])); }
    if (r[3].length) {
      var ul = el("ul", "kw");
      r[3].forEach(function (k) { ul.appendChild(el("li", null, k)); });
      body.appendChild(ul);
    }
    var meta = el("div", "meta");
    meta.appendChild(el("span", "status " + statusClass(r[4]), r[4]));
    if (r[5]) { meta.appendChild(el("span", "reason", r[5])); }
    if (r[8]) {
      var reused = el("span", "reused", "caption reused from " + r[8].split("/").pop());
      reused.title = "a copy of " + r[8] + ": its caption, no credit spent";
      meta.appendChild(reused);
    }
    body.appendChild(meta);
    c.appendChild(body);
    return c;
  }

  function renderMore() {
    var end = Math.min(shown + PAGE, matches.length);
    var frag = document.createDocumentFragment();
    for (var k = shown; k < end; k++) { frag.appendChild(card(matches[k])); }
    grid.appendChild(frag);
    shown = end;
    more.hidden = shown >= matches.length;
    more.textContent = "Show more (" + (matches.length - shown) + " left)";
  }

  function apply() {
    var st = statusSel.value, rs = reasonSel.value;
    var words = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    matches = [];
    for (var i = 0; i < recs.length; i++) {
      var r = recs[i];
      if (st && (r[4] === null || r[4] === "" ? NONE : r[4]) !== st) { continue; }
      if (rs && (r[5] === null || r[5] === "" ? NONE : r[5]) !== rs) { continue; }
      if (words.length) {
        var h = haystack(i);
        if (!words.every(function (w) { return h.indexOf(w) !== -1; })) { continue; }
      }
      matches.push(i);
    }
    grid.replaceChildren();
    shown = 0;
    // New results start at the top; staying scrolled down would pull in page after page.
    var top = document.querySelector("header").offsetHeight;
    if (window.scrollY > top) { window.scrollTo(0, top); }
    if (!matches.length) { grid.appendChild(el("div", "empty", "No image matches these filters.")); }
    renderMore();
    countEl.textContent = matches.length + " of " + recs.length + " images";
  }

  var timer = null;
  search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(apply, 120); });
  statusSel.addEventListener("change", apply);
  reasonSel.addEventListener("change", apply);
  more.addEventListener("click", renderMore);
  new IntersectionObserver(function (entries) {
    if (entries.some(function (e) { return e.isIntersecting; }) && shown < matches.length) { renderMore(); }
  }, { rootMargin: "200px 0px" }).observe(more);
  document.addEventListener("keydown", function (e) {
    if (e.key === "/" && document.activeElement !== search) { e.preventDefault(); search.focus(); }
  });
  apply();
})();
"""
