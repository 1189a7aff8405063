// The in-memory broker a fuzz target drives: made once, on first use, and never destroyed
// (it stays reachable, so leak checking is unaffected); its writer is stopped at exit,
// before exit() destroys static objects (error categories among them) the writer may use.
#pragma once

#include <asio/io_context.hpp>

#include <cstdlib>
#include <memory>

#include "core/engine.h"

namespace warren::fuzz {

struct FuzzBroker {
  asio::io_context io;
  std::unique_ptr<core::Engine> engine;

  static FuzzBroker& instance() {
    static FuzzBroker& broker = *new FuzzBroker;
    return broker;
  }

 private:
  FuzzBroker() {
    BrokerOptions options;
    options.durability = Durability::in_memory;
    options.max_message_size = 1 << 20;
    engine = std::move(core::Engine::open(io, {options, nullptr}).value());
    engine->token()->lock();  // this thread runs the broker
    std::atexit([] { instance().engine->shutdown(); });
  }
};

}  // namespace warren::fuzz
