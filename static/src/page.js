// Small behaviours of every page: photos open in an in-page viewer, copy buttons copy their
// target's text, and buttons marked data-confirm ask before they submit.

function openViewer(link) {
  const dialog = document.getElementById('viewer');
  if (!dialog || typeof dialog.showModal !== 'function') {
    return false;
  }
  const img = dialog.querySelector('img');
  img.src = link.href;
  img.alt = link.title || link.textContent.trim();
  dialog.showModal();
  return true;
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-viewer="image"]');
  if (link && openViewer(link)) {
    event.preventDefault();
    return;
  }
  const copy = event.target.closest('button[data-copy]');
  if (copy) {
    const source = document.getElementById(copy.dataset.copy);
    const text = source ? (source.value || source.textContent).trim() : '';
    if (text && navigator.clipboard) {
      navigator.clipboard.writeText(text).then(() => {
        copy.dataset.copied = 'true';
        copy.textContent = copy.dataset.done || copy.textContent;
      });
    } else if (source && source.select) {
      source.select();
    }
    return;
  }
  const dialog = event.target.closest('dialog.viewer');
  if (dialog && event.target === dialog) {
    dialog.close(); // a click on the backdrop
  }
});

document.addEventListener('submit', (event) => {
  const button = event.submitter;
  const question = (button && button.dataset.confirm) || event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
