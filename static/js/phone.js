// A phone ordering a cake: one idempotency key per order intent, real requests, real timeouts, retries
// with backoff, and a tunnel it drives into and out of. The cake page (simulator.js) has one phone; the
// compare page (compare.js) has two, each speaking for its own customer (the X-Bakery-Phone header).
//
// "Lose connectivity" sends X-Bakery-Tunnel on the attempts made inside the tunnel; the bakery's tunnel
// layer (bakery/storefront/tunnel.py) then really drops or delays the answer, and this script really
// aborts the fetch after the client timeout. Nothing here paints a fake error over a success.
//
// The tunnel has a length: "1" or "3" attempts, or "forever" (until the switch is turned off). Each
// press of "Place order" drives into it afresh; a retry after the last attempt in the tunnel goes out
// on the open road with the same key.

import { RETRY_AFTER_STATUSES, retryAfterSeconds, retryWaitSeconds } from "./retry.js";

export const MODE_NAMES = { "request-lost": "Request lost", "response-lost": "Response lost", slow: "Slow bakery" };

// crypto.randomUUID exists only in secure contexts (https, localhost). A workshop room reaches the
// facilitator's laptop over plain http on a LAN address, so build a v4 UUID from getRandomValues there.
export function uuid4() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// The retry policy's parameters the server declares (settings.CLIENT_RETRY_*), read from the element's
// data-*; retry.js says how they are used.
export function configFrom(element) {
  return {
    timeoutMs: Number(element.dataset.timeout) * 1000,
    retry: { base: Number(element.dataset.retryBase), cap: Number(element.dataset.retryCap) },
    maxAuto: Number(element.dataset.retryMax),
    ordersUrl: element.dataset.ordersUrl,
  };
}

const noop = () => {};

export class Phone {
  // config: {timeoutMs, retry: {base, cap}, maxAuto, ordersUrl}
  // options.csrfToken(): the token; options.headers: sent on every request (X-Bakery-Phone);
  // options.store: a sessionStorage key that keeps the intent across reloads (or null);
  // options.tunnel(): {on, mode, length} read at each attempt; options.autoRetry(): boolean;
  // options.view: callbacks, each optional: say(text, tone), attempts(list), key(key), countdown(text|null),
  //   retryVisible(bool), busy(bool), confirmed(body, replayed), refused(status, body), gaveUp(), changed().
  constructor(config, options) {
    this.cfg = config;
    this.csrfToken = options.csrfToken;
    this.headers = options.headers || {};
    this.store = options.store || null;
    this.tunnel = options.tunnel;
    this.autoRetry = options.autoRetry || (() => true);
    this.view = new Proxy(options.view || {}, { get: (target, name) => target[name] || noop });
    this.intent = null;
    this.inFlight = false;
    this.autoCount = 0;
    this.timer = null;
    this.ticker = null;
  }

  // --- the intent: one key for one order, the same on every retry ---------------------------
  // keepList: leave the last intent's attempts on screen (after a confirmed order).
  newIntent(payload, { keepList = false } = {}) {
    this.intent = { key: uuid4(), payload, sending: false, attempts: [], drive: 0 };
    this.autoCount = 0;
    this.save();
    this.view.key(this.intent.key);
    if (!keepList) this.view.attempts(this.intent.attempts);
  }

  // Picks up the intent this tab was working on (after a reload). Returns it, or null.
  resume() {
    if (!this.store) return null;
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(this.store)); } catch { saved = null; }
    if (!saved || !saved.key || !saved.payload) return null;
    this.intent = { drive: 0, ...saved };
    this.view.key(this.intent.key);
    this.view.attempts(this.intent.attempts);
    if (this.intent.sending) {
      const last = this.intent.attempts[this.intent.attempts.length - 1];
      if (last && last.outcome === "sending…") last.outcome = "interrupted by reload";
      this.save();
      this.view.attempts(this.intent.attempts);
      this.autoCount = Math.min(this.intent.attempts.length, this.cfg.maxAuto - 1);
      this.failed(`The page was reloaded before attempt ${this.intent.attempts.length} was answered. `
        + "Carrying on with the same key.");
    }
    return this.intent;
  }

  forget() { if (this.store) sessionStorage.removeItem(this.store); }

  save() { if (this.store) sessionStorage.setItem(this.store, JSON.stringify(this.intent)); }

  // A new drive into the tunnel: its length counts from the next attempt.
  enterTunnel() {
    if (!this.intent) return;
    this.intent.drive = 0;
    this.save();
  }

  // --- what the user does -------------------------------------------------------------------
  place() { // "Place order": a new drive, with the automatic retries counted afresh
    this.autoCount = 0;
    this.enterTunnel();
    return this.attempt();
  }

  retry() { this.autoCount = 0; return this.attempt(); }

  stop(text = "Automatic retries stopped. Press Retry to send it again with the same key.") {
    this.clearSchedule();
    this.view.say(text, "error");
  }

  get waiting() { return this.timer !== null; }

  // --- scheduling the next automatic attempt ------------------------------------------------
  clearSchedule() {
    clearTimeout(this.timer); clearInterval(this.ticker);
    this.timer = this.ticker = null;
    this.view.countdown(null);
  }

  schedule(ms) {
    this.clearSchedule();
    const due = Date.now() + ms;
    const show = () => {
      const left = Math.max(0, due - Date.now()) / 1000;
      this.view.countdown(`Next attempt in ${left.toFixed(1)} s (same key)`);
    };
    show();
    this.ticker = setInterval(show, 100);
    this.timer = setTimeout(() => { this.clearSchedule(); this.attempt(); }, ms);
  }

  // Whether the next attempt goes through the tunnel, and how the page should say so.
  nextInTunnel() {
    const t = this.tunnel();
    if (!t.on) return null;
    const length = t.length === "forever" ? Infinity : Number(t.length) || 1;
    return this.intent.drive < length ? { mode: t.mode, length, nth: this.intent.drive + 1 } : null;
  }

  // status and retryAfter: the answer's status and Retry-After header (null when there was no answer).
  failed(text, status = null, retryAfter = null) {
    this.view.retryVisible(true);
    const next = this.nextInTunnel();
    const road = next ? "" : " Out of the tunnel now: the retry goes on the open road.";
    if (this.autoRetry() && this.autoCount < this.cfg.maxAuto) {
      this.autoCount += 1;
      const ms = retryWaitSeconds(this.cfg.retry, this.autoCount, status, retryAfter) * 1000;
      this.view.say(`${text} Retrying automatically (${this.autoCount} of ${this.cfg.maxAuto}).${road}`, "error");
      this.schedule(ms);
    } else if (this.autoRetry()) {
      this.view.say(`${text} Gave up after ${this.cfg.maxAuto} automatic retries. Press Retry when you have signal.`,
        "error");
      this.view.gaveUp();
    } else {
      this.view.say(`${text} Press Retry to send it again with the same key.`, "error");
    }
  }

  finish() {
    this.inFlight = false;
    this.view.busy(false);
    this.save();
    this.view.attempts(this.intent.attempts);
  }

  // --- one attempt: a real request, really aborted after the client timeout -----------------
  async attempt() {
    if (this.inFlight) return;
    this.clearSchedule();
    this.inFlight = true;
    this.view.busy(true);
    this.view.retryVisible(false);
    const intent = this.intent;
    const inTunnel = this.nextInTunnel();
    const tunnel = inTunnel ? inTunnel.mode : null;
    if (inTunnel) intent.drive += 1;
    const entry = { n: intent.attempts.length + 1, at: Date.now(), tunnel, outcome: "sending…" };
    intent.attempts.push(entry);
    intent.sending = true;
    this.save();
    this.view.attempts(intent.attempts);
    this.view.say(`Attempt ${entry.n}: sending${this.whereWords(inTunnel)}…`, "busy");

    let answer;
    try {
      answer = await this.send(intent, tunnel);
    } catch (error) {
      entry.outcome = error.name === "AbortError" ? "no answer" : "network error";
      this.finish();
      this.failed(`Attempt ${entry.n}: no answer after ${this.cfg.timeoutMs / 1000} s. `
        + "Did the bakery get the order? The phone cannot tell.");
      return;
    }
    this.answered(intent, entry, answer.response, answer.body);
  }

  // Where an attempt goes, for the status line: through the tunnel, out of it, or neither.
  whereWords(inTunnel) {
    if (inTunnel) {
      const which = inTunnel.length === Infinity ? "until you switch it off"
        : `${inTunnel.nth} of ${inTunnel.length} in the tunnel`;
      return ` through the tunnel (${MODE_NAMES[inTunnel.mode]}, ${which})`;
    }
    return this.intent.attempts.some((a) => a.tunnel) ? " on the open road, out of the tunnel" : "";
  }

  // POSTs the intent; rejects with an AbortError when the client timeout fires first.
  async send(intent, tunnel) {
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/json",
      "Idempotency-Key": intent.key,
      "X-CSRFToken": this.csrfToken(),
      ...this.headers,
    };
    if (tunnel) headers["X-Bakery-Tunnel"] = tunnel;
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), this.cfg.timeoutMs);
    try {
      const response = await fetch(this.cfg.ordersUrl, {
        method: "POST", headers, body: JSON.stringify(intent.payload),
        credentials: "same-origin", signal: controller.signal,
      });
      const text = await response.text(); // still inside the timeout: a half-read answer is no answer
      let body;
      try { body = text ? JSON.parse(text) : {}; } catch { body = {}; }
      return { response, body };
    } finally {
      clearTimeout(timeout);
    }
  }

  // What the phone does with an answer: confirm, come back later with the same key, or stop.
  // intent: the one this attempt was for, even if a new one was made while it was on its way.
  answered(intent, entry, response, body) {
    const replayed = response.headers.get("Idempotent-Replayed") === "true";
    if (response.ok) {
      entry.outcome = `${response.status} ${replayed ? "replayed" : "created"}`;
      intent.sending = false;
      this.finish();
      this.view.say(`Order #${body.id} confirmed${replayed ? ": a replay of the first answer, nothing was baked twice" : ""}. `
        + "A new key is ready for your next order.", "ok");
      this.view.confirmed(body, replayed);
      this.view.changed();
      return;
    }
    entry.outcome = `${response.status}${body.title ? ` ${body.title}` : ""}`;
    this.finish();
    if (RETRY_AFTER_STATUSES.includes(response.status)) {
      this.comeBack(entry, response, body);
    } else if (response.status >= 500) {
      this.failed(`Attempt ${entry.n}: the bakery answered ${response.status}.`, response.status);
    } else {
      intent.sending = false;
      this.save();
      this.view.say(`Attempt ${entry.n} was refused (${response.status}): ${body.detail || "see the timeline"}`, "error");
      this.view.refused(response.status, body);
    }
    this.view.changed();
  }

  // A 409, 429 or 503: each says when to come back (a key still being worked on, too many orders or
  // tunnel holds, the bakery's database away: nothing was written, so the same key is taken once later).
  comeBack(entry, response, body) {
    const retryAfter = response.headers.get("Retry-After");
    const after = retryAfterSeconds(retryAfter);
    const why = response.status === 409 ? "the bakery is still working on this key (409)"
      : response.status === 503 ? "the kitchen's database is not answering (503)"
        : `${body.detail || "too many requests"} (429)`;
    const asked = after === null ? "" : ` It asked to come back in ${after} s.`;
    this.failed(`Attempt ${entry.n}: ${why}.${asked}`, response.status, retryAfter);
  }
}

// One line per attempt, for an <ol>: when, where (tunnel or open road) and what came back.
export function attemptItems(attempts) {
  return attempts.map((a) => {
    const li = document.createElement("li");
    const when = new Date(a.at).toLocaleTimeString();
    li.textContent = `Attempt ${a.n} · ${when} · ${a.tunnel ? `in the tunnel (${MODE_NAMES[a.tunnel]})` : "open road"} · ${a.outcome}`;
    li.dataset.outcome = a.outcome;
    li.dataset.tunnel = a.tunnel ? "in" : "out";
    return li;
  });
}
