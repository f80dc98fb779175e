// Follows one order's stream (GET /v1/orders/{id}/events) with EventSource.
// The token comes in the page's fragment (#access_token=...), which the
// browser does not send to any server; EventSource cannot send headers, so
// it goes to the stream as access_token. On a dropped connection EventSource
// reconnects by itself with Last-Event-ID, and the stream resumes after the
// last event shown.
(() => {
  const id = decodeURIComponent(location.pathname.split('/').pop());
  const token = new URLSearchParams(location.hash.slice(1)).get('access_token');
  const status = document.getElementById('status');
  const parts = document.getElementById('parts');
  const events = document.getElementById('events');
  const connection = document.getElementById('connection');
  document.getElementById('order').textContent = id;
  if (!token) {
    status.textContent = 'Open this page as /live/orders/<order id>#access_token=<token>.';
    return;
  }
  const url = `/v1/orders/${encodeURIComponent(id)}/events?access_token=${encodeURIComponent(token)}`;
  const source = new EventSource(url);
  source.onopen = () => { connection.textContent = 'live'; connection.dataset.state = 'open'; };
  source.onerror = () => {
    const closed = source.readyState === EventSource.CLOSED;
    connection.textContent = closed ? 'the stream ended (sign in again to follow it)' : 'reconnecting…';
    connection.dataset.state = closed ? 'closed' : 'reconnecting';
  };
  source.addEventListener('order', (message) => {
    const { event, order } = JSON.parse(message.data);
    status.textContent = order.status;
    status.dataset.status = order.status;
    document.body.dataset.version = message.lastEventId;
    parts.textContent = ['reservation', 'payment', 'shipment']
      .filter((part) => order[part])
      .map((part) => `${part}: ${order[part].status}`)
      .join(' · ');
    const item = document.createElement('li');
    item.value = Number(message.lastEventId);
    item.dataset.version = message.lastEventId;
    item.dataset.type = event.type;
    item.textContent = event.type;
    events.append(item);
  });
})();
