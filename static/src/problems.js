// The validation problems beside the diagram: a list, and a marker on every named element.

const MARKER = 'has-problem';

function findElement(registry, elementId) {
  if (!elementId) {
    return null;
  }
  const direct = registry.get(elementId);
  if (direct) {
    return direct;
  }
  // A process inside a collaboration is drawn as its participant.
  return registry.find((element) => {
    const ref = element.businessObject && element.businessObject.processRef;
    return ref && ref.id === elementId;
  }) || null;
}

export class ProblemList {
  constructor(container, modeler, { fileName, texts }) {
    this.container = container;
    this.modeler = modeler;
    this.fileName = fileName;
    this.texts = texts;
    this.marked = [];
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
    this.clear();
    if (!problems.length) {
      return;
    }
    const registry = this.modeler.get('elementRegistry');
    const canvas = this.modeler.get('canvas');
    const heading = document.createElement('h2');
    heading.textContent = this.texts.problemsHeading;
    const list = document.createElement('ul');
    for (const problem of problems) {
      const here = !problem.file || problem.file === this.fileName;
      const element = here ? findElement(registry, problem.element_id) : null;
      if (element && !this.marked.includes(element)) {
        canvas.addMarker(element, MARKER);
        this.marked.push(element);
      }
      list.appendChild(this.item(problem, element));
    }
    this.container.append(heading, list);
    this.container.hidden = false;
  }

  item(problem, element) {
    const item = document.createElement('li');
    item.className = 'designer-problem';
    if (problem.element_id) {
      item.dataset.elementId = problem.element_id;
    }
    const where = document.createElement('div');
    where.className = 'where';
    const place = [problem.file, problem.line].filter((part) => part).join(':');
    if (place) {
      const file = document.createElement('code');
      file.textContent = place;
      where.appendChild(file);
    }
    if (problem.element_id) {
      const target = document.createElement(element ? 'button' : 'code');
      target.textContent = problem.element_id;
      if (element) {
        target.type = 'button';
        target.className = 'link';
        target.title = this.texts.showElement;
        target.addEventListener('click', () => this.reveal(element));
      }
      where.appendChild(target);
    }
    const message = document.createElement('p');
    message.textContent = problem.message;
    item.append(where, message);
    return item;
  }

  reveal(element) {
    if (element.parent) { // the root element cannot be scrolled to
      this.modeler.get('canvas').scrollToElement(element);
    }
    this.modeler.get('selection').select(element);
  }
}
