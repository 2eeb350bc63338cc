// Read-only case diagrams: every `.bpmn-diagram` box loads its BPMN, fits it and marks the
// completed, active and overdue elements. Boxes added later by htmx are picked up too.
import './viewer.css';

import NavigatedViewer from 'bpmn-js/lib/NavigatedViewer';

import { getText } from './http.js';
import { attachNavigation, fitReadable } from './navigation.js';

// data-marks key -> marker class on the element
const MARKERS = { completed: 'done', active: 'active', overdue: 'overdue' };

function readMarks(box) {
  try {
    return JSON.parse(box.dataset.marks || '{}') || {};
  } catch {
    return {};
  }
}

function applyMarks(viewer, marks) {
  const registry = viewer.get('elementRegistry');
  const canvas = viewer.get('canvas');
  const missing = [];
  for (const [key, marker] of Object.entries(MARKERS)) {
    for (const id of marks[key] || []) {
      if (registry.get(id)) {
        canvas.addMarker(id, marker);
      } else {
        missing.push(id);
      }
    }
  }
  return missing;
}

async function show(box) {
  box.dataset.state = 'loading';
  const viewer = new NavigatedViewer({ container: box });
  box.bpmnViewer = viewer;
  try {
    await viewer.importXML(await getText(box.dataset.xmlUrl));
  } catch (error) {
    box.dataset.state = 'error';
    const message = document.createElement('p');
    message.className = 'bpmn-diagram-error';
    message.textContent = box.dataset.errorText || error.message;
    box.appendChild(message);
    return;
  }
  const marks = readMarks(box);
  const missing = applyMarks(viewer, marks);
  if (missing.length) {
    box.dataset.missingMarks = missing.join(' ');
  }
  const registry = viewer.get('elementRegistry');
  const current = [...(marks.overdue || []), ...(marks.active || [])];
  fitReadable(viewer, box, current.map((id) => registry.get(id)).filter(Boolean));
  attachNavigation(viewer, box);
  box.dataset.state = 'ready';
}

const PENDING = '.bpmn-diagram[data-xml-url]:not([data-state])';

export function showDiagrams(scope = document) {
  const boxes = Array.from(scope.querySelectorAll(PENDING));
  if (scope.matches && scope.matches(PENDING)) {
    boxes.push(scope);
  }
  return Promise.all(boxes.map(show));
}

if (!window.bpmnDiagrams) {
  window.bpmnDiagrams = { show: showDiagrams };
  showDiagrams();
  document.addEventListener('htmx:load', (event) => showDiagrams(event.target));
}
