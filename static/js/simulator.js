// The tunnel simulator on a cake page: one phone (phone.js) wired to the page's controls.
//
// The key lives in sessionStorage (per cake), so a retry after a reload still sends the same key.
// A new key is made only after a confirmed order or when the order itself changes (a new intent).
import { Phone, attemptItems, configFrom } from "./phone.js";

const root = document.getElementById("simulator");
if (root) start(root);

function start(root) {
  const page = pageOf(root);
  const phone = phoneFor(page);
  wireOrder(page, phone);
  wireSwitches(page, phone);
  wireReset(page, phone);
  // Pick up the intent this tab was working on, if any.
  const resumed = phone.resume();
  if (resumed) {
    page.ui.quantity.value = resumed.payload.items[0].quantity;
    page.ui.note.value = resumed.payload.note;
  } else {
    phone.newIntent(page.currentPayload());
  }
}

// The page's controls and what the other parts read from them.
function pageOf(root) {
  const $ = (id) => document.getElementById(id);
  const cake = root.dataset.cake;
  const ui = {
    form: $("order-form"), quantity: $("quantity"), note: $("note"), keyShort: $("key-short"),
    keyInput: $("idempotency-key"), place: $("place-order"), lose: $("lose-connectivity"),
    auto: $("auto-retry"), idempotency: $("idempotency"), status: $("status"), countdown: $("countdown"),
    retry: $("retry"), stop: $("stop-retrying"), attempts: $("attempts"), box: $("status-box"),
  };
  return {
    root,
    cake,
    ui,
    csrfToken: () => ui.form.querySelector("[name=csrfmiddlewaretoken]").value,
    checked: (name, fallback) => (document.querySelector(`input[name=${name}]:checked`) || {}).value || fallback,
    currentPayload: () => ({ items: [{ cake, quantity: Number(ui.quantity.value) }], note: ui.note.value }),
    say: (text, tone = "") => {
      ui.status.textContent = text;
      ui.box.dataset.tone = tone;
    },
  };
}

function refreshPanels() {
  if (window.htmx) window.htmx.trigger(document.body, "bakery:changed");
}

function phoneFor({ root, cake, ui, csrfToken, checked, currentPayload, say }) {
  const phone = new Phone(configFrom(root), {
    csrfToken,
    store: `bakery:intent:${cake}`,
    tunnel: () => ({
      on: ui.lose.checked, mode: checked("tunnel-mode", "response-lost"), length: checked("tunnel-length", "1"),
    }),
    autoRetry: () => ui.auto.checked,
    view: {
      say,
      attempts: (list) => ui.attempts.replaceChildren(...attemptItems(list)),
      key: (key) => {
        ui.keyShort.textContent = `${key.slice(0, 8)}…`;
        ui.keyShort.title = key;
        ui.keyShort.dataset.key = key;
        ui.keyInput.value = key;
      },
      countdown: (text) => {
        ui.countdown.hidden = text === null;
        ui.stop.hidden = text === null;
        if (text !== null) ui.countdown.textContent = text;
      },
      retryVisible: (visible) => { ui.retry.hidden = !visible; },
      busy: (busy) => {
        ui.place.disabled = busy;
        const resetNote = document.getElementById("reset-result");
        if (busy && resetNote) resetNote.textContent = "";
      },
      confirmed: () => phone.newIntent(currentPayload(), { keepList: true }),
      refused: (status) => { if (status === 422) phone.newIntent(currentPayload(), { keepList: true }); },
      changed: refreshPanels,
    },
  });
  return phone;
}

// Placing the order, and changing it: a changed order is a new intent with a new key.
function wireOrder({ ui, currentPayload, say }, phone) {
  const samePayload = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  function onOrderChanged() {
    const intent = phone.intent;
    if (samePayload(intent.payload, currentPayload())) return;
    if (intent.attempts.length === 0) {
      intent.payload = currentPayload(); // the key was never sent, so it still names this intent
      phone.save();
      return;
    }
    phone.clearSchedule();
    phone.newIntent(currentPayload());
    ui.retry.hidden = true;
    say("You changed the order: that is a new intent, so it gets a new key.");
  }
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!ui.form.reportValidity()) return;
    if (!samePayload(phone.intent.payload, currentPayload())) onOrderChanged();
    phone.place();
  });
  ui.quantity.addEventListener("change", onOrderChanged);
  ui.note.addEventListener("change", onOrderChanged);
  ui.retry.addEventListener("click", () => phone.retry());
  ui.stop.addEventListener("click", () => phone.stop());
}

// Automatic retries, the tunnel and the idempotency switch.
function wireSwitches({ root, ui, csrfToken, say }, phone) {
  ui.auto.addEventListener("change", () => { if (!ui.auto.checked && phone.waiting) phone.stop(); });
  // Switching the tunnel on, or choosing another length, starts a new stretch of tunnel.
  ui.lose.addEventListener("change", () => { if (ui.lose.checked) phone.enterTunnel(); });
  document.querySelectorAll("input[name=tunnel-length]").forEach((input) => {
    input.addEventListener("change", () => phone.enterTunnel());
  });

  ui.idempotency.addEventListener("change", async () => {
    const wanted = ui.idempotency.checked;
    try {
      const response = await fetch(root.dataset.meUrl, {
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
}

function wireReset({ ui, currentPayload, say }, phone) {
  document.body.addEventListener("bakery:reset", () => {
    phone.clearSchedule();
    phone.newIntent(currentPayload());
    ui.retry.hidden = true;
    say("Your bakery is empty again. A new key is ready.");
  });
  document.querySelector(".reset-form").addEventListener("submit", () => {
    // Without htmx the form posts and the page reloads: forget the intent first.
    if (!window.htmx) phone.forget();
  });
}
