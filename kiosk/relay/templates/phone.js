// The phone ticket (kiosk/relay/phone.py): live by Server-Sent Events, polling without them.
(function () {
  "use strict";
  var body = document.body, d = body.dataset, base = location.pathname.replace(/\/+$/, "");
  var pollMs = (parseInt(d.poll, 10) || 3) * 1000;
  var last = null, audio = null, flashing = null, pollTimer = null, source = null;
  var title = document.title;
  function $(id) { return document.getElementById(id); }
  function aheadText(n) {
    if (n <= 0) { return d.aheadNone; }
    if (n === 1) { return d.aheadOne; }
    return d.aheadMany.replace("{n}", String(n));
  }
  function waitText(m) {
    if (m === null || m === undefined || !isFinite(m) || m < 0) { return d.waitUnknown; }
    if (m < 1) { return d.waitLt1; }
    if (m < 10) { return d.waitMin.replace("{n}", Math.round(m)); }
    if (m < 60) { return d.waitMin.replace("{n}", 5 * Math.round(m / 5)); }
    var q = 15 * Math.round(m / 15), h = Math.floor(q / 60), r = q % 60;
    return r ? d.waitHMin.replace("{h}", h).replace("{n}", r) : d.waitH.replace("{h}", h);
  }
  function chime() {
    if (!audio) { return; }
    try {
      var t0 = audio.currentTime;
      [[659.25, 0], [830.61, 0.28], [987.77, 0.56]].forEach(function (n) {
        var o = audio.createOscillator(), g = audio.createGain();
        o.type = "sine"; o.frequency.value = n[0];
        g.gain.setValueAtTime(0.0001, t0 + n[1]);
        g.gain.exponentialRampToValueAtTime(0.5, t0 + n[1] + 0.03);
        g.gain.exponentialRampToValueAtTime(0.0001, t0 + n[1] + 0.9);
        o.connect(g); g.connect(audio.destination);
        o.start(t0 + n[1]); o.stop(t0 + n[1] + 1);
      });
    } catch (e) { /* no sound: the page still shows and vibrates */ }
  }
  function alertTurn(s) {
    if (navigator.vibrate) { try { navigator.vibrate([400, 200, 400, 200, 800]); } catch (e) {} }
    chime();
    if (flashing) { clearInterval(flashing); }
    var on = false, count = 0;
    flashing = setInterval(function () {
      on = !on; count += 1;
      document.title = on ? "\u2757 " + d.called + " \u2014 " + s.booth : s.ticketId + " \u00b7 " + s.booth;
      if (count > 40) { clearInterval(flashing); flashing = null; document.title = d.called + " \u2014 " + s.booth; }
    }, 1000);
  }
  function show(s) {
    var prev = last; last = s;
    $("number").textContent = s.ticketId;
    $("queue").textContent = s.queue && s.queue.name ? s.queue.name : "";
    $("priority").hidden = !s.priority;
    $("wait").textContent = waitText(s.wait_min);
    var a = aheadText(s.ahead);
    if ($("ahead").textContent !== a) { $("ahead").textContent = a; }
    body.className = s.state;
    if (s.state === "called") {
      $("called-number").textContent = s.ticketId;
      $("booth").textContent = s.booth || "";
      $("called").hidden = false;
      if (!prev || prev.state !== "called" || prev.booth !== s.booth || prev.calledAt !== s.calledAt) {
        alertTurn(s);
      }
    } else {
      $("called").hidden = true;
      if (s.state === "expired") {
        $("expired-title").textContent = d.expiredTitle;
        $("expired-text").textContent = d.expiredText;
        $("expired").hidden = false;
        document.title = d.expiredTitle;
        stopAll();
      } else {
        document.title = title;
      }
    }
  }
  function stopAll() {
    if (source) { source.close(); source = null; }
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
  }
  function poll() {
    pollTimer = null;
    var x = new XMLHttpRequest();
    x.open("GET", base + "/state");
    x.setRequestHeader("Accept", "application/json");
    x.onload = function () {
      if (x.status === 200 || x.status === 410) {
        try { show(JSON.parse(x.responseText)); } catch (e) {}
        $("offline").hidden = true;
      }
      if (x.status !== 410 && x.status !== 404) { schedule(); }
    };
    x.onerror = function () { $("offline").hidden = false; schedule(); };
    x.send();
  }
  function schedule() { if (!pollTimer && !source) { pollTimer = setTimeout(poll, pollMs); } }
  function stream() {
    if (!window.EventSource || window.__noEventSource) { schedule(); return; }
    source = new EventSource(base + "/events");
    source.addEventListener("state", function (ev) {
      $("offline").hidden = true;
      try { show(JSON.parse(ev.data)); } catch (e) {}
    });
    source.onerror = function () {
      // a broken stream: poll until it comes back (EventSource retries by itself)
      if (source && source.readyState === 2) { source = null; schedule(); return; }
      if (!pollTimer) { pollTimer = setTimeout(function () { pollTimer = null; poll(); }, pollMs); }
    };
  }
  var button = $("sound");
  button.addEventListener("click", function () {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (AC && !audio) { try { audio = new AC(); } catch (e) { audio = null; } }
    if (audio && audio.resume) { audio.resume(); }
    button.setAttribute("aria-pressed", "true");
    button.textContent = d.soundIsOn;
    chime();
  });
  if (body.className === "called") {
    last = { state: "called", booth: $("booth").textContent, ticketId: $("number").textContent };
  }
  stream();
})();
