#include "amqp/connection.h"

#include <fmt/format.h>

#include "common/log.h"
#include "core/errors.h"
#include "wire/properties_codec.h"

namespace warren::amqp {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;  // clang 14 has no aggregate deduction

Status hard_error(ReplyCode code, std::string_view detail, uint16_t class_id = 0,
                  uint16_t method_id = 0) {
  return Status::error(code, detail, class_id, method_id);
}

FieldTable server_properties() {
  FieldTable capabilities{
      {"publisher_confirms", FieldValue(true)}, {"exchange_exchange_bindings", FieldValue(true)},
      {"basic.nack", FieldValue(true)},         {"consumer_cancel_notify", FieldValue(true)},
      {"connection.blocked", FieldValue(true)}, {"authentication_failure_close", FieldValue(true)},
      {"per_consumer_qos", FieldValue(true)},   {"consumer_priorities", FieldValue(true)},
      {"direct_reply_to", FieldValue(true)},
  };
  return FieldTable{
      {"capabilities", FieldValue(capabilities)},
      {"product", FieldValue("Warren")},
      {"version", FieldValue("0.1.0")},
      {"platform", FieldValue("C++20")},
      {"cluster_name", FieldValue("warren")},
      {"copyright", FieldValue("Warren developers")},
      {"information", FieldValue("A durable single-node AMQP 0-9-1 broker")},
  };
}

// "host:port", with an IPv6 address in brackets.
std::string endpoint(const std::string& host, uint16_t port) {
  return host.find(':') == std::string::npos ? fmt::format("{}:{}", host, port)
                                             : fmt::format("[{}]:{}", host, port);
}

bool capability(const FieldTable& client_properties, std::string_view name) {
  const FieldValue* caps = client_properties.find("capabilities");
  const FieldTable* table = caps ? caps->as<FieldTable>() : nullptr;
  const FieldValue* v = table ? table->find(name) : nullptr;
  const bool* b = v ? v->as<bool>() : nullptr;
  return b && *b;
}

}  // namespace

// ---- a channel: content assembly and the core channel's sink -----------------------------

class Connection::ChannelState : public core::ChannelSink {
 public:
  ChannelState(Connection& conn, uint16_t id) : conn_(conn), id_(id) {}
  ~ChannelState() override {
    if (core_) core_->close();
    conn_.note_partial_body(-int64_t(content_.body.size()));  // a body that never completed
  }
  void attach(std::shared_ptr<core::Channel> c) { core_ = std::move(c); }
  core::Channel& core() { return *core_; }
  bool closing() const { return closing_; }

  void handle_frame(const Frame& f);

  void on_deliver(core::DeliveryInfo d) override {
    BasicDeliver m;
    m.consumer_tag = std::move(d.consumer_tag);
    m.delivery_tag = d.delivery_tag;
    m.redelivered = d.redelivered;
    m.exchange = d.message->exchange;
    m.routing_key = d.message->routing_key;
    conn_.send_content(id_, encode_method(m), *d.message);
  }
  // Acks released while one read is worked off go out as one basic.ack with multiple=true
  // per unbroken run (as RabbitMQ does); nacks stay exact.
  void on_confirm(uint64_t seq, bool multiple, bool ack) override {
    if (ack && conn_.feeding_) {
      if (pending_ack_ == 0) conn_.acks_pending_.push_back(id_);
      pending_multiple_ = pending_ack_ != 0 || multiple;
      pending_ack_ = seq;
      return;
    }
    flush_acks();
    if (ack)
      conn_.send(id_, BasicAck{seq, multiple});
    else
      conn_.send(id_, BasicNack{seq, multiple, true});
  }
  void flush_acks() {
    if (pending_ack_ == 0) return;
    conn_.send(id_,
               BasicAck{std::exchange(pending_ack_, 0), std::exchange(pending_multiple_, false)});
  }
  void on_return(core::ReturnInfo r) override {
    BasicReturn m{uint16_t(r.code), r.text, r.message->exchange, r.message->routing_key};
    conn_.send_content(id_, encode_method(m), *r.message);
  }
  void on_consumer_cancelled(const std::string& tag) override {
    if (conn_.client_wants_cancel_notify_) conn_.send(id_, BasicCancel{tag, true});
  }
  void on_closed(const Status& reason) override {
    if (reason.closes_connection()) {
      conn_.connection_error(reason);
      return;
    }
    closing_ = true;
    conn_.send(id_, ChannelClose{uint16_t(reason.code()), reason.text(), reason.class_id(),
                                 reason.method_id()});
  }
  bool ready_for_delivery() const override {
    return conn_.out_.size() < conn_.config_.output_high_water;
  }

 private:
  void handle_method(AnyMethod& m);
  void start_content(const BasicPublish& p);
  void handle_header(std::string_view payload);
  void handle_body(std::string_view payload);
  void finish_content();
  template <class M>
  void reply(bool no_wait, const M& m) {
    if (!no_wait) conn_.send(id_, m);
  }
  template <class M>
  void durable_reply(const Result<core::CommitId>& r, bool no_wait, M m) {
    if (r.ok()) conn_.reply_when_durable(id_, r.value(), no_wait, std::move(m));
  }

  Connection& conn_;
  const uint16_t id_;
  std::shared_ptr<core::Channel> core_;
  bool closing_ = false;      // we sent channel.close and wait for close-ok
  uint64_t pending_ack_ = 0;  // acks held back until the read is worked off
  bool pending_multiple_ = false;
  // Content being assembled: basic.publish, then a header, then body frames.
  std::optional<BasicPublish> publish_;
  bool have_header_ = false;
  uint64_t body_size_ = 0;
  core::PublishInput content_;
};

void Connection::ChannelState::handle_frame(const Frame& f) {
  if (closing_) {
    // After our channel.close only its close-ok (or a crossing close) counts.
    if (f.type != uint8_t(FrameType::method)) return;
    auto d = decode_method(f.payload);
    if (!d.method) return;
    if (std::holds_alternative<ChannelClose>(*d.method)) conn_.send(id_, ChannelCloseOk{});
    if (std::holds_alternative<ChannelCloseOk>(*d.method) ||
        std::holds_alternative<ChannelClose>(*d.method))
      conn_.retire_channel(id_);
    return;
  }
  switch (FrameType(f.type)) {
    case FrameType::method: {
      if (publish_) {
        conn_.connection_error(hard_error(
            ReplyCode::unexpected_frame,
            "expected content header for class 60, got non content header frame instead", 60, 40));
        return;
      }
      auto d = decode_method(f.payload);
      if (d.outcome == DecodedMethod::Outcome::unknown_method) {
        conn_.connection_error(hard_error(
            ReplyCode::command_invalid,
            fmt::format("unknown method {}/{}", d.class_id, d.method_id), d.class_id, d.method_id));
        return;
      }
      if (!d.method) {
        conn_.connection_error(
            hard_error(ReplyCode::syntax_error, "malformed method frame", d.class_id, d.method_id));
        return;
      }
      handle_method(*d.method);
      return;
    }
    case FrameType::header:
      if (!publish_ || have_header_) break;
      handle_header(f.payload);
      return;
    case FrameType::body:
      if (!publish_ || !have_header_) break;
      handle_body(f.payload);
      return;
    default:
      break;
  }
  conn_.connection_error(hard_error(ReplyCode::unexpected_frame,
                                    "expected method frame, got non method frame instead"));
}

void Connection::ChannelState::start_content(const BasicPublish& p) {
  conn_.block_if_alarmed();
  if (p.immediate) {
    conn_.connection_error(hard_error(ReplyCode::not_implemented, "immediate=true", 60, 40));
    return;
  }
  publish_ = p;
  have_header_ = false;
  conn_.published_ = true;
  conn_.note_partial_body(-int64_t(content_.body.size()));
  content_ = core::PublishInput{};
  content_.exchange = p.exchange;
  content_.routing_key = p.routing_key;
  content_.mandatory = p.mandatory;
}

void Connection::ChannelState::handle_header(std::string_view payload) {
  wire::Reader r(payload);
  uint16_t class_id = r.u16();
  r.u16();  // weight
  body_size_ = r.u64();
  std::string_view properties = r.rest();
  auto decoded = wire::decode_properties(properties);
  if (r.failed() || class_id != 60 || !decoded) {
    conn_.connection_error(hard_error(ReplyCode::frame_error, "malformed content header", 60, 40));
    return;
  }
  uint64_t max = conn_.engine_.options().max_message_size;
  if (body_size_ > max) {
    // Refused before the body arrives; its frames are ignored on the closing channel.
    publish_.reset();
    core_->close();
    on_closed(core::error(
        ReplyCode::precondition_failed,
        fmt::format("message size {} is larger than configured max size {}", body_size_, max),
        core::method::basic_publish));
    return;
  }
  have_header_ = true;
  content_.properties = std::move(*decoded);
  content_.properties_wire = std::string(properties);
  if (body_size_ == 0) finish_content();
}

void Connection::ChannelState::handle_body(std::string_view payload) {
  if (content_.body.size() + payload.size() > body_size_) {
    conn_.connection_error(
        hard_error(ReplyCode::frame_error, "content body larger than its header said", 60, 40));
    return;
  }
  // The body grows as its bytes arrive: a header alone reserves nothing, and a body whose
  // frames stop reserves little more than what came.
  if (content_.body.empty())
    content_.body.reserve(std::min<uint64_t>(body_size_, 4 * payload.size()));
  content_.body.append(payload);
  conn_.note_partial_body(int64_t(payload.size()));
  if (content_.body.size() == body_size_) finish_content();
}

void Connection::ChannelState::finish_content() {
  conn_.note_partial_body(-int64_t(content_.body.size()));
  publish_.reset();
  have_header_ = false;
  core_->basic_publish(std::move(content_));  // a failure arrives through on_closed
  content_ = core::PublishInput{};
}

void Connection::ChannelState::handle_method(AnyMethod& method) {
  core::Channel& ch = *core_;
  std::visit(
      Overloaded{
          [&](ChannelClose&) {
            core_->close();
            conn_.send(id_, ChannelCloseOk{});
            conn_.retire_channel(id_);
          },
          [&](ChannelCloseOk&) {},
          [&](ChannelFlow& m) {
            if (!m.active)
              conn_.connection_error(
                  hard_error(ReplyCode::not_implemented, "active=false", 20, 20));
            else
              conn_.send(id_, ChannelFlowOk{true});
          },
          [&](ChannelOpen&) {
            conn_.connection_error(
                hard_error(ReplyCode::channel_error, "second 'channel.open' seen", 20, 10));
          },
          [&](ExchangeDeclare& m) {
            ExchangeOptions o{m.passive, m.durable, m.auto_delete, m.internal, m.arguments};
            durable_reply(ch.exchange_declare(m.exchange, m.type, o), m.no_wait,
                          ExchangeDeclareOk{});
          },
          [&](ExchangeDelete& m) {
            durable_reply(ch.exchange_delete(m.exchange, m.if_unused), m.no_wait,
                          ExchangeDeleteOk{});
          },
          [&](ExchangeBind& m) {
            durable_reply(ch.exchange_bind(m.destination, m.source, m.routing_key, m.arguments),
                          m.no_wait, ExchangeBindOk{});
          },
          [&](ExchangeUnbind& m) {
            durable_reply(ch.exchange_unbind(m.destination, m.source, m.routing_key, m.arguments),
                          m.no_wait, ExchangeUnbindOk{});
          },
          [&](QueueDeclare& m) {
            QueueOptions o{m.passive, m.durable, m.exclusive, m.auto_delete, m.arguments};
            auto r = ch.queue_declare(m.queue, o);
            if (r.ok())
              conn_.reply_when_durable(
                  id_, r->commit, m.no_wait,
                  QueueDeclareOk{r->value.queue, r->value.message_count, r->value.consumer_count});
          },
          [&](QueueBind& m) {
            durable_reply(ch.queue_bind(m.queue, m.exchange, m.routing_key, m.arguments), m.no_wait,
                          QueueBindOk{});
          },
          [&](QueueUnbind& m) {
            durable_reply(ch.queue_unbind(m.queue, m.exchange, m.routing_key, m.arguments), false,
                          QueueUnbindOk{});
          },
          [&](QueuePurge& m) {
            auto r = ch.queue_purge(m.queue);
            if (r.ok()) conn_.reply_when_durable(id_, r->commit, m.no_wait, QueuePurgeOk{r->value});
          },
          [&](QueueDelete& m) {
            auto r = ch.queue_delete(m.queue, {m.if_unused, m.if_empty});
            if (r.ok())
              conn_.reply_when_durable(id_, r->commit, m.no_wait, QueueDeleteOk{r->value});
          },
          [&](BasicQos& m) {
            if (m.prefetch_size != 0) {
              conn_.connection_error(
                  hard_error(ReplyCode::not_implemented,
                             fmt::format("prefetch_size!=0 ({})", m.prefetch_size), 60, 10));
              return;
            }
            if (ch.basic_qos(m.prefetch_count, m.global)) conn_.send(id_, BasicQosOk{});
          },
          [&](BasicConsume& m) {
            ConsumeOptions o;
            o.consumer_tag = m.consumer_tag;
            o.no_ack = m.no_ack;
            o.exclusive = m.exclusive;
            o.arguments = m.arguments;
            auto r = ch.basic_consume(m.queue, o);
            if (r.ok()) reply(m.no_wait, BasicConsumeOk{*r});
          },
          [&](BasicCancel& m) {
            if (ch.basic_cancel(m.consumer_tag)) reply(m.no_wait, BasicCancelOk{m.consumer_tag});
          },
          [&](BasicPublish& m) { start_content(m); },
          [&](BasicGet& m) {
            auto r = ch.basic_get(m.queue, m.no_ack);
            if (!r.ok()) return;
            if (!*r) {
              conn_.send(id_, BasicGetEmpty{});
              return;
            }
            core::DeliveryInfo& d = **r;
            BasicGetOk ok{d.delivery_tag, d.redelivered, d.message->exchange,
                          d.message->routing_key, d.message_count};
            conn_.send_content(id_, encode_method(ok), *d.message);
          },
          [&](BasicAck& m) { ch.basic_ack(m.delivery_tag, m.multiple); },
          [&](BasicNack& m) { ch.basic_nack(m.delivery_tag, m.multiple, m.requeue); },
          [&](BasicReject& m) { ch.basic_reject(m.delivery_tag, m.requeue); },
          [&](BasicRecover& m) {
            if (ch.basic_recover(m.requeue)) conn_.send(id_, BasicRecoverOk{});
          },
          [&](BasicRecoverAsync& m) { ch.basic_recover(m.requeue); },
          [&](ConfirmSelect& m) {
            if (ch.confirm_select()) reply(m.no_wait, ConfirmSelectOk{});
          },
          [&](TxSelect&) {
            if (ch.tx_select()) conn_.send(id_, TxSelectOk{});
          },
          [&](TxCommit&) { durable_reply(ch.tx_commit(), false, TxCommitOk{}); },
          [&](TxRollback&) {
            if (ch.tx_rollback()) conn_.send(id_, TxRollbackOk{});
          },
          [&](auto& other) {
            // A server-to-client method, or a connection method on a channel.
            conn_.connection_error(hard_error(ReplyCode::command_invalid,
                                              fmt::format("method {} not allowed here", other.name),
                                              other.class_id, other.method_id));
          },
      },
      method);
}

// ---- the connection -----------------------------------------------------------------------

void BodyBudget::release(uint64_t bytes) {
  bool was_over = over();
  in_flight -= std::min(in_flight, bytes);
  if (was_over && !over())
    for (auto& waiter : std::exchange(waiters, {})) waiter();
}

Connection::Connection(core::Engine& engine, const ServerConfig& config, std::string peer,
                       bool peer_is_loopback)
    : engine_(engine),
      config_(config),
      peer_(std::move(peer)),
      peer_is_loopback_(peer_is_loopback) {
  parser_.set_frame_max(kFrameMinSize);
}

void Connection::note_partial_body(int64_t bytes) {
  if (bytes == 0) return;
  if (bytes < 0) {
    uint64_t gone = std::min<uint64_t>(partial_body_bytes_, uint64_t(-bytes));
    partial_body_bytes_ -= gone;
    config_.bodies->release(gone);
    return;
  }
  partial_body_bytes_ += uint64_t(bytes);
  config_.bodies->add(uint64_t(bytes));
  if (config_.bodies->over())
    config_.bodies->waiters.push_back([this, alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.expired()) resume_later();
    });
}

void Connection::resume_later() {
  if (resume_listener_) resume_listener_();
}

// A publisher whose messages wait for the writer beyond the backlog limit is not read until
// they are written: its memory stays bounded, whatever the disk's speed.
void Connection::hold_back_publisher() {
  bool published = std::exchange(published_, false);
  if (!published || waiting_for_backlog_ || !engine_.publish_backlog_full()) return;
  waiting_for_backlog_ = true;
  engine_.when_backlog_drains([this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    waiting_for_backlog_ = false;
    resume_later();
  });
}

void Connection::answer_refusal() {
  if (!refusal_) return;
  Status answer = *std::exchange(refusal_, std::nullopt);
  if (!answer.ok()) connection_error(answer);
  close_socket_now();
}

Connection::~Connection() {
  alive_.reset();
  release();
  retired_.clear();
}

template <class M>
void Connection::reply_when_durable(uint16_t channel, core::CommitId commit, bool no_wait,
                                    M reply) {
  if (commit == 0) {
    if (!no_wait) send(channel, reply);
    return;
  }
  // A no-wait method has no reply to keep in order: only a failure is reported, later.
  if (!no_wait) ++awaiting_commits_;
  engine_.when_durable(commit, [this, alive = std::weak_ptr<bool>(alive_), channel, no_wait,
                                reply = std::move(reply)](const Status& s) {
    if (alive.expired()) return;
    auto it = channels_.find(channel);
    if (it != channels_.end() && !it->second->closing()) {
      // The method a reply answers has the id just before the reply's.
      if (!s.ok())
        it->second->core().close_for_failure(s.with_method(reply.class_id, reply.method_id - 1));
      else if (!no_wait)
        send(channel, reply);
    }
    if (!no_wait && --awaiting_commits_ == 0 && resume_listener_) resume_listener_();
  });
}

void Connection::flush_pending_acks() {
  for (uint16_t id : std::exchange(acks_pending_, {}))
    if (auto it = channels_.find(id); it != channels_.end()) it->second->flush_acks();
}

template <class M>
void Connection::send(uint16_t channel, const M& method) {
  if (!acks_pending_.empty()) flush_pending_acks();  // frames leave in the order they were made
  // Once a connection.close went out, only the closing handshake is sent.
  bool closing_handshake =
      std::is_same_v<M, ConnectionClose> || std::is_same_v<M, ConnectionCloseOk>;
  if (state_ == State::closed || (state_ == State::closing && !closing_handshake)) return;
  bool was_empty = out_.empty();
  append_frame(out_, FrameType::method, channel, encode_method(method));
  if (was_empty && output_listener_) output_listener_();
}

void Connection::send_content(uint16_t channel, std::string_view method_payload,
                              const storage::MessageData& message) {
  if (state_ == State::closing || state_ == State::closed) return;
  if (!acks_pending_.empty()) flush_pending_acks();
  bool was_empty = out_.empty();
  append_frame(out_, FrameType::method, channel, method_payload);
  append_frame(out_, FrameType::header, channel,
               content_header_payload(60, message.body.size(), message.properties));
  size_t chunk = frame_max_ > kFrameOverhead ? frame_max_ - kFrameOverhead : message.body.size();
  for (size_t at = 0; at < message.body.size(); at += chunk)
    append_frame(out_, FrameType::body, channel, std::string_view(message.body).substr(at, chunk));
  if (was_empty && output_listener_) output_listener_();
}

void Connection::send_heartbeat() {
  bool was_empty = out_.empty();
  append_frame(out_, FrameType::heartbeat, 0, {});
  if (was_empty && output_listener_) output_listener_();
}

void Connection::connection_error(const Status& status) {
  if (state_ == State::closing || state_ == State::closed) return;
  send(0, ConnectionClose{uint16_t(status.code()), status.text(), status.class_id(),
                          status.method_id()});
  release();
  state_ = State::closing;
}

void Connection::retire_channel(uint16_t id) {
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  retired_.push_back(std::move(it->second));
  channels_.erase(it);
}

void Connection::block_if_alarmed() {
  // RabbitMQ blocks a connection only when it publishes during an alarm.
  if (blocked_ || !engine_.any_alarm()) return;
  blocked_ = true;
  if (client_wants_blocked_) send(0, ConnectionBlocked{engine_.alarm_reason()});
}

void Connection::on_alarm(bool raised) {
  if (raised || !blocked_) return;
  blocked_ = false;
  if (client_wants_blocked_)
    send(0, ConnectionUnblocked{});
  else if (output_listener_)
    output_listener_();  // the session resumes reading
}

void Connection::release() {
  if (alarm_listener_) engine_.remove_alarm_listener(alarm_listener_);
  alarm_listener_ = 0;
  // Channels may be mid-call (a hard error raised inside a channel method): they are
  // destroyed only once the current feed() is done.
  for (auto& [id, ch] : channels_) retired_.push_back(std::move(ch));
  channels_.clear();
  if (core_) engine_.disconnect(*core_);
  core_.reset();
}

void Connection::on_disconnect() {
  release();
  retired_.clear();
  state_ = State::closed;
}

void Connection::close_for_shutdown() {
  if (state_ == State::open)
    connection_error(hard_error(ReplyCode::connection_forced,
                                "broker forced connection closure with reason 'shutdown'"));
  else
    close_socket_now();
}

void Connection::on_output_drained() {
  for (auto& [id, ch] : channels_)
    if (!ch->closing()) ch->core().resume_deliveries();
}

void Connection::feed(std::string& in) {
  if (awaiting_commits_ > 0) return;  // resumed once the replies waiting for commits are out
  if (refusal_) {                     // nothing counts after a refused login
    in.clear();
    return;
  }
  // Whatever the frames of one read write goes to the writer as one submit.
  core::WriteBatch batch(engine_);
  struct Feeding {  // the acks this read released go out when it is worked off
    Connection& c;
    explicit Feeding(Connection& c) : c(c) { c.feeding_ = true; }
    ~Feeding() {
      c.feeding_ = false;
      c.flush_pending_acks();
    }
  } feeding(*this);
  size_t used = 0;
  if (state_ == State::awaiting_header) {
    if (in.size() < kProtocolHeader.size()) return;
    if (std::string_view(in).substr(0, kProtocolHeader.size()) != kProtocolHeader) {
      out_.append(kProtocolHeader);  // the version we speak, then goodbye
      reset_ = true;
      close_socket_now();
      in.clear();
      return;
    }
    used = kProtocolHeader.size();
    ConnectionStart start;
    start.server_properties = server_properties();
    start.mechanisms.value = tls_ ? "AMQPLAIN PLAIN EXTERNAL" : "AMQPLAIN PLAIN";
    start.locales.value = "en_US";
    send(0, start);
    state_ = State::awaiting_start_ok;
  }
  while (state_ != State::closed && awaiting_commits_ == 0) {
    Frame f;
    size_t n = 0;
    std::string error;
    auto result = parser_.parse(std::string_view(in).substr(used), &f, &n, &error);
    if (result == FrameParser::Result::need_more) break;
    if (result == FrameParser::Result::error) {
      connection_error(hard_error(ReplyCode::frame_error, error));
      close_socket_now();
      used = in.size();
      break;
    }
    handle_frame(f);
    used += n;
  }
  in.erase(0, used);
  retired_.clear();
  hold_back_publisher();
}

void Connection::handle_frame(const Frame& f) {
  if (state_ == State::closing) {
    if (f.channel != 0 || f.type != uint8_t(FrameType::method)) return;
    auto d = decode_method(f.payload);
    if (d.method && std::holds_alternative<ConnectionClose>(*d.method))
      send(0, ConnectionCloseOk{});
    if (d.method && (std::holds_alternative<ConnectionCloseOk>(*d.method) ||
                     std::holds_alternative<ConnectionClose>(*d.method)))
      closed_by_handshake();
    return;
  }
  switch (FrameType(f.type)) {
    case FrameType::heartbeat:
      if (f.channel != 0)
        connection_error(hard_error(ReplyCode::unexpected_frame, "type 8, all octets = <<>>"));
      return;
    case FrameType::method:
    case FrameType::header:
    case FrameType::body:
      break;
    default:
      connection_error(
          hard_error(ReplyCode::frame_error,
                     fmt::format("type {}, all octets = <<>>: unknown_frame", f.type)));
      close_socket_now();
      return;
  }
  if (f.channel == 0) {
    if (f.type != uint8_t(FrameType::method)) {
      connection_error(hard_error(ReplyCode::unexpected_frame,
                                  "expected method frame, got non method frame instead"));
      return;
    }
    auto d = decode_method(f.payload);
    if (!d.method) {
      connection_error(
          hard_error(ReplyCode::syntax_error, "malformed method frame", d.class_id, d.method_id));
      return;
    }
    handle_connection_method(*d.method);
    return;
  }
  if (state_ != State::open) {
    close_socket_now();  // channels before the handshake finished
    return;
  }
  handle_channel_frame(f);
}

void Connection::handle_channel_frame(const Frame& f) {
  auto it = channels_.find(f.channel);
  if (it != channels_.end()) {
    it->second->handle_frame(f);
    return;
  }
  uint16_t class_id = 0, method_id = 0;
  if (f.type == uint8_t(FrameType::method)) {
    auto d = decode_method(f.payload);
    if (d.method && std::holds_alternative<ChannelOpen>(*d.method)) {
      open_channel(f.channel);
      return;
    }
    if (d.method && std::holds_alternative<ChannelCloseOk>(*d.method)) return;  // late close-ok
    class_id = d.class_id;
    method_id = d.method_id;
  }
  connection_error(
      hard_error(ReplyCode::channel_error, "expected 'channel.open'", class_id, method_id));
}

void Connection::open_channel(uint16_t id) {
  if (channel_max_ && channels_.size() >= channel_max_) {
    connection_error(hard_error(
        ReplyCode::not_allowed,
        fmt::format("number of channels opened ({}) has reached the negotiated channel_max ({})",
                    channels_.size(), channel_max_)));
    return;
  }
  auto state = std::make_unique<ChannelState>(*this, id);
  state->attach(engine_.open_channel(*core_, id, state.get()));
  channels_.emplace(id, std::move(state));
  send(id, ChannelOpenOk{});
}

void Connection::handle_connection_method(const AnyMethod& m) {
  std::visit(Overloaded{
                 [&](const ConnectionStartOk& x) {
                   if (state_ == State::awaiting_start_ok)
                     handle_start_ok(x);
                   else
                     close_socket_now();
                 },
                 [&](const ConnectionTuneOk& x) {
                   if (state_ == State::awaiting_tune_ok)
                     handle_tune_ok(x);
                   else
                     close_socket_now();
                 },
                 [&](const ConnectionOpen& x) {
                   if (state_ == State::awaiting_open)
                     handle_open(x);
                   else
                     close_socket_now();
                 },
                 [&](const ConnectionClose&) {
                   release();
                   send(0, ConnectionCloseOk{});
                   closed_by_handshake();
                 },
                 [&](const ConnectionCloseOk&) { closed_by_handshake(); },
                 [&](const ConnectionUpdateSecret&) { send(0, ConnectionUpdateSecretOk{}); },
                 [&](const ConnectionBlocked&) {},
                 [&](const ConnectionUnblocked&) {},
                 [&](const auto& other) {
                   connection_error(
                       hard_error(ReplyCode::command_invalid,
                                  fmt::format("method {} not allowed on channel 0", other.name),
                                  other.class_id, other.method_id));
                 },
             },
             m);
}

bool Connection::authenticate(const ConnectionStartOk& m, std::string* user) {
  if (m.mechanism == "EXTERNAL") {
    // The certificate's common name is the user, who must exist (as rabbitmq_auth_mechanism_ssl).
    *user = certificate_name_;
    return !user->empty() && engine_.users().find(*user) &&
           (peer_is_loopback_ || !config_.loopback_users.count(*user));
  }
  std::string password;
  if (m.mechanism == "PLAIN") {
    // [authzid] NUL authcid NUL password
    const std::string& r = m.response.value;
    size_t first = r.find('\0');
    size_t second = first == std::string::npos ? first : r.find('\0', first + 1);
    if (second == std::string::npos) return false;
    *user = r.substr(first + 1, second - first - 1);
    password = r.substr(second + 1);
  } else {
    // AMQPLAIN: a field table without its length prefix.
    std::string table(4, '\0');
    uint32_t n = uint32_t(m.response.value.size());
    for (int i = 0; i < 4; ++i) table[i] = char(n >> (24 - 8 * i));
    auto t = wire::decode_table(table + m.response.value);
    const FieldValue* login = t ? t->find("LOGIN") : nullptr;
    const FieldValue* pass = t ? t->find("PASSWORD") : nullptr;
    if (!login || !pass || !login->as<std::string>() || !pass->as<std::string>()) return false;
    *user = *login->as<std::string>();
    password = *pass->as<std::string>();
  }
  if (!engine_.users().password_matches(*user, password)) return false;
  return peer_is_loopback_ || !config_.loopback_users.count(*user);
}

void Connection::handle_start_ok(const ConnectionStartOk& m) {
  client_wants_auth_failure_close_ =
      capability(m.client_properties, "authentication_failure_close");
  client_wants_cancel_notify_ = capability(m.client_properties, "consumer_cancel_notify");
  details_.client_properties = m.client_properties;
  details_.auth_mechanism = m.mechanism;
  client_wants_blocked_ = capability(m.client_properties, "connection.blocked");
  const bool external = m.mechanism == "EXTERNAL" && tls_;
  if (m.mechanism != "PLAIN" && m.mechanism != "AMQPLAIN" && !external) {
    log::warning("{}: login refused: unknown authentication mechanism '{}'", peer_, m.mechanism);
    refusal_ = Status{};  // RabbitMQ closes without a word
    return;
  }
  if (!authenticate(m, &user_)) {
    // The user's name is logged, never what was sent as its password.
    log::warning("{}: login refused for user '{}' (mechanism {})", peer_, user_, m.mechanism);
    refusal_ =
        client_wants_auth_failure_close_
            ? hard_error(
                  ReplyCode::access_refused,
                  fmt::format("Login was refused using authentication mechanism {}. For details "
                              "see the broker logfile.",
                              m.mechanism))
            : Status{};
    return;
  }
  send(0, ConnectionTune{config_.channel_max, config_.frame_max, config_.heartbeat});
  state_ = State::awaiting_tune_ok;
}

void Connection::handle_tune_ok(const ConnectionTuneOk& m) {
  bool frame_ok = m.frame_max >= 4096 && m.frame_max <= config_.frame_max;
  bool channels_ok = m.channel_max > 0 && m.channel_max <= config_.channel_max;
  if (!frame_ok || !channels_ok) {
    close_socket_now();
    return;
  }
  frame_max_ = m.frame_max;
  channel_max_ = m.channel_max;
  heartbeat_ = m.heartbeat;
  parser_.set_frame_max(frame_max_);
  state_ = State::awaiting_open;
}

void Connection::handle_open(const ConnectionOpen& m) {
  if (engine_.find_vhost(m.virtual_host) && !engine_.users().may_use_vhost(user_, m.virtual_host)) {
    connection_error(hard_error(
        ReplyCode::not_allowed,
        fmt::format("access to vhost '{}' refused for user '{}'", m.virtual_host, user_), 10, 40));
    return;
  }
  const std::string name =
      details_.host.empty()
          ? peer_
          : fmt::format("{} -> {}", endpoint(details_.peer_host, details_.peer_port),
                        endpoint(details_.host, details_.port));
  core_ = engine_.connect(name, user_, m.virtual_host);
  if (!core_) {
    connection_error(hard_error(ReplyCode::not_allowed,
                                fmt::format("vhost {} not found", m.virtual_host), 10, 40));
    return;
  }
  core_->details = details_;
  core_->details.tls = tls_;
  core_->details.channel_max = channel_max_;
  core_->details.frame_max = frame_max_;
  core_->details.heartbeat = heartbeat_;
  alarm_listener_ = engine_.add_alarm_listener([this](bool raised) { on_alarm(raised); });
  core_->force_close = [this, alive = std::weak_ptr<bool>(alive_)](const std::string& reason) {
    if (alive.lock()) connection_error(hard_error(ReplyCode::connection_forced, reason));
  };
  send(0, ConnectionOpenOk{});
  state_ = State::open;
}

}  // namespace warren::amqp
