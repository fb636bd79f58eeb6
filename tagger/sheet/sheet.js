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
  var NONE = "\u0000none";
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
        return [r[0], r[1], r[2] || "", r[3].join(" ")].join("\n").toLowerCase();
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
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
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
