/* CRM recommender cart widget. Plain JS, no build step, no eval, no inline script: CSP-safe.
 *
 *   <div id="crm-widget" data-cart-items="id1,id2"></div>
 *   <script src="https://HOST/widget.js" data-key="pk_..." defer></script>
 *
 * Script attributes: data-key (a publishable key), data-target (CSS selector, default #crm-widget),
 * data-api (API origin, default the script's), data-limit (per list, default 4), data-currency (ISO code).
 * Target attributes: data-cart-items (comma-separated item ids), data-client-id and data-client-token
 * (a known client: the token comes from the shop's backend; see the README).
 * JS: CRMWidget.render({items, clientId, clientToken}), CRMWidget.onAddToCart(function (item) {...}).
 * Texts: texts.json (inlined by the service where TEXTS stands); override with CRMWidget.setTexts({...}).
 * After each answer the target's data-crm-ms says how long it took from the request to the drawn block.
 * Any failure (API down, refused, slow) leaves the target empty and hidden: the shop's page never breaks.
 */
(function () {
  "use strict";
  var TEXTS = {"__TEXTS__": true};
  var script = document.currentScript;
  if (!script || window.CRMWidget) { return; }
  var data = script.dataset;
  var api = (data.api || new URL(script.src, location.href).origin).replace(/\/$/, "");
  var base = script.src.replace(/[^/]*$/, "");
  var limit = parseInt(data.limit || "4", 10) || 4;
  var timeoutMs = parseInt(data.timeout || "3000", 10) || 3000;
  var addHandlers = [];
  var seq = 0;

  function fill(text, values) {
    return String(text).replace(/\{(\w+)\}/g, function (_, k) { return values[k] == null ? "" : values[k]; });
  }
  function money(value) {
    if (value == null) { return TEXTS.no_price; }
    try {
      if (data.currency) {
        return new Intl.NumberFormat(document.documentElement.lang || undefined,
          {style: "currency", currency: data.currency}).format(value);
      }
    } catch (e) { /* an unknown currency code: plain number below */ }
    return Number(value).toFixed(2);
  }
  function visitorId() {
    var id = null;
    try { id = localStorage.getItem("crm_visitor_id"); } catch (e) { /* storage blocked */ }
    if (!id) {
      var bytes = new Uint8Array(12);
      crypto.getRandomValues(bytes);
      id = "v-" + Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
      try { localStorage.setItem("crm_visitor_id", id); } catch (e) { /* kept for this page only */ }
    }
    return id;
  }
  function headers(extra) {
    var h = {"Content-Type": "application/json"};
    if (data.key) { h["X-API-Key"] = data.key; }
    for (var k in extra) { if (extra[k]) { h[k] = extra[k]; } }
    return h;
  }
  function post(path, body, extra) {
    var ctrl = typeof AbortController === "function" ? new AbortController() : null;
    var timer = ctrl ? setTimeout(function () { ctrl.abort(); }, timeoutMs) : null;
    return fetch(api + path, {method: "POST", mode: "cors", credentials: "omit", headers: headers(extra || {}),
      body: JSON.stringify(body), signal: ctrl ? ctrl.signal : undefined})
      .then(function (r) {
        if (timer) { clearTimeout(timer); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      });
  }
  function react(recId, itemId, reaction) {
    return post("/v1/reactions", {recommendation_id: recId, item_id: itemId, reaction: reaction, channel: "cart"})
      .catch(function () { /* telemetry: never breaks the page */ });
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text != null) { node.textContent = text; }
    return node;
  }
  function ensureCss() {
    if (document.querySelector("link[data-crm-widget]")) { return; }
    var link = el("link");
    link.rel = "stylesheet";
    link.href = base + "widget.css";
    link.setAttribute("data-crm-widget", "");
    document.head.appendChild(link);
  }
  function card(answer, entry, kind, status) {
    var li = el("li", "crm-item");
    li.setAttribute("data-item-id", entry.bundle_id || entry.item_id);
    li.setAttribute("data-kind", kind);
    if (entry.image_url) {
      var img = el("img");
      img.src = entry.image_url;
      img.alt = "";
      img.loading = "lazy";
      li.appendChild(img);
    }
    var name = entry.name || entry.item_id || entry.bundle_id;
    li.appendChild(el("span", "crm-name", name));
    if (kind === "bundles") {
      li.appendChild(el("span", "crm-price", money(entry.bundle_price != null ? entry.bundle_price : entry.price)));
      if (entry.bundle_price != null && entry.price != null && entry.price > entry.bundle_price) {
        li.appendChild(el("span", "crm-note", fill(TEXTS.bundle_price,
          {price: money(entry.bundle_price), full: money(entry.price)})));
      }
    } else {
      li.appendChild(el("span", "crm-price", money(entry.price)));
      if (kind === "upsell" && entry.price_difference != null) {
        li.appendChild(el("span", "crm-note", fill(TEXTS.price_difference, {amount: money(entry.price_difference)})));
      }
    }
    if (entry.reason) { li.appendChild(el("span", "crm-reason", entry.reason)); }
    var button = el("button", "crm-add", TEXTS.add);
    button.type = "button";
    button.setAttribute("aria-label", fill(TEXTS.add_label, {name: name}));
    button.addEventListener("click", function () {
      var id = entry.bundle_id || entry.item_id;
      react(answer.recommendation_id, id, "clicked");
      status.textContent = fill(TEXTS.added, {name: name});
      var item = {item_id: id, kind: kind, name: name, items: entry.items || [id],
                  price: kind === "bundles" && entry.bundle_price != null ? entry.bundle_price : entry.price,
                  recommendation_id: answer.recommendation_id};
      addHandlers.forEach(function (fn) { try { fn(item); } catch (e) { /* the shop's callback */ } });
      root.dispatchEvent(new CustomEvent("crm-widget:add-to-cart", {detail: item, bubbles: true}));
    });
    li.appendChild(button);
    return li;
  }
  function whenVisible(node, fn) {
    if (typeof IntersectionObserver !== "function") { fn(); return; }
    var seen = new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; })) { seen.disconnect(); fn(); }
    }, {threshold: 0.5});
    seen.observe(node);
  }
  function draw(target, answer) {
    var lists = [["complete", answer.complete || []], ["upsell", answer.upsell || []],
                 ["bundles", answer.bundles || []]];
    var total = lists.reduce(function (n, l) { return n + l[1].length; }, 0);
    target.textContent = "";
    if (!total) { target.hidden = true; return; }
    var section = el("section", "crm-widget");
    section.setAttribute("aria-labelledby", "crm-widget-title");
    section.setAttribute("data-recommendation-id", answer.recommendation_id);
    var title = el("h2", null, TEXTS.title);
    title.id = "crm-widget-title";
    section.appendChild(title);
    var status = el("p", "crm-status");
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    var shown = [];
    lists.forEach(function (pair) {
      if (!pair[1].length) { return; }
      section.appendChild(el("h3", null, TEXTS[pair[0]]));
      var ul = el("ul");
      pair[1].forEach(function (entry) {
        ul.appendChild(card(answer, entry, pair[0], status));
        shown.push(entry.bundle_id || entry.item_id);
      });
      section.appendChild(ul);
    });
    section.appendChild(status);
    target.appendChild(section);
    target.hidden = false;
    whenVisible(section, function () {
      shown.forEach(function (id) { react(answer.recommendation_id, id, "shown"); });
      section.setAttribute("data-shown", "true");
    });
  }
  var root = document.documentElement;
  function render(options) {
    var opts = options || {};
    var target = opts.target ? document.querySelector(opts.target)
      : document.querySelector(data.target || "#crm-widget");
    if (!target) { return Promise.resolve(null); }
    root = target;
    var items = opts.items || (target.dataset.cartItems || "").split(",").map(function (s) { return s.trim(); })
      .filter(Boolean);
    var clientId = opts.clientId || target.dataset.clientId || null;
    var token = opts.clientToken || target.dataset.clientToken || null;
    var body = {items: items, limit: limit, visitor_id: visitorId()};
    if (clientId && token) { body.client_id = clientId; }
    var mine = ++seq;
    var started = performance.now();
    ensureCss();
    target.setAttribute("data-crm-state", "loading");
    return post("/v1/cart/suggestions", body, {"X-Client-Token": clientId && token ? token : null})
      .then(function (answer) {
        if (mine !== seq) { return null; }
        draw(target, answer);
        target.setAttribute("data-crm-ms", String(Math.round(performance.now() - started)));
        target.setAttribute("data-crm-state", "ready");
        return answer;
      })
      .catch(function () {
        if (mine === seq) { target.textContent = ""; target.hidden = true; target.setAttribute("data-crm-state", "failed"); }
        return null;
      });
  }
  window.CRMWidget = {
    render: render,
    onAddToCart: function (fn) { if (typeof fn === "function") { addHandlers.push(fn); } },
    setTexts: function (texts) { for (var k in texts) { TEXTS[k] = String(texts[k]); } },
    texts: TEXTS
  };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { render(); });
  } else {
    render();
  }
})();
