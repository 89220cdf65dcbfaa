// zonewarden graph page: pan and zoom (wheel, drag, buttons, keys) and the
// blast radius of a clicked container, computed from the drawing alone:
// a container reaches the members of the zones it is drawn in when they
// reach each other, and the far end of every edge that starts at it or at
// a cluster it is drawn in (either end of a two-way edge); a published
// port passes on to its container in the same hop; the host, the
// internet and the outside are reached but not pivoted through. The Go
// tests check that this equals zonewarden's own blast radius.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("zw-data").textContent);
  var canvas = document.getElementById("zw-canvas");
  var svg = canvas.querySelector("svg.zw-graph");
  var viewport = svg.querySelector(".zw-viewport");
  var W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
  svg.removeAttribute("viewBox");
  svg.setAttribute("width", "100%");
  svg.setAttribute("height", "100%");

  // ---- pan and zoom
  var s = 1, tx = 0, ty = 0;
  function apply() { viewport.setAttribute("transform", "translate(" + tx + "," + ty + ") scale(" + s + ")"); }
  function fit() {
    var cw = canvas.clientWidth || 800, ch = canvas.clientHeight || 600;
    s = Math.min(cw / W, ch / H) * 0.97;
    tx = (cw - W * s) / 2; ty = (ch - H * s) / 2;
    apply();
  }
  function zoomAt(f, x, y) {
    var ns = Math.min(8, Math.max(0.02, s * f));
    f = ns / s;
    tx = x - (x - tx) * f; ty = y - (y - ty) * f; s = ns;
    apply();
  }
  function center() { return [canvas.clientWidth / 2, canvas.clientHeight / 2]; }
  svg.addEventListener("wheel", function (e) {
    e.preventDefault();
    var r = svg.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015)), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  var drag = null;
  svg.addEventListener("pointerdown", function (e) {
    if (e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, tx: tx, ty: ty, moved: false };
    svg.setPointerCapture(e.pointerId);
  });
  svg.addEventListener("pointermove", function (e) {
    if (!drag) return;
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    drag.moved = true;
    svg.classList.add("zw-dragging");
    tx = drag.tx + dx; ty = drag.ty + dy;
    apply();
  });
  svg.addEventListener("pointerup", function (e) {
    var d = drag;
    drag = null;
    svg.classList.remove("zw-dragging");
    if (d && !d.moved) click(e);
  });
  svg.addEventListener("dblclick", function (e) { e.preventDefault(); fit(); });
  document.getElementById("zw-zoom-in").addEventListener("click", function () { var c = center(); zoomAt(1.25, c[0], c[1]); });
  document.getElementById("zw-zoom-out").addEventListener("click", function () { var c = center(); zoomAt(0.8, c[0], c[1]); });
  document.getElementById("zw-fit").addEventListener("click", fit);
  document.getElementById("zw-clear").addEventListener("click", function () { highlight(null); });
  document.addEventListener("keydown", function (e) {
    if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA")) return;
    var c = center();
    if (e.key === "+" || e.key === "=") zoomAt(1.25, c[0], c[1]);
    else if (e.key === "-") zoomAt(0.8, c[0], c[1]);
    else if (e.key === "0") fit();
    else if (e.key === "Escape") highlight(null);
  });
  window.addEventListener("resize", fit);

  // ---- the drawing as a graph
  var entityNodes = {}, nodeEntity = {}, kindOf = {}, peerOf = {}, dataOf = {}, countOf = {};
  var clustersOf = {}, clusterById = {}, edgesFrom = {}, edgesTo = {};
  D.nodes.forEach(function (n) {
    (entityNodes[n.e] = entityNodes[n.e] || []).push(n.id);
    nodeEntity[n.id] = n.e; kindOf[n.e] = n.k; peerOf[n.e] = n.p || ""; dataOf[n.e] = !!n.d; countOf[n.e] = n.n || 1;
  });
  D.clusters.forEach(function (c) {
    clusterById[c.id] = c;
    c.n.forEach(function (id) {
      var e = nodeEntity[id];
      (clustersOf[e] = clustersOf[e] || []).push(c.id);
    });
  });
  D.edges.forEach(function (e, i) {
    if (e.k === "same" || e.k === "path") return; // drawings, not connections
    (edgesFrom[e.f] = edgesFrom[e.f] || []).push(i);
    if (e.b) (edgesTo[e.t] = edgesTo[e.t] || []).push(i);
  });
  function ends(id) {
    var c = clusterById[id];
    return c ? c.n.map(function (n) { return nodeEntity[n]; }) : [nodeEntity[id]];
  }
  // out calls fn(entity, edgeIndex) for what ent reaches in one hop
  // (edgeIndex -1: through a zone whose members reach each other).
  function out(ent, fn) {
    var starts = (entityNodes[ent] || []).concat(clustersOf[ent] || []);
    (clustersOf[ent] || []).forEach(function (cid) {
      if (clusterById[cid].q) ends(cid).forEach(function (t) { fn(t, -1); });
    });
    starts.forEach(function (id) {
      (edgesFrom[id] || []).forEach(function (i) { ends(D.edges[i].t).forEach(function (t) { fn(t, i); }); });
      (edgesTo[id] || []).forEach(function (i) { ends(D.edges[i].f).forEach(function (t) { fn(t, i); }); });
    });
  }
  function controllable(e) { return kindOf[e] === "container" || kindOf[e] === "folded"; }
  function blast(src) {
    var hops = {}, via = {}, queue = [src];
    hops[src] = 0;
    for (var head = 0; head < queue.length; head++) {
      var x = queue[head], h = hops[x] + 1, pending = [x];
      while (pending.length) {
        out(pending.pop(), function (t, i) {
          if (t in hops) return;
          hops[t] = h; via[t] = i;
          if (kindOf[t] === "port") pending.push(t); // forwards in the same hop
          else if (controllable(t)) queue.push(t);
        });
      }
    }
    return { hops: hops, via: via };
  }

  // ---- highlighting
  var nodeEls = svg.querySelectorAll("g.node"), edgeEls = svg.querySelectorAll("g.edge");
  var selection = document.getElementById("zw-selection"), idleHTML = selection.innerHTML;
  function clearClasses() {
    nodeEls.forEach(function (el) {
      el.classList.remove("zw-hop-0", "zw-hop-1", "zw-hop-2", "zw-hop-3", "zw-dim");
      el.removeAttribute("data-hops");
    });
    edgeEls.forEach(function (el) { el.classList.remove("zw-dim", "zw-on-path"); });
    document.querySelectorAll("tr.zw-selected").forEach(function (el) { el.classList.remove("zw-selected"); });
  }
  function text(tag, s, cls) { var el = document.createElement(tag); el.textContent = s; if (cls) el.className = cls; return el; }
  function highlight(ent) {
    clearClasses();
    if (!ent || !entityNodes[ent]) {
      selection.innerHTML = idleHTML;
      document.documentElement.removeAttribute("data-highlight");
      return;
    }
    var r = blast(ent);
    var onPath = {};
    Object.keys(r.via).forEach(function (t) { if (r.via[t] >= 0) onPath[r.via[t]] = true; });
    nodeEls.forEach(function (el) {
      var e = el.getAttribute("data-entity");
      if (e in r.hops) {
        el.classList.add("zw-hop-" + Math.min(r.hops[e], 3));
        el.setAttribute("data-hops", r.hops[e]);
      } else {
        el.classList.add("zw-dim");
        el.setAttribute("data-hops", "-1");
      }
    });
    edgeEls.forEach(function (el) {
      el.classList.add(onPath[el.getAttribute("data-edge")] ? "zw-on-path" : "zw-dim");
    });
    var reached = 0, data = 0, deepest = 0, byHop = {};
    Object.keys(r.hops).forEach(function (e) {
      if (e === ent || !controllable(e)) return;
      var h = r.hops[e];
      reached += countOf[e]; deepest = Math.max(deepest, h);
      if (dataOf[e] && kindOf[e] === "container") data++;
      (byHop[h] = byHop[h] || []).push(kindOf[e] === "folded" ? "+" + countOf[e] + " in " + e.slice(2) : peerOf[e]);
    });
    var direct = function (p) { return r.hops["x:" + p] === 1; };
    selection.textContent = "";
    var head = text("p", "");
    head.appendChild(text("strong", "Blast radius of " + peerOf[ent]));
    selection.appendChild(head);
    selection.appendChild(text("p", reached + " containers reached" + (data ? ", " + data + " of them data services" : "") +
      (deepest > 1 ? ", within " + deepest + " hops" : "") + ". The host's own services: " + (direct("host") ? "yes" : "no") +
      ". The internet: " + (direct("internet") ? "yes" : "no") + "."));
    var list = document.createElement("ul");
    list.className = "zw-hops";
    Object.keys(byHop).sort(function (a, b) { return a - b; }).forEach(function (h) {
      var names = byHop[h].sort(), more = names.length > 40 ? ", and " + (names.length - 40) + " more" : "";
      list.appendChild(text("li", "hop " + h + ": " + names.slice(0, 40).join(", ") + more));
    });
    selection.appendChild(list);
    document.querySelectorAll('tr[data-peer]').forEach(function (el) {
      if (el.getAttribute("data-peer") === peerOf[ent]) el.classList.add("zw-selected");
    });
    document.documentElement.setAttribute("data-highlight", peerOf[ent]);
  }
  function click(e) {
    var el = e.target.closest ? e.target.closest("g.node") : null;
    var ent = el && el.getAttribute("data-entity");
    highlight(ent && kindOf[ent] === "container" ? ent : null);
  }
  document.querySelectorAll("[data-peer]").forEach(function (el) {
    if (el.tagName === "g") return;
    el.addEventListener("click", function (ev) { ev.preventDefault(); highlight("c:" + el.getAttribute("data-peer")); });
  });

  fit();
  var m = /(?:^#|&)highlight=([^&]*)/.exec(location.hash);
  var start = m ? decodeURIComponent(m[1]) : D.highlight;
  if (start) highlight("c:" + start);
  document.documentElement.setAttribute("data-panzoom", "ready");
})();
