// erasable console: one page, views drawn from the JSON API with the signed-in key.
//
// Security rules this file keeps: every piece of data reaches the page as text (text nodes,
// textContent, attribute values), never as HTML; the key lives in sessionStorage only and
// travels in the Authorization header, never in a URL; the only URLs built from data are
// same-origin API paths with encoded parts.
"use strict";

(() => {
  const KEY = "erasable.key";
  const MODEL = "erasable.model";
  const AUDIT = "erasable.audit";
  const PAGE_SIZE = 50;
  const state = { key: null, who: null, models: [] };

  // -- building the page -------------------------------------------------------------------

  /** An element with attributes (on* names add listeners) and children (strings become text nodes). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  function card(...children) {
    return el("section", { class: "card" }, ...children);
  }

  function table(headers, rows, numeric = []) {
    const head = el("tr", {}, headers.map((h, i) => el("th", { class: numeric.includes(i) ? "num" : null }, h)));
    const body = rows.map((cells) =>
      el("tr", {}, cells.map((c, i) => el("td", { class: numeric.includes(i) ? "num" : null }, c))),
    );
    return el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, body)));
  }

  function facts(pairs) {
    return el("dl", { class: "facts" }, pairs.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  }

  function shortHash(hash) {
    return el("code", { title: hash }, hash.slice(0, 16) + "…");
  }

  function when(iso) {
    return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, " UTC") : "—";
  }

  function plural(n, one, many = one + "s") {
    return `${n} ${n === 1 ? one : many}`;
  }

  function notice(text) {
    return el("p", { class: "notice", role: "status" }, text);
  }

  function errorLine(error) {
    return el("p", { class: "error", role: "alert" }, error.message || String(error));
  }

  /** Run ``work`` with ``button`` disabled and labelled ``busy``; errors land in ``out``. */
  async function busy(button, text, out, work) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = text;
    try {
      await work();
    } catch (error) {
      out.replaceChildren(errorLine(error));
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }

  /** Ask before something that cannot be undone; resolves true only when the user confirms. */
  function confirmAction(title, body, okLabel) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-body").replaceChildren(...body);
    document.getElementById("confirm-ok").textContent = okLabel;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      document.getElementById("confirm-cancel").focus();
    });
  }

  // -- the API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** A same-origin path from literal parts and data: every odd-numbered part is data, and is encoded. */
  function path(...parts) {
    return parts.map((p, i) => (i % 2 ? encodeURIComponent(p) : p)).join("");
  }

  /** A request with the key in the Authorization header; the answer's JSON, or an ApiError. */
  async function api(method, url, body) {
    const headers = { Authorization: "Bearer " + state.key };
    const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      if (response.status === 401 && state.who) signOut("The key is no longer valid: sign in again.");
      throw new ApiError(response.status, describe(data, response));
    }
    return data;
  }

  function describe(data, response) {
    const detail = data && data.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => (d.loc ? d.loc.join(".") + ": " : "") + d.msg).join("; ");
    return `${response.status} ${response.statusText}`;
  }

  /** Whether the signed-in key grants ``scope`` on ``model`` -- the rule of ApiKey.allows. */
  function allows(scope, model) {
    const who = state.who;
    if (!who) return false;
    if (model !== null && model !== undefined && who.model !== "*" && who.model !== model) return false;
    return who.scopes.includes(scope) || who.scopes.includes("admin");
  }

  // -- signing in --------------------------------------------------------------------------

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    state.key = null;
    state.who = null;
    showSignIn(message);
  }

  function showSignIn(message) {
    document.getElementById("nav").hidden = true;
    document.getElementById("who").hidden = true;
    const input = el("input", {
      id: "key", type: "password", autocomplete: "off", spellcheck: "false", required: true,
      placeholder: "erasable_…", "aria-describedby": "key-help",
    });
    const out = el("div", { "aria-live": "polite" }, message ? notice(message) : null);
    const submit = el("button", { type: "submit" }, "Sign in");
    // The input has no name: a form submitted without this script sends nothing anywhere.
    const form = el("form", { class: "card signin", id: "sign-in" },
      el("h1", {}, "Sign in"),
      el("label", { for: "key" }, "API key", input),
      el("p", { id: "key-help", class: "muted" },
        "A key made by ", el("code", {}, "erasable keys create"), ". It is kept in this tab's session storage ",
        "and sent only in the Authorization header of requests to this server."),
      el("div", { class: "actions" }, submit), out);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(submit, "Signing in…", out, async () => {
        state.key = input.value.trim();
        try {
          state.who = await api("GET", "/v1/whoami");
        } catch (error) {
          state.key = null;
          throw error.status === 401 ? new Error("That key is not valid.") : error;
        }
        sessionStorage.setItem(KEY, state.key);
        input.value = "";
        await signedIn();
      });
    });
    document.getElementById("main").replaceChildren(form);
    input.focus();
  }

  async function signedIn() {
    const who = state.who;
    document.getElementById("who-key").textContent =
      `key ${who.key_id} · ${who.scopes.join(", ")} · ${who.model === "*" ? "every model" : "model " + who.model}`;
    document.getElementById("nav").hidden = false;
    document.getElementById("who").hidden = false;
    await refreshModels();
    route();
  }

  async function refreshModels() {
    state.models = await api("GET", "/v1/models");
  }

  function currentModel() {
    const chosen = sessionStorage.getItem(MODEL);
    return state.models.includes(chosen) ? chosen : state.models[0] || null;
  }

  function modelPicker(onChange) {
    const select = el("select", { id: "model" }, state.models.map((name) => el("option", { value: name }, name)));
    select.value = currentModel();
    let shown = select.value;
    select.addEventListener("change", () => {
      // A change event for the model already shown (a script's or a test driver's; a person's choice of the same
      // option fires none) changes nothing: redrawing would drop what the user typed.
      if (select.value === shown) return;
      shown = select.value;
      sessionStorage.setItem(MODEL, select.value);
      onChange(select.value);
    });
    return el("label", { for: "model" }, "Model", select);
  }

  // -- views -------------------------------------------------------------------------------

  const views = {
    models: showModels,
    subjects: showSubjects,
    receipt: showReceipt,
    events: showEvents,
    playground: showPlayground,
    audit: showAudit,
  };

  function route() {
    if (!state.who) return;
    let parts;
    try {
      parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    } catch {
      parts = []; // a malformed address: show the Models page
    }
    const [name, ...args] = parts;
    const view = Object.hasOwn(views, name ?? "") ? name : "models";
    for (const link of document.querySelectorAll("nav a")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    // Each rendering draws into its own root: a slow answer of a view left behind lands nowhere.
    const root = el("div", { id: "view-" + view });
    const main = document.getElementById("main");
    main.replaceChildren(root);
    main.focus();
    views[view](root, args).catch((error) => root.append(errorLine(error)));
  }

  function noModels(root) {
    root.append(card(el("p", { class: "empty" }, "No models yet. ",
      allows("admin", null) ? el("a", { href: "#/models" }, "Create one on the Models page.") : "Ask an admin to create one.")));
  }

  // Models: one request for the table; create and delete with an admin key.
  async function showModels(root) {
    root.append(el("h1", {}, "Models"));
    const listing = card(el("p", { class: "muted" }, "Loading…"));
    root.append(listing);
    const models = await api("GET", "/v1/overview");
    const rows = models.map((m) => {
      const verification = el("span", {}, lastVerification(m.name));
      const out = el("span", {});
      const actions = [];
      if (allows("admin", m.name)) {
        const verify = el("button", { type: "button", class: "quiet" }, "Verify");
        verify.addEventListener("click", () => busy(verify, "Verifying…", out, async () => {
          await runVerification(m.name);
          verification.replaceChildren(lastVerification(m.name));
          out.replaceChildren();
        }));
        const remove = el("button", { type: "button", class: "danger", "data-action": "delete-model" }, "Delete");
        remove.addEventListener("click", async () => {
          const sure = await confirmAction(`Delete model ${m.name}?`, [
            el("p", {}, `Its ${m.count} samples, its event log and its keys are erased, their bytes included. `,
              "This cannot be undone, and no receipt remains."),
          ], "Delete model");
          if (!sure) return;
          await busy(remove, "Deleting…", out, async () => {
            await api("DELETE", path("/v1/models/", m.name));
            await refreshModels();
            route();
          });
        });
        actions.push(verify, " ", remove);
      }
      const open = el("a", { href: "#/subjects" }, m.name);
      open.addEventListener("click", () => sessionStorage.setItem(MODEL, m.name));
      return [
        open, m.encoder || `vectors (${m.input_dim}-d)`, m.head, m.feature_map, String(m.count), String(m.class_count),
        shortHash(m.certificate), `${m.last_event.kind} #${m.last_event.seq} · ${when(m.last_event.time)}`,
        verification, el("span", {}, actions, out),
      ];
    });
    const hidden = state.models.filter((name) => !allows("predict", name));
    listing.replaceChildren(
      models.length
        ? table(["Name", "Encoder", "Head", "Features", "Samples", "Classes", "Certificate", "Last event", "Verification", ""],
          rows, [4, 5])
        : el("p", { class: "empty" }, hidden.length ? "No model this key may predict on." : "No models yet."),
      hidden.length ? notice(`Without the predict scope this key sees no summary of ${hidden.join(", ")}; `
        + "the other pages offer what its scopes allow.") : null,
    );
    if (allows("admin", null)) root.append(createForm());
  }

  function lastVerification(name) {
    const saved = JSON.parse(sessionStorage.getItem("erasable.verified." + name) || "null");
    if (!saved) return el("span", { class: "muted" }, "not verified in this session");
    return saved.ok
      ? el("span", { class: "ok", title: saved.certificate }, `verified · ${when(saved.time)}`)
      : el("span", { class: "error" }, `FAILED · ${when(saved.time)}: ${saved.problem}`);
  }

  async function runVerification(name) {
    const result = await api("GET", path("/v1/models/", name, "/verify"));
    const problems = [];
    if (!result.chain_ok) problems.push("chain: " + result.chain_problem);
    if (result.certificate_recomputed !== result.certificate_recorded) problems.push("recomputed certificate differs");
    if (!result.live_ids_match_log) problems.push("live ids differ from the log");
    if (result.residues_erased === false) problems.push("bytes of forgotten samples are still in the write-ahead log");
    const saved = {
      ok: result.ok, time: new Date().toISOString(), certificate: result.certificate_recomputed,
      problem: problems.join("; ") || "the statistics are not those of the last event",
    };
    sessionStorage.setItem("erasable.verified." + name, JSON.stringify(saved));
    return result;
  }

  function createForm() {
    const name = el("input", { id: "new-name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}", maxlength: 64 });
    const kind = el("select", { id: "new-kind" },
      el("option", { value: "vectors" }, "vectors"), el("option", { value: "text" }, "text (all-MiniLM-L6-v2)"),
      el("option", { value: "text-mpnet" }, "text (all-mpnet-base-v2: more accurate, 5x slower)"));
    const dim = el("input", { id: "new-dim", type: "number", min: 1, max: 4096, value: 384 });
    const head = el("select", { id: "new-head" },
      el("option", { value: "ridge" }, "ridge"),
      el("option", { value: "kernel" }, "kernel (more accurate; each change solves n x n)"),
      ...["prototype", "gaussian", "memory"].map((h) => el("option", {}, h)));
    // The API's defaults (erasable.parameters) come first: random ReLU features, 4096 wide.
    const features = el("select", { id: "new-features" }, ["random_relu", "identity"].map((f) => el("option", {}, f)));
    const width = el("input", { id: "new-width", type: "number", min: 1, max: 4096, value: 4096 });
    const dimLabel = el("label", { for: "new-dim" }, "Input dimension", dim);
    const widthLabel = el("label", { for: "new-width" }, "Random features", width);
    kind.addEventListener("change", () => { dimLabel.hidden = kind.value !== "vectors"; });
    features.addEventListener("change", () => { widthLabel.hidden = features.value !== "random_relu"; });
    const submit = el("button", { type: "submit" }, "Create model");
    const out = el("div", { "aria-live": "polite" });
    const form = el("form", { class: "inline", id: "create-model" },
      el("label", { for: "new-name" }, "Name", name), el("label", { for: "new-kind" }, "Inputs", kind), dimLabel,
      el("label", { for: "new-head" }, "Head", head), el("label", { for: "new-features" }, "Feature map", features),
      widthLabel, submit);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(submit, "Creating…", out, async () => {
        const body = { name: name.value, head: head.value, feature_map: features.value };
        if (kind.value === "vectors") body.input_dim = Number(dim.value);
        else body.encoder = kind.value;
        if (features.value === "random_relu") body.width = Number(width.value);
        await api("POST", "/v1/models", body);
        sessionStorage.setItem(MODEL, body.name);
        await refreshModels();
        route();
      });
    });
    return card(el("h2", {}, "Create a model"), form, out);
  }

  // Subject search: what a model holds about a subject (or an id), and one Forget.
  async function showSubjects(root) {
    root.append(el("h1", {}, "Subject search"));
    if (!state.models.length) return noModels(root);
    const results = el("div", { id: "subject-results", "aria-live": "polite" });
    const by = el("select", { id: "search-by" }, el("option", { value: "subject" }, "subject"), el("option", { value: "id" }, "sample id"));
    const query = el("input", { id: "search-value", required: true, maxlength: 256, autocomplete: "off", spellcheck: "false" });
    const submit = el("button", { type: "submit" }, "Search");
    const scope = el("div", {});
    const picker = modelPicker(() => { results.replaceChildren(); describeScope(); });
    const form = el("form", { class: "inline", id: "subject-search" }, picker,
      el("label", { for: "search-by" }, "Search by", by), el("label", { for: "search-value" }, "Subject or id", query), submit);
    const model = () => document.getElementById("model").value;
    function describeScope() {
      const can = allows("forget", model());
      submit.disabled = !can;
      scope.replaceChildren(...(can ? [] : [notice(`This key lacks the forget scope on model ${model()}: `
        + "it can neither look up nor forget what the model holds about a subject.")]));
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(submit, "Searching…", results, () => lookUp(model(), by.value, query.value.trim(), results));
    });
    root.append(card(form, scope), results);
    describeScope();
    if (!submit.disabled) query.focus();
  }

  async function lookUp(model, by, value, results) {
    const found = await api("GET", path("/v1/models/", model, "/samples?" + by + "=", value));
    const named = by === "subject" ? `subject “${value}”` : `sample id “${value}”`;
    if (!found.count) {
      results.replaceChildren(card(el("p", { class: "empty", id: "nothing-found" },
        `Model ${model} holds nothing about ${named} (as of event ${found.seq}).`)));
      return;
    }
    const classes = table(["Class", "Samples"], found.classes.map((c) => [String(c.label), String(c.count)]), [1]);
    const samples = table(["Id", "Subject", "Class", "Source", "Learned"],
      found.samples.map((s) => [el("code", {}, s.id), s.subject ?? "—", String(s.label), s.source ?? "—", when(s.learned_at)]));
    const out = el("div", { "aria-live": "polite" });
    const section = card(
      el("h2", {}, `${found.count} sample${found.count === 1 ? "" : "s"} of ${named} in model ${model}`),
      facts([["As of event", String(found.seq)], ["First learned", when(found.first_learned)],
        ["Last learned", when(found.last_learned)]]),
      el("h2", {}, "Classes"), classes,
      el("h2", {}, "Samples"), samples,
      found.truncated ? notice(`Only the first ${found.samples.length} samples are listed; all ${found.count} would be forgotten.`) : null,
      el("p", { class: "muted" }, "Embeddings are not shown: they never leave the server."),
    );
    if (allows("forget", model)) {
      const forget = el("button", { type: "button", class: "danger", id: "forget", "data-action": "forget" },
        `Forget ${named}`);
      forget.addEventListener("click", () => confirmForget(model, by, value, named, found, forget, out));
      const audit = el("button", { type: "button", class: "quiet", id: "audit-first" }, "Audit this forget first");
      audit.addEventListener("click", () => {
        // Handed over in session storage, not in the address: a subject stays out of the history.
        sessionStorage.setItem(AUDIT, JSON.stringify({ model, by, value }));
        location.hash = "#/audit";
      });
      section.append(el("div", { class: "actions" }, forget, audit), out);
    }
    results.replaceChildren(section);
  }

  async function confirmForget(model, by, value, named, found, button, out) {
    const ids = found.samples.map((s) => s.id);
    const shown = ids.slice(0, 50);
    const sure = await confirmAction(`Forget ${named} from model ${model}?`, [
      el("p", {}, `Exactly these ${found.count} sample${found.count === 1 ? "" : "s"} (as of event ${found.seq}) `
        + "are removed from the model and the ledger, statistics and bytes:"),
      el("ul", {}, found.classes.map((c) => el("li", {}, `${c.count} of class “${String(c.label)}”`))),
      el("p", {}, "Ids:"),
      el("ul", { class: "mono" }, shown.map((id) => el("li", {}, id)),
        ids.length > shown.length || found.truncated ? el("li", {}, `… and ${found.count - shown.length} more`) : null),
      el("p", {}, "This cannot be undone. The receipt names the samples only by salted hashes."),
    ], `Forget ${found.count} sample${found.count === 1 ? "" : "s"}`);
    if (!sure) return;
    await busy(button, "Forgetting…", out, async () => {
      const body = by === "subject" ? { subjects: [value] } : { ids: [value] };
      const answer = await api("POST", path("/v1/models/", model, "/forget"), body);
      if (answer.residues_erased === false) sessionStorage.setItem(residueKey(model, answer.seq), "1");
      location.hash = path("#/receipt/", model, "/", String(answer.seq));
    });
  }

  /** Where this tab remembers that a forget was answered 202: its bytes were not yet erased from the store's files. */
  function residueKey(model, seq) {
    return `erasable.residue.${model}.${seq}`;
  }

  // Receipt of one forget: the event, its hashes, how to check it; JSON download and print.
  async function showReceipt(root, [model, seq]) {
    root.append(el("h1", {}, "Deletion receipt"));
    if (!model || !/^\d+$/.test(seq || "")) {
      root.append(card(el("p", { class: "empty" }, "Open a receipt from the event log, or forget a subject.")));
      return;
    }
    const receipt = await api("GET", path("/v1/models/", model, "/receipts/", seq));
    const event = receipt.event;
    const request = event.request || {};
    const how = request.by === "classes"
      ? "classes " + request.classes.map((c) => `“${String(c)}”`).join(", ")
      : request.by === "subjects" ? "subject (every sample of it)" : "sample ids";
    const origin = location.origin;
    const commands = [
      `erasable ledger verify ${model} --store LEDGER`,
      `curl -H "Authorization: Bearer $TOKEN" ${origin}${receipt.verify_route}`,
      `curl -H "Authorization: Bearer $TOKEN" "${origin}/v1/models/${model}/events?after=${event.seq - 1}&limit=1"`,
    ].join("\n");
    const out = el("div", { "aria-live": "polite" });
    const download = el("button", { type: "button", id: "download-receipt" }, "Download JSON");
    download.addEventListener("click", () => saveFile(JSON.stringify(receipt, null, 2) + "\n", "application/json",
      `erasable-receipt-${model}-${event.seq}.json`));
    const print = el("button", { type: "button", class: "quiet" }, "Print");
    print.addEventListener("click", () => window.print());
    const actions = el("div", { class: "actions" }, download, print);
    if (allows("admin", model)) {
      const verify = el("button", { type: "button", class: "quiet" }, "Verify the ledger now");
      verify.addEventListener("click", () => busy(verify, "Verifying…", out, async () => {
        const result = await runVerification(model);
        out.replaceChildren(result.ok
          ? el("p", { class: "ok" }, `Verified: ${result.events} events chained, the stored samples refit to `
            + `certificate ${result.certificate_recomputed.slice(0, 16)}…, the live ids match the log.`)
          : el("p", { class: "error" }, "Verification FAILED: " + lastVerification(model).textContent));
      }));
      actions.append(verify);
    }
    if (sessionStorage.getItem(residueKey(model, event.seq))) {
      root.append(el("p", { class: "notice", id: "residue-pending" },
        "The forget is committed and no prediction uses these samples, but when it was answered old bytes of them "
        + "were still in the store's files (another reader held SQLite's write-ahead log). They are erased at the "
        + "next commit, verification or start that finds the log free; verifying the ledger tells whether they are gone."));
    }
    root.append(card(
      facts([
        ["Model", model], ["Event", String(event.seq)], ["Time", when(event.time)],
        ["Samples forgotten", String(event.count)], ["Named by", how],
        ["Certificate before", el("code", { id: "certificate-before" }, event.certificate_before)],
        ["Certificate after", el("code", { id: "certificate-after" }, event.certificate_after)],
        ["Chain hash", el("code", { id: "chain-hash" }, receipt.hash)],
        ["Previous hash", el("code", {}, receipt.previous_hash)],
      ]),
      el("details", {}, el("summary", {}, `Forgotten ids as salted SHA-256 hashes (${event.ids.length})`),
        el("pre", {}, event.ids.join("\n"))),
      actions, out,
    ), card(
      el("h2", {}, "How anyone can check it"),
      el("p", {}, "“Certificate after” is the SHA-256 certificate of the model's statistics after the forget: the "
        + "certificate a model fitted from scratch on the remaining samples has. The chain hash is "
        + "sha256(previous hash ‖ 0 ‖ canonical JSON of the event), so the event cannot be changed without "
        + "changing every later hash. Verifying the ledger re-checks every hash and refits the model from "
        + "the samples it stores:"),
      el("pre", { id: "verify-command" }, commands),
    ));
  }

  // Event log: paged, filtered by kind and time, with the chain's verification.
  async function showEvents(root) {
    root.append(el("h1", {}, "Event log"));
    if (!state.models.length) return noModels(root);
    const kind = el("select", { id: "event-kind" }, el("option", { value: "" }, "any"),
      ["create", "learn", "forget", "steer"].map((k) => el("option", { value: k }, k)));
    const since = el("input", { id: "event-since", type: "datetime-local", step: 1 });
    const until = el("input", { id: "event-until", type: "datetime-local", step: 1 });
    const submit = el("button", { type: "submit" }, "Show");
    const listing = el("div", { id: "event-list", "aria-live": "polite" });
    const chain = el("div", { id: "chain-status" });
    const model = () => document.getElementById("model").value;
    let cursors = [0];
    const picker = modelPicker(() => { cursors = [0]; chain.replaceChildren(); load(); });
    const form = el("form", { class: "inline", id: "event-filter" }, picker,
      el("label", { for: "event-kind" }, "Kind", kind), el("label", { for: "event-since" }, "From (local time)", since),
      el("label", { for: "event-until" }, "To", until), submit);
    form.addEventListener("submit", (event) => { event.preventDefault(); cursors = [0]; load(); });
    const verify = el("button", { type: "button", class: "quiet", id: "verify-chain" }, "Verify the chain");
    verify.addEventListener("click", () => busy(verify, "Verifying…", chain, async () => {
      const result = await runVerification(model());
      chain.replaceChildren(result.ok
        ? el("p", { class: "ok" }, `Chain of ${result.events} events unbroken; the stored samples refit to the recorded certificate.`)
        : el("p", { class: "error" }, "Verification FAILED: " + lastVerification(model()).textContent));
    }));
    root.append(card(form, el("div", { class: "actions" }, verify), chain), listing);

    let loading = 0;
    async function load() {
      const ticket = ++loading;
      if (!allows("admin", model())) {
        verify.hidden = true;
        listing.replaceChildren(card(notice(`Reading the log of model ${model()} needs the admin scope.`)));
        return;
      }
      verify.hidden = false;
      const after = cursors[cursors.length - 1];
      const params = new URLSearchParams({ after: String(after), limit: String(PAGE_SIZE) });
      if (kind.value) params.set("kind", kind.value);
      if (since.value) params.set("since", new Date(since.value).toISOString());
      if (until.value) params.set("until", new Date(until.value).toISOString());
      listing.replaceChildren(card(el("p", { class: "muted" }, "Loading…")));
      try {
        const page = await api("GET", path("/v1/models/", model(), "/events?" + params.toString()));
        if (ticket === loading) listing.replaceChildren(renderEvents(page, after));
      } catch (error) {
        if (ticket === loading) listing.replaceChildren(card(errorLine(error)));
      }
    }

    function renderEvents(page, after) {
      const rows = page.map(({ seq, hash, event }) => [
        String(seq), event.kind, when(event.time), event.count === undefined ? "—" : String(event.count),
        shortHash(event.certificate_after), shortHash(hash),
        event.kind === "forget" ? el("a", { href: path("#/receipt/", model(), "/", String(seq)) }, "receipt") : "",
      ]);
      const earlier = el("button", { type: "button", class: "quiet", disabled: cursors.length === 1 }, "← Earlier");
      earlier.addEventListener("click", () => { cursors.pop(); load(); });
      const later = el("button", { type: "button", class: "quiet", disabled: page.length < PAGE_SIZE }, "Later →");
      later.addEventListener("click", () => { cursors.push(page[page.length - 1].seq); load(); });
      return card(
        page.length ? table(["Seq", "Kind", "Time", "Samples", "Certificate after", "Hash", ""], rows, [0, 3])
          : el("p", { class: "empty" }, after ? "No more events." : "No events match."),
        el("div", { class: "actions" }, earlier, later),
      );
    }
    load();
  }

  // Playground: a text or a vector in, the top classes, the OOD score and the memory's neighbours out.
  async function showPlayground(root) {
    root.append(el("h1", {}, "Playground"));
    if (!state.models.length) return noModels(root);
    const body = el("div", {});
    let drawing = 0;
    const picker = modelPicker((name) => draw(name).catch((error) => body.replaceChildren(errorLine(error))));
    root.append(card(el("div", { class: "inline" }, picker), body));
    await draw(currentModel());

    async function draw(name) {
      const ticket = ++drawing;
      if (!allows("predict", name)) {
        body.replaceChildren(notice(`This key lacks the predict scope on model ${name}.`));
        return;
      }
      const info = await api("GET", path("/v1/models/", name));
      if (ticket !== drawing) return; // another model was chosen meanwhile
      const textual = info.config.encoder !== null && info.config.encoder !== undefined;
      const input = el("textarea", {
        id: "predict-input", required: true, spellcheck: "false",
        placeholder: textual ? "my card was declined" : `[0.12, -0.03, …]  (${info.config.input_dim} numbers)`,
      });
      const topK = el("input", { id: "predict-top", type: "number", min: 1, max: 20, value: Math.min(5, Math.max(1, info.classes.length)) });
      const submit = el("button", { type: "submit" }, "Predict");
      const out = el("div", { id: "prediction", "aria-live": "polite" });
      const form = el("form", { id: "predict-form", "data-model": name },
        el("label", { for: "predict-input" }, textual ? "Text" : `Vector (a JSON array of ${info.config.input_dim} numbers)`, input),
        el("div", { class: "inline actions" }, el("label", { for: "predict-top" }, "Top classes", topK), submit));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        busy(submit, "Predicting…", out, async () => {
          const request = { top_k: Number(topK.value) };
          if (textual) request.texts = [input.value];
          else request.vectors = [parseVector(input.value, info.config.input_dim)];
          const answer = await api("POST", path("/v1/models/", name, "/predict"), request);
          out.replaceChildren(renderPrediction(answer));
        });
      });
      body.replaceChildren(
        el("p", { class: "muted" }, `${plural(info.count, "sample")}, ${plural(info.classes.length, "class", "classes")}, `
          + `${info.config.head} head.`),
        info.count ? form : el("p", { class: "empty" }, "This model has no samples yet: learn something first."), out);
    }
  }

  function parseVector(text, dim) {
    let vector;
    try {
      vector = JSON.parse(text);
    } catch {
      throw new Error("The vector is not JSON: paste an array of numbers like [0.1, 0.2].");
    }
    if (!Array.isArray(vector) || !vector.every((x) => typeof x === "number")) {
      throw new Error("The vector must be a JSON array of numbers.");
    }
    if (vector.length !== dim) throw new Error(`The vector has ${vector.length} numbers; this model takes ${dim}.`);
    return vector;
  }

  function renderPrediction(answer) {
    const p = answer.predictions[0];
    const top = table(["Class", "Probability", ""], p.top.map((t) => [
      String(t.label), t.probability.toFixed(4), el("meter", { min: 0, max: 1, value: t.probability }),
    ]), [1]);
    const parts = [
      el("h2", {}, "Predicted: ", el("span", { id: "predicted-label" }, String(p.label))), top,
      facts([
        ["OOD score", el("span", { id: "ood-score" }, p.ood_score.toFixed(3))],
        ["", "1 − the top class probability, softened far from the training samples: the larger, the less the input looks like any class learned."],
        ["Answered by", `event ${answer.seq}, certificate ${answer.certificate.slice(0, 16)}…`],
      ]),
    ];
    if (p.neighbours) {
      parts.push(el("h2", {}, "Neighbours (the memory's evidence)"), p.neighbours.length
        ? table(["Id", "Class", "Similarity", "Weight"], p.neighbours.map((n) => [
          el("code", {}, n.id), String(n.label), n.similarity.toFixed(4), n.weight.toFixed(4)]), [2, 3])
        : el("p", { class: "empty" }, "No neighbours."));
    }
    return card(...parts);
  }

  // Audit: a forget request served on a copy and compared with a refit from scratch; nothing changes.
  async function showAudit(root) {
    root.append(el("h1", {}, "Audit a forget request"));
    if (!state.models.length) return noModels(root);
    const handed = JSON.parse(sessionStorage.getItem(AUDIT) || "null");
    sessionStorage.removeItem(AUDIT);
    if (handed && state.models.includes(handed.model)) sessionStorage.setItem(MODEL, handed.model);
    const by = el("select", { id: "audit-by" }, el("option", { value: "subject" }, "subject"), el("option", { value: "id" }, "sample id"));
    const value = el("input", { id: "audit-value", required: true, maxlength: 256, autocomplete: "off", spellcheck: "false" });
    const held = el("input", { id: "audit-held-out", type: "number", min: 1, max: 10000, value: 1000 });
    const submit = el("button", { type: "submit" }, "Run the audit");
    const scope = el("div", {});
    const report = el("div", { id: "audit-report", "aria-live": "polite" });
    const model = () => document.getElementById("model").value;
    const picker = modelPicker(() => { report.replaceChildren(); describeScope(); });
    const form = el("form", { class: "inline", id: "audit-form" }, picker, el("label", { for: "audit-by" }, "Forget by", by),
      el("label", { for: "audit-value" }, "Subject or id", value), el("label", { for: "audit-held-out" }, "Held-out samples", held), submit);
    function describeScope() {
      const can = allows("forget", model());
      submit.disabled = !can;
      scope.replaceChildren(...(can ? [] : [notice(`This key lacks the forget scope on model ${model()}: it cannot audit a forget.`)]));
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const started = performance.now();
      const progress = el("p", { class: "muted", role: "status" }, "Serving the request on a copy and refitting from scratch…");
      const ticker = setInterval(() => {
        progress.textContent = `Serving the request on a copy and refitting from scratch… ${Math.round((performance.now() - started) / 1000)} s`;
      }, 1000);
      report.replaceChildren(card(progress));
      const body = { held_out: Number(held.value) };
      body[by.value === "subject" ? "subjects" : "ids"] = [value.value.trim()];
      busy(submit, "Auditing…", report, async () => {
        try {
          report.replaceChildren(renderAudit(await api("POST", path("/v1/models/", model(), "/audit"), body)));
        } finally {
          clearInterval(ticker);
        }
      });
    });
    root.append(card(form, scope, el("p", { class: "muted" },
      "The model is not changed. The held-out samples, drawn from outside the request, are removed from the copy too: "
      + "they are the test set and the membership attack's non-members, unseen by both models compared.")), report);
    describeScope();
    if (handed) {
      by.value = handed.by;
      value.value = handed.value;
      if (!submit.disabled) form.requestSubmit();
    }
  }

  function renderAudit(audit) {
    const download = el("button", { type: "button", class: "quiet", id: "download-audit" }, "Download Markdown");
    download.addEventListener("click", () => saveFile(audit.markdown, "text/markdown", `erasable-audit-${audit.model}-${audit.seq}.md`));
    const plots = audit.plots.map((plot) => {
      const bytes = Uint8Array.from(atob(plot.png_base64), (c) => c.charCodeAt(0));
      return el("img", { src: URL.createObjectURL(new Blob([bytes], { type: "image/png" })), alt: plot.name, class: "plot",
        onload: (event) => URL.revokeObjectURL(event.target.src) });
    });
    return card(
      el("h2", { id: "audit-verdict", class: audit.certificates_equal ? "ok" : "error" }, "Verdict: " + audit.verdict),
      facts([
        ["Request", audit.request], ["Samples forgotten", String(audit.forgotten)], ["Held out", String(audit.held_out)],
        ["As of event", String(audit.seq)],
        ["Certificate served", el("code", { id: "audit-served" }, audit.certificate_served)],
        ["Certificate refit", el("code", { id: "audit-refit" }, audit.certificate_refit)],
      ]),
      el("h2", {}, "Metrics"),
      table(["Metric", "Served copy", "Refit from scratch"], audit.metrics.map((r) => [r.metric, r.served, r.refit])),
      el("h2", {}, "Divergence from the refit (held-out samples)"),
      table(["Predictions", "Label disagreement", "Mean total variation"], audit.divergence.map((d) =>
        [d.predictions, (100 * d.disagreement).toFixed(4) + " %", d.total_variation.toExponential(2)]), [1, 2]),
      plots.length ? el("div", { class: "plots" }, plots) : el("p", { class: "muted" }, "No plots: the server lacks matplotlib."),
      el("div", { class: "actions" }, download),
    );
  }

  function saveFile(text, type, name) {
    const link = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  // -- start -------------------------------------------------------------------------------

  window.addEventListener("hashchange", route);
  document.addEventListener("DOMContentLoaded", async () => {
    document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
    state.key = sessionStorage.getItem(KEY);
    if (!state.key) return showSignIn();
    try {
      state.who = await api("GET", "/v1/whoami");
    } catch {
      return signOut("The saved key was refused: sign in again.");
    }
    await signedIn();
  });
})();
