// A batch of case migrations: move one case per request until the batch is finished or
// someone presses Stop; the progress bar and the result table follow each answer.
import { postJSON } from './http.js';

function row(result, outcomes) {
  const tr = document.createElement('tr');
  tr.dataset.case = result.case_no;
  tr.dataset.outcome = result.outcome;
  for (const text of [result.case_no, outcomes[result.outcome] || result.outcome,
    (result.reasons || []).join('; ')]) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.appendChild(td);
  }
  return tr;
}

function show(box, state) {
  const labels = JSON.parse(box.dataset.labels || '{}');
  const outcomes = JSON.parse(box.dataset.outcomes || '{}');
  box.dataset.status = state.status;
  box.querySelector('[data-batch-status]').textContent = labels[state.status] || state.status;
  box.querySelector('[data-batch-count]').textContent = `${state.done} / ${state.total}`;
  const bar = box.querySelector('progress');
  bar.max = state.total;
  bar.value = state.done;
  const body = box.querySelector('[data-batch-results]');
  const shown = new Set(Array.from(body.children).map((tr) => tr.dataset.case));
  for (const result of Object.values(state.results)) {
    if (!shown.has(result.case_no)) {
      body.appendChild(row(result, outcomes));
    }
  }
  box.querySelector('[data-action=stop]').disabled = state.status !== 'running';
}

async function run(box) {
  let stopping = false;
  const stopButton = box.querySelector('[data-action=stop]');
  stopButton.addEventListener('click', async (event) => {
    event.preventDefault();
    stopping = true;
    stopButton.disabled = true;
    show(box, await postJSON(box.dataset.stopUrl, {}));
  });
  while (box.dataset.status === 'running' && !stopping) {
    let state;
    try {
      state = await postJSON(box.dataset.migrationBatch, {});
    } catch (error) {
      const message = box.querySelector('[data-batch-error]');
      message.textContent = error.message;
      message.hidden = false;
      return;
    }
    if (!stopping) {
      show(box, state);
    }
  }
}

for (const box of document.querySelectorAll('[data-migration-batch]')) {
  run(box);
}
