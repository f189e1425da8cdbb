// Live chat over WebSocket: history, messages, viewer count, moderation for the artist and admins.
const box = document.getElementById("live-chat");

if (box) {
  const log = document.getElementById("live-chat-log");
  const form = document.getElementById("live-chat-form");
  const status = document.getElementById("live-chat-status");
  const viewers = document.getElementById("live-viewers");
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${box.dataset.chat}`;
  let ws = null;
  let me = {};

  function button(label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "live-chat-mod";
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  function show(msg) {
    const li = document.createElement("li");
    li.dataset.id = msg.id;
    const who = document.createElement("strong");
    who.textContent = msg.name || msg.user;
    const text = document.createElement("span");
    text.className = "live-chat-text";
    text.textContent = ` ${msg.text}`; // text, never HTML
    li.append(who, text);
    if (me.moderator && msg.user !== me.username) {
      li.append(
        button("Delete", () => ws.send(JSON.stringify({ type: "delete", id: msg.id }))),
        button("Mute", () => ws.send(JSON.stringify({ type: "mute", user: msg.user, seconds: 600 }))),
        button("Ban", () => ws.send(JSON.stringify({ type: "ban", user: msg.user }))),
      );
    }
    log.append(li);
    li.scrollIntoView({ block: "nearest" });
  }

  function connect() {
    ws = new WebSocket(url);
    ws.addEventListener("message", (ev) => {
      const f = JSON.parse(ev.data);
      if (f.type === "hello") {
        me = f.me;
        log.replaceChildren();
        f.history.forEach(show);
        viewers.textContent = f.viewers;
        if (form && !me.can_post) form.hidden = true;
      } else if (f.type === "message") show(f);
      else if (f.type === "deleted") log.querySelector(`li[data-id="${Number(f.id)}"]`)?.remove();
      else if (f.type === "viewers") viewers.textContent = f.count;
      else if (f.type === "moderation") status.textContent = `@${f.user}: ${f.action}`;
      else if (f.type === "error") status.textContent = f.message;
    });
    ws.addEventListener("close", () => setTimeout(connect, 3000));
  }

  form?.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = form.elements.text;
    if (input.value.trim() && ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "say", text: input.value }));
      input.value = "";
    }
  });
  connect();
}
