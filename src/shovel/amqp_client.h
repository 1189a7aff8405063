// The AMQP 0-9-1 client side of a shovel: one connection with one channel, asynchronous on
// the broker's Asio loop, built on Warren's own frame parser and method codec (src/amqp).
// It does what a shovel needs and no more: log in (PLAIN), declare and bind a queue, set a
// prefetch, consume, acknowledge, publish with confirms, heartbeats both ways, and hear
// connection.blocked. Every event handler runs holding the broker's loop token.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "amqp/codec.h"
#include "amqp/frame.h"
#include "core/loop_token.h"
#include "shovel/uri.h"
#include "warren/status.h"

namespace warren::shovel {

// A message the server delivered (basic.deliver) or returned (basic.return).
struct InboundMessage {
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  uint16_t reply_code = 0;  // returns only
  std::string reply_text;
  std::string exchange;
  std::string routing_key;
  std::string properties;  // as on the wire
  std::string body;
};

class AmqpClient : public std::enable_shared_from_this<AmqpClient> {
 public:
  struct Events {
    std::function<void(InboundMessage)> delivery;
    std::function<void(InboundMessage)> returned;
    std::function<void(uint64_t seq, bool multiple, bool ack)> confirm;
    // Every publish up to seq has been handed to the kernel.
    std::function<void(uint64_t seq)> written;
    std::function<void(bool blocked)> blocked;  // connection.blocked / unblocked, channel.flow
    // The connection ended (refused, lost, closed by the server, a protocol error). Once,
    // and never after close().
    std::function<void(const Status& why)> closed;
  };

  AmqpClient(asio::io_context& io, std::shared_ptr<core::LoopToken> token, Events events);
  ~AmqpClient();

  // Connects, logs in, opens channel 1; then `ready`. Failure ends in Events::closed.
  void open(const AmqpUri& uri, std::string connection_name, std::function<void()> ready);

  // Requests on channel 1, answered in order. `done` runs with the reply.
  void declare_queue(const std::string& name, bool durable, bool exclusive,
                     std::function<void(const amqp::QueueDeclareOk&)> done);
  // A passive declare first, so an existing queue is used as it is (whatever its arguments);
  // only a missing one is declared, durable and without arguments (as RabbitMQ's shovel does).
  void declare_queue_if_missing(const std::string& name,
                                std::function<void(const amqp::QueueDeclareOk&)> done);
  void bind_queue(const std::string& queue, const std::string& exchange, const std::string& key,
                  std::function<void()> done);
  void qos(uint16_t prefetch, std::function<void()> done);
  void consume(const std::string& queue, bool no_ack, std::function<void()> done);
  void select_confirms(std::function<void()> done);

  // Publish sequence number (1, 2, ... once confirms are selected).
  uint64_t publish(const std::string& exchange, const std::string& routing_key, bool mandatory,
                   const std::string& properties, const std::string& body);
  void ack(uint64_t delivery_tag, bool multiple);
  void nack(uint64_t delivery_tag, bool multiple, bool requeue);

  // Closes politely (connection.close, then the socket once the server answers or after a
  // second). No event fires after this.
  void close();

 private:
  enum class Phase { idle, connecting, handshake, open, closing, closed };
  using Reply = std::function<void(const amqp::AnyMethod&)>;

  template <class Method>
  void send(uint16_t channel, const Method& m);
  template <class Method>
  void call(const Method& m, Reply reply);
  void send_frame(amqp::FrameType type, uint16_t channel, std::string_view payload);
  void flush();
  void read_more();
  bool take_frames();
  bool on_frame(const amqp::Frame& frame);
  bool on_method(uint16_t channel, amqp::AnyMethod method);
  bool on_handshake(const amqp::AnyMethod& method);
  bool on_channel_method(amqp::AnyMethod method);
  bool on_content_header(std::string_view payload);
  bool on_content_body(std::string_view payload);
  void deliver_content();
  Status start_tls();
  void begin_amqp();
  template <class Handler>
  void read_some(Handler&& handler);
  template <class Handler>
  void write_all(Handler&& handler);
  void start_heartbeats();
  void arm_heartbeat_timer();
  void fail(Status why);
  void finish_socket();

  std::shared_ptr<core::LoopToken> token_;
  Events events_;
  asio::ip::tcp::resolver resolver_;
  asio::ip::tcp::socket socket_;
  // amqps: TLS over the socket, the upstream's certificate verified (see uri.h).
  std::unique_ptr<asio::ssl::context> tls_context_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  asio::steady_timer deadline_;  // connect + handshake, then the close handshake
  asio::steady_timer heartbeat_;
  AmqpUri uri_;
  std::string connection_name_;
  std::function<void()> ready_;
  Phase phase_ = Phase::idle;

  amqp::FrameParser parser_;
  uint32_t frame_max_ = 131'072;
  uint16_t heartbeat_seconds_ = 0;
  std::chrono::steady_clock::time_point last_read_, last_write_;
  std::string in_;
  size_t in_start_ = 0;
  std::array<char, 65536> read_buffer_{};
  std::string out_, writing_;
  uint64_t last_seq_queued_ = 0, seq_in_write_ = 0;

  std::deque<Reply> replies_;
  std::function<void()> on_not_found_;  // a passive declare's way on when the queue is missing
  uint64_t next_seq_ = 1;
  // The message being assembled from a deliver/return, its header and body frames.
  std::optional<InboundMessage> content_;
  bool content_is_return_ = false;
  uint64_t body_expected_ = 0;
  bool have_header_ = false;
};

}  // namespace warren::shovel
