"use strict";
// Draws tandem's timeline pictures (see src/picture/mod.rs for the data).
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message));
    document.body.setAttribute("data-errors", String(errors.length));
    var box = document.getElementById("errors");
    if (box) box.textContent = errors.join("\n");
  });

  var SVG = "http://www.w3.org/2000/svg";
  var LEFT = 150, RIGHT = 24, AXIS = 26, STEP_ROWS = 3, STEP_ROW = 13, LANE = 64;
  var PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#ff7f0e", "#393b79"];

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(SVG, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(name, attrs, parent, text) {
    var node = document.createElement(name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function secs(us, digits) {
    return (us / 1e6).toFixed(digits === undefined ? 3 : digits) + "s";
  }

  function clip(text, n) {
    return text.length > n ? text.slice(0, n - 1) + "\u2026" : text;
  }

  // A "nice" tick step for a span of `span` microseconds.
  function tickStep(span, count) {
    var raw = span / Math.max(1, count), pow = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * pow >= raw) return steps[i] * pow;
    return 10 * pow;
  }

  function Run(pic, root, index) {
    var self = this;
    this.head = "head" + index;
    this.pic = pic;
    this.kinds = [];
    pic.dots.forEach(function (d) { if (self.kinds.indexOf(d.kind) < 0) self.kinds.push(d.kind); });
    this.kinds.sort();
    this.color = {};
    this.kinds.forEach(function (k, i) { self.color[k] = PALETTE[i % PALETTE.length]; });
    this.showNode = pic.lanes.map(function () { return true; });
    this.showKind = {};
    this.kinds.forEach(function (k) { self.showKind[k] = true; });
    this.named = {};
    if (pic.violation) pic.violation.dots.forEach(function (d) { self.named[d] = true; });
    this.end = Math.max(1, pic.end_us);
    this.t0 = 0;
    this.t1 = this.end;
    this.build(root);
    this.render();
  }

  Run.prototype.build = function (root) {
    var self = this, pic = this.pic;
    var section = html("section", { "class": "run" }, root);
    this.section = section;
    var head = html("header", { "class": "run-head" }, section);
    html("h1", {}, head, pic.title);
    var failed = pic.verdict.indexOf("PASS") !== 0;
    var verdict = html("div", { "class": "verdict " + (failed ? "fail" : "pass"), title: failed ? "click: zoom to the violation" : "" }, head, pic.verdict);
    verdict.addEventListener("click", function () { self.focusViolation(); });

    var controls = html("div", { "class": "controls" }, section);
    var zoom = html("fieldset", {}, controls);
    html("legend", {}, zoom, "time");
    [["fit", function () { self.zoomTo(0, self.end); }],
     ["+", function () { self.zoomBy(0.5); }],
     ["\u2212", function () { self.zoomBy(2); }]].forEach(function (b) {
      html("button", { type: "button" }, zoom, b[0]).addEventListener("click", b[1]);
    });
    if (pic.violation) {
      html("button", { type: "button", "class": "to-violation" }, zoom, "violation").addEventListener("click", function () { self.focusViolation(); });
    }
    var nodes = html("fieldset", {}, controls);
    html("legend", {}, nodes, "nodes");
    pic.lanes.forEach(function (lane, i) {
      var label = html("label", {}, nodes);
      var box = html("input", { type: "checkbox", checked: "", "class": "filter-node", "data-node": String(lane.node) }, label);
      label.appendChild(document.createTextNode(" " + lane.node));
      box.addEventListener("change", function () { self.showNode[i] = box.checked; self.render(); });
    });
    var kinds = html("fieldset", {}, controls);
    html("legend", {}, kinds, "events");
    this.kinds.forEach(function (kind) {
      var label = html("label", {}, kinds);
      var box = html("input", { type: "checkbox", checked: "", "class": "filter-kind", "data-kind": kind }, label);
      html("span", { "class": "swatch", style: "background:" + self.color[kind] }, label);
      label.appendChild(document.createTextNode(kind));
      box.addEventListener("change", function () { self.showKind[kind] = box.checked; self.render(); });
    });

    var plot = html("div", { "class": "plot" }, section);
    this.plot = plot;
    this.svg = el("svg", {}, plot);
    this.tip = html("div", { "class": "tip" }, plot);
    this.details = html("pre", { "class": "details" }, section, "click an event for its details");

    plot.addEventListener("wheel", function (e) {
      e.preventDefault();
      var at = self.timeAt(e.clientX - plot.getBoundingClientRect().left);
      self.zoomAround(at, e.deltaY > 0 ? 1.25 : 0.8);
    }, { passive: false });
    var drag = null;
    plot.addEventListener("mousedown", function (e) { drag = { x: e.clientX, t0: self.t0, t1: self.t1 }; plot.classList.add("dragging"); });
    window.addEventListener("mouseup", function () { drag = null; plot.classList.remove("dragging"); });
    window.addEventListener("mousemove", function (e) {
      if (!drag) return;
      var dt = (e.clientX - drag.x) / self.plotWidth() * (drag.t1 - drag.t0);
      self.zoomTo(drag.t0 - dt, drag.t1 - dt);
    });
    window.addEventListener("resize", function () { self.render(); });
  };

  // Read once per drawing: reading the layout after changing the DOM forces
  // the browser to lay the page out again, once per element.
  Run.prototype.measure = function () {
    this.width = Math.max(200, (this.plot.clientWidth || 1200) - LEFT - RIGHT);
  };

  Run.prototype.plotWidth = function () {
    return this.width;
  };

  Run.prototype.x = function (t) {
    return LEFT + (t - this.t0) / (this.t1 - this.t0) * this.plotWidth();
  };

  Run.prototype.timeAt = function (px) {
    return this.t0 + (px - LEFT) / this.plotWidth() * (this.t1 - this.t0);
  };

  Run.prototype.zoomTo = function (t0, t1) {
    var span = Math.max(100, Math.min(t1 - t0, this.end * 1.2));
    t0 = Math.max(-this.end * 0.1, Math.min(t0, this.end * 1.1 - span));
    this.t0 = t0;
    this.t1 = t0 + span;
    this.schedule();
  };

  Run.prototype.zoomBy = function (factor) {
    this.zoomAround((this.t0 + this.t1) / 2, factor);
  };

  Run.prototype.zoomAround = function (at, factor) {
    this.zoomTo(at - (at - this.t0) * factor, at + (this.t1 - at) * factor);
  };

  Run.prototype.focusViolation = function () {
    var v = this.pic.violation;
    if (!v) return;
    var span = Math.max(200000, this.end / 10);
    this.zoomTo(v.t_us - span / 2, v.t_us + span / 2);
    this.details.textContent = v.text;
  };

  Run.prototype.schedule = function () {
    var self = this;
    if (this.pending) return;
    this.pending = true;
    window.requestAnimationFrame(function () { self.pending = false; self.render(); });
  };

  Run.prototype.show = function (dot) {
    var lines = [dot.label + "  (" + dot.kind + ")", "node " + dot.node + " incarnation " + dot.incarnation + " at " + secs(dot.t_us)];
    if (dot.problem) lines.push("problem: " + dot.problem);
    if (dot.missing.length) lines.push("never reached nodes " + dot.missing.join(", "));
    if (dot.key) lines.push((dot.cause ? "cause of " : "effect of ") + dot.key);
    lines.push(dot.detail);
    return lines.join("\n");
  };

  Run.prototype.render = function () {
    var started = window.performance.now();
    var self = this, pic = this.pic, svg = this.svg;
    this.measure();
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var width = LEFT + this.plotWidth() + RIGHT;
    var laneY = {}, row = 0;
    pic.lanes.forEach(function (lane, i) { if (self.showNode[i]) laneY[lane.node] = row++; });
    var top = AXIS + STEP_ROWS * STEP_ROW + 6;
    var height = top + row * LANE + 8;
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    var lo = this.t0, hi = this.t1;
    var visible = function (a, b) { return b >= lo && a <= hi; };
    var cx = function (t) { return self.x(Math.max(lo, Math.min(hi, t))); };
    var mid = function (node) { return top + laneY[node] * LANE + LANE / 2; };
    var counts = { lanes: 0, bands: 0, arrows: 0, dots: 0, steps: 0 };

    // Lanes and their backgrounds.
    var lanes = el("g", { "class": "lanes" }, svg);
    pic.lanes.forEach(function (lane, i) {
      if (!self.showNode[i]) return;
      var y = top + laneY[lane.node] * LANE;
      var g = el("g", { "class": "lane", "data-node": String(lane.node) }, lanes);
      counts.lanes++;
      el("rect", { "class": "lane-bg" + (laneY[lane.node] % 2 ? " odd" : ""), x: 0, y: y, width: width, height: LANE }, g);
      el("text", { "class": "lane-name", x: 8, y: y + 16 }, g, "node " + lane.node);
      var ym = y + LANE / 2;
      el("line", { "class": "down", x1: cx(0), x2: cx(self.end), y1: ym, y2: ym }, g);
      lane.lives.forEach(function (life, k) {
        var to = life.crashed_us === null ? self.end : life.crashed_us;
        if (visible(life.from_us, to)) {
          el("line", { "class": "life", x1: cx(life.from_us), x2: cx(to), y1: ym, y2: ym }, g);
        }
        if (k > 0 && visible(life.from_us, life.from_us)) {
          el("path", { "class": "restart", d: "M" + self.x(life.from_us) + " " + (ym - 7) + " l8 7 l-8 7 z" }, g)
            .appendChild(el("title", {}, null, "restart: incarnation " + life.incarnation + " at " + secs(life.from_us)));
        }
        if (life.crashed_us !== null && visible(life.crashed_us, life.crashed_us)) {
          el("text", { "class": "crash", x: self.x(life.crashed_us) - 5, y: ym + 5 }, g, "\u2715")
            .appendChild(el("title", {}, null, "crash of incarnation " + life.incarnation + " at " + secs(life.crashed_us)));
        }
      });
      el("text", { "class": "lane-name", x: 8, y: y + 31, style: "font-weight:400;font-size:10px" }, g,
        lane.lives.length ? "incarnation " + lane.lives[lane.lives.length - 1].incarnation : "never started");
      lane.addrs.forEach(function (a, k) {
        var next = k + 1 < lane.addrs.length ? lane.addrs[k + 1].from_us : self.end;
        if (!visible(a.from_us, next)) return;
        el("text", { "class": "addr", x: Math.max(LEFT + 2, self.x(a.from_us) + 4), y: y + LANE - 6 }, g, a.addr);
        if (a.rebind) {
          el("path", { "class": "rebind", d: "M" + self.x(a.from_us) + " " + (ym - 6) + " l6 6 l-6 6 l-6 -6 z" }, g)
            .appendChild(el("title", {}, null, "rebind to " + a.addr + " at " + secs(a.from_us)));
        }
      });
    });

    // Network faults as bands over the lanes they affect.
    var bands = el("g", { "class": "bands" }, svg);
    pic.bands.forEach(function (band, i) {
      if (!visible(band.from_us, band.to_us)) return;
      var first = true;
      band.nodes.forEach(function (node) {
        if (laneY[node] === undefined) return;
        var y = top + laneY[node] * LANE;
        var x1 = cx(band.from_us), x2 = cx(band.to_us);
        var r = el("rect", { "class": "band " + band.kind, "data-band": String(i), x: x1, y: y + 2, width: Math.max(1, x2 - x1), height: LANE - 4 }, bands);
        r.appendChild(el("title", {}, null, band.label + " from " + secs(band.from_us) + " to " + secs(band.to_us)));
        if (first) el("text", { "class": "band-label", x: x1 + 3, y: y + 12 + 10 * (i % 3) }, bands, band.label);
        first = false;
        counts.bands++;
      });
    });

    // The time axis and the steps.
    var axis = el("g", { "class": "axis" }, svg);
    el("line", { x1: LEFT, x2: LEFT + this.plotWidth(), y1: AXIS - 6, y2: AXIS - 6 }, axis);
    var step = tickStep(hi - lo, Math.floor(this.plotWidth() / 90));
    var digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step / 1e6))));
    for (var t = Math.ceil(lo / step) * step; t <= hi; t += step) {
      if (t < 0) continue;
      el("line", { x1: self.x(t), x2: self.x(t), y1: AXIS - 10, y2: AXIS - 6 }, axis);
      el("text", { x: self.x(t) + 2, y: AXIS - 12 }, axis, secs(t, digits));
    }
    var steps = el("g", { "class": "steps" }, svg);
    var labelEnd = [];
    pic.steps.forEach(function (s) {
      if (!visible(s.t_us, s.t_us)) return;
      var g = el("g", { "class": "step" + (s.index === null ? " runner" : "") }, steps);
      var x = self.x(s.t_us), name = (s.index === null ? "" : "#" + s.index + " ") + s.action;
      // The first row with room for the label; none: the line alone (its title tells).
      var row = 0;
      while (row < STEP_ROWS && labelEnd[row] !== undefined && labelEnd[row] > x) row++;
      var y = AXIS + Math.min(row, STEP_ROWS - 1) * STEP_ROW + 8;
      el("line", { x1: x, x2: x, y1: y + 2, y2: height }, g).appendChild(el("title", {}, null, name + " at " + secs(s.t_us)));
      if (row < STEP_ROWS) {
        var label = clip(name, 34);
        labelEnd[row] = x + 6.2 * label.length + 8;
        el("text", { x: x + 2, y: y }, g, label).appendChild(el("title", {}, null, name + " at " + secs(s.t_us)));
      }
      counts.steps++;
    });

    // Arrows between causes and effects, and the effects that never came.
    var arrows = el("g", { "class": "arrows" }, svg);
    var shown = function (d) { return laneY[d.node] !== undefined && self.showKind[d.kind]; };
    var y = function (d) { return mid(d.node) + ((self.kinds.indexOf(d.kind) % 3) - 1) * 9; };
    pic.arrows.forEach(function (a) {
      var from = pic.dots[a.from], to = pic.dots[a.to];
      if (!shown(from) || !shown(to) || !visible(Math.min(from.t_us, to.t_us), Math.max(from.t_us, to.t_us))) return;
      el("line", { "class": "arrow", x1: cx(from.t_us), y1: y(from), x2: cx(to.t_us), y2: y(to), "marker-end": "url(#" + self.head + ")" }, arrows);
      counts.arrows++;
    });
    pic.dots.forEach(function (d) {
      if (!d.missing.length || !shown(d) || !visible(d.t_us, d.t_us)) return;
      d.missing.forEach(function (node) {
        if (laneY[node] === undefined) return;
        var x2 = self.x(d.t_us) + 14, y2 = mid(node);
        el("line", { "class": "arrow missing", x1: self.x(d.t_us), y1: y(d), x2: x2, y2: y2 }, arrows)
          .appendChild(el("title", {}, null, d.label + ": never reached node " + node));
        el("text", { "class": "missing-x", x: x2 - 4, y: y2 + 4 }, arrows, "\u2715");
        counts.arrows++;
      });
    });
    var defs = el("defs", {}, svg);
    var head = el("marker", { id: this.head, viewBox: "0 0 6 6", refX: 6, refY: 3, markerWidth: 6, markerHeight: 6, orient: "auto" }, defs);
    el("path", { d: "M0 0 L6 3 L0 6 z", fill: "#4a6fa5" }, head);

    // The events.
    var dots = el("g", { "class": "dots" }, svg);
    pic.dots.forEach(function (d, i) {
      if (!shown(d) || !visible(d.t_us, d.t_us)) return;
      var cls = "dot" + (d.problem ? " problem" : "") + (self.named[i] ? " named" : "");
      var c = el("circle", { "class": cls, "data-kind": d.kind, cx: self.x(d.t_us), cy: y(d), r: self.named[i] ? 6 : 4, fill: self.color[d.kind] }, dots);
      c.addEventListener("mouseenter", function (e) {
        self.tip.textContent = self.show(d);
        self.tip.style.display = "block";
        var box = self.plot.getBoundingClientRect();
        self.tip.style.left = Math.min(e.clientX - box.left + 12, box.width - 360) + "px";
        self.tip.style.top = (e.clientY - box.top + 12) + "px";
      });
      c.addEventListener("mouseleave", function () { self.tip.style.display = "none"; });
      c.addEventListener("click", function () { self.details.textContent = self.show(d); });
      counts.dots++;
    });

    // The first violation.
    var v = pic.violation;
    if (v) {
      var g = el("g", { "class": "violation", "data-code": v.code }, svg);
      var vx = cx(v.t_us);
      if (v.node !== null && laneY[v.node] !== undefined) {
        el("rect", { x: LEFT, y: top + laneY[v.node] * LANE, width: this.plotWidth(), height: LANE }, g);
      }
      el("line", { x1: vx, x2: vx, y1: AXIS, y2: height }, g);
      var right = vx > width / 2;
      el("text", { x: right ? vx - 4 : vx + 4, y: height - 6, "text-anchor": right ? "end" : "start" }, g, clip(v.text, 90))
        .appendChild(el("title", {}, null, v.text));
    }

    for (var k in counts) this.section.setAttribute("data-" + k, String(counts[k]));
    this.section.setAttribute("data-violation", v ? v.code : "");
    this.section.setAttribute("data-render-ms", String(Math.round(window.performance.now() - started)));
  };

  var pictures = JSON.parse(document.getElementById("tandem-data").textContent);
  var app = document.getElementById("app");
  html("pre", { id: "errors" }, app);
  pictures.forEach(function (pic, i) { new Run(pic, app, i); });
  document.body.setAttribute("data-status", "rendered");
})();
