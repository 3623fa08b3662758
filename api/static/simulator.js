// ootd · Last-Mile Pipeline simulator.  Reads the form, asks the API (one stored function per call,
// ootd.simulate), draws the ranking.  Every value reaches the page through textContent or an attribute,
// never innerHTML; the page's Content-Security-Policy allows no inline script.  Nothing is stored.
"use strict";

(() => {
  const form = document.getElementById("controls");
  const ranking = document.getElementById("ranking");
  const headline = document.getElementById("headline");
  const meta = document.getElementById("meta");
  const variant = document.getElementById("variant");
  const relaxed = document.getElementById("relaxed");
  const summary = document.getElementById("summary");
  const errorBox = document.getElementById("error");
  const timeInput = document.getElementById("time");
  const timeOut = document.getElementById("time-out");
  const llm = document.getElementById("llm");
  const llmCount = document.getElementById("llm-count");
  const dateInput = document.getElementById("pool-date");
  const cluster = document.getElementById("cluster");
  const LIMIT = 3;

  let previous = null; // outfit id -> rank (null when vetoed) of the last ranking drawn
  let seq = 0;
  let inflight = null;
  let timer = null;

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const hhmm = (minutes) => `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
  const checked = (name) => Array.from(form.querySelectorAll(`input[name="${name}"]:checked`), (i) => i.value);
  const mode = () => form.querySelector('input[name="mode"]:checked').value;

  function weights() {
    const out = {};
    for (const input of form.querySelectorAll("input[data-weight]")) {
      if (input.value.trim() === "") continue;
      const value = Number(input.value);
      if (!Number.isFinite(value)) throw new Error(`weight ${input.dataset.weight} must be a number`);
      if (value !== Number(input.dataset.default)) out[input.dataset.weight] = value;
    }
    return out;
  }

  function request() {
    const body = {
      date: dateInput.value,
      time: hhmm(Number(timeInput.value)),
      weights: weights(),
      cluster_id: cluster.value || null,
      limit: LIMIT,
    };
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (mode() === "what_if") {
      body.profile = {
        city: form.elements.city.value,
        style_dna: { archetype: form.elements.archetype.value, preferred_colors: checked("preferred_colors") },
        style_rules: {
          liked_categories: checked("liked_categories"),
          disliked_categories: checked("disliked_categories"),
          disliked_colors: checked("disliked_colors"),
        },
      };
      return { url: "/v1/simulate", headers, body };
    }
    const id = form.elements.user_id.value.trim();
    const token = form.elements.token.value.trim();
    if (!/^[0-9]{1,19}$/.test(id)) throw new Error("user id must be a positive integer");
    if (token) headers.Authorization = `Bearer ${token}`;
    return { url: `/v1/users/${encodeURIComponent(id)}/simulate`, headers, body };
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  async function run() {
    timeOut.textContent = hhmm(Number(timeInput.value));
    if (!dateInput.value) {
      showError("Pick a date that has pools.");
      return;
    }
    let call;
    try {
      call = request();
    } catch (err) {
      showError(err.message);
      return;
    }
    if (inflight) inflight.abort();
    const controller = (inflight = new AbortController());
    document.body.dataset.state = "busy";
    try {
      const response = await fetch(call.url, {
        method: "POST",
        headers: call.headers,
        body: JSON.stringify(call.body),
        signal: controller.signal,
        credentials: "omit",
        cache: "no-store",
      });
      const data = await response.json().catch(() => ({ error: { message: `HTTP ${response.status}` } }));
      if (controller !== inflight) return;
      if (!response.ok) {
        showError((data.error && data.error.message) || `HTTP ${response.status}`);
      } else {
        showError("");
        draw(data);
      }
    } catch (err) {
      if (err.name !== "AbortError") showError(`The API did not answer: ${err.message}`);
      return;
    } finally {
      if (controller === inflight) {
        inflight = null;
        document.body.dataset.state = "idle";
        ranking.dataset.seq = String(++seq);
      }
    }
    refreshLlmCount();
  }

  function schedule(delay = 80) {
    clearTimeout(timer);
    timer = setTimeout(run, delay);
  }

  const fixed = (x, digits) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

  function components(item) {
    const list = el("dl", "components");
    const add = (label, value, title) => {
      const wrap = el("div");
      wrap.title = title;
      wrap.append(el("dt", null, label), el("dd", null, value));
      list.append(wrap);
    };
    add("color", `×${fixed(item.color_boost, 2)}`, "preferred_color multiplier");
    add("category", `×${fixed(item.category_boost, 2)}`, "liked_category multiplier");
    add("affinity", `×${fixed(item.affinity_boost, 2)}`, "category_affinity multiplier");
    add("archetype", `×${fixed(item.archetype_boost, 2)}`, "archetype multiplier (affinity to the archetype of the pool it was drawn from)");
    if (item.liked_penalty !== 1) add("liked", `×${fixed(item.liked_penalty, 2)}`, "liked_decay (already liked)");
    add("cosine", fixed(item.cosine, 2), "cosine(taste, outfit), weighted by the cosine weight");
    add("daypart", `+${fixed(item.daypart_bonus, 2)}`, "daypart_priority bonus");
    add("jitter", item.jitter === null ? "–" : Number(item.jitter).toExponential(1), "deterministic tie-break");
    return list;
  }

  function movement(item) {
    const node = el("span", "move");
    if (previous === null) return node;
    const before = previous.get(item.outfit_id);
    if (before === undefined) {
      node.classList.add("new");
      node.textContent = "new";
    } else if (item.rank === null || before === null) {
      if (item.rank === null && before !== null) {
        node.classList.add("down");
        node.textContent = "▼ out";
      } else if (item.rank !== null && before === null) {
        node.classList.add("up");
        node.textContent = `▲ back`;
      }
    } else if (item.rank < before) {
      node.classList.add("up");
      node.textContent = `▲${before - item.rank}`;
    } else if (item.rank > before) {
      node.classList.add("down");
      node.textContent = `▼${item.rank - before}`;
    }
    node.setAttribute("aria-label", node.textContent ? `moved ${node.textContent}` : "unchanged");
    return node;
  }

  // The A/B experiment on the scoring weights: a real user is served their variant's weights (the ranking
  // starts from them; a weight changed on this page replaces the variant's); a what-if profile names no user.
  function showVariant(data) {
    variant.dataset.variant = data.variant || "";
    variant.classList.toggle("running", Boolean(data.variant));
    if (data.variant) {
      variant.textContent = `Experiment variant: ${data.variant}`;
      variant.title = "This user's variant of the running A/B experiment: its scoring weights rank the feed " +
        "(a weight you change on this page replaces the variant's).";
    } else if (data.mode === "user") {
      variant.textContent = "No experiment running: the weights in force";
      variant.title = "No A/B experiment on the scoring weights is running: every user gets the weights in force.";
    } else {
      variant.textContent = "What-if profile: no experiment variant (the weights in force)";
      variant.title = "A what-if profile names no user, so it is in no experiment's variant.";
    }
  }

  function draw(data) {
    if (headline.textContent !== data.headline) {
      headline.classList.remove("flash");
      void headline.offsetWidth; // restart the animation
      headline.classList.add("flash");
    }
    headline.textContent = data.headline;
    meta.replaceChildren(
      el("span", null, `${data.local_time ? data.local_time.slice(11) : "?"} in ${data.city || "?"} (${data.timezone || "?"})`),
      el("span", `daypart ${data.priority_daypart || ""}`, `${data.priority_daypart || "?"} first`),
      el("span", "mono", data.cluster_id),
    );
    showVariant(data);
    relaxed.textContent = data.relaxed_rules.length
      ? `Veto cascade relaxed: ${data.relaxed_rules.join(", ")} (too few outfits survived the vetoes)`
      : "Veto cascade: nothing relaxed";
    relaxed.classList.toggle("warn", data.relaxed_rules.length > 0);

    const next = new Map();
    const rows = data.items.map((item) => {
      next.set(item.outfit_id, item.rank);
      const li = el("li", "item");
      li.dataset.outfitId = item.outfit_id;
      li.dataset.category = item.category;
      li.dataset.color = item.color;
      li.dataset.daypart = item.daypart;
      li.dataset.rank = item.rank === null ? "" : String(item.rank);
      li.dataset.drawnFrom = item.drawn_from || data.cluster_id;
      if (item.rank === null) li.classList.add("vetoed");
      else if (item.rank <= data.limit) li.classList.add("in-feed");
      if (item.rank !== null && item.vetoed_by.length) li.classList.add("relaxed");

      const rank = el("span", "rank", item.rank === null ? "—" : item.rank);
      const main = el("div", "main");
      const title = el("span", "title", item.title);
      const tags = el("div", "tags");
      const swatch = el("span", "sw");
      swatch.dataset.color = item.color;
      tags.append(swatch, el("span", null, item.color), el("span", null, item.category),
        el("span", `daypart ${item.daypart}`, item.daypart));
      if (item.vetoed_by.length) {
        tags.append(el("span", "veto", `${item.rank === null ? "vetoed" : "relaxed"}: ${item.vetoed_by.join(", ")}`));
      }
      if (item.drawn_from && item.drawn_from !== data.cluster_id) {
        tags.append(el("span", "mono from", `from ${item.drawn_from}`));
      }
      main.append(title, tags);
      li.append(rank, movement(item), main, components(item), el("span", "score", fixed(item.score, 3)));
      return li;
    });
    ranking.replaceChildren(...rows);
    previous = next;
    const pools = new Set(data.items.map((item) => item.drawn_from || data.cluster_id));
    const vetoed = data.items.filter((item) => item.rank === null).length;
    summary.textContent = `${data.items.length} candidates from ${pools.size} pool${pools.size === 1 ? "" : "s"}` +
      (vetoed ? `, ${vetoed} vetoed` : "");
  }

  async function refreshLlmCount() {
    try {
      const response = await fetch(`/v1/llm-calls?since=${encodeURIComponent(llm.dataset.since)}`, { cache: "no-store" });
      if (response.ok) llmCount.textContent = String((await response.json()).calls);
    } catch (err) {
      /* the counter is informative; the ranking already reported any API failure */
    }
  }

  async function loadPools() {
    cluster.disabled = true;
    try {
      const response = await fetch(`/v1/pools?date=${encodeURIComponent(dateInput.value)}`, { cache: "no-store" });
      const data = await response.json();
      if (!response.ok) {
        showError(data.error ? data.error.message : `HTTP ${response.status}`);
        return;
      }
      const keep = cluster.value;
      const options = [el("option", null, "As the feed would choose")];
      options[0].value = "";
      for (const pool of data.pools) {
        const option = el("option", null, `${pool.archetype} · ${pool.weather} (${pool.members} members)`);
        option.value = pool.cluster_id;
        options.push(option);
      }
      cluster.replaceChildren(...options);
      cluster.value = data.pools.some((p) => p.cluster_id === keep) ? keep : "";
      if (!data.pools.length) showError(`No pools on ${dateInput.value}: pick another date.`);
      else schedule(0);
    } finally {
      cluster.disabled = false;
    }
  }

  function updateCounts() {
    for (const count of form.querySelectorAll("[data-count-for]")) {
      const n = checked(count.dataset.countFor).length;
      count.textContent = n ? String(n) : "";
    }
  }

  function switchMode() {
    const whatIf = mode() === "what_if";
    document.getElementById("what-if").hidden = !whatIf;
    document.getElementById("real-user").hidden = whatIf;
  }

  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("input", (event) => {
    const target = event.target;
    if (target === dateInput) return; // "change" reloads the pools
    if (target.name === "mode") switchMode();
    if (target.type === "checkbox") updateCounts();
    if (target === timeInput) timeOut.textContent = hhmm(Number(timeInput.value));
    schedule(target.name === "token" || target.name === "user_id" ? 300 : 80);
  });
  form.addEventListener("change", (event) => {
    if (event.target === dateInput && dateInput.value) loadPools();
  });
  document.getElementById("reset-weights").addEventListener("click", () => {
    for (const input of form.querySelectorAll("input[data-weight]")) input.value = input.dataset.default;
    schedule(0);
  });

  switchMode();
  updateCounts();
  run();
})();
