// warren-load: an end-to-end AMQP load generator on librabbitmq, for Warren and RabbitMQ alike.
//
//   amqp_load --port 5672 --mode both --size 256 --messages 100000 --window 256 --prefetch 256
//             [--queue-type classic|quorum] [--queue NAME]
//
// publish: persistent messages with publisher confirms, at most --window unconfirmed.
// consume: manual acks with --prefetch (the queue must hold --messages already).
// both:    one producer and one consumer at once; timed until the consumer has them all.
// Prints one line: mode, size, window, prefetch, messages, seconds, messages per second.
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

struct Options {
  int port = 5672;
  std::string mode = "both";
  size_t size = 256;
  long messages = 100000;
  int window = 256;
  int prefetch = 256;
  std::string queue_type = "classic";
  std::string queue = "warren-load";
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "amqp_load: %s\n", what);
  std::exit(1);
}

void check(amqp_connection_state_t c, const char* what) {
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) die(what);
}

amqp_connection_state_t connect(const Options& o) {
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* s = amqp_tcp_socket_new(c);
  if (amqp_socket_open(s, "127.0.0.1", o.port) != AMQP_STATUS_OK) die("connect");
  if (amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
      AMQP_RESPONSE_NORMAL)
    die("login");
  amqp_channel_open(c, 1);
  check(c, "channel.open");
  return c;
}

void declare(amqp_connection_state_t c, const Options& o) {
  amqp_table_entry_t entry;
  amqp_table_t args = amqp_empty_table;
  if (o.queue_type == "quorum") {
    entry.key = amqp_cstring_bytes("x-queue-type");
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = amqp_cstring_bytes("quorum");
    args.num_entries = 1;
    args.entries = &entry;
  }
  amqp_queue_declare(c, 1, amqp_cstring_bytes(o.queue.c_str()), 0, 1, 0, 0, args);
  check(c, "queue.declare");
}

void close(amqp_connection_state_t c) {
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

void publish_all(const Options& o) {
  amqp_connection_state_t c = connect(o);
  declare(c, o);
  amqp_confirm_select(c, 1);
  check(c, "confirm.select");
  std::string body(o.size, 'b');
  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = 2;
  long published = 0, confirmed = 0;
  while (confirmed < o.messages) {
    while (published < o.messages && published - confirmed < o.window) {
      if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(o.queue.c_str()), 0, 0, &props,
                             amqp_bytes_t{body.size(), body.data()}) != AMQP_STATUS_OK)
        die("publish");
      ++published;
    }
    amqp_frame_t frame;
    if (amqp_simple_wait_frame(c, &frame) != AMQP_STATUS_OK) die("wait for confirm");
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) die("nacked");
    if (frame.payload.method.id != AMQP_BASIC_ACK_METHOD) continue;
    auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
    confirmed = ack->multiple ? long(ack->delivery_tag) : confirmed + 1;
  }
  close(c);
}

void consume_all(const Options& o) {
  amqp_connection_state_t c = connect(o);
  declare(c, o);
  amqp_basic_qos(c, 1, 0, uint16_t(o.prefetch), 0);
  check(c, "basic.qos");
  amqp_basic_consume(c, 1, amqp_cstring_bytes(o.queue.c_str()), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  check(c, "basic.consume");
  for (long received = 0; received < o.messages; ++received) {
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(c);
    if (amqp_consume_message(c, &envelope, nullptr, 0).reply_type != AMQP_RESPONSE_NORMAL) die("consume");
    if (amqp_basic_ack(c, 1, envelope.delivery_tag, 0) != AMQP_STATUS_OK) die("ack");
    amqp_destroy_envelope(&envelope);
  }
  close(c);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") o.port = std::atoi(v.c_str());
    else if (k == "--mode") o.mode = v;
    else if (k == "--size") o.size = size_t(std::atol(v.c_str()));
    else if (k == "--messages") o.messages = std::atol(v.c_str());
    else if (k == "--window") o.window = std::atoi(v.c_str());
    else if (k == "--prefetch") o.prefetch = std::atoi(v.c_str());
    else if (k == "--queue-type") o.queue_type = v;
    else if (k == "--queue") o.queue = v;
    else die(("unknown option " + k).c_str());
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  auto start = std::chrono::steady_clock::now();
  if (o.mode == "publish") {
    publish_all(o);
  } else if (o.mode == "consume") {
    consume_all(o);
  } else if (o.mode == "both") {
    std::thread consumer([&] { consume_all(o); });
    publish_all(o);
    consumer.join();
  } else {
    die("mode is publish, consume or both");
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s size=%zu window=%d prefetch=%d messages=%ld seconds=%.3f rate=%.0f/s\n", o.mode.c_str(), o.size,
              o.window, o.prefetch, o.messages, seconds, double(o.messages) / seconds);
  return 0;
}
