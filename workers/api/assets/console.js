// imgflow console: live pipeline counts, a gallery that refreshes itself, and uploads by drag
// and drop with progress. Plain browser APIs, no build step. Everything shown comes from the
// server already escaped, or is set with textContent.
"use strict";
(function () {
  // Pipeline: poll /api/pipeline and update the numbers in place.
  const graph = document.getElementById("pipeline");
  if (graph) {
    const fields = ["visible", "in_flight", "dead_lettered", "recent_total", "eta"];
    const refresh = async () => {
      try {
        const r = await fetch("/api/pipeline", {
          headers: { Accept: "application/json" },
          cache: "no-store",
        });
        if (!r.ok) throw new Error("HTTP " + r.status);
        const view = await r.json();
        for (const s of view.stages) {
          const node = graph.querySelector('[data-stage="' + CSS.escape(s.stage) + '"]');
          if (!node) continue;
          for (const f of fields) {
            const el = node.querySelector('[data-field="' + f + '"]');
            if (el) el.textContent = String(s[f]);
          }
          const rate = node.querySelector('[data-field="rate_per_minute"]');
          if (rate) rate.textContent = s.rate_per_minute.toFixed(1);
          node.classList.toggle("has-dlq", s.dead_lettered > 0);
          const spark = node.querySelector('[data-field="per_minute"]');
          if (spark) {
            const max = Math.max(1, ...s.per_minute);
            spark.replaceChildren(
              ...s.per_minute.map((n) => {
                const bar = document.createElement("span");
                bar.className = "bar";
                bar.style.height = Math.round((n * 100) / max) + "%";
                bar.title = String(n);
                return bar;
              })
            );
          }
        }
        graph.classList.remove("stale");
        graph.dataset.updated = new Date().toISOString();
      } catch (e) {
        graph.classList.add("stale");
      }
    };
    setInterval(() => {
      if (!document.hidden) refresh();
    }, Number(graph.dataset.refreshMs) || 2000);
  }

  // Gallery: the first page reloads its grid while it is on screen, so new uploads appear and
  // move from accepted to labeled without a click.
  const grid = document.getElementById("grid");
  const reloadGrid = async () => {
    if (!grid) return;
    const r = await fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById("grid");
    if (fresh && fresh.innerHTML !== grid.innerHTML) grid.innerHTML = fresh.innerHTML;
  };
  if (grid && grid.dataset.live) {
    setInterval(() => {
      if (!document.hidden) reloadGrid().catch(() => {});
    }, Number(grid.dataset.live));
  }

  // An image still in the pipeline: reload until it is final.
  const pending = document.getElementById("pending");
  if (pending) {
    setTimeout(() => location.reload(), Number(pending.dataset.reloadMs) || 2000);
  }

  // Uploads: each file is POSTed to /images as its own bytes, three at a time.
  const drop = document.getElementById("upload");
  if (drop) {
    const list = document.getElementById("uploads");
    const input = document.getElementById("files");
    const typeOf = (f) => f.type || (/\.png$/i.test(f.name) ? "image/png" : "image/jpeg");
    const upload = (file) =>
      new Promise((resolve) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = file.name;
        const bar = document.createElement("progress");
        bar.max = 100;
        bar.value = 0;
        const state = document.createElement("span");
        state.className = "state";
        state.textContent = "uploading";
        li.append(name, bar, state);
        list.prepend(li);
        const xhr = new XMLHttpRequest();
        xhr.open("POST", "/images");
        xhr.setRequestHeader("Content-Type", typeOf(file));
        // The name the file keeps in its key (made safe by the API).
        xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name));
        xhr.setRequestHeader("Accept", "application/json");
        xhr.upload.onprogress = (e) => {
          if (e.lengthComputable) bar.value = Math.round((e.loaded * 100) / e.total);
        };
        xhr.onload = () => {
          let body = {};
          try {
            body = JSON.parse(xhr.responseText);
          } catch (_) {}
          if (xhr.status === 202) {
            bar.value = 100;
            li.className = "ok";
            li.dataset.id = body.id;
            const link = document.createElement("a");
            link.href = body.status_url;
            link.textContent = "uploaded: follow it";
            state.replaceChildren(link);
          } else {
            li.className = "failed";
            state.textContent = body.error || "failed: HTTP " + xhr.status;
          }
          resolve();
        };
        xhr.onerror = () => {
          li.className = "failed";
          state.textContent = "network error";
          resolve();
        };
        xhr.send(file);
      });
    const uploadAll = async (files) => {
      const queue = Array.from(files);
      const worker = async () => {
        while (queue.length) await upload(queue.shift());
      };
      await Promise.all([worker(), worker(), worker()]);
      reloadGrid().catch(() => {});
    };
    for (const type of ["dragenter", "dragover"]) {
      drop.addEventListener(type, (e) => {
        e.preventDefault();
        drop.classList.add("over");
      });
    }
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files.length) uploadAll(e.dataTransfer.files);
    });
    input.addEventListener("change", () => {
      uploadAll(input.files);
    });
    // A file dropped beside the zone would otherwise make the browser open it.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
  }
})();
