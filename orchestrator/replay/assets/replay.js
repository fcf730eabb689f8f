// The steersim replay page. Reads the run from the JSON blocks of this page
// (meta: the run and its agents; ticks: one gzip+base64 part per tick, inflated
// only when shown) and draws the map, the tick's events and the agent panel.
// Text from the run is only ever written with textContent: never parsed as HTML.
'use strict';
(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const CACHE_TICKS = 48; // inflated tick parts kept in memory
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function fatal(message) {
    const box = $('fatal');
    box.textContent = message;
    box.hidden = false;
  }

  // -- data ------------------------------------------------------------------
  const meta = JSON.parse($('replay-meta').textContent);
  const packed = JSON.parse($('replay-ticks').textContent);
  const agents = meta.agents;
  const T = meta.traits; // ["E", "A", "C", "O", "N"]
  const cache = new Map(); // tick index -> Promise of the part

  function bytesOf(b64) {
    if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(b64);
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  async function inflate(b64) {
    const stream = new Blob([bytesOf(b64)]).stream().pipeThrough(new DecompressionStream('gzip'));
    return JSON.parse(await new Response(stream).text());
  }
  function part(ti) {
    let p = cache.get(ti);
    if (p) {
      cache.delete(ti); // most recently used last
      cache.set(ti, p);
      return p;
    }
    p = inflate(packed[ti]);
    cache.set(ti, p);
    while (cache.size > CACHE_TICKS) cache.delete(cache.keys().next().value);
    return p;
  }

  // -- state -----------------------------------------------------------------
  const state = {
    ti: 0, agent: null, colour: T[0], filter: null, playing: false, timer: null, drawn: 0,
  };

  function visible(a) {
    const f = state.filter;
    if (!f) return true;
    const v = agents[a].traits[T.indexOf(f.trait)];
    return f.op === 'gt' ? v > f.value : v < f.value;
  }
  function place(name) {
    return String(name).replace(/_/g, ' ');
  }

  // Diverging colour for a trait value in [-1, 1]: blue (low), light grey, red (high).
  function colourOf(v) {
    const x = Math.max(-1, Math.min(1, Number(v) || 0));
    const lo = [49, 104, 176], mid = [236, 238, 242], hi = [200, 60, 50];
    const to = x < 0 ? lo : hi, t = Math.abs(x);
    const c = mid.map((m, i) => Math.round(m + (to[i] - m) * t));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  // -- header and controls ---------------------------------------------------
  function header() {
    $('run-title').textContent = meta.run_id;
    document.title = `${meta.run_id} · steersim replay`;
    const bits = [
      `${agents.length} agents`,
      `${meta.ticks.length} ticks`,
      `${meta.locations.length} locations`,
      `model ${meta.model}`,
      meta.steering ? `steering layers ${meta.steering.layers.join(',')} strength ${meta.steering.strength}` : 'no steering',
      `status ${meta.status}`,
    ];
    if (!meta.recorded.prompts) bits.push('prompts not recorded');
    if (!meta.recorded.positions) bits.push('positions rebuilt from the moves');
    $('run-info').textContent = bits.join(' · ');
    const slider = $('tick-slider');
    slider.max = String(Math.max(0, meta.ticks.length - 1));
    for (const t of T) {
      $('colour-trait').append(new Option(t, t));
      $('filter-trait').append(new Option(t, t));
    }
  }

  function readFilter() {
    const trait = $('filter-trait').value;
    const value = parseFloat($('filter-value').value);
    state.filter = trait && Number.isFinite(value) ? { trait, op: $('filter-op').value, value } : null;
    const n = agents.filter((_, a) => visible(a)).length;
    $('filter-count').textContent = state.filter ? `${n} of ${agents.length} agents` : '';
  }

  // -- map -------------------------------------------------------------------
  const map = { boxes: [], dots: [], lines: null, width: 960, cols: 1, boxW: 0, boxH: 0 };

  function buildMap() {
    const root = $('map');
    const n = meta.locations.length;
    const cols = Math.max(1, Math.min(n, Math.ceil(Math.sqrt(n * 1.2))));
    const rows = Math.ceil(n / cols);
    const gap = 12, boxW = (map.width - gap * (cols + 1)) / cols;
    // room for a crowd of about 1.6 times the average, in dots of the size drawMap picks
    const crowd = Math.min(agents.length, Math.ceil((1.6 * agents.length) / n));
    const cell = cellSize(boxW, 260, crowd);
    const across = Math.max(1, Math.floor((boxW - 20) / cell));
    const boxH = Math.max(90, Math.min(260, 40 + Math.ceil(crowd / across) * cell));
    const height = rows * boxH + gap * (rows + 1);
    root.setAttribute('viewBox', `0 0 ${map.width} ${height}`);
    Object.assign(map, { cols, boxW, boxH });
    meta.locations.forEach((name, i) => {
      const x = gap + (i % cols) * (boxW + gap), y = gap + Math.floor(i / cols) * (boxH + gap);
      const g = svg('g', { class: 'loc' });
      g.append(svg('rect', { x, y, width: boxW, height: boxH, rx: 10 }));
      const label = svg('text', { x: x + 10, y: y + 19 });
      label.textContent = place(name);
      const count = svg('text', { x: x + boxW - 10, y: y + 19, 'text-anchor': 'end', class: 'count' });
      g.append(label, count);
      root.append(g);
      map.boxes.push({ x, y, g, count });
    });
    const defs = svg('defs', {});
    const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' });
    marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }));
    defs.append(marker);
    map.lines = svg('g', {});
    root.prepend(defs);
    root.append(map.lines);
    agents.forEach((agent, a) => {
      const c = svg('circle', { r: 5, cx: -20, cy: -20, class: 'agent', 'data-agent': a });
      const title = svg('title', {});
      title.textContent = agent.name;
      c.append(title);
      c.addEventListener('click', () => select(a));
      root.append(c);
      map.dots.push(c);
    });
  }

  function drawMap(p, acted) {
    const per = meta.locations.map(() => []);
    p.pos.forEach((loc, a) => { if (loc !== null && loc !== undefined) per[loc].push(a); });
    // dot size from the fullest location, so every box fits its crowd
    const cell = cellSize(map.boxW, map.boxH, Math.max(1, ...per.map((x) => x.length)));
    const r = Math.max(2, Math.min(10, cell * 0.36));
    // members of one encounter side by side, so that their talk is short arcs
    const order = new Map();
    p.rows.forEach((row, i) => { if (!order.has(row.a)) order.set(row.a, i); });
    for (const list of per) list.sort((x, y) => (order.has(x) ? order.get(x) : 1e9 + x) - (order.has(y) ? order.get(y) : 1e9 + y));
    const ci = meta.traits.indexOf(state.colour);
    const xy = new Array(agents.length);
    per.forEach((list, loc) => {
      const box = map.boxes[loc];
      const across = Math.max(1, Math.floor((map.boxW - 20) / cell));
      box.count.textContent = `${list.length}`;
      box.g.classList.toggle('busy', list.length > 0);
      list.forEach((a, k) => {
        xy[a] = [box.x + 10 + cell / 2 + (k % across) * cell, box.y + 30 + cell / 2 + Math.floor(k / across) * cell];
      });
    });
    map.dots.forEach((c, a) => {
      const at = xy[a];
      c.setAttribute('cx', at ? at[0].toFixed(1) : -20);
      c.setAttribute('cy', at ? at[1].toFixed(1) : -20);
      c.setAttribute('r', (state.agent === a ? r + 2 : r).toFixed(1));
      c.setAttribute('fill', colourOf(agents[a].traits[ci]));
      c.classList.toggle('acted', acted.has(a));
      c.classList.toggle('dim', !visible(a));
      c.classList.toggle('selected', state.agent === a);
    });
    // who spoke to whom: an arc from each speaker to everyone else in its encounter;
    // who went where: a dashed arrow to the box of the destination
    map.lines.replaceChildren();
    const members = new Map();
    for (const row of p.rows) {
      if (row.k !== 'encounter') continue;
      if (!members.has(row.e)) members.set(row.e, []);
      members.get(row.e).push(row.a);
    }
    for (const row of p.rows) {
      const from = xy[row.a];
      if (!from || !visible(row.a)) continue;
      if (row.act === 'SAY' && row.k === 'encounter') {
        for (const other of members.get(row.e)) {
          const to = xy[other];
          if (other === row.a || !to || !visible(other)) continue;
          const lift = Math.max(6, Math.abs(to[0] - from[0]) * 0.35);
          const mx = (from[0] + to[0]) / 2, my = Math.min(from[1], to[1]) - lift;
          map.lines.append(svg('path', { d: `M${from[0]},${from[1] - r} Q${mx},${my} ${to[0]},${to[1] - r}`, class: 'talk', 'marker-end': 'url(#arrow)' }));
        }
      } else if (row.act === 'MOVE' && row.tg !== null && meta.locations.indexOf(row.tg) >= 0) {
        const box = map.boxes[meta.locations.indexOf(row.tg)];
        const tx = Math.max(box.x + 4, Math.min(box.x + map.boxW - 4, from[0]));
        const ty = Math.max(box.y + 4, Math.min(box.y + map.boxH - 4, from[1]));
        if (Math.hypot(tx - from[0], ty - from[1]) < 2) continue;
        map.lines.append(svg('line', { x1: from[0], y1: from[1], x2: tx, y2: ty, class: 'move', 'marker-end': 'url(#arrow)' }));
      }
    }
  }

  function cellSize(boxW, boxH, crowd) {
    const area = (boxW - 20) * (boxH - 38);
    return Math.max(5, Math.min(28, Math.sqrt(area / crowd)));
  }

  function legend() {
    const box = $('legend');
    box.replaceChildren();
    const ramp = el('span', 'ramp');
    for (let i = 0; i <= 10; i++) {
      const s = el('span');
      s.style.background = colourOf(-1 + i / 5);
      ramp.append(s);
    }
    box.append(el('span', null, `colour: ${state.colour} −1`), ramp, el('span', null, '+1'));
    box.append(el('span', null, 'dark ring: acted this tick · red ring: selected · blue arcs: who spoke to whom · dashed arrows: moves'));
  }

  // -- events ----------------------------------------------------------------
  function who(a) {
    const s = el('span', 'who', agents[a].name);
    s.addEventListener('click', () => select(a));
    return s;
  }

  function rowLine(row) {
    const line = el('div', 'line');
    line.append(who(row.a), el('span', `act ${row.act}`, row.act));
    let text = row.c;
    if (row.act === 'MOVE' && row.tg) text = `→ ${place(row.tg)}`;
    if (text) line.append(el('span', 'said', text));
    if (!row.ok) line.append(el('span', 'bad', '(off-grammar)'));
    return line;
  }

  function drawEvents(p) {
    const box = $('events');
    const counts = {};
    const byEvent = new Map();
    for (const row of p.rows) {
      const key = row.k === 'reflection' ? 'reflection' : row.e;
      if (!byEvent.has(key)) byEvent.set(key, []);
      byEvent.get(key).push(row);
    }
    const nodes = [];
    let shown = 0;
    for (const [key, rows] of byEvent) {
      const mine = rows.filter((r) => visible(r.a));
      if (!mine.length) continue; // the filter hides everyone in this event
      shown += 1;
      const ev = el('div', 'event');
      let head;
      if (key === 'reflection') head = 'Reflections';
      else if (rows[0].k === 'encounter') {
        // everyone in the encounter, so that one sees whom the shown agents spoke to
        head = `Encounter at the ${place(meta.locations[rows[0].l])} · ${rows.map((r) => agents[r.a].name).join(', ')}`;
      } else head = `Alone at the ${place(meta.locations[rows[0].l])}`;
      ev.append(el('div', 'head', head));
      for (const row of mine) {
        ev.append(rowLine(row));
        counts[row.act] = (counts[row.act] || 0) + 1;
      }
      nodes.push(ev);
    }
    if (!nodes.length) nodes.push(el('div', 'muted', state.filter ? 'No event of the shown agents in this tick.' : 'No events in this tick.'));
    box.replaceChildren(...nodes);
    const parts = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v} ${k}`);
    $('tick-summary').textContent = parts.length ? `· ${shown} events · ${parts.join(', ')}` : '';
  }

  // -- the agent panel -------------------------------------------------------
  function traitBars(agent) {
    const grid = el('div', 'traits');
    agent.traits.forEach((v, i) => {
      const bar = el('div', 'bar');
      const fill = el('div', 'fill');
      const w = Math.abs(v) * 50;
      fill.style.left = v >= 0 ? '50%' : `${50 - w}%`;
      fill.style.width = `${w}%`;
      fill.style.background = colourOf(v);
      bar.append(fill, el('div', 'zero'));
      grid.append(el('b', null, T[i]), bar, el('span', 'num', (v >= 0 ? '+' : '') + v.toFixed(2)));
    });
    return grid;
  }

  function planAt(agent, tick) {
    let plan = null;
    for (const [t, text] of agent.plans) if (t <= tick) plan = text;
    return plan;
  }

  function memoryTable(mems, kind) {
    const table = el('table', `mems ${kind}`);
    const head = el('tr');
    for (const h of ['score', 'id', 'made', 'kind', 'imp.', 'memory']) head.append(el('th', null, h));
    table.append(head);
    for (const [id, score, made, kind, importance, text] of mems) {
      const tr = el('tr');
      tr.append(
        el('td', 'num', score === null ? '–' : score.toFixed(2)), el('td', 'num', id), el('td', 'num', made === null ? '?' : made),
        el('td', null, kind), el('td', 'num', importance === null ? '?' : importance), el('td', 'text', text),
      );
      table.append(tr);
    }
    return table;
  }

  function actionBox(row) {
    const box = el('div', 'action');
    box.append(rowLine(row));
    if (row.raw && row.raw !== row.c) {
      box.append(el('div', 'kv muted', 'model output:'), el('pre', 'raw', row.raw));
    }
    if (!row.p) {
      box.append(el('div', 'kv muted', meta.recorded.prompts
        ? 'no prompt recorded for this row'
        : 'prompts were not recorded for this run (storage.save_prompts: false, or a run older than the prompt records)'));
      return box;
    }
    const mems = el('div');
    mems.append(el('h4', null, `memories retrieved (${row.p.m.length})`));
    mems.append(row.p.m.length ? memoryTable(row.p.m, 'recalled') : el('div', 'muted', row.k === 'reflection' ? 'a reflection shows the recent memories listed in its prompt' : 'none'));
    const prompt = el('details', 'prompt');
    prompt.open = true;
    prompt.append(el('summary', null, 'prompt'), el('pre', 'prompt-system', row.p.s), el('pre', 'prompt-user', row.p.u));
    box.append(mems, prompt);
    return box;
  }

  function drawAgent(p) {
    const body = $('agent-body');
    if (state.agent === null) {
      body.hidden = true;
      $('agent-empty').hidden = false;
      return;
    }
    const a = state.agent, agent = agents[a], tick = meta.ticks[state.ti];
    const out = [el('h3', null, agent.name)];
    const where = p.pos[a] === null || p.pos[a] === undefined ? '?' : place(meta.locations[p.pos[a]]);
    out.push(el('div', 'kv muted', `${agent.id}${agent.age === null ? '' : ` · ${agent.age} years`} · home: ${place(agent.home)} · now at the ${where}`));
    out.push(el('h4', null, 'traits'), traitBars(agent));
    out.push(el('h4', null, 'goal'), el('div', 'kv', agent.goal));
    const plan = planAt(agent, tick);
    out.push(el('h4', null, `plan at tick ${tick}`), el('div', 'kv', plan && plan !== agent.goal ? plan : '(none yet: its prompts show the goal)'));

    const nav = el('div', 'nav');
    const acts = agent.acts;
    const prev = [...acts].reverse().find((t) => t < tick), next = acts.find((t) => t > tick);
    const jump = (label, t) => {
      const b = el('button', null, label);
      b.type = 'button';
      b.disabled = t === undefined;
      b.addEventListener('click', () => go(meta.ticks.indexOf(t)));
      return b;
    };
    nav.append(jump('◀ previous action', prev), jump('next action ▶', next));
    out.push(el('h4', null, `actions at tick ${tick}`), nav);
    const mine = p.rows.filter((r) => r.a === a);
    if (!mine.length) out.push(el('div', 'muted', 'did not act in this tick'));
    for (const row of mine) out.push(actionBox(row));
    const made = p.mem.filter((m) => m[0] === a);
    if (made.length) {
      out.push(el('h4', null, `memories made at tick ${tick}`));
      out.push(memoryTable(made.map(([, id, kind, importance, text]) => [id, null, tick, kind, importance, text]), 'made'));
    }
    out.push(el('h4', null, `acted in ${acts.length} ticks`));
    const ticks = el('div', 'nav ticks');
    for (const t of acts) {
      const b = jump(String(t), t);
      if (t === tick) b.classList.add('current');
      ticks.append(b);
    }
    out.push(ticks);
    body.replaceChildren(...out);
    body.hidden = false;
    $('agent-empty').hidden = true;
  }

  // -- one tick --------------------------------------------------------------
  async function draw() {
    const ti = state.ti, ticket = ++state.drawn;
    const p = await part(ti);
    if (ticket !== state.drawn) return; // a later draw started meanwhile
    const tick = meta.ticks[ti];
    $('tick-slider').value = String(ti);
    $('tick-label').textContent = `tick ${tick} / ${meta.ticks[meta.ticks.length - 1]}`;
    const acted = new Set(p.rows.map((r) => r.a));
    drawMap(p, acted);
    drawEvents(p);
    drawAgent(p);
    document.body.dataset.tick = String(tick);
    if (ti + 1 < meta.ticks.length) part(ti + 1); // ready for the next step
  }

  function go(ti) {
    if (!Number.isInteger(ti) || ti < 0 || ti >= meta.ticks.length) return;
    state.ti = ti;
    draw().catch((e) => fatal(`cannot show tick ${meta.ticks[ti]}: ${e}`));
  }

  function select(a) {
    state.agent = state.agent === a ? null : a;
    go(state.ti);
  }

  function play(on) {
    state.playing = on;
    $('play').textContent = on ? '❚❚ Pause' : '▶ Play';
    clearInterval(state.timer);
    if (!on) return;
    if (state.ti >= meta.ticks.length - 1) go(0);
    state.timer = setInterval(() => {
      if (state.ti >= meta.ticks.length - 1) play(false);
      else go(state.ti + 1);
    }, 1000 / Number($('speed').value));
  }

  function wire() {
    $('tick-slider').addEventListener('input', (e) => go(Number(e.target.value)));
    $('play').addEventListener('click', () => play(!state.playing));
    $('speed').addEventListener('change', () => { if (state.playing) play(true); });
    $('colour-trait').addEventListener('change', (e) => { state.colour = e.target.value; legend(); go(state.ti); });
    for (const id of ['filter-trait', 'filter-op', 'filter-value']) {
      $(id).addEventListener('input', () => { readFilter(); go(state.ti); });
    }
    document.addEventListener('keydown', (e) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
      if (e.key === 'ArrowRight') go(state.ti + 1);
      else if (e.key === 'ArrowLeft') go(state.ti - 1);
      else if (e.key === ' ') { e.preventDefault(); play(!state.playing); } else return;
    });
  }

  try {
    if (typeof DecompressionStream !== 'function') throw new Error('this browser lacks DecompressionStream (use a current Chrome, Firefox or Safari)');
    header();
    buildMap();
    legend();
    wire();
    readFilter();
    if (!meta.ticks.length) {
      $('events').replaceChildren(el('div', 'muted', 'This run has no ticks yet.'));
      document.body.dataset.ready = '1';
      return;
    }
    draw().then(() => {
      performance.mark('replay-ready');
      document.body.dataset.ready = '1';
    }).catch((e) => fatal(`cannot show the first tick: ${e}`));
  } catch (e) {
    fatal(`cannot show this replay: ${e}`);
  }
})();
