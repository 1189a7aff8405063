// amqplib's callback API as many programs use it: publish until the socket's buffer is
// full, then close the connection at once. The close callback must run without an error
// (a reset or EPIPE from the broker would make it fail). Publishes that reach the broker
// after the close are dropped, as the spec says, so the queue is not counted.
// Usage: node publish_then_close.js PORT QUEUE
const amqp = require('amqplib/callback_api');

const [port, queue] = process.argv.slice(2);
const body = Buffer.alloc(16 * 1024, 'x');

function fail(what, err) {
  console.log(`FAIL ${what}: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
}

amqp.connect(`amqp://guest:guest@127.0.0.1:${port}`, (err, conn) => {
  if (err) fail('connect', err);
  conn.on('error', (e) => fail('connection error', e));
  conn.createChannel((err, ch) => {
    if (err) fail('channel', err);
    ch.assertQueue(queue, { durable: false }, (err) => {
      if (err) fail('declare', err);
      let sent = 0;
      // sendToQueue returns false once the socket's buffer is full: stop there and close.
      while (ch.sendToQueue(queue, body)) sent++;
      sent++;  // the one that filled the buffer was written too
      conn.close((err) => {
        if (err) fail('close', err);
        console.log(`closed cleanly after ${sent} messages`);
        process.stdout.write(`sent ${sent}\n`);
        process.exit(0);
      });
    });
  });
});
