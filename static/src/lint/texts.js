// Messages of the project's lint rules, replaced by the page's translated texts at start-up.
export const lintTexts = {
  userTaskLane: 'A user task must sit in a lane (a role or department) so that somebody gets it.',
  feelCondition: 'Conditions are Python expressions: write {python} instead of {text}.',
  conditionMissing: 'A flow leaving a decision gateway needs a condition, or must be its default flow.',
  timerMissing: 'The timer has no time: give a duration such as PT30M.',
};

export function setLintTexts(texts) {
  Object.assign(lintTexts, texts || {});
}

export function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (_, key) => (key in values ? values[key] : `{${key}}`));
}
