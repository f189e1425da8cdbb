// The persistent player bar (web/player.py explains the server side).
//
// - Play buttons carry data-play-* attributes; clicking one queues every
//   playable track of its list ([data-play-queue], else the page) from there.
// - While something is queued, same-origin links and GET forms swap <main>
//   via fetch + history.pushState, so the <audio> element, and the music,
//   survive navigation. Without a queue the site navigates normally.
// - Seek on the waveform canvas (peaks from /tracks/UUID/waveform.json),
//   keyboard shortcuts (space, arrows, n, p), Media Session metadata and
//   actions, volume (remembered), the queue survives a reload (paused).
// - A listen that lasted at least data-min-play-ms is reported once to
//   POST /api/v1/plays when it ends or is abandoned (signed-in fans only).
// Text from tracks goes in with textContent only, never as HTML.

const STORE_KEY = "nycmg.player";
const SEEK_STEP = 5;

function Player(root) {
  this.root = root;
  this.audio = root.querySelector("[data-player-audio]");
  this.canvas = root.querySelector("[data-player-wave]");
  this.minPlayMs = Number(root.dataset.minPlayMs || 30000);
  this.queue = [];
  this.index = -1;
  this.peaks = new Map();
  this.listen = null;
  this.drawPending = false;
}

Player.prototype.start = function () {
  const a = this.audio;
  const $ = (sel) => this.root.querySelector(sel);
  this.el = {
    toggle: $("[data-player-toggle]"),
    prev: $("[data-player-prev]"),
    next: $("[data-player-next]"),
    title: $("[data-player-title]"),
    artist: $("[data-player-artist]"),
    time: $("[data-player-time]"),
    duration: $("[data-player-duration]"),
    volume: $("[data-player-volume]"),
    count: $("[data-player-count]"),
    list: $("[data-player-list]"),
    status: $("[data-player-status]"),
  };
  document.documentElement.classList.add("js-player");

  this.el.toggle.addEventListener("click", () => this.toggle());
  this.el.prev.addEventListener("click", () => this.previous());
  this.el.next.addEventListener("click", () => this.next());
  const vol = Number(localStorage.getItem(STORE_KEY + ".volume"));
  if (vol >= 0 && vol <= 1 && localStorage.getItem(STORE_KEY + ".volume") !== null) {
    a.volume = vol;
    this.el.volume.value = String(vol);
  }
  this.el.volume.addEventListener("input", () => {
    a.volume = Number(this.el.volume.value);
    localStorage.setItem(STORE_KEY + ".volume", String(a.volume));
  });

  a.addEventListener("play", () => this.render());
  a.addEventListener("pause", () => this.render());
  a.addEventListener("playing", () => this.render());
  a.addEventListener("loadedmetadata", () => this.render());
  a.addEventListener("timeupdate", () => this.tick());
  a.addEventListener("seeking", () => this.countUpTo());
  a.addEventListener("seeked", () => this.resetClock());
  a.addEventListener("ended", () => {
    this.finishListen();
    if (this.index < this.queue.length - 1) this.load(this.index + 1, true);
    else this.render();
  });
  a.addEventListener("error", () => {
    if (!a.currentSrc && !a.getAttribute("src")) return;
    this.say("This track cannot be played right now.");
    this.root.dataset.state = "error";
  });

  this.bindSeek();
  this.bindKeys();
  this.bindMediaSession();
  this.bindNavigation();
  document.addEventListener("click", (e) => this.onPlayClick(e));
  window.addEventListener("pagehide", () => {
    this.finishListen();
    this.save();
  });
  window.addEventListener("resize", () => this.draw());
  this.restore();
  this.syncButtons();
};

// ---- the queue ---------------------------------------------------------------

function trackFrom(el) {
  const d = el.dataset;
  return {
    uuid: d.playUuid,
    uri: d.playUri || "",
    title: d.playTitle || "Untitled",
    artist: d.playArtist || "",
    release: d.playRelease || "",
    href: d.playHref || "/tracks/" + d.playUuid,
    src: d.playSrc,
    waveform: d.playWaveform || "",
    duration: Number(d.playDuration || 0),
  };
}

Player.prototype.onPlayClick = function (e) {
  const button = e.target.closest("[data-play-uuid]");
  if (!button || e.defaultPrevented) return;
  e.preventDefault();
  const current = this.current();
  if (current && current.uuid === button.dataset.playUuid) {
    this.toggle();
    return;
  }
  const scope = button.closest("[data-play-queue]") || document;
  const seen = new Set();
  const tracks = [];
  for (const el of scope.querySelectorAll("[data-play-uuid]")) {
    if (seen.has(el.dataset.playUuid) || !el.dataset.playSrc) continue;
    seen.add(el.dataset.playUuid);
    tracks.push(trackFrom(el));
  }
  const start = Math.max(0, tracks.findIndex((t) => t.uuid === button.dataset.playUuid));
  this.finishListen();
  this.queue = tracks;
  this.load(start, true);
};

Player.prototype.current = function () {
  return this.index >= 0 ? this.queue[this.index] : null;
};

Player.prototype.load = function (index, autoplay, at) {
  if (index < 0 || index >= this.queue.length) return;
  this.finishListen();
  this.index = index;
  const t = this.queue[index];
  this.root.hidden = false;
  document.documentElement.classList.add("player-active");
  this.audio.src = t.src;
  if (at) this.audio.currentTime = at;
  this.listen = {
    track: t,
    id: newId(),
    startedAt: new Date().toISOString(),
    ms: 0,
    clock: at || 0,
    reported: false,
  };
  this.el.title.textContent = t.title;
  this.el.title.href = t.href;
  this.el.artist.textContent = t.artist;
  this.root.dataset.track = t.uuid;
  this.renderQueue();
  this.loadPeaks(t);
  this.setMediaMetadata(t);
  if (autoplay) {
    this.audio.play().catch(() => this.render());
  }
  this.render();
  this.save();
};

Player.prototype.toggle = function () {
  if (!this.current()) return;
  if (this.audio.paused) this.audio.play().catch(() => this.render());
  else this.audio.pause();
};

Player.prototype.next = function () {
  if (this.index < this.queue.length - 1) this.load(this.index + 1, true);
};

Player.prototype.previous = function () {
  if (this.audio.currentTime > 3 || this.index <= 0) {
    this.seek(0);
  } else {
    this.load(this.index - 1, true);
  }
};

Player.prototype.seek = function (seconds) {
  const d = this.duration();
  if (!this.current() || !(d > 0)) return;
  this.audio.currentTime = Math.max(0, Math.min(d - 0.05, seconds));
  this.renderTime();
  this.draw();
};

Player.prototype.duration = function () {
  const d = this.audio.duration;
  if (Number.isFinite(d) && d > 0) return d;
  const t = this.current();
  return t && t.duration ? t.duration / 1000 : 0;
};

// ---- listens -----------------------------------------------------------------

Player.prototype.tick = function () {
  this.countUpTo();
  this.renderTime();
  this.draw();
};

// Count only time actually played: a jump (a seek) is not listening.
Player.prototype.countUpTo = function () {
  const l = this.listen;
  if (!l) return;
  const now = this.audio.currentTime;
  const delta = now - l.clock;
  if (delta > 0 && delta < 2 && !this.audio.paused) l.ms += delta * 1000;
  l.clock = now;
};

Player.prototype.resetClock = function () {
  if (this.listen) this.listen.clock = this.audio.currentTime;
  this.renderTime();
  this.draw();
};

Player.prototype.finishListen = function () {
  const l = this.listen;
  if (!l || l.reported) return;
  this.countUpTo();
  if (l.ms < this.minPlayMs) return;
  const token = document.querySelector('meta[name="csrf-token"]');
  if (!token) return; // anonymous listeners have no home node to count for them
  l.reported = true;
  const send = (uri) =>
    fetch("/api/v1/plays", {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token.content },
      body: JSON.stringify({
        track: uri,
        started_at: l.startedAt,
        ms_listened: Math.round(l.ms),
        source: "stream",
        id: l.id,
      }),
    }).catch(() => {});
  if (l.track.uri) {
    send(l.track.uri);
  } else {
    fetch("/api/v1/tracks/" + encodeURIComponent(l.track.uuid), { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        const uri = body && (body.uri || (body.track && body.track.uri));
        if (uri) send(uri);
      })
      .catch(() => {});
  }
};

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ---- drawing -----------------------------------------------------------------

function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
  const s = Math.floor(seconds);
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m % 60).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

Player.prototype.render = function () {
  const playing = !!this.current() && !this.audio.paused;
  this.root.dataset.state = playing ? "playing" : this.current() ? "paused" : "idle";
  this.el.toggle.setAttribute("aria-label", playing ? "Pause" : "Play");
  this.el.prev.disabled = !this.current();
  this.el.next.disabled = this.index >= this.queue.length - 1;
  if ("mediaSession" in navigator) {
    navigator.mediaSession.playbackState = playing ? "playing" : "paused";
  }
  this.renderTime();
  this.syncButtons();
  this.draw();
};

Player.prototype.renderTime = function () {
  const t = this.audio.currentTime || 0;
  const d = this.duration();
  this.el.time.textContent = clock(t);
  this.el.duration.textContent = clock(d);
  this.canvas.setAttribute("aria-valuemax", String(Math.round(d)));
  this.canvas.setAttribute("aria-valuenow", String(Math.round(t)));
  this.canvas.setAttribute("aria-valuetext", `${clock(t)} of ${clock(d)}`);
  if ("mediaSession" in navigator && navigator.mediaSession.setPositionState && d > 0) {
    try {
      navigator.mediaSession.setPositionState({
        duration: d,
        position: Math.min(t, d),
        playbackRate: this.audio.playbackRate || 1,
      });
    } catch {
      /* some browsers refuse while loading */
    }
  }
};

Player.prototype.renderQueue = function () {
  const list = this.el.list;
  list.replaceChildren();
  this.queue.forEach((t, i) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "player-queue-item";
    b.textContent = t.artist ? `${t.title} · ${t.artist}` : t.title;
    if (i === this.index) {
      li.className = "is-current";
      b.setAttribute("aria-current", "true");
    }
    b.addEventListener("click", () => this.load(i, true));
    li.append(b);
    list.append(li);
  });
  this.el.count.textContent = String(this.queue.length);
};

Player.prototype.syncButtons = function () {
  const t = this.current();
  const playing = !!t && !this.audio.paused;
  for (const b of document.querySelectorAll("[data-play-uuid]")) {
    const mine = !!t && b.dataset.playUuid === t.uuid;
    b.classList.toggle("is-current", mine);
    b.setAttribute("aria-pressed", mine && playing ? "true" : "false");
  }
};

Player.prototype.loadPeaks = function (t) {
  if (!t.waveform || this.peaks.has(t.uuid)) {
    this.draw();
    return;
  }
  this.peaks.set(t.uuid, null);
  fetch(t.waveform, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : null))
    .then((body) => {
      if (body && Array.isArray(body.peaks)) {
        this.peaks.set(t.uuid, body.peaks.map(Number).filter(Number.isFinite));
        this.draw();
      }
    })
    .catch(() => {});
};

Player.prototype.draw = function () {
  if (this.drawPending) return;
  this.drawPending = true;
  requestAnimationFrame(() => {
    this.drawPending = false;
    this.drawNow();
  });
};

Player.prototype.drawNow = function () {
  const c = this.canvas;
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(c.clientWidth * ratio));
  const h = Math.max(1, Math.round(c.clientHeight * ratio));
  if (c.width !== w || c.height !== h) {
    c.width = w;
    c.height = h;
  }
  const g = c.getContext("2d");
  if (!g) return;
  g.clearRect(0, 0, w, h);
  const style = getComputedStyle(this.root);
  const played = style.getPropertyValue("--player-played").trim() || "#ff5b2e";
  const rest = style.getPropertyValue("--player-rest").trim() || "#3b3b48";
  const d = this.duration();
  const split = d > 0 ? (this.audio.currentTime / d) * w : 0;
  const t = this.current();
  const peaks = t ? this.peaks.get(t.uuid) : null;
  if (!peaks || !peaks.length) {
    const y = Math.round(h / 2 - ratio);
    g.fillStyle = rest;
    g.fillRect(0, y, w, 2 * ratio);
    g.fillStyle = played;
    g.fillRect(0, y, split, 2 * ratio);
    return;
  }
  const bars = Math.max(1, Math.floor(w / (3 * ratio)));
  const step = w / bars;
  for (let i = 0; i < bars; i++) {
    const from = Math.floor((i * peaks.length) / bars);
    const to = Math.max(from + 1, Math.floor(((i + 1) * peaks.length) / bars));
    let peak = 0;
    for (let j = from; j < to && j < peaks.length; j++) peak = Math.max(peak, peaks[j]);
    const bh = Math.max(ratio, Math.min(1, peak) * h * 0.9);
    const x = i * step;
    g.fillStyle = x < split ? played : rest;
    g.fillRect(x, (h - bh) / 2, Math.max(ratio, step - ratio), bh);
  }
};

// ---- input -------------------------------------------------------------------

Player.prototype.bindSeek = function () {
  const c = this.canvas;
  let dragging = false;
  const at = (e) => {
    const r = c.getBoundingClientRect();
    return (Math.max(0, Math.min(r.width, e.clientX - r.left)) / r.width) * this.duration();
  };
  c.addEventListener("pointerdown", (e) => {
    if (!this.current()) return;
    dragging = true;
    c.setPointerCapture(e.pointerId);
    this.seek(at(e));
  });
  c.addEventListener("pointermove", (e) => {
    if (dragging) this.seek(at(e));
  });
  c.addEventListener("pointerup", () => {
    dragging = false;
  });
  c.addEventListener("keydown", (e) => {
    const d = this.duration();
    const moves = {
      ArrowLeft: -SEEK_STEP,
      ArrowRight: SEEK_STEP,
      PageDown: -30,
      PageUp: 30,
    };
    if (e.key in moves) this.seek(this.audio.currentTime + moves[e.key]);
    else if (e.key === "Home") this.seek(0);
    else if (e.key === "End") this.seek(d);
    else return;
    e.preventDefault();
    e.stopPropagation();
  });
};

function typing(target) {
  if (!(target instanceof Element)) return false;
  return !!target.closest("input, textarea, select, [contenteditable], [role=slider]");
}

Player.prototype.bindKeys = function () {
  document.addEventListener("keydown", (e) => {
    if (!this.current() || e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
    if (typing(e.target)) return;
    const onControl = e.target instanceof Element && e.target.closest("button, a, summary");
    if (e.key === " " || e.code === "Space") {
      if (onControl) return; // space activates the focused button itself
      this.toggle();
    } else if (e.key === "ArrowRight") {
      this.seek(this.audio.currentTime + SEEK_STEP);
    } else if (e.key === "ArrowLeft") {
      this.seek(this.audio.currentTime - SEEK_STEP);
    } else if (e.key === "n" || e.key === "N") {
      this.next();
    } else if (e.key === "p" || e.key === "P") {
      this.previous();
    } else {
      return;
    }
    e.preventDefault();
  });
};

Player.prototype.bindMediaSession = function () {
  if (!("mediaSession" in navigator)) return;
  const ms = navigator.mediaSession;
  const handlers = {
    play: () => this.audio.play().catch(() => {}),
    pause: () => this.audio.pause(),
    previoustrack: () => this.previous(),
    nexttrack: () => this.next(),
    seekbackward: (d) => this.seek(this.audio.currentTime - ((d && d.seekOffset) || SEEK_STEP)),
    seekforward: (d) => this.seek(this.audio.currentTime + ((d && d.seekOffset) || SEEK_STEP)),
    seekto: (d) => d && Number.isFinite(d.seekTime) && this.seek(d.seekTime),
    stop: () => this.audio.pause(),
  };
  for (const [action, fn] of Object.entries(handlers)) {
    try {
      ms.setActionHandler(action, fn);
    } catch {
      /* an action this browser does not know */
    }
  }
};

Player.prototype.setMediaMetadata = function (t) {
  if (!("mediaSession" in navigator) || typeof MediaMetadata === "undefined") return;
  navigator.mediaSession.metadata = new MediaMetadata({
    title: t.title,
    artist: t.artist,
    album: t.release,
  });
};

Player.prototype.say = function (text) {
  this.el.status.textContent = text;
};

// ---- keeping the queue across a reload ---------------------------------------

Player.prototype.save = function () {
  if (!this.current()) return;
  try {
    sessionStorage.setItem(
      STORE_KEY,
      JSON.stringify({ queue: this.queue, index: this.index, time: this.audio.currentTime || 0 }),
    );
  } catch {
    /* storage full or disabled */
  }
};

Player.prototype.restore = function () {
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
  } catch {
    saved = null;
  }
  if (!saved || !Array.isArray(saved.queue) || !saved.queue.length) return;
  this.queue = saved.queue.filter((t) => t && typeof t.uuid === "string" && typeof t.src === "string");
  const i = Math.min(Math.max(0, Number(saved.index) || 0), this.queue.length - 1);
  if (this.queue.length) this.load(i, false, Number(saved.time) || 0);
};

// ---- navigation that keeps the music playing ---------------------------------

function swappable(url) {
  if (url.origin !== location.origin) return false;
  const p = url.pathname;
  if (/^\/(admin|api|static|rest|\.well-known|nodeinfo|healthz)(\/|$)/.test(p)) return false;
  if (/\/(stream|waveform\.json)$/.test(p) || /\.(json|xml|txt|mp3|ogg|zip)$/.test(p)) return false;
  return true;
}

Player.prototype.bindNavigation = function () {
  document.addEventListener("click", (e) => {
    if (!this.current() || e.defaultPrevented || e.button !== 0) return;
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest("a[href]");
    if (!a || a.closest("[data-no-swap]") || a.hasAttribute("download")) return;
    if (a.target && a.target !== "_self") return;
    const url = new URL(a.href, location.href);
    if (!swappable(url)) return;
    if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
    e.preventDefault();
    this.navigate(url.href, true);
  });
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (!this.current() || e.defaultPrevented || !(form instanceof HTMLFormElement)) return;
    if (form.closest("[data-no-swap]")) return;
    const url = new URL(form.action || location.href, location.href);
    if (!swappable(url)) return;
    const data = new FormData(form, e.submitter || undefined);
    if ((form.method || "get").toLowerCase() === "get") {
      url.search = new URLSearchParams(data).toString();
      e.preventDefault();
      this.navigate(url.href, true);
      return;
    }
    // Small posts in the page (follow, like, comment) keep the music going;
    // uploads, sign-in and anything outside <main> (sign-out) load normally.
    if (!form.closest("main") || form.enctype === "multipart/form-data") return;
    if (form.querySelector("input[type=password], input[type=file]")) return;
    e.preventDefault();
    this.navigate(url.href, true, {
      method: "POST",
      body: new URLSearchParams(data),
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    });
  });
  window.addEventListener("popstate", (e) => {
    if (e.state && e.state.nycmgPlayer) this.navigate(location.href, false);
  });
  history.replaceState({ ...(history.state || {}), nycmgPlayer: true }, "", location.href);
};

Player.prototype.navigate = async function (href, push, post) {
  let resp;
  try {
    resp = await fetch(href, {
      method: post ? post.method : "GET",
      body: post ? post.body : undefined,
      credentials: "same-origin",
      headers: { Accept: "text/html", "X-Player-Navigation": "1", ...(post ? post.headers : {}) },
    });
  } catch {
    if (!post) location.assign(href);
    return;
  }
  const type = resp.headers.get("Content-Type") || "";
  if (!type.includes("text/html")) {
    location.assign(post ? resp.url || location.href : href);
    return;
  }
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  const main = doc.querySelector("main#main");
  const here = document.querySelector("main#main");
  const finalUrl = resp.redirected || post ? resp.url : href;
  if (!main || !here) {
    location.assign(finalUrl);
    return;
  }
  if (!this.adoptHead(doc)) {
    // The page needs a module that already ran here once; modules run once
    // per document, so only a real page load sets that page up again.
    location.assign(finalUrl);
    return;
  }
  if (push && new URL(finalUrl, location.href).href === location.href) {
    history.replaceState({ nycmgPlayer: true }, "", finalUrl); // e.g. a post back to this page
  } else if (push) {
    history.pushState({ nycmgPlayer: true }, "", finalUrl);
  }
  document.title = doc.title;
  const fresh = document.importNode(main, true);
  here.replaceWith(fresh);
  // Scripts put in with the new <main> do not run by themselves.
  for (const old of fresh.querySelectorAll("script")) {
    const s = document.createElement("script");
    for (const attr of old.attributes) s.setAttribute(attr.name, attr.value);
    s.textContent = old.textContent;
    old.replaceWith(s);
  }
  const hash = new URL(finalUrl, location.href).hash;
  const target = hash ? document.getElementById(decodeURIComponent(hash.slice(1))) : null;
  if (target) target.scrollIntoView();
  else window.scrollTo(0, 0);
  fresh.focus({ preventScroll: true });
  this.syncButtons();
  document.dispatchEvent(new CustomEvent("nycmg:navigate", { detail: { url: finalUrl } }));
};

// Stylesheets and scripts the new page needs that this one has not loaded.
// False when it needs a script this player added for an earlier page: that
// script has run already and would not run again for this one.
Player.prototype.adoptHead = function (doc) {
  const ref = (el) => el.getAttribute("href") || el.getAttribute("src");
  const have = new Set(
    Array.from(document.head.querySelectorAll("link[rel=stylesheet], script[src]"), ref),
  );
  this.adopted = this.adopted || new Set();
  const wanted = Array.from(doc.head.querySelectorAll("link[rel=stylesheet], script[src]"));
  if (wanted.some((el) => el.tagName === "SCRIPT" && this.adopted.has(ref(el)))) return false;
  for (const el of wanted) {
    if (have.has(ref(el))) continue;
    if (el.tagName === "SCRIPT") {
      const s = document.createElement("script");
      for (const attr of el.attributes) s.setAttribute(attr.name, attr.value);
      document.head.append(s);
      this.adopted.add(ref(el));
    } else {
      document.head.append(document.importNode(el, true));
    }
  }
  return true;
};

// Last, once every method above is defined.
const bar = document.querySelector("[data-player]");
if (bar) new Player(bar).start();
