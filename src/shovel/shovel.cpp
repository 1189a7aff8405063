#include "shovel/shovel.h"

#include <fmt/format.h>

#include "common/log.h"
#include "core/vhost.h"
#include "shovel/definition.h"
#include "wire/properties_codec.h"

namespace warren::shovel {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// RabbitMQ's x-shovelled entry: who moved the message, from where to where.
FieldTable shovelled_entry(const ShovelDefinition& d, const AmqpUri& src, const AmqpUri& dest) {
  FieldTable t;
  t.set("shovelled-by", FieldValue(std::string("warren@localhost")));
  t.set("shovel-type", FieldValue(std::string("dynamic")));
  t.set("shovel-name", FieldValue(d.name));
  t.set("shovel-vhost", FieldValue(d.vhost));
  t.set("src-uri", FieldValue(src.redacted()));
  t.set("dest-uri", FieldValue(dest.redacted()));
  if (!d.src_queue.empty()) t.set("src-queue", FieldValue(d.src_queue));
  if (!d.src_exchange.empty()) {
    t.set("src-exchange", FieldValue(d.src_exchange));
    t.set("src-exchange-key", FieldValue(d.src_exchange_key));
  }
  if (!d.dest_queue.empty()) t.set("dest-queue", FieldValue(d.dest_queue));
  if (!d.dest_exchange.empty()) t.set("dest-exchange", FieldValue(d.dest_exchange));
  if (d.dest_exchange_key) t.set("dest-exchange-key", FieldValue(*d.dest_exchange_key));
  return t;
}

// Each property dest-publish-properties sets replaces the message's own.
void override_properties(BasicProperties& p, const BasicProperties& with) {
  auto take = [](auto& field, const auto& value) {
    if (value) field = value;
  };
  take(p.content_type, with.content_type);
  take(p.content_encoding, with.content_encoding);
  take(p.headers, with.headers);
  take(p.delivery_mode, with.delivery_mode);
  take(p.priority, with.priority);
  take(p.correlation_id, with.correlation_id);
  take(p.reply_to, with.reply_to);
  take(p.expiration, with.expiration);
  take(p.message_id, with.message_id);
  take(p.timestamp, with.timestamp);
  take(p.type, with.type);
  take(p.user_id, with.user_id);
  take(p.app_id, with.app_id);
  take(p.cluster_id, with.cluster_id);
}

}  // namespace

Shovel::Shovel(core::Engine& engine, ShovelDefinition definition, std::function<void()> completed)
    : engine_(engine),
      definition_(std::move(definition)),
      completed_(std::move(completed)),
      retry_(engine.io()) {
  // Validated before a shovel is made: these parse.
  sources_ = parse_uris(definition_.src_uri).value();
  destinations_ = parse_uris(definition_.dest_uri).value();
  if (definition_.src_delete_after) remaining_ = *definition_.src_delete_after;
}

Shovel::~Shovel() { stop(); }

void Shovel::start() {
  declare_local_source(engine_, definition_, sources_.front());
  connect();
}

// The links are destroyed by teardown's task or with the shovel, not here: stop() may be
// called from one of their callbacks (src-delete-after reached).
void Shovel::stop() {
  if (state_ == State::stopped) return;
  retry_.cancel();
  teardown();
  set_state(State::stopped);
}

// A callback for one session's links: ignored once that session is over.
#define WARREN_IN_SESSION(body)                                                       \
  [weak = weak_from_this(), session = session_](auto&&... args) {                     \
    auto self = weak.lock();                                                          \
    if (!self || self->session_ != session || self->state_ == State::stopped) return; \
    self->body(std::forward<decltype(args)>(args)...);                                \
  }

void Shovel::connect() {
  ++session_;
  blocked_ = false;
  in_flight_.clear();
  waiting_.clear();
  set_state(State::starting);
  const AmqpUri& uri = destinations_[next_destination_++ % destinations_.size()];
  destination_ = make_destination(engine_, definition_, uri);
  DestinationLink::Events events;
  events.ready = WARREN_IN_SESSION(on_destination_ready);
  events.confirm = WARREN_IN_SESSION(on_confirm);
  events.written = WARREN_IN_SESSION(on_written);
  events.blocked = WARREN_IN_SESSION(on_blocked);
  events.failed = WARREN_IN_SESSION(fail);
  events.returned = WARREN_IN_SESSION(on_returned);
  destination_->start(std::move(events));
}

// The destination first, so that nothing is taken from the source before it can go on.
void Shovel::on_destination_ready() {
  const AmqpUri& uri = sources_[next_source_++ % sources_.size()];
  source_ = make_source(engine_, definition_, uri);
  SourceLink::Events events;
  events.ready = WARREN_IN_SESSION(on_source_ready);
  events.message = WARREN_IN_SESSION(on_message);
  events.failed = WARREN_IN_SESSION(fail);
  source_->start(std::move(events));
}

#undef WARREN_IN_SESSION

void Shovel::on_source_ready(uint64_t length) {
  if (definition_.src_delete_after_queue_length && !remaining_) remaining_ = length;
  last_connected_ms_ = now_ms();
  set_state(State::running);
  log::info("shovel '{}' in vhost '{}' running", definition_.name, definition_.vhost);
  if (remaining_ && *remaining_ == 0) count_forwarded(0);
}

void Shovel::on_message(uint64_t tag, Carried message) {
  // Past a src-delete-after count a message stays unacknowledged and goes back when we stop.
  if (remaining_ && in_flight_.size() + waiting_.size() >= *remaining_) return;
  if (message.redelivered) ++resent_;
  if (blocked_) {
    waiting_.emplace_back(tag, std::move(message));
    return;
  }
  forward(tag, std::move(message));
}

void Shovel::forward(uint64_t tag, Carried message) {
  std::string exchange, routing_key = message.routing_key;
  if (!definition_.dest_queue.empty()) {
    routing_key = definition_.dest_queue;
  } else if (!definition_.dest_exchange.empty()) {
    exchange = definition_.dest_exchange;
    if (definition_.dest_exchange_key) routing_key = *definition_.dest_exchange_key;
  } else {
    exchange = message.exchange;
  }
  const uint64_t session = session_;
  const uint64_t seq =
      destination_->publish(exchange, routing_key, transformed_properties(message), message.body);
  if (session != session_) return;  // the publish failed the session
  in_flight_.push_back({seq, tag, false});
}

void Shovel::on_confirm(uint64_t seq, bool multiple, bool ack) {
  if (!ack) {
    if (definition_.ack_mode == ShovelAckMode::on_confirm)
      return fail(Status::error(ReplyCode::internal_error, "the destination nacked a message"));
    reason_ = "the destination nacked a message that was already acknowledged at the source";
    return;
  }
  if (definition_.ack_mode == ShovelAckMode::on_confirm) {
    settle_up_to(seq, multiple);
    ack_settled_prefix();
  }
}

// Published mandatory: an unroutable message comes back, and is sent again after a delay.
void Shovel::on_returned(const std::string& why) {
  fail(Status::error(ReplyCode::no_route,
                     fmt::format("the destination returned a message ({})", why)));
}

void Shovel::on_written(uint64_t seq) {
  if (definition_.ack_mode == ShovelAckMode::on_confirm) return;
  settle_up_to(seq, true);
  ack_settled_prefix();
}

void Shovel::on_blocked(bool blocked) {
  blocked_ = blocked;
  log::info("shovel '{}' in vhost '{}': the destination {} publishing", definition_.name,
            definition_.vhost, blocked ? "blocked" : "unblocked");
  while (!blocked_ && !waiting_.empty() && state_ == State::running) {
    auto [tag, message] = std::move(waiting_.front());
    waiting_.pop_front();
    forward(tag, std::move(message));
  }
}

void Shovel::settle_up_to(uint64_t seq, bool multiple) {
  for (auto& f : in_flight_) {
    if (f.seq > seq) break;
    if (multiple || f.seq == seq) f.settled = true;
  }
}

// Acknowledges at the source only an unbroken run from the oldest message on: a message
// is never acknowledged while one before it may still have to be sent again.
void Shovel::ack_settled_prefix() {
  size_t n = 0;
  while (n < in_flight_.size() && in_flight_[n].settled) ++n;
  if (n == 0) return;
  const uint64_t last_tag = in_flight_[n - 1].tag;
  in_flight_.erase(in_flight_.begin(), in_flight_.begin() + long(n));
  if (definition_.ack_mode != ShovelAckMode::no_ack) source_->ack(last_tag, true);
  count_forwarded(n);
}

void Shovel::count_forwarded(uint64_t n) {
  forwarded_ += n;
  failures_in_a_row_ = 0;
  if (!remaining_) return;
  *remaining_ -= std::min(*remaining_, n);
  if (*remaining_ > 0) return;
  log::info("shovel '{}' in vhost '{}' moved what src-delete-after asked for: deleting it",
            definition_.name, definition_.vhost);
  stop();
  if (completed_) engine_.post(std::move(completed_));
}

void Shovel::fail(const Status& why) {
  if (state_ == State::stopped || state_ == State::terminated) return;
  reason_ = why.text();
  log::warning("shovel '{}' in vhost '{}' stopped: {}", definition_.name, definition_.vhost,
               reason_);
  teardown();
  set_state(State::terminated);
  if (definition_.reconnect_delay <= 0) return;
  retry_.expires_after(next_delay());
  retry_.async_wait([weak = weak_from_this(), token = engine_.token()](std::error_code ec) {
    if (ec) return;
    std::lock_guard hold(*token);
    if (auto self = weak.lock(); self && self->state_ == State::terminated) self->connect();
  });
}

// The links are stopped now (the source takes back what was unacknowledged) but destroyed
// later: one of their callbacks may be what called us.
void Shovel::teardown() {
  ++session_;
  if (source_) source_->stop();
  if (destination_) destination_->stop();
  if (source_) retired_sources_.push_back(std::move(source_));
  if (destination_) retired_destinations_.push_back(std::move(destination_));
  in_flight_.clear();
  waiting_.clear();
  engine_.post([weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->retired_sources_.clear();
      self->retired_destinations_.clear();
    }
  });
}

// Quick retries first, for a blip; doubling up to reconnect-delay, never beyond it.
std::chrono::milliseconds Shovel::next_delay() {
  const double cap_ms = definition_.reconnect_delay * 1000;
  const double first_ms = std::max(50.0, cap_ms / 8);
  const double ms = std::min(cap_ms, first_ms * double(1 << std::min(failures_in_a_row_, 10)));
  ++failures_in_a_row_;
  return std::chrono::milliseconds(int64_t(ms));
}

void Shovel::set_state(State state) {
  if (state == state_ && state_since_ms_ != 0) return;
  state_ = state;
  state_since_ms_ = now_ms();
}

std::string Shovel::transformed_properties(const Carried& message) const {
  const bool change = definition_.add_forward_headers || definition_.dest_add_timestamp_header ||
                      definition_.dest_publish_properties != BasicProperties{};
  if (!change) return message.properties;
  BasicProperties p = wire::decode_properties(message.properties).value_or(BasicProperties{});
  override_properties(p, definition_.dest_publish_properties);
  if (definition_.add_forward_headers) {
    FieldTable& headers = p.headers ? *p.headers : p.headers.emplace();
    FieldArray entries;
    entries.push_back(FieldValue(shovelled_entry(
        definition_, sources_[(next_source_ + sources_.size() - 1) % sources_.size()],
        destinations_[(next_destination_ + destinations_.size() - 1) % destinations_.size()])));
    if (const FieldValue* earlier = headers.find("x-shovelled"))
      if (const auto* list = earlier->as<FieldArray>())
        for (const auto& e : *list) entries.push_back(e);
    headers.set("x-shovelled", FieldValue(std::move(entries)));
  }
  if (definition_.dest_add_timestamp_header) {
    FieldTable& headers = p.headers ? *p.headers : p.headers.emplace();
    headers.set("x-shovelled-timestamp", FieldValue(int64_t(now_ms() / 1000)));
  }
  return wire::encode_properties(p);
}

// What waits in a local source queue, whether or not the shovel is connected now (the
// backlog an edge device builds while its uplink is down).
std::optional<uint64_t> Shovel::local_backlog() const {
  if (definition_.src_queue.empty() || !sources_.front().local) return std::nullopt;
  const AmqpUri& uri = sources_.front();
  core::Vhost* v = engine_.find_vhost(uri.vhost_given ? uri.vhost : definition_.vhost);
  auto it = v ? v->queues.find(definition_.src_queue) : decltype(v->queues.end()){};
  if (!v || it == v->queues.end()) return std::nullopt;
  return it->second->ready() + it->second->unacked();
}

ShovelStatus Shovel::status() const {
  static const char* kStates[] = {"starting", "running", "terminated", "terminated"};
  ShovelStatus s;
  s.vhost = definition_.vhost;
  s.name = definition_.name;
  s.state = kStates[int(state_)];
  s.reason = reason_;
  s.forwarded = forwarded_;
  s.resent = resent_;
  s.in_flight = in_flight_.size();
  s.blocked = blocked_;
  s.pending = local_backlog();
  s.last_connected_ms = last_connected_ms_;
  s.state_since_ms = state_since_ms_;
  return s;
}

}  // namespace warren::shovel
