// Search autocomplete: an ARIA 1.2 combobox over GET /api/v1/search/suggest.
//
// Progressive enhancement: the search box is a plain GET form that works
// without this file. With it, typing shows up to 8 suggestions (debounced,
// stale requests aborted); arrow keys move, Enter opens the highlighted one,
// Escape closes. Text is inserted with textContent only, never as HTML.

const DEBOUNCE_MS = 150;
const LABELS = { artist: "Artist", release: "Release", track: "Track", event: "Event" };
let counter = 0;

function safeHref(raw) {
  try {
    const url = new URL(raw, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

class Combobox {
  constructor(input) {
    this.input = input;
    this.endpoint = input.dataset.suggestUrl;
    this.items = [];
    this.active = -1;
    this.timer = 0;
    this.controller = null;
    this.lastQuery = "";
    const id = `suggest-${++counter}`;

    this.list = document.createElement("ul");
    this.list.id = id;
    this.list.className = "suggest";
    this.list.setAttribute("role", "listbox");
    this.list.setAttribute("aria-label", "Suggestions");
    this.list.hidden = true;

    this.status = document.createElement("div");
    this.status.className = "visually-hidden";
    this.status.setAttribute("role", "status");
    this.status.setAttribute("aria-live", "polite");

    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", id);
    input.after(this.list, this.status);

    input.addEventListener("input", () => this.schedule());
    input.addEventListener("keydown", (e) => this.onKey(e));
    input.addEventListener("blur", () => window.setTimeout(() => this.close(), 120));
    input.addEventListener("focus", () => { if (this.items.length && input.value.trim()) this.open(); });
    // mousedown, not click: it fires before the input's blur closes the list.
    this.list.addEventListener("mousedown", (e) => {
      const option = e.target.closest("[role=option]");
      if (!option) return;
      e.preventDefault();
      this.go(Number(option.dataset.index));
    });
  }

  schedule() {
    window.clearTimeout(this.timer);
    const q = this.input.value.trim();
    if (!q) { this.items = []; this.close(); return; }
    this.timer = window.setTimeout(() => this.fetch(q), DEBOUNCE_MS);
  }

  async fetch(q) {
    if (q === this.lastQuery && this.items.length) { this.open(); return; }
    if (this.controller) this.controller.abort();
    this.controller = new AbortController();
    const url = new URL(this.endpoint, window.location.href);
    url.searchParams.set("q", q.slice(0, 100));
    url.searchParams.set("limit", "8");
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, signal: this.controller.signal, credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      if (q !== this.input.value.trim()) return; // the visitor kept typing
      this.lastQuery = q;
      this.render(Array.isArray(data) ? data : (data.items || []));
    } catch (err) {
      if (err.name !== "AbortError") this.close();
    }
  }

  render(items) {
    this.items = items.filter((item) => item && item.title && safeHref(item.url));
    this.active = -1;
    this.list.replaceChildren(...this.items.map((item, i) => {
      const li = document.createElement("li");
      li.id = `${this.list.id}-${i}`;
      li.className = "suggest-option";
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.dataset.index = String(i);
      const title = document.createElement("span");
      title.className = "suggest-title";
      title.textContent = item.title;
      const kind = document.createElement("span");
      kind.className = "suggest-type";
      kind.textContent = LABELS[item.type] || item.type || "";
      li.append(title, kind);
      return li;
    }));
    const n = this.items.length;
    this.status.textContent = n ? `${n} suggestion${n === 1 ? "" : "s"}, use the arrow keys to choose` : "No suggestions";
    if (n) this.open(); else this.close();
  }

  open() {
    if (!this.items.length) return;
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
  }

  close() {
    this.list.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
    this.highlight(-1);
  }

  get isOpen() { return !this.list.hidden; }

  highlight(index) {
    this.active = index;
    [...this.list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    if (index >= 0) {
      const li = this.list.children[index];
      this.input.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    } else {
      this.input.removeAttribute("aria-activedescendant");
    }
  }

  go(index) {
    const item = this.items[index];
    const href = item && safeHref(item.url);
    if (href) window.location.assign(href);
  }

  onKey(e) {
    const n = this.items.length;
    switch (e.key) {
      case "ArrowDown":
        if (!n) return;
        e.preventDefault();
        if (!this.isOpen) this.open();
        this.highlight((this.active + 1) % n);
        break;
      case "ArrowUp":
        if (!n) return;
        e.preventDefault();
        if (!this.isOpen) this.open();
        this.highlight(this.active <= 0 ? n - 1 : this.active - 1);
        break;
      case "Enter":
        if (this.isOpen && this.active >= 0) {
          e.preventDefault();
          this.go(this.active);
        }
        break;
      case "Escape":
        if (this.isOpen) { e.preventDefault(); this.close(); }
        break;
      case "Tab":
        this.close();
        break;
      default:
    }
  }
}

for (const input of document.querySelectorAll("input[data-autocomplete][data-suggest-url]")) {
  new Combobox(input);
}
