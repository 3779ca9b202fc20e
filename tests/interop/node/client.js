// A client written with dbus-next (Node), against a libpeer server.
// Usage: node client.js ADDRESS. dbus-next is a bus client: it sends Hello,
// then GetNameOwner and AddMatch, which libpeer answers without a bus.
'use strict';
const dbus = require('dbus-next');

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
  bus.disconnect();
})().catch((e) => {
  console.error('node-client:', e.message || e);
  process.exit(1);
});
