// The fleet page, live: asks /fleet/data every few seconds (same origin, the session
// cookie) and redraws the branches with DOM calls only (no markup from data).
"use strict";
(function () {
  var main = document.getElementById("branches");
  var live = document.getElementById("live");
  var updated = document.getElementById("updated");
  var counts = document.getElementById("counts");
  var poll = Math.max(1, Number(main.getAttribute("data-poll")) || 5) * 1000;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  function row(d, w) {
    var tr = el("tr", "s-" + d.state);
    tr.setAttribute("data-device", d.id);
    var th = el("th");
    th.setAttribute("scope", "row");
    th.appendChild(el("span", "id", d.id));
    th.appendChild(el("span", "role", d.role_word));
    tr.appendChild(th);
    var st = el("td");
    st.appendChild(el("span", "badge s-" + d.state, d.state_word));
    if (d.reason_word) { st.appendChild(el("span", "why", d.reason_word)); }
    tr.appendChild(st);
    tr.appendChild(labelled(el("td", "p-" + d.printer, d.printer_word), w.printer));
    tr.appendChild(labelled(el("td", "", d.seen_word), w.last_seen));
    tr.appendChild(labelled(el("td", "num", d.tickets), w.tickets_today));
    return tr;
  }

  function labelled(td, label) {  // a phone shows each cell's column name before it
    td.setAttribute("data-label", label);
    return td;
  }

  function branch(b, w) {
    var s = el("section", "branch s-" + b.state);
    s.setAttribute("data-branch", b.id);
    var h = el("h2");
    h.appendChild(el("span", "badge s-" + b.state, b.word));
    h.appendChild(document.createTextNode(" " + w.branch + " " + b.id));
    s.appendChild(h);
    var t = el("table"), head = el("thead"), hr = el("tr");
    [[w.device, ""], [w.state, ""], [w.printer, ""], [w.last_seen, ""], [w.tickets_today, "num"]]
      .forEach(function (c) { var x = el("th", c[1], c[0]); x.setAttribute("scope", "col"); hr.appendChild(x); });
    head.appendChild(hr);
    t.appendChild(head);
    var body = el("tbody");
    b.devices.forEach(function (d) { body.appendChild(row(d, w)); });
    t.appendChild(body);
    s.appendChild(t);
    return s;
  }

  function draw(page) {
    var w = page.words;
    var parts = page.branches.map(function (b) { return branch(b, w); });
    if (!parts.length) { parts = [el("p", "empty", w.no_devices)]; }
    main.replaceChildren.apply(main, parts);
    counts.replaceChildren.apply(counts, page.counts.map(function (c) {
      var li = el("li", "chip s-" + c.state);
      li.appendChild(el("span", "n", c.n));
      li.appendChild(document.createTextNode(" " + c.word));
      return li;
    }));
    updated.textContent = page.updated;
    poll = Math.max(1, page.poll_s) * 1000;
  }

  function status(ok) {
    live.textContent = live.getAttribute(ok ? "data-ok" : "data-lost");
    live.classList.toggle("lost", !ok);
  }

  function tick() {
    fetch("/fleet/data", { credentials: "same-origin", cache: "no-store",
                           headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.json();
      })
      .then(function (page) { if (page) { draw(page); status(true); } })
      .catch(function () { status(false); })
      .then(function () { window.setTimeout(tick, poll); });
  }
  window.setTimeout(tick, poll);
}());
