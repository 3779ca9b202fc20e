// A client written with dbus-next (Node), against a libpeer server.
// Usage: node client.js ADDRESS. dbus-next is a bus client: it sends Hello,
// then GetNameOwner and AddMatch, which libpeer answers without a bus.
//
// After the calls, a signal: the proxy subscribes to Notified (dbus-next
// sends AddMatch and delivers only signals whose sender owns
// org.libpeer.Helper), calls Notify and waits for the signal, 5 s at most.
// A second connection that subscribed to nothing records every broadcast
// signal it gets; a call of its own, answered by the server after the
// signal went out, tells it when it has received all it would have.
'use strict';
const dbus = require('dbus-next');

const TIMEOUT_MS = 5000;

function withTimeout (promise, what) {
  let timer;
  const expired = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

// Properties.Get is answered by the server's main thread after the Notify
// handler that emitted the signal to every peer has returned; messages
// arrive in the order they were sent.
function fence (bus) {
  return withTimeout(bus.call(new dbus.Message({
    destination: 'org.libpeer.Helper',
    path: '/org/libpeer/Helper',
    interface: 'org.freedesktop.DBus.Properties',
    member: 'Get',
    signature: 'ss',
    body: ['org.libpeer.Helper1', 'Version']
  })), 'reply to the fence');
}

(async () => {
  const bus = dbus.sessionBus({ busAddress: process.argv[2] });
  const obj = await bus.getProxyObject('org.libpeer.Helper', '/org/libpeer/Helper');
  const helper = obj.getInterface('org.libpeer.Helper1');
  console.log('quick', await helper.Quick(8));
  try {
    await helper.Quick(0);
    throw new Error('Quick(0) unexpectedly succeeded');
  } catch (e) {
    if (!e.type) throw e;
    console.log('error', e.type, e.text);
  }
  const props = obj.getInterface('org.freedesktop.DBus.Properties');
  console.log('version', (await props.Get('org.libpeer.Helper1', 'Version')).value);

  const quiet = dbus.sessionBus({ busAddress: process.argv[2] });
  const quietSaw = [];
  await fence(quiet); // its Hello is done: it is a bus client
  quiet.on('message', (msg) => {
    if (msg.type === dbus.MessageType.SIGNAL && !msg.destination) quietSaw.push(msg.member);
  });

  const summary = 'from dbus-next node';
  const notified = new Promise((resolve) => {
    helper.on('Notified', (id, s) => { if (s === summary) resolve(id); });
  });
  const id = await helper.Notify('node', 0, '', summary, '', [], {}, -1);
  const signalId = await withTimeout(notified, 'Notified signal');
  if (signalId !== id) throw new Error(`Notified carried id ${signalId}, Notify returned ${id}`);
  console.log('notified', signalId, summary);

  await fence(quiet);
  console.log('unsubscribed-saw:', quietSaw.join(' '));
  quiet.disconnect();
  bus.disconnect();
})().catch((e) => {
  console.error('node-client:', e.message || e);
  process.exit(1);
});
