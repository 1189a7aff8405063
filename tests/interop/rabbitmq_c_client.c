/* A client on librabbitmq (rabbitmq-c): confirms, get, consume with manual ack, nack with
 * requeue and without (to a dead-letter queue), prefetch. Exits 0 when every expectation
 * holds. Usage: PORT QUEUE [all|publish|verify] — publish and verify bracket a restart. */
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(cond, what)                             \
  do {                                                \
    if (!(cond)) {                                    \
      fprintf(stderr, "failed: %s\n", what);          \
      exit(1);                                        \
    }                                                 \
  } while (0)

static void ok_reply(amqp_connection_state_t c, const char* what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  CHECK(r.reply_type == AMQP_RESPONSE_NORMAL, what);
}

static void publish(amqp_connection_state_t c, const char* queue, const char* body) {
  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = 2;
  CHECK(amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &props,
                           amqp_cstring_bytes(body)) == AMQP_STATUS_OK, "publish");
}

static int wait_for_ack(amqp_connection_state_t c, uint64_t upto) {
  amqp_frame_t frame;
  uint64_t confirmed = 0;
  while (confirmed < upto) {
    CHECK(amqp_simple_wait_frame(c, &frame) == AMQP_STATUS_OK, "wait for confirm");
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) return 0;
    CHECK(frame.payload.method.id == AMQP_BASIC_ACK_METHOD, "basic.ack expected");
    amqp_basic_ack_t* ack = frame.payload.method.decoded;
    confirmed = ack->multiple ? ack->delivery_tag : confirmed + 1;
  }
  return 1;
}

static char* get_body(amqp_connection_state_t c, const char* queue, uint64_t* tag, int* redelivered) {
  amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 0);
  CHECK(r.reply_type == AMQP_RESPONSE_NORMAL, "basic.get");
  if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return NULL;
  amqp_basic_get_ok_t* ok = r.reply.decoded;
  *tag = ok->delivery_tag;
  *redelivered = ok->redelivered;
  amqp_message_t message;
  CHECK(amqp_read_message(c, 1, &message, 0).reply_type == AMQP_RESPONSE_NORMAL, "read message");
  char* body = strndup(message.body.bytes, message.body.len);
  amqp_destroy_message(&message);
  return body;
}

static int finish(amqp_connection_state_t c) {
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
  puts("rabbitmq-c client: all expectations held");
  return 0;
}

static void declare_with_dead_letter(amqp_connection_state_t c, const char* queue, const char* dlq) {
  amqp_table_entry_t entries[2];
  entries[0].key = amqp_cstring_bytes("x-dead-letter-exchange");
  entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
  entries[0].value.value.bytes = amqp_cstring_bytes("");
  entries[1].key = amqp_cstring_bytes("x-dead-letter-routing-key");
  entries[1].value.kind = AMQP_FIELD_KIND_UTF8;
  entries[1].value.value.bytes = amqp_cstring_bytes(dlq);
  amqp_table_t args = {2, entries};
  amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
  ok_reply(c, "queue.declare with dead-lettering");
}

int main(int argc, char** argv) {
  CHECK(argc == 3 || argc == 4, "usage: PORT QUEUE [all|publish|verify]");
  const char* queue = argv[2];
  const char* phase = argc == 4 ? argv[3] : "all";
  char dlq[300];
  snprintf(dlq, sizeof dlq, "%s-dead", queue);
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* s = amqp_tcp_socket_new(c);
  CHECK(amqp_socket_open(s, "127.0.0.1", atoi(argv[1])) == AMQP_STATUS_OK, "connect");
  CHECK(amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type ==
            AMQP_RESPONSE_NORMAL, "login");
  amqp_channel_open(c, 1);
  ok_reply(c, "channel.open");
  amqp_queue_declare(c, 1, amqp_cstring_bytes(dlq), 0, 1, 0, 0, amqp_empty_table);
  ok_reply(c, "queue.declare (dead letters)");
  declare_with_dead_letter(c, queue, dlq);
  amqp_confirm_select(c, 1);
  ok_reply(c, "confirm.select");
  uint64_t tag;
  int redelivered;
  char* body;
  if (strcmp(phase, "verify") == 0) {
    /* After the restart: the three persistent messages, in order, redelivery flags clear. */
    const char* expected[] = {"one", "two", "three"};
    for (int i = 0; i < 3; ++i) {
      body = get_body(c, queue, &tag, &redelivered);
      CHECK(body && strcmp(body, expected[i]) == 0, "persistent message back after the restart");
      free(body);
      CHECK(amqp_basic_ack(c, 1, tag, 0) == AMQP_STATUS_OK, "ack");
    }
    amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
    ok_reply(c, "queue.delete");
    amqp_queue_delete(c, 1, amqp_cstring_bytes(dlq), 0, 0);
    ok_reply(c, "queue.delete");
    return finish(c);
  }
  publish(c, queue, "one");
  publish(c, queue, "two");
  publish(c, queue, "three");
  CHECK(wait_for_ack(c, 3), "all three confirmed");
  if (strcmp(phase, "publish") == 0) return finish(c);

  body = get_body(c, queue, &tag, &redelivered);
  CHECK(body && strcmp(body, "one") == 0 && tag == 1 && !redelivered, "get one");
  free(body);
  CHECK(amqp_basic_nack(c, 1, tag, 0, 1) == AMQP_STATUS_OK, "nack requeue");
  body = get_body(c, queue, &tag, &redelivered);
  CHECK(body && strcmp(body, "one") == 0 && redelivered, "one again, redelivered");
  free(body);
  CHECK(amqp_basic_reject(c, 1, tag, 0) == AMQP_STATUS_OK, "reject without requeue");
  for (int tries = 0; tries < 100; ++tries) { /* RabbitMQ dead-letters asynchronously */
    body = get_body(c, dlq, &tag, &redelivered);
    if (body) break;
    struct timespec pause = {0, 20000000};
    nanosleep(&pause, NULL);
  }
  CHECK(body && strcmp(body, "one") == 0, "the rejected message is in the dead-letter queue");
  free(body);
  CHECK(amqp_basic_ack(c, 1, tag, 0) == AMQP_STATUS_OK, "ack the dead letter");

  amqp_basic_qos(c, 1, 0, 1, 0);
  ok_reply(c, "basic.qos");
  amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  ok_reply(c, "basic.consume");
  const char* expected[] = {"two", "three"};
  for (int i = 0; i < 2; ++i) {
    amqp_envelope_t envelope;
    CHECK(amqp_consume_message(c, &envelope, NULL, 0).reply_type == AMQP_RESPONSE_NORMAL, "consume");
    CHECK(envelope.message.body.len == strlen(expected[i]) &&
              memcmp(envelope.message.body.bytes, expected[i], envelope.message.body.len) == 0,
          "consumed in order");
    CHECK(amqp_basic_ack(c, 1, envelope.delivery_tag, 0) == AMQP_STATUS_OK, "ack");
    amqp_destroy_envelope(&envelope);
  }
  amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
  ok_reply(c, "queue.delete");
  amqp_queue_delete(c, 1, amqp_cstring_bytes(dlq), 0, 0);
  ok_reply(c, "queue.delete");
  return finish(c);
}
