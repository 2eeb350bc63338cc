// The problems beside the diagram (the server's check and the modeller's own lint rules): a
// list, and a marker on the drawn element of each. A problem may name a child of a drawn
// element (a condition, a timer definition) or an element of another diagram of the file:
// the marker goes on the drawn parent, and clicking the problem switches diagrams first.

const MARKER = 'has-problem';
// Properties whose items are drawn elements of their own: not children of their holder.
const DRAWN_ITEMS = new Set(['flowElements', 'artifacts', 'laneSets', 'participants',
  'messageFlows', 'rootElements', 'diagrams']);

// Every id in a moddle object tree: the object itself and everything it holds.
function collectIds(object, into, owner, seen = new Set()) {
  if (!object || typeof object !== 'object' || seen.has(object)) {
    return;
  }
  seen.add(object);
  if (Array.isArray(object)) {
    object.forEach((item) => collectIds(item, into, owner, seen));
    return;
  }
  if (!object.$type) {
    return;
  }
  if (object.id && !into.has(object.id)) {
    into.set(object.id, owner);
  }
  const descriptor = object.$descriptor;
  for (const property of (descriptor && descriptor.properties) || []) {
    // References (flowNodeRef, sourceRef, ...) point at other elements: not children.
    if (property.isReference || DRAWN_ITEMS.has(property.name)) {
      continue;
    }
    collectIds(object[property.name], into, owner, seen);
  }
  collectIds(object.extensionElements, into, owner, seen);
}

export class ProblemList {
  constructor(container, modeler, { fileName, texts, diagrams }) {
    this.container = container;
    this.modeler = modeler;
    this.fileName = fileName;
    this.texts = texts;
    this.diagrams = diagrams; // DiagramSwitcher, or null
    this.marked = [];
    this.server = [];
    this.lint = [];
    this.modeler.on('import.done', () => this.render());
  }

  // Which drawn element (on the diagram shown now) stands for an id, a child id or a process.
  locate(id) {
    if (!id) {
      return null;
    }
    const registry = this.modeler.get('elementRegistry');
    const direct = registry.get(id);
    if (direct) {
      return direct;
    }
    const owners = new Map();
    for (const element of registry.getAll()) {
      const bo = element.businessObject;
      if (!bo || element.type === 'label') {
        continue;
      }
      if (bo.processRef && bo.processRef.id === id) {
        return element; // a process inside a collaboration is drawn as its participant
      }
      if (element.parent) {
        collectIds(bo, owners, element);
      }
    }
    return owners.get(id) || null;
  }

  clear() {
    const canvas = this.modeler.get('canvas');
    for (const element of this.marked) {
      canvas.removeMarker(element, MARKER);
    }
    this.marked = [];
    this.container.replaceChildren();
    this.container.hidden = true;
  }

  show(problems) {
    this.server = problems || [];
    this.render();
  }

  showLint(issues) {
    this.lint = issues || [];
    this.render();
  }

  reset() {
    this.server = [];
    this.lint = [];
    this.render();
  }

  render() {
    this.clear();
    const all = [
      ...this.server.map((p) => ({ ...p, source: 'server' })),
      ...this.lint.map((p) => ({ ...p, source: 'lint' })),
    ];
    if (!all.length) {
      return;
    }
    const canvas = this.modeler.get('canvas');
    const heading = document.createElement('h2');
    heading.textContent = this.texts.problemsHeading;
    const list = document.createElement('ul');
    for (const problem of all) {
      const here = !problem.file || problem.file === this.fileName;
      const id = problem.element || problem.element_id || null;
      const target = here ? (problem.child && this.locate(problem.child)) || this.locate(id)
        : null;
      if (target && !this.marked.includes(target)) {
        canvas.addMarker(target, MARKER);
        this.marked.push(target);
      }
      list.appendChild(this.item(problem, id, here, target));
    }
    this.container.append(heading, list);
    this.container.hidden = false;
  }

  item(problem, id, here, element) {
    const item = document.createElement('li');
    item.className = `designer-problem ${problem.source}`;
    item.dataset.source = problem.source;
    if (problem.severity) {
      item.dataset.severity = problem.severity;
    }
    // The element the problem was found on (a process, a flow); the marker goes on the
    // drawn element that holds it.
    const found = problem.element_id || id;
    if (found) {
      item.dataset.elementId = found;
    }
    if (id && id !== found) {
      item.dataset.drawnId = id;
    }
    const where = document.createElement('div');
    where.className = 'where';
    const source = document.createElement('span');
    source.className = 'badge';
    source.textContent = problem.source === 'lint' ? this.texts.lintSource : this.texts.serverSource;
    where.appendChild(source);
    const place = [problem.file, problem.line].filter((part) => part).join(':');
    if (place) {
      const file = document.createElement('code');
      file.textContent = place;
      where.appendChild(file);
    }
    const otherDiagram = here && !element && id && this.diagrams
      && this.diagrams.diagramOf(problem.child || id);
    if (id) {
      const clickable = element || otherDiagram;
      const target = document.createElement(clickable ? 'button' : 'code');
      target.textContent = problem.child ? `${id} › ${problem.child}` : id;
      if (clickable) {
        target.type = 'button';
        target.className = 'link';
        target.title = otherDiagram ? this.texts.showOnOtherDiagram : this.texts.showElement;
        target.addEventListener('click', () => this.reveal(problem.child || id, id));
      }
      where.appendChild(target);
    } else if (here) {
      const file = document.createElement('span');
      file.className = 'muted';
      file.textContent = this.texts.fileProblem;
      where.appendChild(file);
    }
    const message = document.createElement('p');
    message.textContent = problem.message;
    item.append(where, message);
    return item;
  }

  async reveal(childId, id) {
    let element = this.locate(childId) || this.locate(id);
    if (!element && this.diagrams) {
      const diagram = this.diagrams.diagramOf(childId) || this.diagrams.diagramOf(id);
      if (diagram) {
        await this.diagrams.open(diagram);
        element = this.locate(childId) || this.locate(id);
      }
    }
    if (!element) {
      return;
    }
    if (element.parent) { // the root element cannot be scrolled to
      this.modeler.get('canvas').scrollToElement(element);
    }
    this.modeler.get('selection').select(element);
  }
}
