// Chat page for examples/chat_room.osp. The WebSocket URL comes from the page's query string
// (?ws=ws://HOST:PORT/PATH); without it, the room on the server that served the page
// (ws://HOST:PORT/ws), or ws://127.0.0.1:8080/ws for a page opened from a file.
'use strict';

(() => {
  const params = new URLSearchParams(location.search);
  const served = location.protocol === 'http:' || location.protocol === 'https:';
  const sameOrigin = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const url = params.get('ws') || (served ? sameOrigin : 'ws://127.0.0.1:8080/ws');

  const status = document.getElementById('status');
  const messages = document.getElementById('messages');
  const form = document.getElementById('composer');
  const input = document.getElementById('message');
  const sendButton = document.getElementById('send');
  const closeButton = document.getElementById('close');

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function addLine(text, kind) {
    const li = document.createElement('li');
    li.textContent = text; // never innerHTML: messages are untrusted
    if (kind) li.className = kind;
    messages.append(li);
    messages.scrollTop = messages.scrollHeight;
  }

  function setOpen(open) {
    input.disabled = !open;
    sendButton.disabled = !open;
    closeButton.disabled = !open;
  }

  let socket;
  try {
    socket = new WebSocket(url);
  } catch (e) {
    setStatus('error', `Cannot connect to ${url}: ${e.message}`);
    return;
  }
  // Binary messages (relayed as they are) arrive as ArrayBuffers rather than Blobs.
  socket.binaryType = 'arraybuffer';
  // For scripts and tests: the socket and what the page observed (binary messages as byte arrays).
  window.chat = { socket, url, close: null, binary: [] };

  setStatus('connecting', `Connecting to ${url}…`);

  socket.addEventListener('open', () => {
    const ext = socket.extensions === '' ? 'none' : socket.extensions;
    setStatus('open', `Connected to ${url} (extensions: ${ext})`);
    setOpen(true);
    input.focus();
  });

  socket.addEventListener('message', (event) => {
    if (event.data instanceof ArrayBuffer) {
      const bytes = new Uint8Array(event.data);
      window.chat.binary.push(Array.from(bytes));
      addLine(`Binary message (${bytes.length} bytes)`, 'binary');
      return;
    }
    const text = String(event.data);
    // The room's announcements ("* #2 joined the room") start with "* "; relayed messages with "#".
    addLine(text, text.startsWith('* ') ? 'event' : undefined);
  });

  socket.addEventListener('error', () => {
    // The close event follows with the details.
    addLine('Connection error', 'system');
  });

  socket.addEventListener('close', (event) => {
    window.chat.close = { code: event.code, reason: event.reason, wasClean: event.wasClean };
    const how = event.wasClean ? 'clean' : 'not clean';
    setStatus(event.wasClean ? 'closed' : 'error',
      `Closed (code ${event.code}${event.reason ? `, reason "${event.reason}"` : ''}, ${how})`);
    addLine(`Connection closed with code ${event.code}`, 'system');
    setOpen(false);
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value;
    if (text === '' || socket.readyState !== WebSocket.OPEN) return;
    socket.send(text);
    input.value = '';
    input.focus();
  });

  closeButton.addEventListener('click', () => {
    if (socket.readyState === WebSocket.OPEN) {
      setStatus('closing', 'Closing…');
      setOpen(false);
      socket.close(1000, 'bye');
    }
  });
})();
