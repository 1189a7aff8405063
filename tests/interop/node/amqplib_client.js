// Node's amqplib: confirm channel, consume with manual ack, nack with requeue and without
// (to a dead-letter queue), get, prefetch. Exits 0 when every expectation holds.
// Usage: node amqplib_client.js PORT QUEUE [all|publish|verify] (publish/verify bracket a restart)
const amqp = require("amqplib");
const assert = require("assert/strict");

async function main() {
  const [port, queue, phase = "all"] = process.argv.slice(2);
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${port}`);
  const ch = await conn.createConfirmChannel();
  const dead = `${queue}-dead`;
  await ch.assertQueue(dead, { durable: true });
  await ch.assertQueue(queue, { durable: true, deadLetterExchange: "", deadLetterRoutingKey: dead });
  if (phase === "verify") {
    for (const expected of ["n0", "n1", "n2", "n3", "n4"]) {
      const msg = await ch.get(queue, { noAck: true });
      assert.ok(msg, "persistent message back after the restart");
      assert.equal(msg.content.toString(), expected);
    }
    await ch.deleteQueue(queue);
    await ch.deleteQueue(dead);
    await conn.close();
    console.log("amqplib client: all expectations held");
    return;
  }
  for (let i = 0; i < 5; i++) ch.sendToQueue(queue, Buffer.from(`n${i}`), { persistent: true, messageId: `id${i}` });
  await ch.waitForConfirms();
  if (phase === "publish") {
    await conn.close();
    console.log("amqplib client: all expectations held");
    return;
  }

  const first = await ch.get(queue, { noAck: false });
  assert.equal(first.content.toString(), "n0");
  assert.equal(first.fields.messageCount, 4);
  ch.nack(first, false, true);
  const again = await ch.get(queue, { noAck: false });
  assert.equal(again.content.toString(), "n0");
  assert.equal(again.fields.redelivered, true);
  ch.nack(again, false, false); // to the dead-letter queue
  let deadLetter = false;
  for (let i = 0; i < 100 && !deadLetter; i++) { // RabbitMQ dead-letters asynchronously
    deadLetter = await ch.get(dead, { noAck: true });
    if (!deadLetter) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(deadLetter, "the nacked message reached the dead-letter queue");
  assert.equal(deadLetter.content.toString(), "n0");
  assert.equal(deadLetter.properties.headers["x-death"][0].reason, "rejected");

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
  await ch.deleteQueue(dead);
  await conn.close();
  console.log("amqplib client: all expectations held");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
