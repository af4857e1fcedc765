// The notes page: the JSON API at /api/notes, drawn with plain DOM calls (no framework).
const list = document.getElementById("notes");
const error = document.getElementById("error");

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? {"Content-Type": "application/json"} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) {
    const e = await res.json().catch(() => ({error: res.statusText}));
    throw new Error(e.error);
  }
  return res.status === 204 ? null : res.json();
}

async function refresh() {
  const q = document.getElementById("q").value;
  const notes = await api("GET", "/api/notes" + (q ? "?q=" + encodeURIComponent(q) : ""));
  list.replaceChildren(...notes.map((n) => {
    const li = document.createElement("li");
    const h = document.createElement("h2");
    h.textContent = n.title;
    const p = document.createElement("p");
    p.textContent = n.body;
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.onclick = () => api("DELETE", "/api/notes/" + n.id).then(refresh, show);
    li.append(del, h, p);
    return li;
  }));
}

function show(e) { error.textContent = e.message; }

document.getElementById("add").onsubmit = async (ev) => {
  ev.preventDefault();
  const title = document.getElementById("title").value;
  const body = document.getElementById("body").value;
  try {
    await api("POST", "/api/notes", {title, body});
    ev.target.reset();
    error.textContent = "";
    await refresh();
  } catch (e) { show(e); }
};
document.getElementById("q").oninput = () => refresh().catch(show);
refresh().catch(show);
