/* Boxes of everything a card holds, measured in the page with getBoundingClientRect (face3d e2e tests).
   Called by tests/e2e/layout.py as page.evaluate(source)(); returns {counts, problems, boxes, page}.
   A problem is a sentence naming the element and what is wrong with its box. */
(() => {
  "use strict";
  const TOL = 1.5; // px: sub-pixel rounding
  const box = (e) => {
    const b = e.getBoundingClientRect();
    return { l: b.left, t: b.top + window.scrollY, r: b.right, b: b.bottom + window.scrollY, w: b.width, h: b.height };
  };
  const shown = (e) => {
    const b = e.getBoundingClientRect();
    if (b.width < 1 || b.height < 1) { return false; }
    for (let n = e; n && n.nodeType === 1; n = n.parentElement) {
      const style = getComputedStyle(n);
      if (style.display === "none" || style.visibility === "hidden" || n.hidden) { return false; }
    }
    return true;
  };
  const inside = (a, c) => a.l >= c.l - TOL && a.t >= c.t - TOL && a.r <= c.r + TOL && a.b <= c.b + TOL;
  const meet = (a, c) => a.l < c.r - TOL && c.l < a.r - TOL && a.t < c.b - TOL && c.t < a.b - TOL;
  const fmt = (a) => `[${Math.round(a.l)},${Math.round(a.t)} ${Math.round(a.w)}x${Math.round(a.h)}]`;
  const label = (e) => {
    const owner = e.closest("[id]");
    const cls = typeof e.className === "string" ? e.className : (e.getAttribute("class") || "");
    return `${owner ? "#" + owner.id + " " : ""}${e.tagName.toLowerCase()}${cls ? "." + cls.trim().split(/\s+/).join(".") : ""}`;
  };
  const cardOf = (e) => e.closest(".card");
  const problems = [];
  const counts = { cards: 0, graphs: 0, colorbars: 0, tables: 0, images: 0, scenes: 0, pictures: 0 };
  const boxes = { graphs: {}, pictures: {}, scenes: {} };
  const root = document.querySelector(".face3d-tab-content") || document.body;

  const cards = Array.from(root.querySelectorAll(".card")).filter(shown);
  counts.cards = cards.length;

  // 1. everything a card holds stays inside the card
  const contained = [];
  root.querySelectorAll(".js-plotly-plot").forEach((gd) => {
    if (!shown(gd)) { return; }
    counts.graphs += 1;
    contained.push(gd);
    gd.querySelectorAll(".main-svg, .gl-container, g.colorbar, .imagelayer image, .hm image, .heatmaplayer image, .legend")
      .forEach((e) => { if (shown(e)) { contained.push(e); } });
  });
  // a wide table in a scrolling box (.table-responsive, e.g. six items side by side on a phone) scrolls
  // inside the card: the box must fit, the table may be wider
  root.querySelectorAll("table, img").forEach((e) => {
    if (shown(e)) { contained.push(e.closest(".table-responsive") || e); }
  });
  for (const e of contained) {
    const card = cardOf(e);
    if (!card) { problems.push(`${label(e)} is in no card`); continue; }
    const a = box(e), c = box(card);
    if (!inside(a, c)) { problems.push(`${label(e)} ${fmt(a)} overflows its card ${fmt(c)}`); }
  }

  // 2. graphs fill their own box (the figure follows its container) and never overlap each other or a table
  const graphs = Array.from(root.querySelectorAll(".js-plotly-plot")).filter(shown);
  for (const gd of graphs) {
    const host = gd.closest("[id]");
    const a = box(gd);
    boxes.graphs[host ? host.id : label(gd)] = a;
    const full = gd._fullLayout;
    if (full && (Math.abs(full.width - a.w) > 2 || Math.abs(full.height - a.h) > 2)) {
      problems.push(`${label(gd)}: the figure is ${Math.round(full.width)}x${Math.round(full.height)} in a ${Math.round(a.w)}x${Math.round(a.h)} box`);
    }
  }
  for (let i = 0; i < graphs.length; i++) {
    for (let j = i + 1; j < graphs.length; j++) {
      if (meet(box(graphs[i]), box(graphs[j]))) { problems.push(`${label(graphs[i])} overlaps ${label(graphs[j])}`); }
    }
    root.querySelectorAll("table").forEach((table) => {
      if (shown(table) && meet(box(graphs[i]), box(table))) { problems.push(`${label(graphs[i])} overlaps ${label(table)}`); }
    });
  }

  // 3. colour bars: inside their figure, beside or below the picture, never over any text
  const texts = Array.from(root.querySelectorAll("p, li, td, th, label, h1, h2, h3, h4, h5, h6, button, a, .card-header, .face3d-graph-title, .small, .alert"))
    .filter((e) => shown(e) && !e.closest(".js-plotly-plot") && e.textContent.trim());
  root.querySelectorAll("g.colorbar").forEach((bar) => {
    if (!shown(bar)) { return; }
    counts.colorbars += 1;
    const gd = bar.closest(".js-plotly-plot");
    const a = box(bar);
    if (!inside(a, box(gd))) { problems.push(`${label(bar)} ${fmt(a)} leaves its figure ${fmt(box(gd))}`); }
    gd.querySelectorAll(".hm image, .heatmaplayer image, .imagelayer image").forEach((pic) => {
      if (shown(pic) && meet(a, box(pic))) { problems.push(`${label(bar)} lies over the picture ${fmt(box(pic))}`); }
    });
    for (const text of texts) {
      if (meet(a, box(text))) { problems.push(`${label(bar)} ${fmt(a)} lies over the text "${text.textContent.trim().slice(0, 40)}" ${fmt(box(text))}`); }
    }
  });

  // 4. pictures (photo, depth map, difference map) keep their aspect ratio; 3D scenes share the width
  root.querySelectorAll(".imagelayer image, .hm image, .heatmaplayer image").forEach((pic) => {
    if (!shown(pic)) { return; }
    counts.pictures += 1;
    const gd = pic.closest(".js-plotly-plot");
    const host = gd.closest("[id]");
    const a = box(pic);
    boxes.pictures[host ? host.id : label(gd)] = a;
    const meta = gd._fullLayout && gd._fullLayout.meta;
    if (meta && meta.aspect_hw && Math.abs(a.h / a.w - meta.aspect_hw) > 0.02 * meta.aspect_hw + 2 / a.w) {
      problems.push(`${label(pic)} is drawn ${Math.round(a.w)}x${Math.round(a.h)}: not the picture's aspect ratio ${meta.aspect_hw}`);
    }
  });
  graphs.forEach((gd) => {
    const scenes = Array.from(gd.querySelectorAll(".gl-container > div")).filter(shown);
    const host = gd.closest("[id]");
    scenes.forEach((scene, i) => {
      counts.scenes += 1;
      boxes.scenes[`${host ? host.id : "graph"}#${i}`] = box(scene);
      if (!inside(box(scene), box(gd))) { problems.push(`3D scene ${i} of ${label(gd)} ${fmt(box(scene))} leaves its figure`); }
    });
  });

  // 4b. titles drawn in a figure (annotations) stay inside it and never overlap each other
  graphs.forEach((gd) => {
    const notes = Array.from(gd.querySelectorAll("g.annotation")).filter(shown);
    const name = (n) => n.textContent.trim().slice(0, 40);
    notes.forEach((note, i) => {
      const a = box(note);
      if (!inside(a, box(gd))) { problems.push(`the title "${name(note)}" ${fmt(a)} leaves its figure ${fmt(box(gd))}`); }
      for (const other of notes.slice(i + 1)) {
        if (meet(a, box(other))) { problems.push(`the titles "${name(note)}" and "${name(other)}" of ${label(gd)} overlap`); }
      }
    });
  });

  // 5. alerts never cover a tab, a button or a card
  document.querySelectorAll("#alerts .alert").forEach((alert) => {
    if (!shown(alert)) { return; }
    const a = box(alert);
    document.querySelectorAll(".face3d-tab, button, .card").forEach((e) => {
      if (shown(e) && !alert.contains(e) && meet(a, box(e))) { problems.push(`the alert ${fmt(a)} covers ${label(e)} ${fmt(box(e))}`); }
    });
  });

  // 6. tables and images
  root.querySelectorAll("table").forEach((e) => { if (shown(e)) { counts.tables += 1; } });
  root.querySelectorAll("img").forEach((e) => {
    if (!shown(e)) { return; }
    counts.images += 1;
    if (!e.getAttribute("alt")) { problems.push(`${label(e)} has no alt text`); }
    if (e.naturalWidth > 0) {
      const a = box(e);
      const want = e.naturalHeight / e.naturalWidth;
      if (Math.abs(a.h / a.w - want) > 0.02 * want + 2 / a.w) {
        problems.push(`${label(e)} is drawn ${Math.round(a.w)}x${Math.round(a.h)}, not ${e.naturalWidth}x${e.naturalHeight}'s aspect ratio`);
      }
    }
  });

  // 7. the page: no horizontal scrolling, every tab within reach
  const page = {
    width: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    tabs: Array.from(document.querySelectorAll(".face3d-tab")).map((t) => box(t)),
  };
  if (page.scrollWidth > page.width + 1) { problems.push(`the page scrolls sideways: ${page.scrollWidth} px wide in a ${page.width} px window`); }
  page.tabs.forEach((t, i) => {
    if (t.l < -TOL || t.r > page.width + TOL || t.w < 40) { problems.push(`tab ${i + 1} ${fmt(t)} is out of reach in a ${page.width} px window`); }
  });
  return { counts, problems, boxes, page };
})
