#include "shovel/amqp_client.h"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <asio/connect.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/write.hpp>

#include "wire/buffer.h"

namespace warren::shovel {

namespace {

using Clock = std::chrono::steady_clock;

// Before tuning, frames (connection.start's properties) are small; a server that sends a
// huge one is refused rather than buffered.
constexpr uint32_t kHandshakeFrameMax = 1 << 20;

// Every completion handler runs core code through the events: it holds the loop token.
class Hold {
 public:
  explicit Hold(const std::shared_ptr<core::LoopToken>& token) : token_(token.get()) {
    if (token_) token_->lock();
  }
  ~Hold() {
    if (token_) token_->unlock();
  }
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;

 private:
  core::LoopToken* token_;
};

Status link_error(std::string_view what) {
  return Status::error(ReplyCode::connection_forced, what);
}

// The reason a server gave for closing, as a Status ("NOT_FOUND - no queue 'q'..." keeps
// its text once, under its own code).
Status closed_by_server(uint16_t code, const std::string& text) {
  const auto dash = text.find(" - ");
  return Status::error(ReplyCode(code), dash == std::string::npos ? text : text.substr(dash + 3));
}

FieldTable client_properties(const std::string& connection_name) {
  FieldTable capabilities;
  for (const char* name : {"publisher_confirms", "consumer_cancel_notify", "connection.blocked",
                           "basic.nack", "exchange_exchange_bindings"})
    capabilities.set(name, FieldValue(true));
  FieldTable p;
  p.set("product", FieldValue(std::string("Warren shovel")));
  p.set("platform", FieldValue(std::string("C++")));
  p.set("connection_name", FieldValue(connection_name));
  p.set("capabilities", FieldValue(std::move(capabilities)));
  return p;
}

}  // namespace

AmqpClient::AmqpClient(asio::io_context& io, std::shared_ptr<core::LoopToken> token, Events events)
    : token_(std::move(token)),
      events_(std::move(events)),
      resolver_(io),
      socket_(io),
      deadline_(io),
      heartbeat_(io) {}

AmqpClient::~AmqpClient() {
  std::error_code ignored;
  socket_.close(ignored);
}

void AmqpClient::open(const AmqpUri& uri, std::string connection_name,
                      std::function<void()> ready) {
  uri_ = uri;
  connection_name_ = std::move(connection_name);
  ready_ = std::move(ready);
  phase_ = Phase::connecting;
  parser_.set_frame_max(kHandshakeFrameMax);
  auto self = shared_from_this();
  deadline_.expires_after(std::chrono::milliseconds(uri_.connection_timeout_ms));
  deadline_.async_wait([self](std::error_code ec) {
    if (ec) return;
    Hold hold(self->token_);
    if (self->phase_ == Phase::connecting || self->phase_ == Phase::handshake)
      self->fail(link_error(fmt::format("no connection to {}:{} within {} ms", self->uri_.host,
                                        self->uri_.port, self->uri_.connection_timeout_ms)));
  });
  resolver_.async_resolve(
      uri_.host, std::to_string(uri_.port),
      [self](std::error_code ec, const asio::ip::tcp::resolver::results_type& endpoints) {
        Hold hold(self->token_);
        if (self->phase_ != Phase::connecting) return;
        if (ec)
          return self->fail(
              link_error(fmt::format("cannot resolve {}: {}", self->uri_.host, ec.message())));
        asio::async_connect(self->socket_, endpoints, [self](std::error_code ec, const auto&) {
          Hold hold(self->token_);
          if (self->phase_ != Phase::connecting) return;
          if (ec)
            return self->fail(link_error(fmt::format("cannot connect to {}:{}: {}", self->uri_.host,
                                                     self->uri_.port, ec.message())));
          std::error_code ignored;
          self->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
          self->phase_ = Phase::handshake;
          self->last_read_ = Clock::now();
          if (!self->uri_.tls) return self->begin_amqp();
          if (Status s = self->start_tls(); !s) return self->fail(s);
          self->tls_->async_handshake(asio::ssl::stream_base::client, [self](std::error_code ec) {
            Hold hold(self->token_);
            if (self->phase_ != Phase::handshake) return;
            if (ec)
              return self->fail(link_error(fmt::format("TLS with {}:{} failed: {}", self->uri_.host,
                                                       self->uri_.port, ec.message())));
            self->begin_amqp();
          });
        });
      });
}

void AmqpClient::begin_amqp() {
  out_.append(amqp::kProtocolHeader);
  flush();
  read_more();
}

// TLS 1.2 or 1.3; the upstream's certificate is verified against cacertfile (or the system's
// CAs) and its name, unless the URI says verify=verify_none; certfile and keyfile are ours.
Status AmqpClient::start_tls() {
  auto failed = [&](std::string_view what, const std::error_code& ec) {
    return link_error(fmt::format("TLS: {}: {}", what, ec.message()));
  };
  auto option = [&](const char* key) {
    auto it = uri_.query.find(key);
    return it == uri_.query.end() ? std::string() : it->second;
  };
  tls_context_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(tls_context_->native_handle(), TLS1_2_VERSION);
  std::error_code ec;
  if (const std::string ca = option("cacertfile"); !ca.empty()) {
    tls_context_->load_verify_file(ca, ec);
    if (ec) return failed("cannot use the CA file " + ca, ec);
  } else {
    tls_context_->set_default_verify_paths(ec);
  }
  if (const std::string cert = option("certfile"); !cert.empty()) {
    tls_context_->use_certificate_chain_file(cert, ec);
    if (ec) return failed("cannot use the certificate " + cert, ec);
    tls_context_->use_private_key_file(option("keyfile"), asio::ssl::context::pem, ec);
    if (ec) return failed("cannot use the key " + option("keyfile"), ec);
  }
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *tls_context_);
  const std::string name =
      option("server_name_indication").empty() ? uri_.host : option("server_name_indication");
  SSL_set_tlsext_host_name(tls_->native_handle(), name.c_str());
  if (option("verify") == "verify_none") {
    tls_->set_verify_mode(asio::ssl::verify_none);
  } else {
    tls_->set_verify_mode(asio::ssl::verify_peer);
    tls_->set_verify_callback(asio::ssl::host_name_verification(name));
  }
  return {};
}

template <class Handler>
void AmqpClient::read_some(Handler&& handler) {
  if (tls_)
    tls_->async_read_some(asio::buffer(read_buffer_), std::forward<Handler>(handler));
  else
    socket_.async_read_some(asio::buffer(read_buffer_), std::forward<Handler>(handler));
}

template <class Handler>
void AmqpClient::write_all(Handler&& handler) {
  if (tls_)
    asio::async_write(*tls_, asio::buffer(writing_), std::forward<Handler>(handler));
  else
    asio::async_write(socket_, asio::buffer(writing_), std::forward<Handler>(handler));
}

// ---- output -------------------------------------------------------------------------------

template <class Method>
void AmqpClient::send(uint16_t channel, const Method& m) {
  send_frame(amqp::FrameType::method, channel, amqp::encode_method(m));
}

template <class Method>
void AmqpClient::call(const Method& m, Reply reply) {
  replies_.push_back(std::move(reply));
  send(1, m);
}

void AmqpClient::send_frame(amqp::FrameType type, uint16_t channel, std::string_view payload) {
  if (phase_ == Phase::closed) return;
  amqp::append_frame(out_, type, channel, payload);
  flush();
}

void AmqpClient::flush() {
  if (!writing_.empty() || out_.empty() || phase_ == Phase::closed) return;
  writing_.swap(out_);
  seq_in_write_ = last_seq_queued_;
  last_write_ = Clock::now();
  auto self = shared_from_this();
  write_all([self](std::error_code ec, size_t) {
    Hold hold(self->token_);
    if (self->phase_ == Phase::closed) return;
    self->writing_.clear();
    if (ec) return self->fail(link_error(fmt::format("connection lost: {}", ec.message())));
    if (self->seq_in_write_ != 0 && self->phase_ == Phase::open && self->events_.written)
      self->events_.written(self->seq_in_write_);
    if (self->phase_ == Phase::closed) return;
    self->flush();
  });
}

uint64_t AmqpClient::publish(const std::string& exchange, const std::string& routing_key,
                             bool mandatory, const std::string& properties,
                             const std::string& body) {
  amqp::BasicPublish m;
  m.exchange = exchange;
  m.routing_key = routing_key;
  m.mandatory = mandatory;
  send(1, m);
  send_frame(amqp::FrameType::header, 1, amqp::content_header_payload(60, body.size(), properties));
  const size_t chunk = frame_max_ - amqp::kFrameOverhead;
  for (size_t at = 0; at < body.size(); at += chunk)
    send_frame(amqp::FrameType::body, 1, std::string_view(body).substr(at, chunk));
  const uint64_t seq = next_seq_++;  // as the server counts them once confirms are on
  last_seq_queued_ = seq;
  return seq;
}

void AmqpClient::ack(uint64_t delivery_tag, bool multiple) {
  send(1, amqp::BasicAck{delivery_tag, multiple});
}

void AmqpClient::nack(uint64_t delivery_tag, bool multiple, bool requeue) {
  send(1, amqp::BasicNack{delivery_tag, multiple, requeue});
}

// ---- requests -------------------------------------------------------------------------------

void AmqpClient::declare_queue(const std::string& name, bool durable, bool exclusive,
                               std::function<void(const amqp::QueueDeclareOk&)> done) {
  amqp::QueueDeclare m;
  m.queue = name;
  m.durable = durable;
  m.exclusive = exclusive;
  call(m, [done = std::move(done)](const amqp::AnyMethod& reply) {
    if (auto* ok = std::get_if<amqp::QueueDeclareOk>(&reply)) done(*ok);
  });
}

void AmqpClient::declare_queue_if_missing(const std::string& name,
                                          std::function<void(const amqp::QueueDeclareOk&)> done) {
  amqp::QueueDeclare passive;
  passive.queue = name;
  passive.passive = true;
  on_not_found_ = [this, name, done] { declare_queue(name, true, false, done); };
  call(passive, [this, done](const amqp::AnyMethod& reply) {
    on_not_found_ = nullptr;
    if (auto* ok = std::get_if<amqp::QueueDeclareOk>(&reply)) done(*ok);
  });
}

void AmqpClient::bind_queue(const std::string& queue, const std::string& exchange,
                            const std::string& key, std::function<void()> done) {
  amqp::QueueBind m;
  m.queue = queue;
  m.exchange = exchange;
  m.routing_key = key;
  call(m, [done = std::move(done)](const amqp::AnyMethod&) { done(); });
}

void AmqpClient::qos(uint16_t prefetch, std::function<void()> done) {
  amqp::BasicQos m;
  m.prefetch_count = prefetch;
  call(m, [done = std::move(done)](const amqp::AnyMethod&) { done(); });
}

void AmqpClient::consume(const std::string& queue, bool no_ack, std::function<void()> done) {
  amqp::BasicConsume m;
  m.queue = queue;
  m.no_ack = no_ack;
  call(m, [done = std::move(done)](const amqp::AnyMethod&) { done(); });
}

void AmqpClient::select_confirms(std::function<void()> done) {
  call(amqp::ConfirmSelect{}, [done = std::move(done)](const amqp::AnyMethod&) { done(); });
}

// ---- input --------------------------------------------------------------------------------

void AmqpClient::read_more() {
  auto self = shared_from_this();
  read_some([self](std::error_code ec, size_t n) {
    Hold hold(self->token_);
    if (self->phase_ == Phase::closed) return;
    if (ec) {
      if (self->phase_ == Phase::closing) return self->finish_socket();
      return self->fail(link_error(ec == asio::error::eof
                                       ? "connection closed by the server"
                                       : fmt::format("connection lost: {}", ec.message())));
    }
    self->last_read_ = Clock::now();
    self->in_.append(self->read_buffer_.data(), n);
    if (!self->take_frames() || self->phase_ == Phase::closed) return;
    self->read_more();
  });
}

bool AmqpClient::take_frames() {
  while (phase_ != Phase::closed) {
    amqp::Frame frame;
    size_t consumed = 0;
    std::string error;
    auto result = parser_.parse(std::string_view(in_).substr(in_start_), &frame, &consumed, &error);
    if (result == amqp::FrameParser::Result::need_more) break;
    if (result == amqp::FrameParser::Result::error) {
      fail(link_error(fmt::format("bad frame from the server: {}", error)));
      return false;
    }
    in_start_ += consumed;
    if (!on_frame(frame)) return false;
  }
  if (in_start_ > 0 && in_start_ * 2 >= in_.size()) {
    in_.erase(0, in_start_);
    in_start_ = 0;
  }
  return phase_ != Phase::closed;
}

bool AmqpClient::on_frame(const amqp::Frame& frame) {
  switch (amqp::FrameType(frame.type)) {
    case amqp::FrameType::heartbeat:
      return true;
    case amqp::FrameType::header:
      return on_content_header(frame.payload);
    case amqp::FrameType::body:
      return on_content_body(frame.payload);
    case amqp::FrameType::method: {
      auto decoded = amqp::decode_method(frame.payload);
      if (!decoded.method) {
        fail(link_error(fmt::format("unexpected method {}.{} from the server", decoded.class_id,
                                    decoded.method_id)));
        return false;
      }
      return on_method(frame.channel, std::move(*decoded.method));
    }
  }
  fail(link_error(fmt::format("unknown frame type {} from the server", frame.type)));
  return false;
}

bool AmqpClient::on_method(uint16_t channel, amqp::AnyMethod method) {
  if (auto* close = std::get_if<amqp::ConnectionClose>(&method)) {
    send(0, amqp::ConnectionCloseOk{});
    fail(closed_by_server(close->reply_code, close->reply_text));
    return false;
  }
  if (std::holds_alternative<amqp::ConnectionCloseOk>(method)) {
    finish_socket();
    return false;
  }
  if (std::holds_alternative<amqp::ConnectionBlocked>(method) ||
      std::holds_alternative<amqp::ConnectionUnblocked>(method)) {
    if (phase_ == Phase::open && events_.blocked)
      events_.blocked(std::holds_alternative<amqp::ConnectionBlocked>(method));
    return phase_ != Phase::closed;
  }
  if (phase_ == Phase::handshake) return on_handshake(method);
  if (channel != 1 || phase_ != Phase::open) return true;  // late replies while closing
  return on_channel_method(std::move(method));
}

bool AmqpClient::on_handshake(const amqp::AnyMethod& method) {
  if (auto* start = std::get_if<amqp::ConnectionStart>(&method)) {
    if (start->mechanisms.value.find("PLAIN") == std::string::npos) {
      fail(link_error("the server does not offer the PLAIN mechanism"));
      return false;
    }
    amqp::ConnectionStartOk ok;
    ok.client_properties = client_properties(connection_name_);
    ok.mechanism = "PLAIN";
    ok.response.value = std::string(1, '\0') + uri_.user + std::string(1, '\0') + uri_.password;
    ok.locale = "en_US";
    send(0, ok);
    return true;
  }
  if (auto* tune = std::get_if<amqp::ConnectionTune>(&method)) {
    auto lower = [](uint32_t a, uint32_t b) { return a == 0 ? b : b == 0 ? a : std::min(a, b); };
    frame_max_ = lower(tune->frame_max, uri_.frame_max);
    if (frame_max_ == 0) frame_max_ = 131'072;
    heartbeat_seconds_ = uint16_t(lower(tune->heartbeat, uri_.heartbeat));
    if (uri_.heartbeat == 0) heartbeat_seconds_ = 0;
    parser_.set_frame_max(frame_max_);  // the server must keep to what was agreed
    send(0, amqp::ConnectionTuneOk{uint16_t(lower(tune->channel_max, 16)), frame_max_,
                                   heartbeat_seconds_});
    amqp::ConnectionOpen open;
    open.virtual_host = uri_.vhost;
    send(0, open);
    start_heartbeats();
    return true;
  }
  if (std::holds_alternative<amqp::ConnectionOpenOk>(method)) {
    send(1, amqp::ChannelOpen{});
    return true;
  }
  if (std::holds_alternative<amqp::ChannelOpenOk>(method)) {
    phase_ = Phase::open;
    deadline_.cancel();
    if (auto ready = std::move(ready_)) ready();
    return phase_ != Phase::closed;
  }
  return true;
}

bool AmqpClient::on_channel_method(amqp::AnyMethod method) {
  if (auto* deliver = std::get_if<amqp::BasicDeliver>(&method)) {
    content_ = InboundMessage{deliver->delivery_tag, deliver->redelivered, 0,  {},
                              deliver->exchange,     deliver->routing_key, {}, {}};
    content_is_return_ = false;
    have_header_ = false;
    return true;
  }
  if (auto* ret = std::get_if<amqp::BasicReturn>(&method)) {
    content_ = InboundMessage{
        0, false, ret->reply_code, ret->reply_text, ret->exchange, ret->routing_key, {}, {}};
    content_is_return_ = true;
    have_header_ = false;
    return true;
  }
  if (auto* ack = std::get_if<amqp::BasicAck>(&method)) {
    if (events_.confirm) events_.confirm(ack->delivery_tag, ack->multiple, true);
    return phase_ != Phase::closed;
  }
  if (auto* nack = std::get_if<amqp::BasicNack>(&method)) {
    if (events_.confirm) events_.confirm(nack->delivery_tag, nack->multiple, false);
    return phase_ != Phase::closed;
  }
  if (auto* flow = std::get_if<amqp::ChannelFlow>(&method)) {
    send(1, amqp::ChannelFlowOk{flow->active});
    if (events_.blocked) events_.blocked(!flow->active);
    return phase_ != Phase::closed;
  }
  if (auto* close = std::get_if<amqp::ChannelClose>(&method)) {
    send(1, amqp::ChannelCloseOk{});
    if (close->reply_code == uint16_t(ReplyCode::not_found) && on_not_found_) {
      // The passive declare found no queue: a new channel, and the real declare on it.
      replies_.clear();
      send(1, amqp::ChannelOpen{});
      replies_.push_back(
          [declare = std::move(on_not_found_)](const amqp::AnyMethod&) { declare(); });
      on_not_found_ = nullptr;
      return true;
    }
    fail(closed_by_server(close->reply_code, close->reply_text));
    return false;
  }
  if (std::holds_alternative<amqp::BasicCancel>(method)) {
    fail(Status::error(ReplyCode::not_found, "the server cancelled the shovel's consumer"));
    return false;
  }
  if (!replies_.empty()) {
    Reply reply = std::move(replies_.front());
    replies_.pop_front();
    reply(method);
  }
  return phase_ != Phase::closed;
}

bool AmqpClient::on_content_header(std::string_view payload) {
  if (!content_ || have_header_) {
    fail(link_error("a content header without a method before it"));
    return false;
  }
  wire::Reader r(payload);
  r.u16();  // class
  r.u16();  // weight
  body_expected_ = r.u64();
  if (r.failed()) {
    fail(link_error("a malformed content header"));
    return false;
  }
  content_->properties = std::string(payload.substr(12));
  have_header_ = true;
  if (body_expected_ == 0) deliver_content();
  return phase_ != Phase::closed;
}

bool AmqpClient::on_content_body(std::string_view payload) {
  if (!content_ || !have_header_ || content_->body.size() + payload.size() > body_expected_) {
    fail(link_error("an unexpected content body frame"));
    return false;
  }
  content_->body.append(payload);
  if (content_->body.size() == body_expected_) deliver_content();
  return phase_ != Phase::closed;
}

void AmqpClient::deliver_content() {
  InboundMessage message = std::move(*content_);
  content_.reset();
  have_header_ = false;
  auto& handler = content_is_return_ ? events_.returned : events_.delivery;
  if (handler) handler(std::move(message));
}

// ---- heartbeats and endings -----------------------------------------------------------------

void AmqpClient::start_heartbeats() {
  if (heartbeat_seconds_ == 0) return;
  last_write_ = Clock::now();
  arm_heartbeat_timer();
}

// Every half interval: send one if we have been quiet; give up after two silent intervals
// from the server (a black-holed link shows only this way).
void AmqpClient::arm_heartbeat_timer() {
  const auto half = std::chrono::milliseconds(heartbeat_seconds_ * 500);
  heartbeat_.expires_after(half);
  auto self = shared_from_this();
  heartbeat_.async_wait([self, half](std::error_code ec) {
    if (ec) return;
    Hold hold(self->token_);
    if (self->phase_ == Phase::closed || self->phase_ == Phase::closing) return;
    const auto now = Clock::now();
    if (now - self->last_read_ > 4 * half)
      return self->fail(
          link_error(fmt::format("missed heartbeats from {}:{} ({} s)", self->uri_.host,
                                 self->uri_.port, 2 * self->heartbeat_seconds_)));
    if (now - self->last_write_ >= half && self->writing_.empty()) {
      self->send_frame(amqp::FrameType::heartbeat, 0, {});
    }
    self->arm_heartbeat_timer();
  });
}

void AmqpClient::fail(Status why) {
  if (phase_ == Phase::closed) return;
  const bool tell = phase_ != Phase::closing;
  finish_socket();
  if (tell && events_.closed) {
    auto closed = std::move(events_.closed);
    closed(why);
  }
}

void AmqpClient::close() {
  // The events stay (one of them may be running now); the phase keeps them from firing.
  ready_ = nullptr;
  if (phase_ == Phase::closed) return;
  if (phase_ != Phase::open) return finish_socket();
  phase_ = Phase::closing;
  amqp::ConnectionClose m;
  m.reply_code = 200;
  m.reply_text = "Goodbye";
  amqp::append_frame(out_, amqp::FrameType::method, 0, amqp::encode_method(m));
  flush();
  deadline_.expires_after(std::chrono::seconds(1));
  auto self = shared_from_this();
  deadline_.async_wait([self](std::error_code ec) {
    if (ec) return;
    Hold hold(self->token_);
    self->finish_socket();
  });
}

void AmqpClient::finish_socket() {
  phase_ = Phase::closed;
  std::error_code ignored;
  deadline_.cancel();
  heartbeat_.cancel();
  resolver_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  replies_.clear();
}

}  // namespace warren::shovel
