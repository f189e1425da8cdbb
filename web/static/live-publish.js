// "Go live": pick an input, watch its level, publish it to the node over WHIP (RFC 9725).
const form = document.getElementById("live-go");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

function iceServersFrom(response) {
  // RFC 9725 4.6: ICE servers come as Link headers with rel="ice-server".
  const servers = [];
  for (const part of (response.headers.get("Link") || "").split(/,(?=\s*<)/)) {
    const m = part.match(/<([^>]+)>/);
    if (!m || !/rel="ice-server"/.test(part)) continue;
    const server = { urls: m[1] };
    const user = part.match(/username="([^"]*)"/);
    const cred = part.match(/credential="([^"]*)"/);
    if (user) server.username = user[1];
    if (cred) server.credential = cred[1];
    servers.push(server);
  }
  return servers;
}

function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ms);
  });
}

if (form) {
  const whip = form.dataset.whip;
  const device = document.getElementById("live-device");
  const level = document.getElementById("live-level");
  const start = document.getElementById("live-start");
  const stop = document.getElementById("live-stop");
  const status = document.getElementById("live-status");
  let stream = null;
  let pc = null;
  let resource = null;
  let meterTimer = null;

  const say = (text) => { status.textContent = text; };

  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const chosen = device.value;
    device.replaceChildren(new Option("Default input", ""));
    for (const d of devices) {
      if (d.kind === "audioinput" && d.deviceId) {
        device.append(new Option(d.label || `Input ${device.length}`, d.deviceId));
      }
    }
    device.value = chosen;
  }

  function meter(s) {
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    ctx.createMediaStreamSource(s).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    clearInterval(meterTimer);
    meterTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      level.value = Math.min(1, Math.sqrt(sum / buf.length) * 4);
    }, 100);
  }

  async function openInput() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    const audio = device.value ? { deviceId: { exact: device.value } } : true;
    stream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
    meter(stream);
    await listDevices();
  }

  device.addEventListener("change", () => openInput().catch((e) => say(`Input: ${e.message}`)));

  start.addEventListener("click", async () => {
    start.disabled = true;
    say("Starting…");
    try {
      if (!stream) await openInput();
      const probe = await fetch(whip, { method: "OPTIONS" });
      pc = new RTCPeerConnection({ iceServers: iceServersFrom(probe) });
      for (const track of stream.getAudioTracks()) pc.addTransceiver(track, { direction: "sendonly" });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 3000);
      const params = new URLSearchParams();
      const title = document.getElementById("live-title").value.trim();
      if (title) params.set("title", title);
      params.set("record", document.getElementById("live-record").checked ? "1" : "0");
      const resp = await fetch(`${whip}?${params}`, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", "X-CSRF-Token": csrf },
        body: pc.localDescription.sdp,
      });
      if (resp.status !== 201) {
        const problem = await resp.json().catch(() => ({}));
        throw new Error(problem.detail || `the node answered ${resp.status}`);
      }
      resource = resp.headers.get("Location");
      await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
      pc.addEventListener("connectionstatechange", () => {
        if (pc && pc.connectionState === "connected") say("You are live.");
        if (pc && pc.connectionState === "failed") say("The connection failed; stop and start again.");
      });
      say("Connecting…");
      stop.disabled = false;
      window.nycmgLive = { pc };
    } catch (err) {
      say(`Could not go live: ${err.message}`);
      if (pc) pc.close();
      pc = null;
      start.disabled = false;
    }
  });

  stop.addEventListener("click", async () => {
    stop.disabled = true;
    if (resource) {
      await fetch(resource, { method: "DELETE", headers: { "X-CSRF-Token": csrf } }).catch(() => {});
    }
    if (pc) pc.close();
    pc = null;
    resource = null;
    say("Not live.");
    start.disabled = false;
  });

  if (navigator.mediaDevices) listDevices().catch(() => {});
}
