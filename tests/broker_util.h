// Helpers for tests that drive a real broker through the public API.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "test_util.h"
#include "warren/broker.h"
#include "warren/error.h"

namespace warren::testing {

using namespace std::chrono_literals;

// The error a call throws, or ok() if it throws none.
template <class F>
Status error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.status();
  }
  return {};
}

inline Message persistent(std::string body) {
  Message m;
  m.body = std::move(body);
  m.properties.delivery_mode = 2;
  return m;
}

inline Message transient(std::string body) {
  Message m;
  m.body = std::move(body);
  return m;
}

// Collects deliveries from consumer callbacks (which run on the broker's thread).
class Inbox {
 public:
  DeliveryCallback callback() {
    return [this](Delivery d) {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(d));
      cv_.notify_all();
    };
  }
  std::optional<Delivery> next(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, timeout, [&] { return !items_.empty(); })) return std::nullopt;
    Delivery d = std::move(items_.front());
    items_.pop_front();
    return d;
  }
  size_t size() {
    std::lock_guard lock(mutex_);
    return items_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Delivery> items_;
};

inline FieldTable args(std::initializer_list<std::pair<const char*, FieldValue>> list) {
  FieldTable t;
  for (const auto& [k, v] : list) t.set(k, v);
  return t;
}

// What list_queues says of one queue (a test failure if there is none).
inline QueueInfo info(Broker& b, std::string_view name) {
  for (auto& q : b.list_queues())
    if (q.name == name) return q;
  ADD_FAILURE() << "no queue " << name;
  return {};
}

inline std::unique_ptr<Broker> memory_broker(BrokerOptions o = {}) {
  o.durability = Durability::in_memory;
  return Broker::open(o);
}

// A broker on a real data directory, opened (and reopened) with fsync durability.
class DurableBrokerTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::unique_ptr<Broker> open() {
    return Broker::open({.data_dir = dir.path(), .durability = Durability::fsync});
  }
};

}  // namespace warren::testing
