#include "core/errors.h"

#include <fmt/format.h>

namespace warren::core {

Status error(ReplyCode code, std::string_view detail, MethodId m) {
  return Status::error(code, detail, m.first, m.second);
}

std::string resource(std::string_view kind, std::string_view name, std::string_view vhost) {
  return fmt::format("{} '{}' in vhost '{}'", kind, name, vhost);
}

Status no_queue(std::string_view vhost, std::string_view queue, MethodId m) {
  return error(ReplyCode::not_found, "no " + resource("queue", queue, vhost), m);
}

Status no_exchange(std::string_view vhost, std::string_view exchange, MethodId m) {
  return error(ReplyCode::not_found, "no " + resource("exchange", exchange, vhost), m);
}

Status unknown_delivery_tag(uint64_t tag, MethodId m) {
  return error(ReplyCode::precondition_failed, fmt::format("unknown delivery tag {}", tag), m);
}

Status queue_locked(std::string_view vhost, std::string_view queue, MethodId m) {
  return error(ReplyCode::resource_locked,
               fmt::format("cannot obtain exclusive access to locked {}. It could be originally "
                           "declared on another connection or the exclusive property value does "
                           "not match that of the original declaration.",
                           resource("queue", queue, vhost)),
               m);
}

Status inequivalent_arg(std::string_view arg, std::string_view kind, std::string_view name,
                        std::string_view vhost, std::string_view received, std::string_view current,
                        MethodId m) {
  return error(ReplyCode::precondition_failed,
               fmt::format("inequivalent arg '{}' for {}: received {} but current is {}", arg,
                           resource(kind, name, vhost), received, current),
               m);
}

}  // namespace warren::core
