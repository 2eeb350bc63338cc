// The modeller in Chinese: a diagram-js `translate` service over the community translation of
// the palette and context pad (bpmn-js-i18n) and the project's own translation of the
// properties panel and the lint messages. Ids and technical values stay as they are.
import community from 'bpmn-js-i18n/translations/zn.js';

import panel from './translations-panel-zh.js';

const dictionary = { ...community, ...panel };

export function translateZh(template, replacements = {}) {
  const text = Object.prototype.hasOwnProperty.call(dictionary, template)
    ? dictionary[template] : template;
  return text.replace(/{([^}]+)}/g, (_, key) => (key in replacements ? replacements[key]
    : `{${key}}`));
}

export default { translate: ['value', translateZh] };

// Event names in the panel's header are composed: "Timer Boundary Event (Non Interrupting)".
const EVENT_KINDS = {
  Message: '消息', Timer: '定时', Escalation: '升级', Conditional: '条件', Link: '链接',
  Error: '错误', Cancel: '取消', Compensation: '补偿', Signal: '信号', Terminate: '终止',
  Multiple: '多重', 'Parallel Multiple': '并行多重',
};
const EVENTS = {
  'Start Event': '开始事件', 'End Event': '结束事件', 'Boundary Event': '边界事件',
  'Intermediate Catch Event': '中间捕获事件', 'Intermediate Throw Event': '中间抛出事件',
};
const EVENT_LABEL = new RegExp(`^(?:(${Object.keys(EVENT_KINDS).sort((a, b) => b.length - a.length)
  .join('|')}) )?(${Object.keys(EVENTS).join('|')})( \\(Non Interrupting\\))?$`);

function known(text) {
  const trimmed = text.trim();
  if (Object.prototype.hasOwnProperty.call(dictionary, trimmed)) {
    return dictionary[trimmed];
  }
  const event = EVENT_LABEL.exec(trimmed);
  if (event) {
    return `${event[1] ? EVENT_KINDS[event[1]] : ''}${EVENTS[event[2]]}${event[3] ? '（非中断）' : ''}`;
  }
  return null;
}

const ATTRIBUTES = ['title', 'aria-label', 'placeholder'];

function translateNode(node) {
  if (node.nodeType === Node.TEXT_NODE) {
    const text = known(node.nodeValue);
    if (text !== null && text !== node.nodeValue) { // an unchanged write is a change too
      node.nodeValue = text;
    }
    return;
  }
  if (node.nodeType !== Node.ELEMENT_NODE || node.closest('input, textarea, [contenteditable]')) {
    return;
  }
  for (const name of ATTRIBUTES) {
    const value = node.getAttribute(name);
    const text = value && known(value);
    if (text && text !== value) {
      node.setAttribute(name, text);
    }
  }
  for (const child of node.childNodes) {
    translateNode(child);
  }
}

// Some texts of the properties panel library are written into the page without passing
// through `translate` (toggles, list buttons, descriptions, the header's element type):
// translate them as they appear. Only whole texts that are in the dictionary change, so names
// and values a designer typed stay as they are.
export function translatePanel(root) {
  translateNode(root);
  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.type === 'characterData' || change.type === 'attributes') {
        translateNode(change.target);
      } else {
        change.addedNodes.forEach(translateNode);
      }
    }
  }).observe(root, { subtree: true, childList: true, characterData: true,
    attributes: true, attributeFilter: ATTRIBUTES });
}
