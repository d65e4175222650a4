// govex console: live updates from server-sent events, and the kill
// switch's confirmation. No framework, no build step.
"use strict";

// The page re-reads itself when anything changes: the banner always, the
// main part unless the person is typing in a form there.
// The page's own address: a refused form is shown at the address it was
// posted to, which only answers POST.
const page = document.body.dataset.page || window.location.pathname;
if (page !== window.location.pathname) history.replaceState(null, "", page);

async function refresh() {
  const response = await fetch(page + window.location.search, { headers: { "X-Live": "1" } });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const id of ["banner", "main"]) {
    const now = document.getElementById(id);
    const next = fresh.getElementById(id);
    if (!now || !next) continue;
    if (id === "main" && (typing(now) || edited(now))) continue;
    // A disclosure the person opened stays open.
    const opened = [...now.querySelectorAll("details[open][id]")].map((d) => d.id);
    now.innerHTML = next.innerHTML;
    for (const detailsId of opened) document.getElementById(detailsId)?.setAttribute("open", "");
  }
  document.body.dataset.refreshed = String(Date.now());
}

function typing(part) {
  return part.contains(document.activeElement) &&
    document.activeElement.matches("input, select, textarea");
}

// A form the person has started to fill in is not replaced under them.
function edited(part) {
  return [...part.querySelectorAll("input:not([type=hidden]), textarea, select")].some((el) =>
    el.type === "checkbox" || el.type === "radio" ? el.checked !== el.defaultChecked
      : el.tagName === "SELECT" ? el.selectedIndex !== defaultIndex(el)
        : el.value !== el.defaultValue);
}

// A select without a selected option shows its first one.
function defaultIndex(select) {
  return Math.max(0, [...select.options].findIndex((o) => o.defaultSelected));
}

let pending = null;
function soon() {
  // Several events of one change (a plan step, its policy re-derivation)
  // make one refresh.
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 100);
}

if (document.querySelector("header nav")) {
  const events = new EventSource("/events");
  events.addEventListener("change", soon);
  events.addEventListener("open", () => { document.body.dataset.live = "1"; });
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
