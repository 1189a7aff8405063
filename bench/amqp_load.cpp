// warren-load: an end-to-end AMQP load generator on librabbitmq, for Warren and RabbitMQ alike.
//
//   amqp_load --port 5672 --mode both --size 256 --messages 100000 --window 256 --prefetch 256
//             [--queue-type classic|quorum] [--queue NAME] [--max-priority N] [--tls-ca CA.pem]
//             [--writes frame|publish]
//
// publish: persistent messages with publisher confirms, at most --window unconfirmed.
// consume: manual acks with --prefetch (the queue must hold --messages already).
// both:    one producer and one consumer at once; timed until the consumer has them all.
// connect: --connections connections opened (TLS handshake, login, channel) and closed, one
//          at a time: the set-up rate.
// rpc:     --messages round trips, one at a time, of a requester using direct reply-to
//          (amq.rabbitmq.reply-to) and a responder consuming the request queue.
// With --max-priority N the queue is a priority queue and message i has priority i % (N+1).
// --writes says how a publish is written: `frame` (the default) as librabbitmq writes it, a
// write per frame (over TLS each a record of its own); `publish`, the whole publish in one
// write (over TLS one record), as clients that buffer their socket writes send it (py-amqp,
// the Java and Go clients).
// Prints one line: mode, size, window, prefetch, messages, seconds, messages per second.
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/ssl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
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
  int max_priority = -1;  // -1: a plain queue
  std::string tls_ca;     // TLS when set
  bool write_per_publish = false;  // --writes publish
  long connections = 1000;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "amqp_load: %s\n", what);
  std::exit(1);
}

void check(amqp_connection_state_t c, const char* what) {
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) die(what);
}

// librabbitmq offers no way to write a publish at once, so amqp_load defines the two calls it
// writes with, send (TCP) and SSL_write (TLS); librabbitmq's calls bind to the executable's
// definitions first. While a publish is gathered they keep the bytes; at its end they go out
// through the real call, once.
namespace gathered {
thread_local bool active = false;
thread_local int fd = -1;
thread_local SSL* ssl = nullptr;
thread_local std::string bytes;
}  // namespace gathered

// The definitions ours hide (libc's, OpenSSL's), looked up on first use.
ssize_t real_send(int fd, const void* data, size_t size, int flags) {
  using Send = ssize_t (*)(int, const void*, size_t, int);
  static const auto next = reinterpret_cast<Send>(dlsym(RTLD_NEXT, "send"));
  return next(fd, data, size, flags);
}

int real_ssl_write(SSL* ssl, const void* data, int size) {
  using SslWrite = int (*)(SSL*, const void*, int);
  static const auto next = reinterpret_cast<SslWrite>(dlsym(RTLD_NEXT, "SSL_write"));
  return next(ssl, data, size);
}

}  // namespace

extern "C" ssize_t send(int fd, const void* data, size_t size, int flags) {
  if (!gathered::active) return real_send(fd, data, size, flags);
  gathered::fd = fd;
  gathered::bytes.append(static_cast<const char*>(data), size);
  return ssize_t(size);
}

extern "C" int SSL_write(SSL* ssl, const void* data, int size) {
  if (!gathered::active) return real_ssl_write(ssl, data, size);
  gathered::ssl = ssl;
  gathered::bytes.append(static_cast<const char*>(data), size_t(size));
  return size;
}

namespace {

void write_gathered() {
  std::string_view rest = gathered::bytes;
  if (gathered::ssl) {
    if (!rest.empty() && real_ssl_write(gathered::ssl, rest.data(), int(rest.size())) != int(rest.size()))
      die("TLS write");
  } else {
    while (!rest.empty()) {
      ssize_t sent = real_send(gathered::fd, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (sent <= 0) die("send");
      rest.remove_prefix(size_t(sent));
    }
  }
  gathered::bytes.clear();
}

// How one publish leaves. By default as librabbitmq writes it: each frame with a write of
// its own; over TCP with MSG_MORE, so the frames leave as one segment, and over TLS with the
// socket corked around the publish for the same (the records still are three). With
// --writes publish, in one write.
class OnePublish {
 public:
  OnePublish(amqp_connection_state_t c, const Options& o)
      : corked_fd_(o.tls_ca.empty() || o.write_per_publish ? -1 : amqp_get_sockfd(c)),
        gather_(o.write_per_publish) {
    cork(1);
    gathered::active = gather_;
  }
  ~OnePublish() {
    cork(0);
    if (!gather_) return;
    gathered::active = false;
    write_gathered();
  }

 private:
  void cork(int on) {
    if (corked_fd_ >= 0) setsockopt(corked_fd_, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
  }
  int corked_fd_;
  bool gather_;
};

amqp_connection_state_t connect(const Options& o) {
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* s = nullptr;
  if (o.tls_ca.empty()) {
    s = amqp_tcp_socket_new(c);
  } else {  // --tls-ca: TLS, the server's certificate checked against that CA (not its name)
    s = amqp_ssl_socket_new(c);
    if (!s || amqp_ssl_socket_set_cacert(s, o.tls_ca.c_str()) != AMQP_STATUS_OK) die("tls ca");
    amqp_ssl_socket_set_verify_peer(s, 1);
    amqp_ssl_socket_set_verify_hostname(s, 0);
  }
  if (amqp_socket_open(s, "127.0.0.1", o.port) != AMQP_STATUS_OK) die("connect");
  if (amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
      AMQP_RESPONSE_NORMAL)
    die("login");
  amqp_channel_open(c, 1);
  check(c, "channel.open");
  return c;
}

void declare(amqp_connection_state_t c, const Options& o, bool durable = true) {
  amqp_table_entry_t entries[2];
  amqp_table_t args = amqp_empty_table;
  args.entries = entries;
  if (o.queue_type == "quorum") {
    entries[args.num_entries].key = amqp_cstring_bytes("x-queue-type");
    entries[args.num_entries].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[args.num_entries++].value.value.bytes = amqp_cstring_bytes("quorum");
  }
  if (o.max_priority >= 0) {
    entries[args.num_entries].key = amqp_cstring_bytes("x-max-priority");
    entries[args.num_entries].value.kind = AMQP_FIELD_KIND_I32;
    entries[args.num_entries++].value.value.i32 = o.max_priority;
  }
  amqp_queue_declare(c, 1, amqp_cstring_bytes(o.queue.c_str()), 0, durable, 0, !durable, args);
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
  if (o.max_priority >= 0) props._flags |= AMQP_BASIC_PRIORITY_FLAG;
  long published = 0, confirmed = 0;
  while (confirmed < o.messages) {
    while (published < o.messages && published - confirmed < o.window) {
      if (o.max_priority >= 0) props.priority = uint8_t(published % (o.max_priority + 1));
      OnePublish one(c, o);
      if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(o.queue.c_str()), 0, 0,
                             &props, amqp_bytes_t{body.size(), body.data()}) != AMQP_STATUS_OK)
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
  amqp_basic_consume(c, 1, amqp_cstring_bytes(o.queue.c_str()), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  check(c, "basic.consume");
  for (long received = 0; received < o.messages; ++received) {
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(c);
    if (amqp_consume_message(c, &envelope, nullptr, 0).reply_type != AMQP_RESPONSE_NORMAL)
      die("consume");
    if (amqp_basic_ack(c, 1, envelope.delivery_tag, 0) != AMQP_STATUS_OK) die("ack");
    amqp_destroy_envelope(&envelope);
  }
  close(c);
}

constexpr const char* kReplyTo = "amq.rabbitmq.reply-to";

// Answers each request on the request queue to its reply_to, keeping its correlation id.
void respond(const Options& o, long requests) {
  amqp_connection_state_t c = connect(o);
  amqp_basic_consume(c, 1, amqp_cstring_bytes(o.queue.c_str()), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  check(c, "basic.consume (responder)");
  for (long answered = 0; answered < requests; ++answered) {
    amqp_envelope_t request;
    amqp_maybe_release_buffers(c);
    if (amqp_consume_message(c, &request, nullptr, 0).reply_type != AMQP_RESPONSE_NORMAL)
      die("consume request");
    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = request.message.properties.correlation_id;
    if (amqp_basic_publish(c, 1, amqp_empty_bytes, request.message.properties.reply_to, 0, 0,
                           &props, request.message.body) != AMQP_STATUS_OK)
      die("reply");
    amqp_destroy_envelope(&request);
  }
  close(c);
}

// One round trip at a time: a request with reply_to amq.rabbitmq.reply-to, then its reply.
void request_all(const Options& o) {
  amqp_connection_state_t c = connect(o);
  declare(c, o, false);
  std::thread responder([&] { respond(o, o.messages); });
  amqp_basic_consume(c, 1, amqp_cstring_bytes(kReplyTo), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  check(c, "basic.consume (amq.rabbitmq.reply-to)");
  std::string body(o.size, 'r');
  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
  props.reply_to = amqp_cstring_bytes(kReplyTo);
  for (long i = 0; i < o.messages; ++i) {
    std::string id = std::to_string(i);
    props.correlation_id = amqp_cstring_bytes(id.c_str());
    if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(o.queue.c_str()), 0, 0,
                           &props, amqp_bytes_t{body.size(), body.data()}) != AMQP_STATUS_OK)
      die("request");
    amqp_envelope_t reply;
    amqp_maybe_release_buffers(c);
    if (amqp_consume_message(c, &reply, nullptr, 0).reply_type != AMQP_RESPONSE_NORMAL)
      die("consume reply");
    const amqp_bytes_t& got = reply.message.properties.correlation_id;
    if (std::string(static_cast<const char*>(got.bytes), got.len) != id)
      die("a reply to another request");
    amqp_destroy_envelope(&reply);
  }
  responder.join();
  close(c);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port")
      o.port = std::atoi(v.c_str());
    else if (k == "--mode")
      o.mode = v;
    else if (k == "--size")
      o.size = size_t(std::atol(v.c_str()));
    else if (k == "--messages")
      o.messages = std::atol(v.c_str());
    else if (k == "--window")
      o.window = std::atoi(v.c_str());
    else if (k == "--prefetch")
      o.prefetch = std::atoi(v.c_str());
    else if (k == "--queue-type")
      o.queue_type = v;
    else if (k == "--queue")
      o.queue = v;
    else if (k == "--max-priority")
      o.max_priority = std::atoi(v.c_str());
    else if (k == "--tls-ca")
      o.tls_ca = v;
    else if (k == "--writes" && (v == "frame" || v == "publish"))
      o.write_per_publish = v == "publish";
    else if (k == "--connections")
      o.connections = std::atol(v.c_str());
    else
      die(("unknown option " + k).c_str());
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
  } else if (o.mode == "rpc") {
    request_all(o);
  } else if (o.mode == "connect") {
    for (long i = 0; i < o.connections; ++i) close(connect(o));
    o.messages = o.connections;  // the rate printed is connections per second
  } else {
    die("mode is publish, consume, both, rpc or connect");
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s size=%zu window=%d prefetch=%d messages=%ld seconds=%.3f rate=%.0f/s\n",
              o.mode.c_str(), o.size, o.window, o.prefetch, o.messages, seconds,
              double(o.messages) / seconds);
  return 0;
}
