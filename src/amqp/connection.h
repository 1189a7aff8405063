// One client connection's protocol: the handshake, channels, content assembly, and the
// translation between AMQP methods and core channel calls. No I/O: the session feeds it the
// bytes that arrived and sends what it appends to output(). Runs on the loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "amqp/codec.h"
#include "amqp/frame.h"
#include "core/engine.h"

namespace warren::amqp {

// Message bodies still arriving, over every connection of a server. Above the limit, the
// connections that hold a partial body are not read until the total falls again.
struct BodyBudget {
  uint64_t in_flight = 0;
  uint64_t limit = uint64_t{256} << 20;
  std::vector<std::function<void()>> waiters;  // run once the total is under the limit
  bool over() const { return in_flight > limit; }
  void add(uint64_t bytes) { in_flight += bytes; }
  void release(uint64_t bytes);
};

struct ServerConfig {
  // Users and their passwords are the engine's (core/users.h).
  std::set<std::string> loopback_users{"guest"};  // may only log in from loopback
  uint16_t channel_max = 2047;
  uint32_t frame_max = 131072;
  uint16_t heartbeat = 60;
  // Deliveries wait while this many bytes are queued for a client.
  size_t output_high_water = 1 << 20;
  // A client that has not opened its connection this long after connecting is dropped
  // (RabbitMQ's handshake_timeout).
  std::chrono::milliseconds handshake_timeout{10000};
  // A refused login is answered this much later, so that guessing passwords is slow; no
  // other connection waits for it.
  std::chrono::milliseconds auth_failure_delay{1000};
  // Shared by every connection of the server (copies of the config share it too).
  std::shared_ptr<BodyBudget> bodies = std::make_shared<BodyBudget>();
};

// Before connection.tune-ok the frame size is not negotiated: only frames of up to the
// AMQP minimum are legal (AMQP 0-9-1 §4.2.3).
inline constexpr uint32_t kFrameMinSize = 4096;

class Connection {
 public:
  Connection(core::Engine& engine, const ServerConfig& config, std::string peer,
             bool peer_is_loopback);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A TLS connection, with the common name of the client's certificate if it presented one
  // that was verified: EXTERNAL is offered (as RabbitMQ's ssl mechanism does) and logs in
  // as that user; without a certificate it is refused.
  void set_tls(std::string certificate_name) {
    tls_ = true;
    certificate_name_ = std::move(certificate_name);
  }
  // Both ends of the socket: the connection is then named as RabbitMQ names it,
  // "client:port -> server:port".
  void set_endpoints(std::string peer_host, uint16_t peer_port, std::string host, uint16_t port) {
    details_.peer_host = std::move(peer_host);
    details_.peer_port = peer_port;
    details_.host = std::move(host);
    details_.port = port;
  }

  // Consumes whole frames from the front of `in` (leaving any partial frame).
  void feed(std::string& in);
  std::string& output() { return out_; }
  // The socket should close once output() has been sent.
  bool should_close() const { return state_ == State::closed; }
  // ...and abruptly (a reset), as RabbitMQ does after a wrong protocol header.
  bool should_reset() const { return reset_; }
  // ...or after the closing handshake, when the client may still be sending.
  bool closed_cleanly() const { return closed_cleanly_; }
  // Stop reading the client: it is blocked by an alarm, it does not read what it is sent, a
  // reply waits for its commit (its later frames wait their turn), it publishes faster
  // than the store writes, it holds a partial body while bodies in flight are over their
  // budget, or its refused login waits to be answered.
  bool reading_paused() const {
    return blocked_ || awaiting_commits_ > 0 || out_.size() > 4 * config_.output_high_water ||
           waiting_for_backlog_ || (partial_body_bytes_ > 0 && config_.bodies->over()) ||
           refusal_.has_value();
  }
  // The handshake (up to connection.open-ok) took longer than the config allows.
  bool handshake_overdue(std::chrono::steady_clock::time_point now) const {
    return state_ < State::open && now - created_ > config_.handshake_timeout;
  }
  // A refused login waits to be answered; the session sends the answer once the delay has
  // passed (answer_refusal).
  bool refusing() const { return refusal_.has_value(); }
  std::chrono::milliseconds refusal_delay() const { return config_.auth_failure_delay; }
  void answer_refusal();
  // A reply waits for its commit; the input after it waits too.
  bool awaiting_commits() const { return awaiting_commits_ > 0; }
  // Output drained below the high-water mark: deliveries may flow again.
  void on_output_drained();
  // The peer is gone: release everything (unacked messages go back to their queues).
  void on_disconnect();
  // Server shutdown: tell the client and close.
  void close_for_shutdown();

  // Called whenever output goes from empty to non-empty, so the session can send it.
  void set_output_listener(std::function<void()> listener) {
    output_listener_ = std::move(listener);
  }
  // Called when input left unprocessed (while a reply waited for its commit) may go on.
  void set_resume_listener(std::function<void()> listener) {
    resume_listener_ = std::move(listener);
  }

  uint16_t heartbeat_seconds() const { return heartbeat_; }
  void send_heartbeat();
  bool open() const { return state_ == State::open; }

 private:
  enum class State {
    awaiting_header,
    awaiting_start_ok,
    awaiting_tune_ok,
    awaiting_open,
    open,
    closing,
    closed
  };
  class ChannelState;
  friend class ChannelState;

  void handle_frame(const Frame& f);
  void handle_connection_method(const AnyMethod& m);
  void handle_channel_frame(const Frame& f);
  void handle_start_ok(const ConnectionStartOk& m);
  void handle_tune_ok(const ConnectionTuneOk& m);
  void handle_open(const ConnectionOpen& m);
  void open_channel(uint16_t id);
  bool authenticate(const ConnectionStartOk& m, std::string* user);

  template <class M>
  void send(uint16_t channel, const M& method);
  // Sends `reply` once commit `commit` has landed (RabbitMQ answers declare-ok for a durable
  // queue once it is stored, commit-ok once the transaction is); until then the connection
  // reads nothing more, so replies keep their order. A failed commit closes the channel.
  template <class M>
  void reply_when_durable(uint16_t channel, core::CommitId commit, bool no_wait, M reply);
  void send_content(uint16_t channel, std::string_view method_payload,
                    const storage::MessageData& message);
  // A hard error: connection.close, then nothing but close-ok is read.
  void connection_error(const Status& status);
  void close_socket_now() { state_ = State::closed; }
  // The closing handshake completed (close answered by close-ok, either way round).
  void closed_by_handshake() {
    state_ = State::closed;
    closed_cleanly_ = true;
  }
  void release();
  void retire_channel(uint16_t id);

  core::Engine& engine_;
  const ServerConfig& config_;
  std::string peer_;
  bool peer_is_loopback_;
  bool tls_ = false;
  std::string certificate_name_;
  // Addresses, mechanism and client properties: with the tuning and tls_ below, handed to
  // the core connection when it opens.
  core::ConnectionDetails details_;
  State state_ = State::awaiting_header;
  std::string out_;
  std::function<void()> output_listener_;
  std::function<void()> resume_listener_;
  int awaiting_commits_ = 0;
  const std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  bool waiting_for_backlog_ = false;
  bool published_ = false;  // since the last check of the write backlog
  uint64_t partial_body_bytes_ = 0;
  std::optional<Status> refusal_;  // a refused login's answer (empty status: a silent close)
  void note_partial_body(int64_t bytes);
  void hold_back_publisher();
  void resume_later();
  // Handlers the engine runs later check it: the connection may be gone by then.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  FrameParser parser_;
  uint16_t channel_max_ = 0;
  uint32_t frame_max_ = 0;
  uint16_t heartbeat_ = 0;
  bool reset_ = false;
  bool closed_cleanly_ = false;
  bool blocked_ = false;  // sent connection.blocked; not read until unblocked
  uint64_t alarm_listener_ = 0;
  void on_alarm(bool raised);
  void block_if_alarmed();
  bool client_wants_auth_failure_close_ = false;
  bool client_wants_cancel_notify_ = false;
  bool client_wants_blocked_ = false;
  std::string user_;
  std::shared_ptr<core::Connection> core_;
  std::map<uint16_t, std::unique_ptr<ChannelState>> channels_;
  std::vector<std::unique_ptr<ChannelState>> retired_;  // destroyed at the end of feed()
  bool feeding_ = false;                                // working off a read
  std::vector<uint16_t> acks_pending_;  // channels holding acks back until it is done
  void flush_pending_acks();
};

}  // namespace warren::amqp
