// The live page: polls data.json and rebuilds its sections. Everything shown comes from the server
// as data and goes into the page with textContent (never innerHTML): request paths and task names
// are whatever a client or an app sent.
"use strict";
(function () {
  const root = document.getElementById("dashboard");
  const endpoint = root.dataset.endpoint;
  const POLL_MS = 1000;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return (value * 1000).toFixed(value < 0.01 ? 2 : 1) + " ms";
    return value.toFixed(2) + " s";
  }

  function replace(id, ...children) {
    const node = document.getElementById(id);
    node.replaceChildren(...children);
  }

  function card(value, label) {
    const box = el("div", "card");
    box.append(el("b", "", value), el("span", "", label));
    return box;
  }

  function renderQueue(data) {
    const q = data.queue;
    document.getElementById("queue-pid").textContent = "(pid " + data.pid + ", the process that answered)";
    replace("queue",
      card(q.length + " / " + q.capacity, "batches waiting for a thread"),
      card(q.busy_threads + " / " + q.threads, "hand-off threads busy"),
      card(data.settings.budget_seconds + " s", "budget per request"),
      card(data.total_runs, data.shared ? "runs seen by all workers" : "runs seen by this process"));
  }

  // The processes whose runs the page shows: one without Redis, every worker with it.
  function renderWorkers(data) {
    const hosts = new Set(data.workers.map((w) => w.host));
    const chips = data.workers.map((w) => {
      const notes = [w.this ? "answered" : null, hosts.size > 1 ? w.host : null,
        w.total_runs + " runs", w.dropped ? w.dropped + " not published" : null,
        w.silent ? "silent " + Math.round(w.seen_seconds_ago) + " s" : null].filter(Boolean);
      const chip = el("span", "worker" + (w.this ? " this" : "") + (w.silent ? " silent" : ""),
        "pid " + w.pid + " (" + notes.join(", ") + ")");
      chip.dataset.pid = String(w.pid);
      return chip;
    });
    const label = el("span", "hint", data.shared ? "Worker processes:" : "Worker process:");
    replace("workers", label, ...chips);
    const partial = document.getElementById("partial");
    const notes = [data.partial ? "Partial: " + data.partial + "." : null,
      data.ignored_entries ? data.ignored_entries + " entries in Redis were not valid and were ignored." : null]
      .filter(Boolean);
    partial.textContent = notes.join(" ");
    partial.hidden = !notes.length;
  }

  function runEnd(run) {
    let end = run.wait_seconds || 0;
    for (const task of run.tasks) {
      const stop = (task.start_seconds || 0) + (task.duration_seconds || 0);
      if (stop > end) end = stop;
    }
    return end;
  }

  function renderRuns(data) {
    if (!data.runs.length) {
      replace("runs", el("p", "empty", data.shared ? "No request has deferred a task in any worker yet."
        : "No request has deferred a task in this process yet."));
      return;
    }
    const scale = Math.max(0.01, ...data.runs.map(runEnd)) * 1.05;
    const rows = data.runs.map((run) => {
      const row = el("div", "run");
      row.dataset.requestId = run.request_id;
      row.dataset.pid = String(run.pid);
      const what = el("div", "what");
      what.append(el("div", "line", run.request || "(request " + run.request_id + ")"));
      const when = new Date(run.finished_at * 1000).toLocaleTimeString();
      const meta = [when, "pid " + run.pid, run.status !== null ? "status " + run.status : null,
        "via " + run.trigger, run.wait_seconds !== null ? "waited " + seconds(run.wait_seconds) : null,
        "ran " + seconds(run.elapsed_seconds),
        run.tasks_cut ? run.tasks_cut + " more tasks not published" : null].filter(Boolean).join(" · ");
      what.append(el("div", "meta", meta));
      const track = el("div", "track");
      if (run.wait_seconds) {
        const wait = el("div", "wait");
        wait.style.left = "0%";
        wait.style.width = (100 * run.wait_seconds / scale) + "%";
        wait.title = "response delivery: " + seconds(run.wait_seconds);
        track.append(wait);
      }
      for (const task of run.tasks) {
        const ran = task.duration_seconds !== null;
        const block = el("div", "task " + task.outcome + (ran ? "" : " mark"), ran ? task.name : "");
        block.style.left = (100 * (task.start_seconds || 0) / scale) + "%";
        if (ran) block.style.width = (100 * task.duration_seconds / scale) + "%";
        block.title = task.name + ": " + task.outcome + (ran ? " in " + seconds(task.duration_seconds) : "") +
          " (declared " + seconds(task.max_cost_seconds) + ", priority " + task.priority + ")" +
          (task.error ? " · " + task.error : "");
        block.dataset.outcome = task.outcome;
        track.append(block);
      }
      row.append(what, track);
      return row;
    });
    const axis = el("div", "axis");
    axis.append(el("span", "", "0 (response left)"), el("span", "", seconds(scale / 2)), el("span", "", seconds(scale)));
    replace("runs", axis, ...rows);
  }

  function table(headers, rows) {
    const tableNode = el("table");
    const head = el("tr");
    for (const title of headers) head.append(el("th", "", title));
    tableNode.append(head);
    for (const cells of rows) {
      const tr = el("tr");
      for (const cell of cells) tr.append(cell instanceof Node ? wrap(cell) : el("td", typeof cell === "number" ? "num" : "", cell));
      tableNode.append(tr);
    }
    return tableNode;
  }

  function wrap(node) {
    const td = el("td");
    td.append(node);
    return td;
  }

  const FLAGS = {
    under: "declared cost too low: the tasks take longer (p99)",
    far_above: "declared cost far above what they take: it crowds out later tasks",
  };

  function renderTasks(data) {
    if (!data.tasks.length) {
      replace("tasks", el("p", "empty", "No task yet."));
      return;
    }
    const rows = data.tasks.map((task) => {
      const counts = el("span");
      for (const [outcome, count] of Object.entries(task.counts)) {
        if (count) counts.append(el("span", "count " + outcome, outcome + " " + count));
      }
      const flag = task.flag ? el("span", "flag", FLAGS[task.flag] || task.flag) : el("span", "ok", "fits");
      return [task.name, counts, seconds(task.declared_cost_seconds), seconds(task.p50_seconds),
        seconds(task.p99_seconds), flag];
    });
    const note = data.evicted_task_names ? [el("p", "hint", data.evicted_task_names + " task name(s) dropped (bounded).")] : [];
    replace("tasks", table(["task", "outcomes", "declared cost", "p50", "p99", "cost check"], rows), ...note);
  }

  function renderPanels(data) {
    const sections = data.panels.map((panel) => {
      const section = el("section");
      section.append(el("h2", "", panel.title));
      if (panel.error) {
        section.append(el("p", "empty", panel.error));
      } else if (!panel.rows.length) {
        section.append(el("p", "empty", "Nothing to show."));
      } else {
        const headers = Object.keys(panel.rows[0]);
        section.append(table(headers, panel.rows.map((row) => headers.map((h) => row[h] === null ? "–" : String(row[h])))));
      }
      return section;
    });
    replace("panels", ...sections);
  }

  async function refresh() {
    const live = document.getElementById("live");
    try {
      const answer = await fetch(endpoint, {credentials: "same-origin", cache: "no-store",
        headers: {"Accept": "application/json"}});
      if (answer.status === 403) {  // the login expired (or was ended): the page shows the form again
        location.reload();
        return;
      }
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      const data = await answer.json();
      document.getElementById("scope").textContent = data.scope;
      renderQueue(data);
      renderWorkers(data);
      renderRuns(data);
      renderTasks(data);
      renderPanels(data);
      live.textContent = "live · pid " + data.pid + (data.partial ? " · partial"
        : data.shared ? " · all workers" : " · this process only");
      live.className = data.partial ? "live partial" : "live";
    } catch (error) {
      live.textContent = "not updating (" + error.message + ")";
      live.className = "live stale";
    }
  }

  refresh();
  setInterval(refresh, POLL_MS);
})();
