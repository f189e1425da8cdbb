// The fan's live player: WHEP (draft-ietf-wish-whep) from this node, into a media element.
const player = document.getElementById("live-player");

function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
    setTimeout(resolve, ms);
  });
}

if (player) {
  const whep = player.dataset.whep;
  const media = document.getElementById("live-media");
  const listen = document.getElementById("live-listen");
  const leave = document.getElementById("live-leave");
  const status = document.getElementById("live-player-status");
  let pc = null;
  let resource = null;
  const say = (text) => { status.textContent = text; };

  async function start() {
    listen.disabled = true;
    say("Connecting…");
    pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.addEventListener("track", (e) => {
      stream.addTrack(e.track);
      media.srcObject = stream;
      media.play().catch(() => say("Press play to hear it."));
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc && pc.connectionState === "connected") say("Listening live.");
      if (pc && pc.connectionState === "failed") say("The connection dropped.");
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 3000);
    const resp = await fetch(whep, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    if (resp.status !== 201) {
      pc.close();
      pc = null;
      listen.disabled = false;
      say(resp.status === 409 ? "Not live right now." : `Could not connect (${resp.status}).`);
      return;
    }
    resource = resp.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    leave.disabled = false;
    window.nycmgLive = { pc };
  }

  async function stop() {
    leave.disabled = true;
    if (resource) await fetch(resource, { method: "DELETE" }).catch(() => {});
    if (pc) pc.close();
    pc = null;
    resource = null;
    media.srcObject = null;
    listen.disabled = false;
    say("Stopped.");
  }

  listen.addEventListener("click", () => start().catch((e) => say(`Could not connect: ${e.message}`)));
  leave.addEventListener("click", stop);
  window.addEventListener("pagehide", () => {
    if (resource) fetch(resource, { method: "DELETE", keepalive: true }).catch(() => {});
  });
}
