// The search page: sends the API key as a bearer token, lists the ranked passages and shows the
// entity graph that /v1/graph.svg draws. Text from the service is only ever set as textContent.
"use strict";

const elements = {};

function showStatus(message) {
  elements.status.textContent = message;
}

function passageItem(chunk) {
  const item = document.createElement("li");
  const meta = document.createElement("div");
  meta.className = "meta";
  const title = chunk.document_title || chunk.document_id;
  meta.textContent = `${title} (score ${chunk.score.toFixed(3)})`;
  const text = document.createElement("div");
  const words = chunk.text.split(/\s+/).join(" ");
  text.textContent = words.length > 400 ? words.slice(0, 399) + "…" : words;
  item.append(meta, text);
  return item;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error.message;
  } catch (error) {
    return `HTTP ${response.status}`;
  }
}

async function runSearch() {
  const key = elements.key.value.trim();
  const parameters = {
    query: elements.query.value.trim(),
    memory: elements.memory.value.trim() || "default",
    mode: elements.mode.value,
  };
  if (!key || !parameters.query) {
    showStatus("Enter an API key and a question.");
    return;
  }
  document.body.dataset.state = "searching";
  showStatus("Searching…");
  const authorization = { Authorization: `Bearer ${key}` };

  const response = await fetch("/v1/query", {
    method: "POST",
    headers: { ...authorization, "Content-Type": "application/json" },
    body: JSON.stringify(parameters),
  });
  if (!response.ok) {
    showStatus(await errorMessage(response));
    document.body.dataset.state = "failed";
    return;
  }
  const result = await response.json();
  elements.passages.replaceChildren(...result.chunks.map(passageItem));
  const total = result.timings_ms.total || 0;
  showStatus(`${result.chunks.length} passages, ${result.entities.length} entities in ${total.toFixed(0)} ms${result.cached ? " (cached)" : ""}`);

  const graph = await fetch(`/v1/graph.svg?${new URLSearchParams(parameters)}`, { headers: authorization });
  if (!graph.ok) {
    showStatus(await errorMessage(graph));
    document.body.dataset.state = "failed";
    return;
  }
  // An SVG shown through <img> cannot run script, whatever text it contains.
  const previous = elements.graph.src;
  elements.graph.addEventListener("load", () => { document.body.dataset.state = "done"; }, { once: true });
  elements.graph.src = URL.createObjectURL(await graph.blob());
  if (previous.startsWith("blob:")) {
    URL.revokeObjectURL(previous);
  }
  elements.graph.hidden = false;
}

// A fragment such as #q=question&key=API-key&memory=default fills the form and searches at once,
// for scripted screenshots. Browsers never send the fragment to the server, and it is removed
// from the address bar and history entry as soon as it is read.
function readFragment() {
  if (!location.hash) {
    return false;
  }
  const values = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, "", location.pathname);
  if (values.has("key")) elements.key.value = values.get("key");
  if (values.has("q")) elements.query.value = values.get("q");
  if (values.has("memory")) elements.memory.value = values.get("memory");
  if (values.has("mode")) elements.mode.value = values.get("mode");
  return values.has("key") && values.has("q");
}

document.addEventListener("DOMContentLoaded", () => {
  elements.form = document.getElementById("search");
  elements.key = document.getElementById("key");
  elements.query = document.getElementById("query");
  elements.memory = document.getElementById("memory");
  elements.mode = document.getElementById("mode");
  elements.status = document.getElementById("status");
  elements.passages = document.getElementById("passage-list");
  elements.graph = document.getElementById("graph-image");

  const failed = (error) => {
    showStatus(`Search failed: ${error.message}`);
    document.body.dataset.state = "failed";
  };
  elements.form.addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch().catch(failed);
  });
  if (readFragment()) {
    runSearch().catch(failed);
  }
});
