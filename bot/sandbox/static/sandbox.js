// The sandbox page: polls /_sandbox/ui, renders Block Kit, and sends what a person does to
// /_sandbox/act/* (the sandbox then delivers it to the app as Slack would). No build step.
"use strict";

const state = { channel: null, user: null, version: -1, key: "", data: null, modalId: null, home: false };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function unescapeSlack(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function userName(id) {
  const u = (state.data && state.data.users.find((x) => x.id === id)) || null;
  return u ? u.name : id;
}

function channelName(id) {
  const c = (state.data && state.data.channels.find((x) => x.id === id)) || null;
  return c ? c.name || id : id;
}

// Slack mrkdwn to safe HTML: escape everything, then add the few tags mrkdwn means.
function mrkdwn(text) {
  const parts = [];
  let last = 0;
  for (const m of text.matchAll(/<([^<>]+)>/g)) {
    parts.push(inline(escapeHtml(unescapeSlack(text.slice(last, m.index)))));
    parts.push(special(m[1]));
    last = m.index + m[0].length;
  }
  parts.push(inline(escapeHtml(unescapeSlack(text.slice(last)))));
  return parts.join("");
}

function inline(html) {
  return html
    .replace(/```([\s\S]+?)```/g, "<pre><code>$1</code></pre>")
    .replace(/`([^`\n]+)`/g, "<code>$1</code>")
    .replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1<b>$2</b>")
    .replace(/(^|[\s(])_([^_\n]+)_/g, "$1<i>$2</i>")
    .replace(/(^|[\s(])~([^~\n]+)~/g, "$1<s>$2</s>")
    .replace(/\n/g, "<br>");
}

function special(token) {
  const [target, label] = token.split("|", 2);
  if (target.startsWith("@")) return `<span class="mention">@${escapeHtml(userName(target.slice(1)))}</span>`;
  if (target.startsWith("#")) return `<span class="mention">#${escapeHtml(label || channelName(target.slice(1)))}</span>`;
  if (target.startsWith("!date^")) return slackDate(target, label);
  if (target.startsWith("!")) return `<span class="mention">@${escapeHtml((label || target.slice(1)).split("^")[0])}</span>`;
  if (/^https?:\/\//.test(target)) {
    return `<a href="${escapeHtml(unescapeSlack(target))}" target="_blank" rel="noopener">${escapeHtml(unescapeSlack(label || target))}</a>`;
  }
  return escapeHtml(unescapeSlack(token));
}

// <!date^EPOCH^FORMAT|fallback>: a time in the reader's own zone, as Slack shows it; the fallback on hover
// (and instead, when the epoch is unreadable).
function slackDate(target, fallback) {
  const [, epoch, format] = target.split("^");
  const when = new Date(Number(epoch) * 1000);
  const shown = fallback ? unescapeSlack(fallback) : "";
  if (!/^\d+$/.test(epoch || "") || Number.isNaN(when.getTime())) return escapeHtml(shown || target);
  const clock = { hour: "2-digit", minute: "2-digit" };
  const options = (format || "").includes("{time_secs}") && !(format || "").includes("{date")
    ? { ...clock, second: "2-digit" }
    : { month: "short", day: "numeric", ...clock };
  const text = when.toLocaleString(undefined, options);
  return `<time class="slack-date" datetime="${when.toISOString()}" title="${escapeHtml(shown)}">${escapeHtml(text)}</time>`;
}

function textNode(obj, tag) {
  const node = el(tag || "span");
  if (!obj) return node;
  if (obj.type === "mrkdwn") node.innerHTML = mrkdwn(obj.text || "");
  else node.textContent = unescapeSlack(obj.text || "");
  return node;
}

function button(elem, ctx) {
  const b = el("button", {
    class: `slack-button ${elem.style || ""}`,
    type: "button",
    "data-action-id": elem.action_id || "",
    "data-block-id": ctx.blockId || "",
    "data-ts": ctx.ts,
  }, unescapeSlack((elem.text && elem.text.text) || ""));
  if (elem.url) {
    b.onclick = () => window.open(elem.url, "_blank", "noopener");
    return b;
  }
  b.onclick = async () => {
    if (elem.confirm) {
      const c = elem.confirm;
      const question = [c.title && c.title.text, c.text && c.text.text].filter(Boolean).join("\n\n");
      if (!window.confirm(question)) return;
    }
    b.disabled = true;
    if (ctx.view !== undefined) await act("view_click", { action_id: elem.action_id, view_id: ctx.view });  // App Home (null) or a modal
    else await act("click", { ts: ctx.ts, action_id: elem.action_id, block_id: ctx.blockId || null });
    b.disabled = false;
  };
  return b;
}

function element(elem, ctx) {
  if (!elem) return null;
  if (elem.type === "button") return button(elem, ctx);
  if (elem.type === "image") return el("img", { src: elem.image_url, alt: elem.alt_text || "" });
  if (elem.type === "plain_text_input") {
    const input = el(elem.multiline ? "textarea" : "input", { "data-action-id": elem.action_id || "" });
    input.value = elem.initial_value || "";
    return input;
  }
  if (["static_select", "multi_static_select", "users_select"].includes(elem.type)) return select(elem);
  return el("span", { class: "unsupported" }, `[${elem.type}]`);
}

// Selects as Slack's client shows them; the submitted state takes the shape Slack sends for each type.
function select(elem) {
  const users = elem.type === "users_select";
  const options = users
    ? state.data.users.filter((u) => !u.is_bot).map((u) => ({ value: u.id, text: { text: u.name } }))
    : elem.options || [];
  const node = el("select", { "data-action-id": elem.action_id || "", "data-type": elem.type, multiple: elem.type === "multi_static_select" },
    elem.type === "multi_static_select" ? null : el("option", { value: "" }, "Choose…"),
    options.map((o) => el("option", { value: o.value }, unescapeSlack(o.text.text || ""))));
  node.value = users ? elem.initial_user || "" : (elem.initial_option && elem.initial_option.value) || "";
  return node;
}

function selected(node) {
  const type = node.dataset.type;
  if (type === "multi_static_select") return { type, selected_options: [...node.selectedOptions].map((o) => ({ value: o.value })) };
  if (type === "users_select") return { type, selected_user: node.value || null };
  return { type, selected_option: node.value ? { value: node.value } : null };
}

function renderBlocks(blocks, ts, view) {
  return blocks.map((block) => {
    const ctx = { ts, blockId: block.block_id, view };
    switch (block.type) {
      case "header":
        return el("div", { class: "block-header" }, unescapeSlack(block.text.text || ""));
      case "divider":
        return el("hr", { class: "block-divider" });
      case "section": {
        const body = el("div", {}, block.text ? textNode(block.text, "div") : null);
        if (block.fields) body.append(el("div", { class: "fields" }, block.fields.map((f) => textNode(f, "div"))));
        return el("div", { class: "block-section", "data-block-id": block.block_id || "" }, body, element(block.accessory, ctx));
      }
      case "context":
        return el("div", { class: "block-context" }, block.elements.map((e) => (e.type === "image" ? element(e, ctx) : textNode(e))));
      case "actions":
        return el("div", { class: "block-actions", "data-block-id": block.block_id || "" }, block.elements.map((e) => element(e, ctx)));
      case "image":
        return el("div", { class: "block-image" }, el("img", { src: block.image_url, alt: block.alt_text || "" }));
      case "input":
        return el("label", { class: "block-input", "data-block-id": block.block_id || "" },
          textNode(block.label, "div"), element(block.element, ctx));
      default:
        return el("div", { class: "unsupported" }, `[${block.type} block]`);
    }
  });
}

function renderMessage(msg, ephemeral) {
  const who = msg.bot_id ? userName(msg.user) + " (app)" : userName(msg.user || "");
  const when = new Date(parseFloat(msg.ts) * 1000).toLocaleTimeString();
  const meta = el("div", { class: "meta" },
    el("b", {}, ephemeral ? (msg.source === "slack" ? "Slackbot" : userName(state.data.bot.user_id) + " (app)") : who),
    ` ${when}`, msg.edited ? " (edited)" : "", ephemeral ? " · Only visible to you" : "");
  if (!ephemeral) {  // the message shortcut, from the message's "More actions" menu in Slack
    const more = el("span", { class: "thread-link", title: "Open incident from this message" }, " ⋯ Open incident");
    more.onclick = () => act("message_shortcut", { ts: msg.ts, callback_id: "incident_from_message" });
    meta.append(more);
  }
  const content = msg.blocks && msg.blocks.length ? renderBlocks(msg.blocks, msg.ts) : [textNode({ type: "mrkdwn", text: msg.text || "" }, "div")];
  const node = el("div", { class: `message${ephemeral ? " ephemeral" : ""}`, "data-ts": msg.ts }, meta, content);
  if (!ephemeral && msg.replies !== undefined) {
    const link = el("span", { class: "thread-link" }, msg.replies.length ? `${msg.replies.length} repl${msg.replies.length === 1 ? "y" : "ies"} · reply` : "Reply in thread");
    link.onclick = () => setThread(msg.ts);
    node.append(link);
    if (msg.replies.length) node.append(el("div", { class: "thread" }, msg.replies.map((r) => renderMessage(r, false))));
  }
  return node;
}

function setThread(ts) {
  $("composer-thread").value = ts || "";
  $("composer-thread-label").textContent = ts ? `replying in thread ${ts} ✕` : "";
  $("composer-input").focus();
}

function renderModal(views) {
  const modal = $("modal");
  const view = views[0];
  if (!view) { modal.hidden = true; modal.replaceChildren(); state.modalId = null; return; }
  const errors = Object.entries(view.errors || {}).map(([k, v]) => el("div", { class: "error" }, `${k}: ${v}`));
  if (state.modalId === view.id + view.hash + JSON.stringify(view.errors || {})) return;
  const shown = modal.querySelector(".errors");
  if (shown && state.modalId && state.modalId.startsWith(view.id + view.hash)) {  // errors only: keep what was typed
    shown.replaceChildren(...errors);
    state.modalId = view.id + view.hash + JSON.stringify(view.errors || {});
    return;
  }
  state.modalId = view.id + view.hash + JSON.stringify(view.errors || {});
  const submit = view.submit ? el("button", { class: "slack-button primary", type: "button" }, view.submit.text) : null;
  const close = el("button", { class: "slack-button", type: "button" }, (view.close && view.close.text) || "Close");
  const dialog = el("div", { class: "dialog", "data-view-id": view.id },
    el("h3", {}, (view.title && view.title.text) || ""), renderBlocks(view.blocks || [], "", view.id),
    el("div", { class: "errors" }, errors),
    el("footer", {}, close, submit));
  close.onclick = () => act("view_close", { view_id: view.id });
  if (submit) {
    submit.onclick = () => {
      const values = {};
      dialog.querySelectorAll("[data-block-id]").forEach((block) => {
        block.querySelectorAll("input[data-action-id], textarea[data-action-id]").forEach((input) => {
          values[block.dataset.blockId] = values[block.dataset.blockId] || {};
          values[block.dataset.blockId][input.dataset.actionId] = { type: "plain_text_input", value: input.value };
        });
        block.querySelectorAll("select[data-action-id]").forEach((input) => {
          values[block.dataset.blockId] = values[block.dataset.blockId] || {};
          values[block.dataset.blockId][input.dataset.actionId] = selected(input);
        });
      });
      act("view_submit", { view_id: view.id, values });
    };
  }
  modal.replaceChildren(dialog);
  modal.hidden = false;
}

function render() {
  const d = state.data;
  $("team").textContent = `${d.team.name}`;
  const select = $("user-select");
  if (!select.options.length) {
    d.users.filter((u) => !u.is_bot).forEach((u) => select.append(el("option", { value: u.id }, `${u.name} (${u.id})`)));
    select.value = state.user;
  }
  const home = el("li", { class: state.home ? "active" : "", "data-channel": "home" }, "🏠 App Home");
  home.onclick = () => { state.home = true; act("home", {}); };  // app_home_opened: the app publishes the view
  $("channel-list").replaceChildren(home, ...d.channels.filter((c) => !c.is_im || c.user === state.user).map((c) => {
    const li = el("li", { class: !state.home && c.id === state.channel ? "active" : "", "data-channel": c.id },
      c.is_im ? `@ ${userName(state.data.bot.user_id)} (DM)` : `${c.is_private ? "🔒" : "#"} ${c.name}${c.is_archived ? " (archived)" : ""}`);
    li.onclick = () => { state.home = false; state.channel = c.id; location.hash = c.id; setThread(null); refresh(true); };
    return li;
  }));
  if (state.home) { renderHome(d.home); renderModal(d.views); return; }
  const chan = d.channels.find((c) => c.id === state.channel);
  $("channel-title").textContent = chan ? (chan.is_im ? "Direct messages" : `#${chan.name}`) : state.channel;
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const items = d.messages.map((m) => renderMessage(m, false))
    .concat(d.ephemerals.filter((e) => !e.thread_ts).map((e) => renderMessage(e, true)));
  items.sort((a, b) => parseFloat(a.dataset.ts) - parseFloat(b.dataset.ts));
  box.replaceChildren(...items);
  if (atBottom) box.scrollTop = box.scrollHeight;
  $("delivery-list").replaceChildren(...d.deliveries.slice().reverse().map((x) =>
    el("li", { class: x.ok ? "" : "failed" }, `${x.ok ? "✓" : "✗"} ${x.kind} ${x.label} · ${x.status ?? x.failure ?? "acked"} · ${x.ack_ms} ms${x.retries ? ` · ${x.retries} retries` : ""}`)));
  $("app-status").textContent = d.app_connected ? "" : "No app connected: start with --app-url, or run the app in Socket Mode, to send commands and clicks.";
  renderGuide(d.guide || []);
  renderModal(d.views);
}

// App Home: the view the app published for the acting user (views.publish); its buttons are view clicks.
function renderHome(view) {
  $("channel-title").textContent = "App Home";
  const box = $("messages");
  box.replaceChildren(view ? el("div", { class: "message home" }, renderBlocks(view.blocks || [], "", null))
    : el("p", {}, "Nothing published yet: the app publishes when the Home tab opens."));
}

// The demo's guide: shown until dismissed; the dismissal is remembered in this browser.
const GUIDE_KEY = "remediate.sandbox.guide-dismissed";

function renderGuide(lines) {
  const box = $("guide");
  let dismissed = false;
  try { dismissed = localStorage.getItem(GUIDE_KEY) === "1"; } catch (err) { dismissed = false; }
  box.hidden = !lines.length || dismissed;
  if (box.hidden || $("guide-list").childElementCount === lines.length) return;
  $("guide-list").replaceChildren(...lines.map((line) => {
    const li = el("li");
    li.innerHTML = mrkdwn(line);
    return li;
  }));
}

$("guide-close").onclick = () => {
  try { localStorage.setItem(GUIDE_KEY, "1"); } catch (err) { /* private mode: hide for this visit */ }
  $("guide").hidden = true;
};

async function refresh(force) {
  const key = `${state.channel}|${state.user}`;
  try {
    const res = await fetch(`/_sandbox/ui?channel=${encodeURIComponent(state.channel || "")}&user=${encodeURIComponent(state.user || "")}`);
    const data = await res.json();
    if (!res.ok) { notice(data.error || `HTTP ${res.status}`); return; }
    if (!force && data.version === state.version && key === state.key) return;
    state.version = data.version; state.key = key; state.data = data;
    state.channel = data.channel; state.user = data.user;
    render();
  } catch (err) {
    notice(`sandbox unreachable: ${err}`);
  }
}

function notice(text) { $("notice").textContent = text; }

async function act(action, body) {
  const res = await fetch(`/_sandbox/act/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: state.user, channel: state.channel, ...body }),
  });
  const data = await res.json();
  if (!data.ok) notice(`refused: ${data.error}`);
  else if (data.delivery) {
    const d = data.delivery;
    notice(`${d.kind} ${d.label}: ${d.ok ? "acked" : "FAILED (" + (d.failure || d.status) + ")"} in ${d.ack_ms} ms`);
  }
  refresh(true);
  return data;
}

$("composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("composer-input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  if (text.startsWith("/")) await act("command", { text });
  else await act("message", { text, thread_ts: $("composer-thread").value || null });
});
$("composer-thread-label").onclick = () => setThread(null);
$("user-select").onchange = (ev) => { state.user = ev.target.value; if (state.home) act("home", {}); else refresh(true); };
$("shortcut-declare").onclick = () => act("shortcut", { callback_id: "declare_incident" });  // the global shortcut

state.channel = location.hash ? location.hash.slice(1) : null;
refresh(true);
setInterval(() => refresh(false), 1000);
