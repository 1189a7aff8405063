// Node's amqplib: confirm channel, consume with manual ack, nack with and without requeue,
// get, prefetch. Exits 0 when every expectation holds. Usage: node amqplib_client.js PORT QUEUE
const amqp = require("amqplib");
const assert = require("assert/strict");

async function main() {
  const [port, queue] = process.argv.slice(2);
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${port}`);
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue, { durable: true });
  for (let i = 0; i < 5; i++) ch.sendToQueue(queue, Buffer.from(`n${i}`), { persistent: true, messageId: `id${i}` });
  await ch.waitForConfirms();

  const first = await ch.get(queue, { noAck: false });
  assert.equal(first.content.toString(), "n0");
  assert.equal(first.fields.messageCount, 4);
  ch.nack(first, false, true);
  const again = await ch.get(queue, { noAck: false });
  assert.equal(again.content.toString(), "n0");
  assert.equal(again.fields.redelivered, true);
  ch.nack(again, false, false); // dropped: no dead-letter exchange here

  await ch.prefetch(2);
  const seen = [];
  let consumerTag;
  await new Promise(async (resolve) => {
    ({ consumerTag } = await ch.consume(queue, (msg) => {
      if (msg === null) return; // cancelled by the broker
      seen.push([msg.content.toString(), msg.properties.messageId]);
      ch.ack(msg);
      if (seen.length === 4) resolve();
    }));
  });
  await ch.cancel(consumerTag);
  assert.deepEqual(seen, [["n1", "id1"], ["n2", "id2"], ["n3", "id3"], ["n4", "id4"]]);

  // A channel error carries RabbitMQ's code and text.
  const bad = await conn.createChannel();
  const closed = new Promise((resolve) => bad.on("error", resolve));
  bad.ack({ fields: { deliveryTag: 42 } });
  const err = await closed;
  assert.equal(err.code, 406);
  assert.match(err.message, /PRECONDITION_FAILED - unknown delivery tag 42/);

  await ch.deleteQueue(queue);
  await conn.close();
  console.log("amqplib client: all expectations held");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
