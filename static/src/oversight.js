// Oversight pages: the duty board (refreshed every few seconds), the risk map, and the case
// list's export progress. Every figure links to the case list with that figure's filter.
import * as echarts from 'echarts/core';
import { BarChart, ScatterChart } from 'echarts/charts';
import { GridComponent, TooltipComponent, VisualMapComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([BarChart, ScatterChart, GridComponent, TooltipComponent, VisualMapComponent,
  CanvasRenderer]);

const OPEN = [['state', 'open'], ['state', 'in_progress'], ['state', 'stuck']];
const LEVEL_COLOURS = { red: '#d7263d', orange: '#f46036', yellow: '#e2b007', blue: '#1b6ca8' };

function casesLink(base, pairs) {
  const query = new URLSearchParams(pairs);
  return `${base}?${query.toString()}`;
}

function text(tag, content, attrs = {}) {
  const el = document.createElement(tag);
  el.textContent = content;
  for (const [k, v] of Object.entries(attrs)) {
    el.setAttribute(k, v);
  }
  return el;
}

// ---------------------------------------------------------------- duty board

function boardLinks(root, data) {
  const base = root.dataset.cases;
  const dept = data.department ? [['department', data.department]] : [];
  return {
    open: casesLink(base, [...OPEN, ...dept]),
    new_last_hour: casesLink(base, [['opened_from', data.new_since], ...dept]),
    overdue: casesLink(base, [['overdue', '1'], ...dept]),
    medium: casesLink(base, [...OPEN, ['loop', 'medium'], ...dept]),
    big: casesLink(base, [...OPEN, ['loop', 'big'], ...dept]),
    stuck: casesLink(base, [['state', 'stuck'], ...dept]),
  };
}

function renderBoard(root, data, chart) {
  const base = root.dataset.cases;
  const dept = data.department ? [['department', data.department]] : [];
  const links = boardLinks(root, data);
  const values = {
    open: data.open, new_last_hour: data.new_last_hour, overdue: data.overdue,
    medium: data.escalated.medium, big: data.escalated.big, stuck: data.stuck,
  };
  for (const tile of root.querySelectorAll('[data-figure]')) {
    const key = tile.dataset.figure;
    tile.href = links[key];
    tile.querySelector('.n').textContent = String(values[key]);
  }
  root.querySelector('[data-at]').textContent = new Date(data.at).toLocaleString();
  const body = root.querySelector('[data-matrix] tbody');
  body.replaceChildren();
  for (const row of data.matrix) {
    const tr = document.createElement('tr');
    tr.dataset.scenario = row.scenario;
    const th = document.createElement('th');
    th.scope = 'row';
    th.append(text('a', row.name, {
      href: casesLink(base, [...OPEN, ['scenario', row.scenario], ...dept]) }));
    tr.append(th);
    for (const level of data.levels) {
      const td = document.createElement('td');
      const n = row.counts[level];
      td.append(n ? text('a', String(n), {
        href: casesLink(base, [...OPEN, ['level', level], ['scenario', row.scenario], ...dept]),
        'data-cell': `${row.scenario}:${level}`, class: `lvl-${level}` }) : text('span', '0'));
      tr.append(td);
    }
    tr.append(text('td', String(row.total)));
    body.append(tr);
  }
  const towns = root.querySelector('[data-towns]');
  towns.replaceChildren();
  for (const town of data.towns) {
    const li = document.createElement('li');
    li.append(text('a', `${town.name} ${town.count}`, {
      href: casesLink(base, [...OPEN, ['town', town.code], ...dept]), 'data-town': town.code }));
    towns.append(li);
  }
  const weather = root.querySelector('[data-weather]');
  weather.replaceChildren();
  for (const w of data.weather) {
    const li = document.createElement('li');
    li.append(text('a', `${w.type || ''} ${w.level || ''} ${(w.towns || []).join('、')}`, {
      href: root.dataset.cases.replace(/\/$/, '') + '/' + encodeURIComponent(w.case_no) }));
    weather.append(li);
  }
  root.querySelector('[data-weather-none]').hidden = data.weather.length > 0;
  const silentPanel = root.querySelector('[data-silent-panel]');
  if (data.silent_feeds) {
    silentPanel.hidden = false;
    const list = root.querySelector('[data-silent]');
    list.replaceChildren(...data.silent_feeds.map((f) => text('li', f.name || f.code || '')));
  }
  if (chart) {
    const top = data.towns.slice(0, 15).reverse();
    chart.setOption({
      grid: { left: 110, right: 20, top: 10, bottom: 20 },
      xAxis: { type: 'value', minInterval: 1 },
      yAxis: { type: 'category', data: top.map((t) => t.name) },
      tooltip: {},
      series: [{ type: 'bar', data: top.map((t) => ({ value: t.count, code: t.code })),
        itemStyle: { color: '#f46036' } }],
    });
    chart.off('click');
    chart.on('click', (p) => {
      window.location.href = casesLink(base, [...OPEN, ['town', p.data.code], ...dept]);
    });
  }
}

function startBoard(root) {
  const holder = root.querySelector('[data-town-chart]');
  const chart = holder ? echarts.init(holder) : null;
  const every = Number(root.dataset.refresh || 5000);
  async function refresh() {
    try {
      const response = await fetch(root.dataset.source, { credentials: 'same-origin',
        headers: { Accept: 'application/json' } });
      if (response.ok) {
        renderBoard(root, await response.json(), chart);
        root.dataset.updated = String(Date.now());
      }
    } finally {
      window.setTimeout(refresh, every);
    }
  }
  window.addEventListener('resize', () => chart && chart.resize());
  refresh();
}

// ---------------------------------------------------------------- risk map

function startMap(root) {
  const chart = echarts.init(root);
  const form = document.querySelector('[data-map-filters]');
  const list = document.querySelector('[data-map-towns]');
  const base = root.dataset.cases;
  async function load() {
    const query = new URLSearchParams();
    for (const name of ['scenario', 'level']) {
      const value = form.elements[name].value;
      if (value) {
        query.append(name, value);
      }
    }
    const response = await fetch(`${root.dataset.source}?${query}`, {
      credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!response.ok) {
      return;
    }
    const data = await response.json();
    const filters = [...query.entries()];
    const most = Math.max(1, ...data.towns.map((t) => t.count));
    chart.setOption({
      animation: false, // a map, not a show: every click lands on what is drawn
      tooltip: { formatter: (p) => p.data.tip },
      xAxis: { type: 'value', min: 121.44, max: 122.0, show: false },
      yAxis: { type: 'value', min: 30.84, max: 31.37, show: false },
      grid: { left: 10, right: 10, top: 10, bottom: 10 },
      visualMap: { seriesIndex: 0, min: 0, max: most, dimension: 2, calculable: false,
        inRange: { color: ['#f1f5f9', '#fcd34d', '#f97316', '#b91c1c'] },
        orient: 'horizontal', left: 'left', bottom: 0, text: [String(most), '0'] },
      series: [
        { id: 'towns', type: 'scatter', symbol: 'roundRect', symbolSize: 46,
          label: { show: true, formatter: (p) => `${p.data.name}\n${p.data.value[2]}`,
            fontSize: 10, color: '#111' },
          data: data.towns.map((t) => ({ name: t.name, code: t.code, kind: 'town',
            value: [t.lon, t.lat, t.count], tip: `${t.name}: ${t.count}` })) },
        { id: 'points', type: 'scatter', symbolSize: 9, z: 5,
          data: data.points.map((p) => ({ name: p.name, kind: 'point', case_no: p.case_no,
            code: p.code, value: [p.lon, p.lat, 0],
            itemStyle: { color: LEVEL_COLOURS[p.level] || '#94a3b8' },
            tip: `${p.code} ${p.name}${p.level ? ' · ' + p.level : ''}` })) },
      ],
    }, { replaceMerge: ['series'] });
    list.replaceChildren(...data.towns.filter((t) => t.count).map((t) => {
      const li = document.createElement('li');
      li.append(text('a', `${t.name} ${t.count}`, { 'data-town': t.code,
        href: casesLink(base, [...OPEN, ['town', t.code], ...filters]) }));
      return li;
    }));
    root.dataset.loaded = String(Date.now());
    chart.off('click');
    chart.on('click', (p) => {
      if (p.data.kind === 'town') {
        window.location.href = casesLink(base, [...OPEN, ['town', p.data.code], ...filters]);
      } else if (p.data.case_no) {
        window.location.href = root.dataset.caseBase.replace('CASE',
          encodeURIComponent(p.data.case_no));
      } else {
        window.location.href = casesLink(base, [['point_code', p.data.code]]);
      }
    });
  }
  form.addEventListener('change', load);
  window.addEventListener('resize', () => chart.resize());
  load();
}

// ---------------------------------------------------------------- exports

function startExports(root) {
  const bar = root.querySelector('[data-export-progress]');
  const status = root.querySelector('[data-export-status]');
  for (const link of root.querySelectorAll('[data-export-link]')) {
    link.addEventListener('click', async (event) => {
      event.preventDefault();
      bar.hidden = false;
      bar.removeAttribute('value');
      status.textContent = '…';
      const response = await fetch(link.href, { credentials: 'same-origin' });
      if (!response.ok || !response.body) {
        status.textContent = `HTTP ${response.status}`;
        return;
      }
      const rows = Number(response.headers.get('X-Export-Rows') || 0);
      const csv = link.href.includes('format=csv');
      const reader = response.body.getReader();
      const chunks = [];
      let received = 0;
      let lines = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          break;
        }
        chunks.push(value);
        received += value.length;
        if (csv) {
          for (const byte of value) {
            if (byte === 10) {
              lines += 1;
            }
          }
          bar.max = rows + 1;
          bar.value = lines;
          status.textContent = `${Math.max(lines - 1, 0)} / ${rows}`;
        } else {
          status.textContent = `${rows} · ${Math.round(received / 1024)} KB`;
        }
      }
      bar.max = 1;
      bar.value = 1;
      status.textContent = `${rows} ✓`;
      const name = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '');
      const url = URL.createObjectURL(new Blob(chunks));
      const a = document.createElement('a');
      a.href = url;
      a.download = name ? name[1] : 'cases';
      document.body.append(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
  }
}

const board = document.querySelector('[data-board]');
if (board) {
  startBoard(board);
}
const map = document.querySelector('[data-risk-map]');
if (map) {
  startMap(map);
}
const exports = document.querySelector('[data-export]');
if (exports) {
  startExports(exports);
}
