// Status: the outcome of a broker operation. Success costs nothing; a failure carries
// the AMQP reply code RabbitMQ would send, its full reply text ("NOT_FOUND - no queue
// 'q' in vhost '/'"), and the class/method ids of the method that caused it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "warren/export.h"

namespace warren {

enum class ReplyCode : uint16_t {
  ok = 200,
  content_too_large = 311,
  no_route = 312,
  no_consumers = 313,
  connection_forced = 320,
  invalid_path = 402,
  access_refused = 403,
  not_found = 404,
  resource_locked = 405,
  precondition_failed = 406,
  frame_error = 501,
  syntax_error = 502,
  command_invalid = 503,
  channel_error = 504,
  unexpected_frame = 505,
  resource_error = 506,
  not_allowed = 530,
  not_implemented = 540,
  internal_error = 541,
};

// The AMQP name of a reply code, as it starts a reply text: "NOT_FOUND".
WARREN_EXPORT std::string_view reply_name(ReplyCode code);

// Hard errors close the whole connection; soft errors close only the channel (AMQP 0-9-1 §1.2).
WARREN_EXPORT bool is_connection_error(ReplyCode code);

// What went wrong below the protocol, when a failure came from the store.
enum class StorageFault : uint8_t { none, io_error, no_space, corruption };

class WARREN_EXPORT Status {
 public:
  Status() = default;  // success

  // text is the detail after the code's name: error(not_found, "no queue 'q' in vhost '/'")
  // gives the reply text "NOT_FOUND - no queue 'q' in vhost '/'".
  static Status error(ReplyCode code, std::string_view detail, uint16_t class_id = 0,
                      uint16_t method_id = 0);
  static Status storage(StorageFault fault, std::string_view detail);

  bool ok() const { return rep_ == nullptr; }
  explicit operator bool() const { return ok(); }
  ReplyCode code() const { return ok() ? ReplyCode::ok : rep_->code; }
  const std::string& text() const;  // the full reply text; empty on success
  uint16_t class_id() const { return ok() ? 0 : rep_->class_id; }
  uint16_t method_id() const { return ok() ? 0 : rep_->method_id; }
  StorageFault storage_fault() const { return ok() ? StorageFault::none : rep_->fault; }
  bool closes_connection() const { return !ok() && is_connection_error(rep_->code); }

  // The same failure, attributed to the method that caused it.
  Status with_method(uint16_t class_id, uint16_t method_id) const;

 private:
  struct Rep {
    ReplyCode code;
    std::string text;
    uint16_t class_id;
    uint16_t method_id;
    StorageFault fault;
  };
  std::shared_ptr<const Rep> rep_;
};

}  // namespace warren
