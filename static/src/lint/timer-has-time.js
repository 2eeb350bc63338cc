// A timer event must say when it fires: a duration, a date or a cycle.
import { is } from 'bpmnlint-utils';

import { lintTexts } from './texts.js';

export default function timerHasTime() {
  function check(node, reporter) {
    if (!is(node, 'bpmn:TimerEventDefinition')) {
      return;
    }
    const given = [node.timeDuration, node.timeDate, node.timeCycle]
      .some((expression) => expression && (expression.body || '').trim());
    if (!given) {
      const owner = node.$parent;
      reporter.report(owner && owner.id ? owner.id : node.id, lintTexts.timerMissing);
    }
  }
  return { check };
}
