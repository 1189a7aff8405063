// A connection to an in-process broker. Exclusive queues belong to the connection that
// declared them and are deleted when it closes; closing it closes its channels.
#pragma once

#include <memory>

#include "warren/channel.h"
#include "warren/export.h"

namespace warren {

namespace api {
class ConnectionHandle;
}

class WARREN_EXPORT Connection {
 public:
  explicit Connection(std::shared_ptr<api::ConnectionHandle> handle);
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();  // closes the connection

  Channel channel();
  void close();

 private:
  std::shared_ptr<api::ConnectionHandle> handle_;
};

}  // namespace warren
