// The tunnel simulator: one idempotency key per order intent, real requests, real timeouts, retries.
//
// The key lives in sessionStorage (per cake), so a retry after a reload still sends the same key.
// A new key is made only after a confirmed order or when the order itself changes (a new intent).
// "Lose connectivity" sends X-Bakery-Tunnel on the attempts made while it is on; the bakery's
// tunnel layer (bakery/storefront/tunnel.py) then really drops or delays the answer, and this script really
// aborts the fetch after the client timeout. Nothing here paints a fake error over a success.
(() => {
  "use strict";
  const root = document.getElementById("simulator");
  if (!root) return;

  const $ = (id) => document.getElementById(id);
  const cfg = {
    cake: root.dataset.cake,
    timeoutMs: Number(root.dataset.timeout) * 1000,
    baseMs: Number(root.dataset.retryBase) * 1000,
    capMs: Number(root.dataset.retryCap) * 1000,
    maxAuto: Number(root.dataset.retryMax),
    ordersUrl: root.dataset.ordersUrl,
    meUrl: root.dataset.meUrl,
  };
  const ui = {
    form: $("order-form"), quantity: $("quantity"), note: $("note"), keyShort: $("key-short"),
    keyInput: $("idempotency-key"), place: $("place-order"), lose: $("lose-connectivity"),
    auto: $("auto-retry"), idempotency: $("idempotency"), status: $("status"), countdown: $("countdown"),
    retry: $("retry"), stop: $("stop-retrying"), attempts: $("attempts"), box: $("status-box"),
  };
  const MODE_NAMES = { "request-lost": "Request lost", "response-lost": "Response lost", slow: "Slow bakery" };
  const STORE = `bakery:intent:${cfg.cake}`;

  // crypto.randomUUID exists only in secure contexts (https, localhost). A workshop room reaches the
  // facilitator's laptop over plain http on a LAN address, so build a v4 UUID from getRandomValues there.
  function uuid4() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  const currentPayload = () => ({
    items: [{ cake: cfg.cake, quantity: Number(ui.quantity.value) }],
    note: ui.note.value,
  });
  const samePayload = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const csrfToken = () => ui.form.querySelector("[name=csrfmiddlewaretoken]").value;
  const mode = () => (document.querySelector("input[name=tunnel-mode]:checked") || {}).value || "response-lost";

  let intent = null;
  let inFlight = false;
  let autoCount = 0;
  let timer = null;
  let ticker = null;

  function load() {
    try { return JSON.parse(sessionStorage.getItem(STORE)); } catch { return null; }
  }
  function save() { sessionStorage.setItem(STORE, JSON.stringify(intent)); }

  function newIntent({ keepList = false } = {}) {
    intent = { key: uuid4(), payload: currentPayload(), sending: false, attempts: [] };
    autoCount = 0;
    save();
    showKey();
    if (!keepList) renderAttempts();
  }

  function showKey() {
    ui.keyShort.textContent = `${intent.key.slice(0, 8)}…`;
    ui.keyShort.title = intent.key;
    ui.keyShort.dataset.key = intent.key;
    ui.keyInput.value = intent.key;
  }

  function say(text, tone = "") {
    ui.status.textContent = text;
    ui.box.dataset.tone = tone;
  }

  function renderAttempts() {
    ui.attempts.replaceChildren(...intent.attempts.map((a) => {
      const li = document.createElement("li");
      const when = new Date(a.at).toLocaleTimeString();
      li.textContent = `Attempt ${a.n} · ${when} · ${a.tunnel ? `in the tunnel (${MODE_NAMES[a.tunnel]})` : "open road"} · ${a.outcome}`;
      li.dataset.outcome = a.outcome;
      return li;
    }));
  }

  function refreshPanels() {
    if (window.htmx) window.htmx.trigger(document.body, "bakery:changed");
  }

  // --- scheduling the next automatic attempt --------------------------------------------------
  function backoffMs(k) {
    const ceiling = Math.min(cfg.capMs, cfg.baseMs * 2 ** k);
    return ceiling / 2 + Math.random() * (ceiling / 2); // "equal jitter": never zero, never in lockstep
  }

  function clearSchedule() {
    clearTimeout(timer); clearInterval(ticker);
    timer = ticker = null;
    ui.countdown.hidden = true;
    ui.stop.hidden = true;
  }

  function schedule(ms) {
    clearSchedule();
    const due = Date.now() + ms;
    const show = () => {
      const left = Math.max(0, due - Date.now()) / 1000;
      ui.countdown.textContent = `Next attempt in ${left.toFixed(1)} s (same key)`;
    };
    show();
    ui.countdown.hidden = false;
    ui.stop.hidden = false;
    ticker = setInterval(show, 100);
    timer = setTimeout(() => { clearSchedule(); attempt(); }, ms);
  }

  function failed(text, waitMs) {
    ui.retry.hidden = false;
    if (ui.auto.checked && autoCount < cfg.maxAuto) {
      const ms = waitMs ?? backoffMs(autoCount);
      autoCount += 1;
      say(`${text} Retrying automatically (${autoCount} of ${cfg.maxAuto}).`, "error");
      schedule(ms);
    } else if (ui.auto.checked) {
      say(`${text} Gave up after ${cfg.maxAuto} automatic retries. Press Retry when you have signal.`, "error");
    } else {
      say(`${text} Press Retry to send it again with the same key.`, "error");
    }
  }

  // --- one attempt: a real request, really aborted after the client timeout ------------------
  async function attempt() {
    if (inFlight) return;
    clearSchedule();
    inFlight = true;
    ui.place.disabled = true;
    const resetNote = document.getElementById("reset-result");
    if (resetNote) resetNote.textContent = "";
    ui.retry.hidden = true;
    const tunnel = ui.lose.checked ? mode() : null;
    const entry = { n: intent.attempts.length + 1, at: Date.now(), tunnel, outcome: "sending…" };
    intent.attempts.push(entry);
    intent.sending = true;
    save();
    renderAttempts();
    say(`Attempt ${entry.n}: sending${tunnel ? ` through the tunnel (${MODE_NAMES[tunnel]})` : ""}…`, "busy");

    const headers = {
      "Content-Type": "application/json",
      Accept: "application/json",
      "Idempotency-Key": intent.key,
      "X-CSRFToken": csrfToken(),
    };
    if (tunnel) headers["X-Bakery-Tunnel"] = tunnel;
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), cfg.timeoutMs);
    let response, body;
    try {
      response = await fetch(cfg.ordersUrl, {
        method: "POST", headers, body: JSON.stringify(intent.payload),
        credentials: "same-origin", signal: controller.signal,
      });
      const text = await response.text(); // still inside the timeout: a half-read answer is no answer
      try { body = text ? JSON.parse(text) : {}; } catch { body = {}; }
    } catch (error) {
      entry.outcome = error.name === "AbortError" ? "no answer" : "network error";
      finish();
      failed(`Attempt ${entry.n}: no answer after ${cfg.timeoutMs / 1000} s. Did the bakery get the order? The phone cannot tell.`);
      return;
    } finally {
      clearTimeout(timeout);
    }

    const replayed = response.headers.get("Idempotent-Replayed") === "true";
    if (response.ok) {
      entry.outcome = `${response.status} ${replayed ? "replayed" : "created"}`;
      finish();
      say(`Order #${body.id} confirmed${replayed ? ": a replay of the first answer, nothing was baked twice" : ""}. `
        + "A new key is ready for your next order.", "ok");
      newIntent({ keepList: true });
      refreshPanels();
      return;
    }
    entry.outcome = `${response.status}${body.title ? ` ${body.title}` : ""}`;
    finish();
    if (response.status === 409 || response.status === 429) {
      // Both say when to come back: a key still being worked on, or too many orders / tunnel holds.
      const after = Number(response.headers.get("Retry-After")) || 1;
      const why = response.status === 409 ? "the bakery is still working on this key (409)"
        : `${body.detail || "too many requests"} (429)`;
      failed(`Attempt ${entry.n}: ${why}. It asked to come back in ${after} s.`, after * 1000);
    } else if (response.status >= 500) {
      failed(`Attempt ${entry.n}: the bakery answered ${response.status}.`);
    } else {
      intent.sending = false;
      save();
      say(`Attempt ${entry.n} was refused (${response.status}): ${body.detail || "see the timeline"}`, "error");
      if (response.status === 422) newIntent({ keepList: true });
    }
    refreshPanels();
  }

  function finish() {
    inFlight = false;
    ui.place.disabled = false;
    save();
    renderAttempts();
  }

  // --- wiring ---------------------------------------------------------------------------------
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!ui.form.reportValidity()) return;
    if (!samePayload(intent.payload, currentPayload())) onOrderChanged();
    autoCount = 0;
    attempt();
  });

  function onOrderChanged() {
    if (samePayload(intent.payload, currentPayload())) return;
    if (intent.attempts.length === 0) {
      intent.payload = currentPayload(); // the key was never sent, so it still names this intent
      save();
      return;
    }
    clearSchedule();
    newIntent();
    ui.retry.hidden = true;
    say("You changed the order: that is a new intent, so it gets a new key.");
  }
  ui.quantity.addEventListener("change", onOrderChanged);
  ui.note.addEventListener("change", onOrderChanged);

  ui.retry.addEventListener("click", () => { autoCount = 0; attempt(); });
  ui.stop.addEventListener("click", () => {
    clearSchedule();
    say("Automatic retries stopped. Press Retry to send it again with the same key.", "error");
  });
  ui.auto.addEventListener("change", () => { if (!ui.auto.checked && timer) ui.stop.click(); });

  ui.idempotency.addEventListener("change", async () => {
    const wanted = ui.idempotency.checked;
    try {
      const response = await fetch(cfg.meUrl, {
        method: "PATCH", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ idempotency: wanted }),
      });
      if (!response.ok) throw new Error(String(response.status));
      const me = await response.json();
      ui.idempotency.checked = me.idempotency;
      say(me.idempotency
        ? "Idempotency is on: a retry with the same key gets the first answer back."
        : "Idempotency is off: the bakery ignores the key, so every retry bakes again.");
    } catch (error) {
      ui.idempotency.checked = !wanted;
      say(`Could not change the idempotency switch (${error.message}).`, "error");
    }
  });

  document.body.addEventListener("bakery:reset", () => {
    clearSchedule();
    newIntent();
    ui.retry.hidden = true;
    say("Your bakery is empty again. A new key is ready.");
  });
  document.querySelector(".reset-form").addEventListener("submit", () => {
    // Without htmx the form posts and the page reloads: forget the intent first.
    if (!window.htmx) sessionStorage.removeItem(STORE);
  });

  // --- start: pick up the intent this tab was working on, if any ------------------------------
  intent = load();
  if (intent && intent.key && intent.payload) {
    const line = intent.payload.items[0];
    ui.quantity.value = line.quantity;
    ui.note.value = intent.payload.note;
    showKey();
    renderAttempts();
    if (intent.sending) {
      const last = intent.attempts[intent.attempts.length - 1];
      if (last && last.outcome === "sending…") { last.outcome = "interrupted by reload"; save(); renderAttempts(); }
      autoCount = Math.min(intent.attempts.length, cfg.maxAuto - 1);
      failed(`The page was reloaded before attempt ${intent.attempts.length} was answered. Carrying on with the same key.`);
    }
  } else {
    newIntent();
  }
})();
