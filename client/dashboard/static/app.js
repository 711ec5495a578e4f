// The dashboard page: polls /api/status every 30 s and draws it. Every text from the data goes
// in through textContent (never markup): a key or message holding `<img onerror=...>` is shown
// as those characters. No inline script anywhere (the Content-Security-Policy forbids it).
'use strict';

const POLL_MS = 30_000;
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function hours(h) {
  if (h === null || h === undefined) return 'never';
  return h >= 48 ? `${(h / 24).toFixed(1)} d` : `${h.toFixed(1)} h`;
}

/** Only http(s) links are made links: anything else is shown as text. */
function safeLink(href, text) {
  try {
    const url = new URL(href);
    if (url.protocol === 'http:' || url.protocol === 'https:') return el('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer' }, text);
  } catch {
    // not a URL: text below
  }
  return document.createTextNode(text);
}

function renderComponents(data) {
  const box = document.getElementById('components');
  box.replaceChildren(
    ...data.components.map((c) =>
      el(
        'div',
        { class: `card state-${c.state}`, 'data-component': c.name, 'data-state': c.state },
        el('h3', {}, c.name),
        el('p', {}, c.newestAt ? `newest ${hours(c.ageHours)} ago` : c.state === 'ok' ? '' : 'none yet'),
        ...(c.maxAgeHours !== null ? [el('p', {}, `at most ${hours(c.maxAgeHours)}`)] : []),
        el('p', {}, c.detail),
        ...c.problems.map((k) => el('p', {}, el('code', {}, k))),
      ),
    ),
  );
}

function renderObjectives(data) {
  const card = (name, o) =>
    el(
      'div',
      { class: `card state-${o.met ? 'ok' : 'failing'}`, 'data-objective': name },
      el('h3', {}, name.toUpperCase()),
      el('p', {}, `measured ${o.measuredMinutes === null ? 'not yet' : `${o.measuredMinutes} min`}, objective ${o.objectiveMinutes} min`),
      el('p', {}, o.detail),
    );
  document.getElementById('objectives').replaceChildren(card('rpo', data.objectives.rpo), card('rto', data.objectives.rto));
}

function renderProblems(data) {
  const list = document.getElementById('problems');
  if (!data.problems.length) return list.replaceChildren(el('li', {}, 'none'));
  list.replaceChildren(...data.problems.map((p) => el('li', { class: `severity-${p.severity}` }, el('code', {}, p.key), ' ', p.message)));
}

function renderFailedRuns(data) {
  const list = document.getElementById('failed-runs');
  if (!data.failedRuns.length) return list.replaceChildren(el('li', {}, 'none'));
  list.replaceChildren(
    ...data.failedRuns.map((r) =>
      el('li', { 'data-workflow-id': r.workflowId }, r.link ? safeLink(r.link, `${r.type} ${r.workflowId}`) : `${r.type} ${r.workflowId}`, ` failed ${r.closeTime ?? ''}`),
    ),
  );
}

/** Each backup a dot on its component's row, by its date. */
function renderTimeline(data) {
  const box = document.getElementById('timeline');
  if (!data.timeline.length) return box.replaceChildren(el('p', {}, 'no backup in the catalog'));
  const width = 900, left = 90, right = 20, rows = ['database', 'base'];
  const times = data.timeline.map((b) => Date.parse(b.finishedAt));
  const min = Math.min(...times), max = Math.max(...times, min + 1);
  const x = (t) => left + ((t - min) / (max - min)) * (width - left - right);
  const chart = svg('svg', { viewBox: `0 0 ${width} 90`, role: 'img', 'aria-label': 'backups by date' });
  rows.forEach((row, i) => {
    chart.append(svg('text', { x: 0, y: 25 + i * 30 }, row), svg('line', { x1: left, x2: width - right, y1: 21 + i * 30, y2: 21 + i * 30, class: 'axis' }));
  });
  for (const b of data.timeline) {
    const dot = svg('circle', { cx: x(Date.parse(b.finishedAt)), cy: 21 + rows.indexOf(b.component) * 30, r: 5, class: b.signature === 'signed' ? `dot-${b.component}` : 'dot-unsigned' });
    dot.append(svg('title', {}, `${b.component} ${b.backupId}, ${b.finishedAt}, ${bytes(b.bytes)} x ${b.foundIn.length} (${b.foundIn.join(', ')})${b.signature === 'signed' ? '' : `, ${b.signature}`}`));
    chart.append(dot);
  }
  chart.append(svg('text', { x: left, y: 85 }, new Date(min).toISOString().slice(0, 16)), svg('text', { x: width - right - 110, y: 85 }, new Date(max).toISOString().slice(0, 16)));
  box.replaceChildren(chart);
}

function renderStored(data) {
  document.getElementById('stored-label').textContent = data.storedBytes.label;
  const box = document.getElementById('stored');
  const points = data.storedBytes.points;
  if (!points.length) return box.replaceChildren(el('p', {}, 'nothing stored'));
  const width = 900, height = 140, left = 90, right = 20, top = 10, bottom = 20;
  const times = points.map((p) => Date.parse(p.at));
  const min = Math.min(...times), max = Math.max(...times, min + 1);
  const top_ = points.at(-1).bytes || 1;
  const x = (t) => left + ((t - min) / (max - min)) * (width - left - right);
  const y = (b) => height - bottom - (b / top_) * (height - top - bottom);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'stored bytes by date' });
  chart.append(
    // A step at each backup's date: the total changes there and nowhere in between.
    svg('polyline', { class: 'line', points: [`${x(times[0])},${y(0)}`, ...points.flatMap((p, i) => [`${x(times[i])},${y(i ? points[i - 1].bytes : 0)}`, `${x(times[i])},${y(p.bytes)}`])].join(' ') }),
    svg('text', { x: 0, y: top + 4 }, bytes(top_)),
    svg('text', { x: 0, y: height - bottom }, '0'),
  );
  box.replaceChildren(chart);
}

async function refresh() {
  const summary = document.getElementById('summary');
  try {
    const response = await fetch('/api/status', { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    const data = await response.json();
    const worst = data.components.some((c) => c.state === 'failing') || data.problems.some((p) => p.severity === 'critical') ? 'failing' : data.ok ? 'ok' : 'warning';
    summary.className = `state-${worst}`;
    summary.textContent = worst === 'ok' ? 'all good' : `${data.problems.length} problem(s)`;
    document.getElementById('updated').textContent = `as of ${data.generatedAt}`;
    renderComponents(data);
    renderObjectives(data);
    renderProblems(data);
    renderFailedRuns(data);
    renderTimeline(data);
    renderStored(data);
    document.body.dataset.loaded = data.generatedAt;
  } catch (err) {
    summary.className = 'state-failing error';
    summary.textContent = `cannot load the status: ${err.message}`;
  }
}

void refresh();
setInterval(refresh, POLL_MS);
