// tagger review: keyboard-first decisions on held captions. Every caption, keyword and path is
// untrusted text: it is only ever set with textContent / value, never parsed as HTML.
"use strict";
(() => {
  const TOKEN = document.body.dataset.token;
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  const st = {
    offset: 0, total: 0, counts: {}, rows: [], current: 0, editing: false,
    filter: { folder: "", decision: "", text: "", reused: "" },
  };
  const carried = new Map();
  // Measured by the benchmark: milliseconds from a decision key to the next photo shown, and to the ledger's answer.
  window.reviewTimings = [];

  const qs = (params) => new URLSearchParams({ token: TOKEN, ...params }).toString();

  async function getJSON(path, params) {
    const r = await fetch(`${path}?${qs(params || {})}`, { credentials: "same-origin" });
    if (!r.ok) throw new Error((await r.text()) || r.statusText);
    return r.json();
  }

  async function post(path, body) {
    const r = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Tagger-Token": TOKEN },
      body: JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(data.error || r.statusText);
    return data;
  }

  function say(text, error) {
    const m = $("message");
    m.textContent = text;
    m.className = error ? "error" : "";
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function button(action, label, title) {
    const b = el("button", null, label);
    b.type = "button";
    b.dataset.action = action;
    b.title = title;
    return b;
  }

  function card(row, index) {
    const c = el("article", `card ${row.decision}`);
    c.dataset.id = String(row.id);
    c.dataset.index = String(index);
    c.tabIndex = -1;
    const img = el("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = "";
    img.src = `/thumb/${row.id}?${qs({})}`;
    c.append(img);
    const body = el("div", "body");
    const head = el("div", "path");
    head.append(el("span", `badge ${row.decision}`, row.decision), document.createTextNode(" " + row.path));
    body.append(head);
    body.append(el("p", "caption", row.caption || ""));
    body.append(el("p", "keywords", row.keywords.length ? "Keywords: " + row.keywords.join(", ") : "Keywords: none"));
    if (row.decision === "edited" && row.machine_caption !== row.caption) {
      body.append(el("p", "note", "Machine caption: " + (row.machine_caption || "")));
    }
    const notes = [];
    if (row.copies > 0) notes.push(`${row.copies} identical cop${row.copies === 1 ? "y shares" : "ies share"} this caption`);
    if (row.reused_from) notes.push("caption reused from a similar photo: " + row.reused_from);
    if (notes.length) body.append(el("p", "note", notes.join("; ")));
    const known = carried.get(row.id);
    body.append(el("p", "carried", known ? carriedText(known) : ""));
    c.append(body);
    const buttons = el("div", "buttons");
    buttons.append(
      button("approved", "Approve", "a"),
      button("rejected", "Reject", "r"),
      button("edit", "Edit", "e"),
      button("awaiting", "Hold", "u"),
    );
    c.append(buttons);
    return c;
  }

  function carriedText(info) {
    const parts = [];
    const own = info.carried || {};
    parts.push("Already on the photo: " + (own.description || "no description"));
    if (own.keywords && own.keywords.length) parts.push("keywords " + own.keywords.join(", "));
    if (info.copies && info.copies.length) parts.push("copies: " + info.copies.join(", "));
    return parts.join("; ");
  }

  function cardAt(i) {
    return $("list").children[i] || null;
  }

  function render() {
    const list = $("list");
    list.replaceChildren(...st.rows.map(card));
    const last = Math.min(st.offset + st.rows.length, st.total);
    $("page-info").textContent = st.total ? `${st.offset + 1}-${last} of ${st.total}` : "nothing held here";
    $("prev-page").disabled = st.offset === 0;
    $("next-page").disabled = st.offset + PAGE >= st.total;
    showCounts();
    setCurrent(Math.min(st.current, Math.max(0, st.rows.length - 1)));
  }

  function showCounts() {
    const c = st.counts;
    $("counts").textContent =
      `${c.awaiting || 0} awaiting, ${c.approved || 0} approved, ${c.edited || 0} edited, ${c.rejected || 0} rejected`;
    $("approve-shown").textContent = `Approve all shown (${c.awaiting || 0} awaiting)`;
    delete $("approve-shown").dataset.armed;
  }

  function setCurrent(i) {
    const old = cardAt(st.current);
    if (old) old.classList.remove("current");
    st.current = i;
    const now = cardAt(i);
    if (!now) return;
    now.classList.add("current");
    now.scrollIntoView({ block: "nearest" });
    loadCarried(st.rows[i]);
  }

  async function loadCarried(row) {
    if (!row || carried.has(row.id)) return;
    carried.set(row.id, null);
    try {
      const info = await getJSON(`/api/photo/${row.id}`);
      carried.set(row.id, info);
      const i = st.rows.findIndex((r) => r.id === row.id);
      const c = cardAt(i);
      if (c) c.querySelector(".carried").textContent = carriedText(info);
    } catch (e) {
      carried.delete(row.id);
    }
  }

  function params() {
    const p = {};
    for (const [k, v] of Object.entries(st.filter)) if (v) p[k] = v;
    return p;
  }

  async function load(offset, pick) {
    const data = await getJSON("/api/photos", { ...params(), offset, limit: PAGE });
    st.offset = data.offset;
    st.total = data.total;
    st.counts = data.counts;
    st.rows = data.rows;
    st.current = pick === "last" ? Math.max(0, data.rows.length - 1) : pick || 0;
    render();
  }

  // Rows decided on this page no longer match a status filter: the next page starts that much earlier.
  function nextOffset() {
    const gone = st.filter.decision ? st.rows.filter((r) => r.decision !== st.filter.decision).length : 0;
    return st.offset + PAGE - gone;
  }

  async function next() {
    if (st.current < st.rows.length - 1) return setCurrent(st.current + 1);
    if (st.offset + st.rows.length < st.total) return load(nextOffset(), 0);
  }

  async function prev() {
    if (st.current > 0) return setCurrent(st.current - 1);
    if (st.offset > 0) return load(Math.max(0, st.offset - PAGE), "last");
  }

  function replaceRow(fresh) {
    const i = st.rows.findIndex((r) => r.id === fresh.id);
    if (i < 0) return;
    st.rows[i] = fresh;
    const c = cardAt(i);
    if (!c) return;
    const made = card(fresh, i);
    if (i === st.current) made.classList.add("current");
    c.replaceWith(made);
  }

  function count(from, to) {
    st.counts[from] = Math.max(0, (st.counts[from] || 0) - 1);
    st.counts[to] = (st.counts[to] || 0) + 1;
    showCounts();
  }

  async function decide(index, decision, extra) {
    const row = st.rows[index];
    if (!row) return;
    const t0 = performance.now();
    const before = row;
    const shown = { ...row, decision };
    replaceRow(shown);
    count(before.decision, decision);
    const saving = post("/api/decide", { ids: [row.id], decision, ...(extra || {}) });
    if (index === st.current) await next();
    const moved = performance.now() - t0;
    try {
      const res = await saving;
      if (res.rows && res.rows[0]) replaceRow(res.rows[0]);
      say(`${decision === "awaiting" ? "held again" : decision}: ${row.path}`);
    } catch (e) {
      replaceRow(before);
      count(decision, before.decision);
      say(`not recorded (${e.message}): ${row.path}`, true);
    }
    window.reviewTimings.push({ moved, saved: performance.now() - t0 });
  }

  function edit(index) {
    const row = st.rows[index];
    const c = cardAt(index);
    if (!row || !c || st.editing) return;
    setCurrent(index);
    st.editing = true;
    const form = el("form", "edit");
    const text = el("textarea");
    text.value = row.caption || "";
    text.setAttribute("aria-label", "caption");
    const words = el("input");
    words.value = row.keywords.join("; ");
    words.setAttribute("aria-label", "keywords, separated by ;");
    words.placeholder = "keywords; left as they are, they are derived again from the new caption";
    const save = el("button", null, "Save");
    save.type = "submit";
    const cancel = el("button", null, "Cancel");
    cancel.type = "button";
    form.append(text, words, save, cancel);
    const body = c.querySelector(".body");
    body.append(form);
    text.focus();
    text.select();
    const close = () => {
      form.remove();
      st.editing = false;
      c.focus();
    };
    const submit = async () => {
      const caption = text.value.trim();
      if (!caption) return say("an edited caption cannot be empty (reject the photo instead)", true);
      const original = row.keywords.join("; ");
      const extra = { caption };
      // Keywords left as they were follow the new text (derived again, no credit); changed ones are the person's.
      if (words.value.trim() !== original) extra.keywords = words.value.split(/[;,]/).map((k) => k.trim()).filter(Boolean);
      close();
      await decide(index, "edited", extra);
    };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); submit(); });
    cancel.addEventListener("click", close);
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") { ev.preventDefault(); close(); }
      else if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); submit(); }
    });
  }

  function typing(target) {
    return target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target) || st.editing) return;
    const keys = {
      j: next, ArrowDown: next, ArrowRight: next,
      k: prev, ArrowUp: prev, ArrowLeft: prev,
      a: () => decide(st.current, "approved"),
      r: () => decide(st.current, "rejected"),
      u: () => decide(st.current, "awaiting"),
      e: () => edit(st.current),
      "/": () => $("f-text").focus(),
    };
    const act = keys[ev.key];
    if (!act) return;
    ev.preventDefault();
    act();
  });

  $("list").addEventListener("click", (ev) => {
    const c = ev.target.closest(".card");
    if (!c || ev.target.closest("form")) return;
    const index = Number(c.dataset.index);
    const action = ev.target.closest("button") && ev.target.closest("button").dataset.action;
    if (!action) return setCurrent(index);
    if (action === "edit") return edit(index);
    if (index !== st.current) setCurrent(index);
    decide(index, action);
  });

  let typingTimer = 0;
  function refilter() {
    st.filter = {
      folder: $("f-folder").value, decision: $("f-decision").value,
      text: $("f-text").value.trim(), reused: $("f-reused").value,
    };
    load(0, 0).catch((e) => say(e.message, true));
  }
  for (const id of ["f-folder", "f-decision", "f-reused"]) $(id).addEventListener("change", refilter);
  $("f-text").addEventListener("input", () => { clearTimeout(typingTimer); typingTimer = setTimeout(refilter, 250); });
  $("f-text").addEventListener("keydown", (ev) => { if (ev.key === "Escape" || ev.key === "Enter") { ev.preventDefault(); ev.target.blur(); } });
  $("filters").addEventListener("submit", (ev) => ev.preventDefault());

  $("prev-page").addEventListener("click", () => load(Math.max(0, st.offset - PAGE), 0));
  $("next-page").addEventListener("click", () => load(nextOffset(), 0));

  $("approve-shown").addEventListener("click", async (ev) => {
    const b = ev.currentTarget;
    if (!b.dataset.armed) {
      b.dataset.armed = "1";
      b.textContent = `Confirm: approve ${st.counts.awaiting || 0} awaiting photo(s) shown`;
      return;
    }
    delete b.dataset.armed;
    try {
      const res = await post("/api/approve-shown", { filter: params() });
      say(`approved ${res.changed} photo(s)`);
      await load(st.filter.decision ? 0 : st.offset, st.current);
    } catch (e) {
      say(`not recorded: ${e.message}`, true);
    }
  });

  $("apply").addEventListener("click", async () => {
    say("applying...");
    try {
      const res = await post("/api/apply", {});
      say(`applied: ${res.decided} decided caption(s), ${res.written} sidecar(s) written` +
        (res.failed ? `, ${res.failed} could not be written (see tagger status)` : ""), res.failed > 0);
    } catch (e) {
      say(`not applied: ${e.message}`, true);
    }
  });

  (async () => {
    try {
      await load(0, 0);
      window.reviewReady = performance.now();
      const folders = await getJSON("/api/folders");
      for (const f of folders) {
        const o = el("option", null, f);
        o.value = f;
        $("f-folder").append(o);
      }
    } catch (e) {
      say(e.message, true);
    }
  })();
})();
