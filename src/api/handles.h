// The machinery behind the public classes: a broker runs its engine on its own event-loop
// thread; public calls from other threads are posted there and wait for the answer.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>

#include "core/engine.h"
#include "shovel/manager.h"
#include "warren/broker.h"
#include "warren/error.h"

namespace warren::api {

class ChannelHandle;

class BrokerHandle : public std::enable_shared_from_this<BrokerHandle> {
 public:
  static std::shared_ptr<BrokerHandle> open(const BrokerOptions& options,
                                            std::shared_ptr<storage::FaultInjector> faults = {});
  ~BrokerHandle();
  void close();

  // Whether this thread may run core code now (it holds the loop token).
  bool in_engine() const { return token_->held_here(); }
  // Runs fn with the loop token and returns its result (or rethrows its exception): inline
  // when this thread holds the token or, if allowed, finds it free; else on the loop.
  template <class F>
  auto run(F&& fn, bool may_run_here = true) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    if (in_engine()) {
      if (!engine_) throw Error(closed_status());
      return fn();
    }
    if (may_run_here && token_->try_lock()) {
      std::lock_guard hold(*token_, std::adopt_lock);
      if (!engine_) throw Error(closed_status());
      return fn();
    }
    // The queued handler owns the task: if the broker closes before running it, the
    // handler is dropped, the promise breaks, and the caller hears the broker is closed.
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
    auto future = task->get_future();
    {
      std::lock_guard lock(mutex_);
      if (closed_) throw Error(closed_status());
      asio::post(*io_, [task, token = token_] {
        std::lock_guard hold(*token);
        (*task)();
      });
    }
    try {
      return future.get();
    } catch (const std::future_error&) {
      throw Error(closed_status());
    }
  }
  void post(std::function<void()> fn);
  core::LoopToken& token() { return *token_; }

  core::Engine& engine() { return *engine_; }
  asio::io_context& io() { return *io_; }  // for servers run on the broker's loop
  shovel::ShovelManager& shovels() { return *shovels_; }
  storage::Writer& writer() { return engine_->writer(); }
  const BrokerOptions& options() const { return options_; }
  void track(const std::shared_ptr<ChannelHandle>& channel);
  static Status closed_status();
  // Blocks the calling thread until commit `id` has landed; throws its failure, or
  // warren::Timeout past the deadline. The engine decides (core::Engine::wait_durable).
  void wait_durable(uint64_t commit, std::chrono::steady_clock::time_point deadline);

 private:
  BrokerHandle() = default;
  BrokerOptions options_;
  // Owned apart so close() can destroy it: that drops handlers still queued (which hold
  // channel handles, which hold this) without running them.
  std::unique_ptr<asio::io_context> io_ = std::make_unique<asio::io_context>();
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::unique_ptr<core::Engine> engine_;
  std::unique_ptr<shovel::ShovelManager> shovels_;  // loop thread only
  std::thread loop_;
  std::shared_ptr<core::LoopToken> token_;
  std::mutex mutex_;
  bool closed_ = false;
  std::vector<std::weak_ptr<ChannelHandle>> channels_;  // loop thread only
};

class ConnectionHandle {
 public:
  ConnectionHandle(std::shared_ptr<BrokerHandle> broker, std::string name);
  ~ConnectionHandle();
  Channel channel();
  void close();

 private:
  std::shared_ptr<BrokerHandle> broker_;
  std::shared_ptr<core::Connection> connection_;
  uint16_t next_channel_id_ = 1;
};

class ChannelHandle : public core::ChannelSink, public std::enable_shared_from_this<ChannelHandle> {
 public:
  explicit ChannelHandle(std::shared_ptr<BrokerHandle> broker);
  ~ChannelHandle() override;
  void attach(std::shared_ptr<core::Channel> channel) { core_ = std::move(channel); }
  void detach() { core_.reset(); }  // loop thread
  void detach_and_close() {         // loop thread
    if (core_) core_->close();
    core_.reset();
  }

  // Runs fn(core channel) with the loop token; throws the channel's error if it is closed.
  // It may run on this thread only when none of the channel's asynchronous operations is
  // still queued, so the channel's operations keep their order.
  template <class F>
  auto call(F&& fn) {
    throw_if_closed();
    return broker_->run(
        [&] {
          if (!core_) throw Error(BrokerHandle::closed_status());
          return fn(*core_);
        },
        outbox_empty());
  }
  bool token_free_for_inline() { return broker_->token().try_lock(); }
  bool outbox_empty() {
    std::lock_guard lock(outbox_mutex_);
    return outbox_.empty();
  }
  void throw_if_closed() const;
  BrokerHandle& broker() { return *broker_; }

  // Asynchronous operations (publish, ack, nack, reject) wait here in order; the loop
  // drains them in one go, so a burst costs one wake-up rather than one per message.
  struct AsyncOp {
    enum class Kind : uint8_t { publish, ack, nack, reject } kind;
    core::PublishInput publish;
    uint64_t tag = 0;
    bool multiple = false;
    bool requeue = false;
  };
  void enqueue(AsyncOp op);

  // The sequence number the core will give the next publish (it numbers publishes in the
  // order they reach it, which is the order they are queued here); 0 outside confirm mode.
  uint64_t next_publish_seq();
  void set_confirm_mode() {
    std::lock_guard lock(mutex_);
    confirm_mode_ = true;
  }

  // Callbacks registered by the user; read and written on the loop thread only.
  std::map<std::string, DeliveryCallback, std::less<>> delivery_callbacks;
  std::map<std::string, CancelCallback, std::less<>> cancel_callbacks;
  ConfirmCallback confirm_callback;
  ReturnCallback return_callback;

  Status close_reason() const;
  bool closed_by_client() const;
  void mark_closed_by_client();
  uint16_t id = 0;

  // core::ChannelSink
  void on_deliver(core::DeliveryInfo delivery) override;
  void on_confirm(uint64_t seq, bool multiple, bool ack) override;
  void on_return(core::ReturnInfo returned) override;
  void on_consumer_cancelled(const std::string& consumer_tag) override;
  void on_closed(const Status& reason) override;

 private:
  void drain_outbox();  // loop thread

  std::shared_ptr<BrokerHandle> broker_;
  std::shared_ptr<core::Channel> core_;  // loop thread only
  std::mutex outbox_mutex_;
  std::vector<AsyncOp> outbox_;
  std::vector<AsyncOp> draining_;  // loop thread only
  mutable std::mutex mutex_;
  bool confirm_mode_ = false;
  uint64_t publishes_ = 0;  // in confirm mode
  Status closed_reason_;
  bool closed_by_client_ = false;
};

Delivery to_delivery(core::DeliveryInfo info);
Message to_message(const storage::MessageData& data);

}  // namespace warren::api
