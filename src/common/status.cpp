#include "warren/status.h"

#include <fmt/format.h>

namespace warren {

std::string_view reply_name(ReplyCode code) {
  switch (code) {
    case ReplyCode::ok:
      return "OK";
    case ReplyCode::content_too_large:
      return "CONTENT_TOO_LARGE";
    case ReplyCode::no_route:
      return "NO_ROUTE";
    case ReplyCode::no_consumers:
      return "NO_CONSUMERS";
    case ReplyCode::connection_forced:
      return "CONNECTION_FORCED";
    case ReplyCode::invalid_path:
      return "INVALID_PATH";
    case ReplyCode::access_refused:
      return "ACCESS_REFUSED";
    case ReplyCode::not_found:
      return "NOT_FOUND";
    case ReplyCode::resource_locked:
      return "RESOURCE_LOCKED";
    case ReplyCode::precondition_failed:
      return "PRECONDITION_FAILED";
    case ReplyCode::frame_error:
      return "FRAME_ERROR";
    case ReplyCode::syntax_error:
      return "SYNTAX_ERROR";
    case ReplyCode::command_invalid:
      return "COMMAND_INVALID";
    case ReplyCode::channel_error:
      return "CHANNEL_ERROR";
    case ReplyCode::unexpected_frame:
      return "UNEXPECTED_FRAME";
    case ReplyCode::resource_error:
      return "RESOURCE_ERROR";
    case ReplyCode::not_allowed:
      return "NOT_ALLOWED";
    case ReplyCode::not_implemented:
      return "NOT_IMPLEMENTED";
    case ReplyCode::internal_error:
      return "INTERNAL_ERROR";
  }
  return "UNKNOWN";
}

bool is_connection_error(ReplyCode code) {
  auto c = uint16_t(code);
  return c == 320 || c == 402 || c >= 500;
}

Status Status::error(ReplyCode code, std::string_view detail, uint16_t class_id,
                     uint16_t method_id) {
  Status s;
  s.rep_ = std::make_shared<const Rep>(Rep{code, fmt::format("{} - {}", reply_name(code), detail),
                                           class_id, method_id, StorageFault::none});
  return s;
}

Status Status::storage(StorageFault fault, std::string_view detail) {
  // A store that cannot take more is a resource problem; anything else is internal.
  auto code =
      fault == StorageFault::no_space ? ReplyCode::resource_error : ReplyCode::internal_error;
  Status s = error(code, detail);
  auto rep = *s.rep_;
  rep.fault = fault;
  s.rep_ = std::make_shared<const Rep>(std::move(rep));
  return s;
}

const std::string& Status::text() const {
  static const std::string kEmpty;
  return ok() ? kEmpty : rep_->text;
}

Status Status::with_method(uint16_t class_id, uint16_t method_id) const {
  if (ok()) return *this;
  Status s;
  auto rep = *rep_;
  rep.class_id = class_id;
  rep.method_id = method_id;
  s.rep_ = std::make_shared<const Rep>(std::move(rep));
  return s;
}

}  // namespace warren
