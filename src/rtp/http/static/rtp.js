/*! rtp.js: edge personalization before the first paint, server decisions after, events to the
 * rtp collector; no dependencies. Usage, API and the edge model format: docs/http.md. */
(function (w, d) {
  "use strict";
  var S = w.localStorage, SS = w.sessionStorage, N = w.navigator, L = w.location;
  var me = d.currentScript, Q = (w.rtp && w.rtp.q) || [];
  var api = (me && me.getAttribute("data-api")) || (me && me.src ? new URL(me.src).origin : "");
  var key = me && me.getAttribute("data-key"), TTL = 6e5, ua = N.userAgent || "";
  var render = null, shown = [], buf = [], timer = 0, els = [], gen = 0;

  function get(s, k) { try { return s.getItem(k); } catch (e) { return null; } }
  function put(s, k, v) { try { if (v == null) s.removeItem(k); else s.setItem(k, v); } catch (e) {} }
  function uuid() {
    return w.crypto && crypto.randomUUID ? crypto.randomUUID()
      : Date.now().toString(36) + Math.random().toString(36).slice(2);
  }
  function json(t) { try { return JSON.parse(t); } catch (e) { return null; } }
  var anon = get(S, "rtp.a"), user = get(S, "rtp.u");
  if (!anon) put(S, "rtp.a", (anon = uuid()));
  function uid() { return user || anon; }
  function off() {
    return get(S, "rtp.c") === "0" || N.doNotTrack == "1" || w.doNotTrack == "1" ||
      N.globalPrivacyControl === true;
  }

  // -- the visitor's context (kept for the visit: later pages keep the landing context) ----
  var qs = new URLSearchParams(L.search), utm = {};
  ["source", "medium", "campaign", "term", "content"].forEach(function (k) {
    var v = qs.get("utm_" + k);
    if (v) utm[k] = v.toLowerCase();
  });
  function cls(h) {
    h = h.replace(/^www\./, "") + ".";
    if (/^(mail|webmail|outlook|inbox)\.|(^|\.)(gmail|hotmail|proton(mail)?)\./.test(h)) return "email";
    if (/(^|\.)(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|qwant|naver)\./.test(h)) return "search";
    if (/(^|\.)(facebook|fb|instagram|twitter|x|t|linkedin|pinterest|reddit|tiktok|youtube|youtu)\./.test(h)) return "social";
    return "other";
  }
  function referral() {
    var m = utm.medium || "", s = utm.source || "", r = d.referrer, h;
    if (/[?&](gclid|gbraid|wbraid|dclid|msclkid|ttclid|twclid|yclid)=/.test(L.search)) return "paid";
    if (/^(paid|cpc)|^(ppc|display|cpm|cpv|banner|retargeting|remarketing|sem|ads?)$/.test(m)) return "paid";
    if (/^(e-?mail|e_mail|mail|newsletter|emailing)$/.test(m) || /^(e-?mail|newsletter)$/.test(s)) return "email";
    if (/^(social|social[-_](network|media)|sm|organic[-_]social)$/.test(m)) return "social";
    if (/^(organic|seo|search)$/.test(m)) return "search";
    if (s && cls(s) != "other") return cls(s);
    if (!r) return "direct";
    try { h = new URL(r).hostname; } catch (e) { return "other"; }
    return h.replace(/^www\./, "") == L.hostname.replace(/^www\./, "") ? "internal" : cls(h);
  }
  var sig = json(get(SS, "rtp.s"));
  if (!sig) {
    var lang = (N.language || "").split("-")[1] || "";
    sig = {
      referral: referral(),
      device: /iPad|Tablet/i.test(ua) || (/Android/.test(ua) && !/Mobi/.test(ua)) ? "tablet"
        : /Mobi|iPhone|iPod|Android/.test(ua) ? "mobile" : "desktop"
    };
    if (lang.length == 2) sig.country = lang.toUpperCase();
    if (utm.campaign) sig.campaign = utm.campaign;
    put(SS, "rtp.s", JSON.stringify(sig));
  }

  // -- showing content ---------------------------------------------------------------------
  function place(el) { return el.getAttribute("data-rtp-placement"); }
  function show(el, x, src) {
    if (el._rtp == null) el._rtp = el.innerHTML;
    el.setAttribute("data-rtp-source", src);
    if (x.theme) el.setAttribute("data-rtp-theme", x.theme);
    var n = el.querySelector("[data-rtp-reason]");
    if (n && x.reason) n.textContent = x.reason;
    n = el.querySelector("[data-rtp-message]");
    if (n && x.message) n.textContent = x.message;
    if (render) render(el, x, src);
    else if (x.items) x.items.slice().reverse().forEach(function (i) {
      var c = el.querySelector('[data-rtp-item="' + String(i).replace(/["\\]/g, "") + '"]');
      if (c) c.parentNode.insertBefore(c, c.parentNode.firstChild);
    });
    shown.forEach(function (f) { f(place(el), src, x); });
  }
  function restore(src) {
    els.forEach(function (el) {
      if (el._rtp != null) el.innerHTML = el._rtp;
      el.removeAttribute("data-rtp-theme");
      el.setAttribute("data-rtp-source", src);
    });
  }
  function mark(src) {
    els.forEach(function (el) { if (!el.hasAttribute("data-rtp-source")) el.setAttribute("data-rtp-source", src); });
  }

  // -- the edge model: inline <script id="rtp-edge">, else cached, else fetched ------------
  var rule = null, pend = [];
  function edge(doc) {
    var t = performance.now(), h = new Date().getHours(), s = {}, i, k, ok;
    for (k in sig) s[k] = sig[k];
    (doc.dayparts || []).forEach(function (p) { if (h >= p[1]) s.daypart = p[0]; });
    for (i = 0, rule = null; !rule && i < (doc.rules || []).length; i++) {
      ok = 1;
      for (k in doc.rules[i].when) if (s[k] !== doc.rules[i].when[k]) ok = 0;
      if (ok) rule = doc.rules[i];
    }
    R.edgeMs = performance.now() - t;
    els.forEach(function (el) { if (pend.indexOf(el) < 0) apply(el); });
  }
  function apply(el) {
    var p = place(el), r = rule;
    if (!r || off() || el.getAttribute("data-rtp-source") == "server") return;
    if (p == "hero") show(el, { theme: r.hero, message: r.message, reason: r.reason, categories: r.categories }, "edge");
    else if (p == "home" && r.items && r.items.length) show(el, { items: r.items, reason: r.reason }, "edge");
    else if (p == "nav" && r.categories) show(el, { categories: r.categories, reason: r.reason }, "edge");
    else return;
    R.edgeAt = performance.now();
  }
  function loadEdge() {
    var inline = d.getElementById("rtp-edge"), c = json(get(S, "rtp.e")), doc = inline && json(inline.textContent);
    if (doc) return edge(doc);
    if (c && c.doc) edge(c.doc);
    if (c && Date.now() - c.t < TTL) return;
    fetch(api + "/v1/edge-model", { headers: c && c.etag ? { "If-None-Match": c.etag } : {} }).then(function (r) {
      if (r.status == 304) { c.t = Date.now(); put(S, "rtp.e", JSON.stringify(c)); return; }
      if (r.ok) return r.json().then(function (doc) {
        put(S, "rtp.e", JSON.stringify({ t: Date.now(), etag: r.headers.get("ETag"), doc: doc }));
        if (!c) edge(doc);
      });
    }).catch(function () {});
  }
  // placements are personalized as soon as the parser is past them (before the first paint
  // when rtp.js is in <head>), then again when the document is complete
  function past(el) {
    for (var n = el; n && n != d.body; n = n.parentNode) if (n.nextSibling) return 1;
  }
  function scan(all) {
    [].forEach.call(d.querySelectorAll("[data-rtp-placement]"), function (el) {
      if (els.indexOf(el) < 0) { els.push(el); pend.push(el); }
    });
    pend = pend.filter(function (el) { if (all || past(el)) { apply(el); return 0; } return 1; });
  }

  // -- server decisions --------------------------------------------------------------------
  function refresh() {
    if (off()) return mark("fallback");
    var g = gen;
    els.forEach(function (el) {
      var p = place(el), it = el.getAttribute("data-rtp-item");
      fetch(api + "/v1/decisions/" + encodeURIComponent(uid()) + "?placement=" + p + (it ? "&item=" + encodeURIComponent(it) : ""))
        .then(function (r) { if (!r.ok) throw r; return r.json(); })
        .then(function (x) {
          if (off() || g != gen) return;
          var src = x.mode == "fallback" || x.mode == "non_personalized" ? "fallback" : "server";
          if (src == "fallback" && el.getAttribute("data-rtp-source") == "edge") return;
          if (src == "fallback" && p == "hero") return el.setAttribute("data-rtp-source", src);
          x.items = x.items && x.items.map(function (i) { return i[0] != null && typeof i == "object" ? i[0] : i; });
          show(el, x, src);
        })
        .catch(function () { if (!el.hasAttribute("data-rtp-source")) el.setAttribute("data-rtp-source", "fallback"); });
    });
  }

  // -- events ------------------------------------------------------------------------------
  function send(type, extra) {
    if (off()) return;
    var c = { page: { url: L.href, path: L.pathname, referrer: d.referrer, title: d.title }, userAgent: ua }, m, k;
    if (utm.source || utm.campaign) c.campaign = { name: utm.campaign, source: utm.source, medium: utm.medium, term: utm.term, content: utm.content };
    m = { type: type, messageId: uuid(), anonymousId: anon, timestamp: new Date().toISOString(), context: c };
    if (user) m.userId = user;
    for (k in extra) m[k] = extra[k];
    buf.push(m);
    clearTimeout(timer);
    timer = setTimeout(flush, 200);
  }
  function flush() {
    if (!buf.length) return;
    var b = JSON.stringify({ batch: buf, sentAt: new Date().toISOString() }), u = api + "/v1/events", h = { "Content-Type": "text/plain" };
    buf = [];
    if (key) h["X-API-Key"] = key;
    if (key || !N.sendBeacon || !N.sendBeacon(u, new Blob([b], { type: "text/plain" })))
      fetch(u, { method: "POST", body: b, headers: h, keepalive: true }).catch(function () {});
    if (els.length) { setTimeout(refresh, 600); setTimeout(refresh, 1800); }
  }
  function call(method, path, body) {
    var h = { "Content-Type": "application/json" };
    if (key) h["X-API-Key"] = key;
    return fetch(api + path, { method: method, headers: h, body: body && JSON.stringify(body), keepalive: true }).catch(function () {});
  }

  // -- the public API ----------------------------------------------------------------------
  var cmds = {
    track: function (name, props) { send("track", { event: name, properties: props || {} }); },
    page: function (props) {
      var p = { path: L.pathname, url: L.href, referrer: d.referrer, title: d.title }, k;
      for (k in props) p[k] = props[k];
      send("page", { name: d.title, properties: p });
    },
    identify: function (id, traits) { user = String(id); put(S, "rtp.u", user); send("identify", { traits: traits || {} }); },
    consent: function (yes) {
      put(S, "rtp.c", yes ? "1" : "0");
      gen++;
      call("PUT", "/v1/users/" + encodeURIComponent(uid()) + "/consent", { personalize: !!yes });
      if (yes) { loadEdge(); refresh(); } else restore("fallback");
    },
    forget: function () {
      call("DELETE", "/v1/users/" + encodeURIComponent(uid()));
      buf = [];
      gen++;
      user = null; put(S, "rtp.u", null); put(SS, "rtp.s", null);
      put(S, "rtp.a", (anon = uuid()));
      restore("fallback");
    },
    render: function (f) { render = f; },
    shown: function (f) { shown.push(f); },
    refresh: refresh,
    flush: flush,
    user: uid
  };
  function R(cmd) { var f = cmds[cmd]; return f && f.apply(null, [].slice.call(arguments, 1)); }
  w.rtp = R;
  R.api = api;
  Q.forEach(function (a) { R.apply(null, a); });
  function start() {
    scan(1);
    if (off()) return mark("fallback");
    if (!me || me.getAttribute("data-auto") != "0") cmds.page();
    refresh();
  }
  if (!off()) loadEdge();
  scan(0);
  if (d.readyState == "loading") {
    var mo = new MutationObserver(function () { scan(0); });
    mo.observe(d.documentElement, { childList: true, subtree: true });
    d.addEventListener("DOMContentLoaded", function () { mo.disconnect(); start(); });
  } else start();
  w.addEventListener("pagehide", flush);
  d.addEventListener("visibilitychange", function () { if (d.visibilityState == "hidden") flush(); });
})(window, document);
