// Every BPMNDiagram of a file reachable: a select listing them, and which diagram draws an id.

function planeIds(diagram) {
  const ids = new Set();
  const plane = diagram.plane;
  if (!plane) {
    return ids;
  }
  if (plane.bpmnElement) {
    ids.add(plane.bpmnElement.id);
  }
  for (const shape of plane.planeElement || []) {
    if (shape.bpmnElement) {
      ids.add(shape.bpmnElement.id);
    }
  }
  return ids;
}

export class DiagramSwitcher {
  constructor(select, modeler, { texts, onOpen }) {
    this.select = select;
    this.modeler = modeler;
    this.texts = texts;
    this.onOpen = onOpen;
    this.select.addEventListener('change', () => {
      const diagram = this.diagrams().find((d) => d.id === this.select.value);
      if (diagram) {
        this.open(diagram);
      }
    });
  }

  diagrams() {
    const definitions = this.modeler.getDefinitions();
    return (definitions && definitions.diagrams) || [];
  }

  // The diagram that draws an id; for a child id (not drawn itself), the diagram whose
  // plane draws the element holding it.
  diagramOf(id) {
    for (const diagram of this.diagrams()) {
      const ids = planeIds(diagram);
      if (ids.has(id)) {
        return diagram;
      }
    }
    const definitions = this.modeler.getDefinitions();
    const holder = definitions && this.holderOf(definitions, id);
    return holder ? this.diagrams().find((d) => planeIds(d).has(holder)) || null : null;
  }

  holderOf(definitions, id) {
    // Depth-first over the semantic model: the innermost drawn ancestor of the id.
    const drawn = new Set(this.diagrams().flatMap((d) => [...planeIds(d)]));
    const seen = new Set();
    const walk = (object, holder) => {
      if (!object || typeof object !== 'object' || seen.has(object)) {
        return null;
      }
      seen.add(object);
      if (Array.isArray(object)) {
        for (const item of object) {
          const found = walk(item, holder);
          if (found) {
            return found;
          }
        }
        return null;
      }
      if (!object.$type) {
        return null;
      }
      const here = object.id && drawn.has(object.id) ? object.id : holder;
      if (object.id === id) {
        return here;
      }
      for (const property of (object.$descriptor && object.$descriptor.properties) || []) {
        if (!property.isReference && property.name !== 'diagrams') {
          const found = walk(object[property.name], here);
          if (found) {
            return found;
          }
        }
      }
      return null;
    };
    return walk(definitions, null);
  }

  label(diagram, index) {
    const element = diagram.plane && diagram.plane.bpmnElement;
    const name = diagram.name || (element && (element.name || element.id)) || diagram.id;
    return `${index + 1}. ${name}`;
  }

  refresh() {
    const diagrams = this.diagrams();
    const shown = this.modeler.get('canvas').getRootElement();
    const shownId = shown && shown.businessObject && shown.businessObject.di
      && shown.businessObject.di.$parent && shown.businessObject.di.$parent.id;
    this.select.replaceChildren(...diagrams.map((diagram, index) => {
      const option = document.createElement('option');
      option.value = diagram.id;
      option.textContent = this.label(diagram, index);
      option.selected = diagram.id === shownId;
      return option;
    }));
    this.select.closest('[data-diagram-switch]').hidden = diagrams.length < 2;
  }

  async open(diagram) {
    const { warnings } = await this.modeler.open(diagram);
    this.modeler.get('canvas').zoom('fit-viewport', 'auto');
    this.select.value = diagram.id;
    if (this.onOpen) {
      this.onOpen(diagram, warnings);
    }
  }
}
