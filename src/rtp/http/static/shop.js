/* The demo shop's part: renders rtp decisions with the catalogue, re-ranks search results,
 * keeps a cart, and wires the "Personalize" and "Forget me" controls. rtp.js does the rest. */
(function (w, d) {
  "use strict";
  var I = w.SHOP.items, SS = w.sessionStorage;
  function esc(t) { return String(t).replace(/[&<>"]/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }); }
  function name(id) { return I[id] ? I[id][0] : id; }
  function names(text) { return String(text || "").replace(/\bi\d+\b/g, name); }
  function card(id, why) {
    var p = I[id], li = d.createElement("li");
    li.setAttribute("data-rtp-item", id);
    li.innerHTML = '<a href="/shop/p/' + esc(id) + '"><span class="thumb" data-cat="' + esc(p[1]) + '">' +
      esc(p[0].charAt(0)) + "</span><b>" + esc(p[0]) + "</b><small>" + esc(p[1]) + " · €" +
      p[2].toFixed(2) + '</small></a><em class="why">' + esc(why || "") + "</em>";
    return li;
  }
  function viewed() { try { return JSON.parse(SS.getItem("shop.viewed")) || []; } catch (e) { return []; } }

  rtp("render", function (el, x, src) {
    var p = el.getAttribute("data-rtp-placement"), r = el.querySelector("[data-rtp-reason]");
    if (p == "hero") {
      var t = (x.theme || "").split(":"), c = t[1] || (x.categories || [])[0], v = viewed(), h = el.querySelector("[data-rtp-message]");
      var say = { category: "Picked for you: ", deals: "Deals on ", guide: "Compare our " }[t[0]];
      if (src == "server" && !say) {
        if (/cart|checkout/.test(t[0])) h.textContent = "Your cart is waiting";
        return;
      }
      if (!c) return;
      el.setAttribute("data-cat", c);
      h.textContent = src == "server" ? say + c : x.message || "Discover our " + c;
      var a = el.querySelector(".cta");
      a.href = "/shop/c/" + encodeURIComponent(c);
      a.textContent = "Shop " + c;
      if (r && src == "server" && v.length) r.textContent = "Because you viewed " + name(v[0]) + ": " + x.reason;
    } else if (p == "nav" && x.categories) {
      x.categories.slice().reverse().forEach(function (c) {
        var a = el.querySelector('a[data-cat="' + c + '"]');
        if (a) el.insertBefore(a, el.firstChild);
      });
    } else if (x.items) {
      var ul = el.querySelector("ul");
      ul.innerHTML = "";
      x.items.filter(function (id) { return I[id]; }).slice(0, 8).forEach(function (id, n) {
        ul.appendChild(card(id, x.reasons ? names(x.reasons[x.items.indexOf(id)]) : ""));
      });
      if (r) r.textContent = names(x.reason);
    }
  });

  d.addEventListener("DOMContentLoaded", function () {
  // product pages: remember the visit's views (for "because you viewed ...") and the cart
  var art = d.querySelector("article.product");
  if (art) {
    var v = viewed(), id = art.getAttribute("data-id");
    v = [id].concat(v.filter(function (x) { return x != id; })).slice(0, 10);
    SS.setItem("shop.viewed", JSON.stringify(v));
  }
  function cart() { try { return JSON.parse(localStorage.getItem("shop.cart")) || []; } catch (e) { return []; } }
  function save(c) { localStorage.setItem("shop.cart", JSON.stringify(c)); }
  var add = d.getElementById("add");
  if (add) add.onclick = function () {
    var id = add.getAttribute("data-id"), p = I[id], c = cart();
    c.push(id); save(c);
    rtp("track", "Product Added", { product_id: id, category: p[1], price: p[2], name: p[0] });
    add.textContent = "Added (" + c.length + " in cart)";
  };
  var list = d.getElementById("cart");
  if (list) {
    var c = cart(), total = 0;
    c.forEach(function (id) { if (I[id]) { list.appendChild(card(id, "")); total += I[id][2]; } });
    d.getElementById("total").textContent = c.length ? "Total €" + total.toFixed(2) : "Your cart is empty.";
    d.getElementById("checkout").onclick = function () {
      if (!c.length) return;
      rtp("track", "Order Completed", {
        order_id: String(Date.now()), revenue: total,
        products: c.map(function (id) { return { product_id: id, category: I[id][1], price: I[id][2] }; })
      });
      save([]); list.innerHTML = ""; d.getElementById("total").textContent = "Thank you for your order!";
    };
  }

  // search results: re-ranked by the visitor's session, each with its reason
  var res = d.getElementById("results");
  function rerank() {
    if (!res || !res.children.length) return;
    var ids = [].map.call(res.children, function (li) { return li.getAttribute("data-rtp-item"); });
    fetch(rtp.api + "/v1/rerank", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: rtp("user"), query: res.getAttribute("data-query"), items: ids })
    }).then(function (r) { if (!r.ok) throw r; return r.json(); }).then(function (x) {
      if (x.mode != "personalized") { res.setAttribute("data-rtp-source", "fallback"); return; }
      x.items.forEach(function (it) {
        var li = res.querySelector('[data-rtp-item="' + it.id + '"]');
        li.querySelector(".why").textContent = names(it.reason);
        res.appendChild(li);
      });
      res.setAttribute("data-rtp-source", "server");
      d.getElementById("results-reason").textContent = "Ordered for you, by what you browse in this visit";
    }).catch(function () { res.setAttribute("data-rtp-source", "fallback"); });
  }
  if (localStorage.getItem("rtp.c") !== "0") rerank();

  // the visitor's controls
  (function () {
    var box = d.getElementById("consent"), f = d.getElementById("forget");
    box.checked = localStorage.getItem("rtp.c") !== "0";
    box.onchange = function () { rtp("consent", box.checked); };
    f.onclick = function () { rtp("forget"); SS.removeItem("shop.viewed"); f.textContent = "Forgotten"; };
  })();
  });
})(window, document);
