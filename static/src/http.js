// Small fetch helpers: same-origin requests with the page's CSRF token.

function csrfToken() {
  const holder = document.querySelector('[data-csrf-token]');
  return holder ? holder.dataset.csrfToken : '';
}

async function failure(response) {
  let message = `HTTP ${response.status}`;
  let body = null;
  try {
    body = await response.json();
    if (body && body.message) {
      message = body.message;
    }
  } catch {
    // not JSON: keep the status line
  }
  const error = new Error(message);
  error.status = response.status;
  error.code = body && body.code;
  error.details = (body && body.details) || {};
  return error;
}

export async function getText(url) {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (!response.ok) {
    throw await failure(response);
  }
  return response.text();
}

export async function postJSON(url, payload) {
  const response = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json',
      'X-CSRFToken': csrfToken(),
    },
    body: JSON.stringify(payload),
  });
  if (!response.ok) {
    throw await failure(response);
  }
  return response.json();
}

export async function postForm(url, form) {
  const response = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'X-CSRFToken': csrfToken() },
    body: form,
  });
  if (!response.ok) {
    throw await failure(response);
  }
  return response.json();
}

export function downloadText(text, fileName, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
