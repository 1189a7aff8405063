// The exceptions the in-process API throws. Every failure a RabbitMQ client would see as a
// channel.close or connection.close arrives as warren::Error carrying the same Status.
#pragma once

#include <stdexcept>

#include "warren/export.h"
#include "warren/status.h"

namespace warren {

class WARREN_EXPORT Error : public std::runtime_error {
 public:
  explicit Error(Status status) : std::runtime_error(status.text()), status_(std::move(status)) {}
  const Status& status() const { return status_; }
  ReplyCode code() const { return status_.code(); }

 private:
  Status status_;
};

// A wait (for confirms, for a commit) ran past its deadline. Nothing was lost: the
// operation may still complete.
class WARREN_EXPORT Timeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace warren
