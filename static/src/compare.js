// Two versions of a BPMN file side by side (bpmn-js-differ): added elements green on the newer
// diagram, removed ones red on the older, changed ones amber on both, moved ones blue; the
// property changes listed old -> new below. Used by the comparison and review pages, and by
// the workspace when a save meets a newer draft.
import './compare.css';

import NavigatedViewer from 'bpmn-js/lib/NavigatedViewer';
import { diff } from 'bpmn-js-differ';

import { getText } from './http.js';

function show(value) {
  if (value === undefined || value === null || value === '') {
    return '—';
  }
  if (typeof value === 'object') {
    if (value.id) {
      return value.id;
    }
    if (value.body !== undefined) {
      return String(value.body);
    }
    try {
      return JSON.stringify(value, (key, inner) => (key.startsWith('$') ? undefined : inner));
    } catch {
      return String(value);
    }
  }
  return String(value);
}

function mark(viewer, ids, marker) {
  const registry = viewer.get('elementRegistry');
  const canvas = viewer.get('canvas');
  for (const id of ids) {
    if (registry.get(id)) {
      canvas.addMarker(id, marker);
    }
  }
}

function nameOf(element) {
  return (element && (element.name || element.id)) || '';
}

function changeTable(changes, texts) {
  const table = document.createElement('table');
  table.className = 'compare-table';
  const head = table.createTHead().insertRow();
  for (const title of [texts.changed, texts.property, texts.before, texts.after]) {
    const cell = document.createElement('th');
    cell.scope = 'col';
    cell.textContent = title;
    head.appendChild(cell);
  }
  const body = table.createTBody();
  const row = (kind, id, label, property, before, after) => {
    const tr = body.insertRow();
    tr.className = `diff-row-${kind}`;
    tr.dataset.elementId = id;
    const values = [`${label} (${id})`, property, before, after];
    values.forEach((value, index) => {
      const cell = tr.insertCell();
      if (index >= 2) {
        const code = document.createElement('code');
        code.textContent = value;
        cell.appendChild(code);
      } else {
        cell.textContent = value;
      }
    });
  };
  for (const [id, element] of Object.entries(changes._added)) {
    row('added', id, nameOf(element), texts.added, '—', element.$type);
  }
  for (const [id, element] of Object.entries(changes._removed)) {
    row('removed', id, nameOf(element), texts.removed, element.$type, '—');
  }
  for (const [id, change] of Object.entries(changes._changed)) {
    for (const [property, values] of Object.entries(change.attrs || {})) {
      // bpmn-js-differ 3.2 hands jsondiffpatch's [old, new] pair to
      // ChangeHandler.changed(model, key, newValue, oldValue) in that order, so its
      // `oldValue` holds the newer value (the comparison test pins the direction).
      row('changed', id, nameOf(change.model), property, show(values.newValue),
        show(values.oldValue));
    }
  }
  return table;
}

async function viewerFor(container, xml) {
  const viewer = new NavigatedViewer({ container });
  if (xml) {
    await viewer.importXML(xml);
    viewer.get('canvas').zoom('fit-viewport', 'auto');
  }
  return viewer;
}

export async function renderComparison(root, oldXml, newXml, texts) {
  const summary = root.querySelector('[data-compare-summary]');
  const [older, newer] = await Promise.all([
    viewerFor(root.querySelector('[data-compare-old]'), oldXml),
    viewerFor(root.querySelector('[data-compare-new]'), newXml),
  ]);
  const empty = { _added: {}, _removed: {}, _changed: {}, _layoutChanged: {} };
  const changes = oldXml && newXml ? diff(older.getDefinitions(), newer.getDefinitions()) : empty;
  mark(newer, Object.keys(changes._added), 'diff-added');
  mark(older, Object.keys(changes._removed), 'diff-removed');
  mark(older, Object.keys(changes._changed), 'diff-changed');
  mark(newer, Object.keys(changes._changed), 'diff-changed');
  mark(older, Object.keys(changes._layoutChanged), 'diff-layout');
  mark(newer, Object.keys(changes._layoutChanged), 'diff-layout');
  const counts = {
    added: Object.keys(changes._added).length,
    removed: Object.keys(changes._removed).length,
    changed: Object.keys(changes._changed).length,
    layout: Object.keys(changes._layoutChanged).length,
  };
  const total = counts.added + counts.removed + counts.changed + counts.layout;
  summary.textContent = total ? texts.summary.replace(/{(\w+)}/g, (_, key) => counts[key])
    : texts.noChanges;
  const list = root.querySelector('[data-compare-changes]');
  list.replaceChildren();
  if (counts.added + counts.removed + counts.changed) {
    list.appendChild(changeTable(changes, texts));
  }
  root.dataset.state = 'ready';
  Object.assign(root.dataset, {
    added: Object.keys(changes._added).join(' '),
    removed: Object.keys(changes._removed).join(' '),
    changed: Object.keys(changes._changed).join(' '),
  });
  return { changes, older, newer };
}

async function fromPage(root) {
  const texts = JSON.parse(root.querySelector('[data-compare-text]').textContent);
  try {
    const [oldXml, newXml] = await Promise.all([
      root.dataset.oldUrl ? getText(root.dataset.oldUrl) : '',
      root.dataset.newUrl ? getText(root.dataset.newUrl) : '',
    ]);
    await renderComparison(root, oldXml, newXml, texts);
  } catch (error) {
    root.dataset.state = 'error';
    root.querySelector('[data-compare-summary]').textContent =
      `${texts.loadFailed} ${error.message}`;
  }
}

for (const root of document.querySelectorAll('[data-compare][data-old-url]')) {
  fromPage(root);
}
