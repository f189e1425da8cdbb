// The studio's upload: drop or choose files, see each upload's progress, then
// follow each track's processing until it is ready (or failed, with why).
// Without this script the form posts to /studio/upload and the page reloads.

const form = document.getElementById("studio-upload");
const list = document.getElementById("upload-list");
const fileInput = document.getElementById("studio-file");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const watching = new Map(); // uuid -> upload item element
let pollTimer = null;

function item(file) {
  const li = document.createElement("li");
  li.className = "upload-item";
  const name = document.createElement("span");
  name.className = "upload-name";
  name.textContent = file.name;
  const status = document.createElement("span");
  status.className = "upload-status";
  status.textContent = "Waiting…";
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", `Upload of ${file.name}`);
  li.append(name, status, bar);
  list.append(li);
  return { li, status, bar };
}

function problem(xhr) {
  try {
    const body = JSON.parse(xhr.responseText);
    return body.detail || body.title || `error ${xhr.status}`;
  } catch {
    return `error ${xhr.status}`;
  }
}

function send(file, title) {
  const view = item(file);
  return new Promise((resolve) => {
    const data = new FormData();
    if (title) data.append("title", title);
    data.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.api);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((e.loaded / e.total) * 100);
      view.bar.value = pct;
      view.status.textContent = pct < 100 ? `Uploading ${pct}%` : "Checking the audio…";
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 201) {
        const track = JSON.parse(xhr.responseText);
        view.bar.value = 100;
        view.status.textContent = "Processing…";
        view.li.dataset.uuid = track.uuid;
        view.li.dataset.state = track.state;
        watching.set(track.uuid, view);
        poll();
      } else {
        view.li.classList.add("is-error");
        view.li.dataset.state = "rejected";
        view.status.textContent = problem(xhr);
      }
      resolve();
    });
    xhr.addEventListener("error", () => {
      view.li.classList.add("is-error");
      view.status.textContent = "The upload was interrupted; try again.";
      resolve();
    });
    xhr.send(data);
  });
}

async function uploadAll(files) {
  const title = files.length === 1 ? form.elements.title.value.trim() : "";
  for (const file of files) await send(file, title);
  form.reset();
}

function showState(view, row) {
  view.li.dataset.state = row.state;
  if (row.state === "ready") view.status.textContent = "Ready";
  else if (row.state === "failed") {
    view.li.classList.add("is-error");
    view.status.textContent = `Failed: ${row.error || "unknown error"}`;
  } else view.status.textContent = row.error ? `Processing (retrying: ${row.error})` : "Processing…";
  const cell = document.querySelector(`tr[data-uuid="${row.uuid}"] .state`);
  if (cell) {
    cell.textContent = row.state;
    cell.className = `badge state state-${row.state}`;
  }
}

async function poll() {
  if (pollTimer) return;
  const tick = async () => {
    pollTimer = null;
    try {
      const r = await fetch(form.dataset.poll, { headers: { Accept: "application/json" } });
      if (r.ok) {
        const { items } = await r.json();
        for (const row of items) {
          const view = watching.get(row.uuid);
          if (!view) continue;
          showState(view, row);
          if (row.state === "ready" || row.state === "failed") watching.delete(row.uuid);
        }
      }
    } catch {
      /* the next tick tries again */
    }
    if (watching.size) pollTimer = setTimeout(tick, 1500);
  };
  pollTimer = setTimeout(tick, 800);
}

if (form && list) {
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (fileInput.files.length) uploadAll([...fileInput.files]);
  });
  for (const name of ["dragenter", "dragover"]) {
    form.addEventListener(name, (e) => {
      e.preventDefault();
      form.classList.add("is-over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    form.addEventListener(name, () => form.classList.remove("is-over"));
  }
  form.addEventListener("drop", (e) => {
    e.preventDefault();
    const files = [...(e.dataTransfer?.files || [])];
    if (files.length) uploadAll(files);
  });
}
