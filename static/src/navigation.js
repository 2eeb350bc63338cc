// Moving around a read-only diagram: a readable first view, zoom buttons, touch pan and pinch.

const MIN_READABLE = 0.6; // below this, Chinese labels are too small on a phone
const STEP = 1.25;
const PADDING = 16;

function center(box) {
  return { x: box.clientWidth / 2, y: box.clientHeight / 2 };
}

function bounds(elements) {
  const shapes = elements.filter((e) => e && e.width !== undefined);
  if (!shapes.length) {
    return null;
  }
  const left = Math.min(...shapes.map((e) => e.x));
  const top = Math.min(...shapes.map((e) => e.y));
  const right = Math.max(...shapes.map((e) => e.x + e.width));
  const bottom = Math.max(...shapes.map((e) => e.y + e.height));
  return { x: left, y: top, width: right - left, height: bottom - top };
}

/**
 * Fit the whole diagram, unless that makes it unreadable: then show it at a readable size,
 * centred on the `focus` elements (where the case stands) or else from its start.
 */
export function fitReadable(viewer, box, focus = []) {
  const canvas = viewer.get('canvas');
  canvas.zoom('fit-viewport', 'auto');
  if (canvas.zoom() > 1) {
    canvas.zoom(1, 'auto');
  }
  if (canvas.zoom() >= MIN_READABLE) {
    return;
  }
  canvas.zoom(MIN_READABLE);
  const { inner, width, height } = canvas.viewbox();
  let area = bounds(focus);
  if (area && (area.width > width || area.height > height)) {
    area = bounds(focus.slice(0, 1)); // too far apart to show together: the first one
  }
  if (area) {
    canvas.viewbox({ x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2,
      width, height });
    return;
  }
  const y = inner.height > height ? inner.y - PADDING : inner.y + (inner.height - height) / 2;
  canvas.viewbox({ x: inner.x - PADDING, y, width, height });
}

function zoomBy(canvas, box, factor) {
  canvas.zoom(canvas.zoom() * factor, center(box));
}

function bindButtons(viewer, box) {
  const figure = box.closest('.bpmn-figure');
  if (!figure) {
    return;
  }
  const canvas = viewer.get('canvas');
  const actions = {
    in: () => zoomBy(canvas, box, STEP),
    out: () => zoomBy(canvas, box, 1 / STEP),
    fit: () => canvas.zoom('fit-viewport', 'auto'),
  };
  for (const button of figure.querySelectorAll('[data-diagram-zoom]')) {
    const action = actions[button.dataset.diagramZoom];
    if (action) {
      button.addEventListener('click', action);
    }
  }
}

function bindTouch(viewer, box) {
  const canvas = viewer.get('canvas');
  const pointers = new Map();
  let pinch = null;

  function local(event) {
    const rect = box.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  function startPinch() {
    const [a, b] = Array.from(pointers.values());
    pinch = {
      distance: Math.hypot(a.x - b.x, a.y - b.y) || 1,
      scale: canvas.zoom(),
      middle: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 },
    };
  }

  box.addEventListener('pointerdown', (event) => {
    if (event.pointerType !== 'touch') {
      return;
    }
    pointers.set(event.pointerId, local(event));
    if (pointers.size === 2) {
      startPinch();
    }
  });

  box.addEventListener('pointermove', (event) => {
    const last = pointers.get(event.pointerId);
    if (!last) {
      return;
    }
    const now = local(event);
    pointers.set(event.pointerId, now);
    if (pointers.size === 1) {
      canvas.scroll({ dx: now.x - last.x, dy: now.y - last.y });
    } else if (pinch && pointers.size === 2) {
      const [a, b] = Array.from(pointers.values());
      const middle = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      canvas.scroll({ dx: middle.x - pinch.middle.x, dy: middle.y - pinch.middle.y });
      const distance = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      canvas.zoom(pinch.scale * distance / pinch.distance, middle);
      pinch.middle = middle;
    }
  });

  function end(event) {
    pointers.delete(event.pointerId);
    pinch = null;
    if (pointers.size === 2) {
      startPinch();
    }
  }
  box.addEventListener('pointerup', end);
  box.addEventListener('pointercancel', end);
}

export function attachNavigation(viewer, box) {
  bindButtons(viewer, box);
  bindTouch(viewer, box);
  if (window.ResizeObserver) {
    new ResizeObserver(() => viewer.get('canvas').resized()).observe(box);
  }
}
