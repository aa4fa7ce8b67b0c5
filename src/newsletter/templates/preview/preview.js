// The preview page's script: renders /api/state into the page and, whenever /events
// announces a new version, fetches it again and swaps the frames in place, so the page
// never reloads and every frame keeps its scroll position.
//
// Each frame records the render it shows in data-loaded-version and the moment it
// finished loading in data-loaded-at (epoch ms); tests and the benchmark read them.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const frames = [$("frame-desktop"), $("frame-phone"), $("frame-web")];
  const linkResults = new Map();
  let shownVersion = 0; // the good render in the frames
  let dark = false;
  let fetching = false;
  let fetchAgain = false;

  // --- frames ------------------------------------------------------------------------

  function frameUrl(version) {
    return `/frame?v=${version}&dark=${dark ? 1 : 0}`;
  }

  function readScroll(frame) {
    try {
      const win = frame.contentWindow;
      return { x: win.scrollX, y: win.scrollY };
    } catch (error) {
      return { x: 0, y: 0 };
    }
  }

  function loadFrame(frame, version) {
    // A frame still loading has not shown its old position yet: keep the one saved before.
    if (!frame.pendingScroll) frame.pendingScroll = readScroll(frame);
    frame.pendingVersion = version;
    frame.src = frameUrl(version) + (frame.dataset.web ? "&web=1" : "");
  }

  function onFrameLoad(event) {
    const frame = event.target;
    if (!frame.pendingVersion) return;
    const scroll = frame.pendingScroll || { x: 0, y: 0 };
    try {
      frame.contentWindow.scrollTo(scroll.x, scroll.y);
    } catch (error) {
      // a cross-origin frame cannot be scrolled; ours never is
    }
    frame.dataset.loadedVersion = String(frame.pendingVersion);
    frame.dataset.loadedAt = String(performance.timeOrigin + performance.now());
    frame.pendingScroll = null;
    frame.pendingVersion = 0;
  }

  frames.forEach((frame) => frame.addEventListener("load", onFrameLoad));

  // --- inbox line, text, checks ----------------------------------------------------------

  function setText(id, text) {
    $(id).textContent = text;
  }

  function item(text, extra) {
    const li = document.createElement("li");
    li.textContent = text;
    if (extra) li.append(extra);
    return li;
  }

  function kb(bytes) {
    return `${(bytes / 1024).toFixed(1)} KB`;
  }

  function renderInbox(good) {
    const name = good.sender.name || good.sender.address;
    setText("inbox-avatar", name.trim().charAt(0).toUpperCase());
    setText("inbox-sender-name", good.sender.name);
    setText("inbox-sender-address", `<${good.sender.address}>`);
    setText("inbox-subject", good.subject);
    setText("inbox-preheader", good.preheader || "(no preheader: clients show the first text of the email)");
    const to = good.to.name ? `${good.to.name} <${good.to.email}>` : good.to.email;
    setText("inbox-to", good.to.example ? `${to} (an example person)` : to);
    document.title = `Preview · ${good.subject}`;
  }

  function renderSize(size) {
    const section = $("check-size");
    const status = { ok: "ok", warn: "warn", clipped: "bad" }[size.status];
    section.dataset.status = status;
    $("size-bar").style.width = `${Math.min(100, (100 * size.bytes) / size.clip_bytes)}%`;
    $("size-warn-mark").style.left = `${(100 * size.warn_bytes) / size.clip_bytes}%`;
    let text = `${kb(size.bytes)} of the ${kb(size.clip_bytes)} Gmail shows before clipping`;
    if (size.status === "warn") text += ` (over the ${kb(size.warn_bytes)} warning size)`;
    if (size.status === "clipped") text += ": Gmail will cut the footer with the unsubscribe link";
    setText("size-text", text);
  }

  function renderImages(images) {
    const missing = images.without_alt;
    $("check-images").dataset.status = missing.length ? "warn" : "ok";
    setText("images-summary", `${missing.length} of ${images.count} images`);
    $("images-list").replaceChildren(...missing.map((src) => item(src || "(no src)")));
  }

  // One row per distinct target: its check status, the target, what readers click on.
  function linkItem(target) {
    const li = document.createElement("li");
    const head = document.createElement("div");
    head.className = "link-head";
    const status = document.createElement("span");
    status.className = "status";
    const result = linkResults.get(target.url);
    if (result) {
      status.dataset.ok = String(result.ok);
      status.textContent = result.ok ? String(result.status) : "unreachable";
      status.title = result.detail;
    } else {
      status.textContent = target.checkable ? "not checked" : "not a web link";
    }
    const text = document.createElement("span");
    text.className = "link-text";
    text.textContent = target.texts.length ? target.texts.map((t) => `“${t}”`).join(", ") : "(no text)";
    head.append(status, text);
    const url = document.createElement("div");
    url.className = "link-url";
    url.textContent = target.count > 1 ? `${target.url}  ×${target.count}` : target.url;
    li.append(head, url);
    return li;
  }

  function distinctTargets(links) {
    const byUrl = new Map();
    for (const link of links) {
      const target = byUrl.get(link.url) || { url: link.url, checkable: link.checkable, texts: [], count: 0 };
      target.count += 1;
      if (link.text && !target.texts.includes(link.text)) target.texts.push(link.text);
      byUrl.set(link.url, target);
    }
    return [...byUrl.values()];
  }

  let currentLinks = [];

  function renderLinks(links) {
    currentLinks = links;
    const targets = distinctTargets(links);
    const web = targets.filter((target) => target.checkable);
    const broken = web.filter((target) => linkResults.has(target.url) && !linkResults.get(target.url).ok);
    $("check-links").dataset.status = broken.length ? "bad" : "ok";
    let summary = `${links.length} links to ${targets.length} places, ${web.length} on the web`;
    if (broken.length) summary += `; ${broken.length} unreachable`;
    setText("links-summary", summary);
    $("links-list").replaceChildren(...targets.map(linkItem));
  }

  function renderRecipients(recipients) {
    const section = $("check-recipients");
    const count = recipients.count;
    section.dataset.status = count ? "ok" : "warn";
    let text = count === null ? "unknown" : `${count.toLocaleString()} active on list “${recipients.list}”`;
    if (recipients.hint) text += `: ${recipients.hint}`;
    setText("recipients-text", text);
  }

  function renderWarnings(warnings) {
    $("check-warnings").hidden = warnings.length === 0;
    $("warnings-list").replaceChildren(...warnings.map((warning) => item(warning)));
  }

  function renderGood(good) {
    renderInbox(good);
    const pre = $("text-part");
    const top = pre.scrollTop;
    pre.textContent = good.text;
    pre.scrollTop = top;
    renderSize(good.size);
    renderImages(good.images);
    renderLinks(good.links);
    renderRecipients(good.recipients);
    renderWarnings(good.warnings);
    const at = new Date(good.rendered_at * 1000).toLocaleTimeString();
    setText("render-meta", `Rendered at ${at} in ${good.render_ms} ms (render ${good.version}).`);
  }

  function renderError(error) {
    $("error-banner").hidden = !error;
    setText("error-text", error || "");
  }

  // --- state ---------------------------------------------------------------------------

  async function fetchState() {
    // One request at a time; a version announced meanwhile triggers one more.
    if (fetching) {
      fetchAgain = true;
      return;
    }
    fetching = true;
    try {
      do {
        fetchAgain = false;
        const response = await fetch("/api/state", { cache: "no-store" });
        const state = await response.json();
        renderError(state.error);
        if (state.good && state.good.version !== shownVersion) {
          shownVersion = state.good.version;
          renderGood(state.good);
          frames.forEach((frame) => loadFrame(frame, shownVersion));
        }
        document.body.dataset.version = String(state.version);
      } while (fetchAgain);
    } catch (error) {
      setLive("offline", "server unreachable");
    } finally {
      fetching = false;
    }
  }

  function setLive(state, text) {
    const live = $("live");
    live.dataset.state = state;
    live.textContent = text;
  }

  function connect() {
    const events = new EventSource("/events");
    events.addEventListener("version", () => fetchState());
    events.onopen = () => setLive("live", "live: reloads on save");
    events.onerror = () => setLive("offline", "reconnecting…");
  }

  // --- toolbar -------------------------------------------------------------------------

  document.querySelectorAll(".views button").forEach((button) => {
    button.addEventListener("click", () => {
      document.body.dataset.view = button.dataset.view;
      document.querySelectorAll(".views button").forEach((other) => {
        other.setAttribute("aria-pressed", String(other === button));
      });
    });
  });

  $("dark-toggle").addEventListener("change", (event) => {
    dark = event.target.checked;
    document.body.dataset.dark = dark ? "1" : "0";
    if (shownVersion) frames.forEach((frame) => loadFrame(frame, shownVersion));
  });

  $("check-links-button").addEventListener("click", async (event) => {
    const button = event.target;
    button.disabled = true;
    button.textContent = "Checking…";
    try {
      // the server answers only the page it served: this run's token proves it
      const token = document.querySelector('meta[name="preview-token"]').content;
      const response = await fetch("/api/check-links", {
        method: "POST",
        headers: { "X-Preview-Token": token },
      });
      for (const result of await response.json()) linkResults.set(result.url, result);
      renderLinks(currentLinks);
    } finally {
      button.disabled = false;
      button.textContent = "Check links";
    }
  });

  fetchState();
  connect();
})();
