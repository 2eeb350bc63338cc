// Conditions run as Python: an expression in ${...} / #{...} (JUEL) or starting with "=" (FEEL)
// fails at run time, so say which Python expression to write.
import { is } from 'bpmnlint-utils';

import { fill, lintTexts } from './texts.js';

const JUEL = /^\s*[$#]\{([\s\S]*)\}\s*$/;
const FEEL = /^\s*=\s*([\s\S]*)$/;

export function pythonFor(text) {
  const found = JUEL.exec(text) || FEEL.exec(text);
  if (!found) {
    return null;
  }
  return found[1].trim()
    .replace(/&&/g, ' and ').replace(/\|\|/g, ' or ')
    .replace(/(^|[^=!<>])=([^=]|$)/g, '$1==$2')
    .replace(/!(?!=)/g, 'not ')
    .replace(/\s+/g, ' ').trim();
}

export default function pythonConditions() {
  function check(node, reporter) {
    if (!is(node, 'bpmn:SequenceFlow') || !node.conditionExpression) {
      return;
    }
    const text = node.conditionExpression.body || '';
    const python = pythonFor(text);
    if (python !== null) {
      reporter.report(node.id, fill(lintTexts.feelCondition, { python, text: text.trim() }));
    }
  }
  return { check };
}
