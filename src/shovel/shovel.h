// One running shovel: takes messages from its source, publishes them to its destination,
// and acknowledges each at the source only when the ack mode allows (on-confirm: once the
// destination confirmed it and every message before it). Any failure at either end tears
// both down; the source then takes back what was unacknowledged, and after a delay the
// shovel starts again from there, so nothing is lost and order is kept (what follows a break
// is sent again from the oldest unconfirmed message on).
#pragma once

#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>

#include "core/engine.h"
#include "shovel/links.h"
#include "warren/shovel.h"

namespace warren::shovel {

class Shovel : public std::enable_shared_from_this<Shovel> {
 public:
  // `completed` runs once a src-delete-after count has been moved (the shovel then stops).
  Shovel(core::Engine& engine, ShovelDefinition definition, std::function<void()> completed);
  ~Shovel();

  void start();
  // Stops for good: both ends closed, the source gets its unacknowledged messages back.
  void stop();
  ShovelStatus status() const;
  const ShovelDefinition& definition() const { return definition_; }

 private:
  enum class State { starting, running, terminated, stopped };
  struct InFlight {
    uint64_t seq = 0;  // destination's publish sequence number
    uint64_t tag = 0;  // source's delivery tag
    bool settled = false;
  };

  void connect();
  void on_destination_ready();
  void on_source_ready(uint64_t length);
  void on_message(uint64_t tag, Carried message);
  void forward(uint64_t tag, Carried message);
  void on_confirm(uint64_t seq, bool multiple, bool ack);
  void on_written(uint64_t seq);
  void on_returned(const std::string& why);
  void on_blocked(bool blocked);
  void settle_up_to(uint64_t seq, bool multiple);
  void ack_settled_prefix();
  void count_forwarded(uint64_t n);
  void fail(const Status& why);
  void teardown();
  std::chrono::milliseconds next_delay();
  void set_state(State state);
  std::string transformed_properties(const Carried& message) const;
  std::optional<uint64_t> local_backlog() const;

  core::Engine& engine_;
  ShovelDefinition definition_;
  std::vector<AmqpUri> sources_, destinations_;
  size_t next_source_ = 0, next_destination_ = 0;
  std::function<void()> completed_;
  asio::steady_timer retry_;
  std::unique_ptr<SourceLink> source_;
  std::unique_ptr<DestinationLink> destination_;
  // Tears down a session's links later than its own callbacks (which may be on their stack).
  std::vector<std::unique_ptr<SourceLink>> retired_sources_;
  std::vector<std::unique_ptr<DestinationLink>> retired_destinations_;
  uint64_t session_ = 0;  // bumped at each (re)connection; stale callbacks check it

  State state_ = State::starting;
  std::string reason_;
  bool blocked_ = false;
  std::deque<InFlight> in_flight_;
  std::deque<std::pair<uint64_t, Carried>> waiting_;  // while blocked or not yet ready
  std::optional<uint64_t> remaining_;                 // src-delete-after: messages still to move
  uint64_t forwarded_ = 0, resent_ = 0;
  int failures_in_a_row_ = 0;
  int64_t last_connected_ms_ = 0, state_since_ms_ = 0;
};

}  // namespace warren::shovel
