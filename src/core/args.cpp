#include "core/args.h"

#include <fmt/format.h>

#include "core/queue.h"

namespace warren::core {
namespace {

constexpr std::string_view kClassicQueueArgs[] = {
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
    "x-delivery-limit",
    "x-message-deduplication",
    "x-requeue-delay",
};

std::string render_value(const FieldValue& v) {
  if (auto i = v.as_integer()) return std::to_string(*i);
  if (auto s = v.as<std::string>()) return *s;
  if (auto b = v.as<bool>()) return *b ? "true" : "false";
  if (auto d = v.as<double>()) return fmt::format("{}", *d);
  if (auto f = v.as<float>()) return fmt::format("{}", *f);
  return "...";
}

// x-queue-type 'classic' means the same as no x-queue-type at all.
const FieldValue* effective(const FieldTable& t, std::string_view key) {
  const FieldValue* v = t.find(key);
  if (v && key == "x-queue-type")
    if (auto s = v->as<std::string>(); s && *s == "classic") return nullptr;
  return v;
}

}  // namespace

std::string_view rabbit_type_name(const FieldValue& v) {
  switch (v.type_char()) {
    case 't':
      return "bool";
    case 'b':
      return "byte";
    case 'B':
      return "unsignedbyte";
    case 's':
      return "short";
    case 'u':
      return "unsignedshort";
    case 'I':
      return "signedint";
    case 'i':
      return "unsignedint";
    case 'l':
      return "long";
    case 'f':
      return "float";
    case 'd':
      return "double";
    case 'D':
      return "decimal";
    case 'S':
      return "longstr";
    case 'x':
      return "binary";
    case 'A':
      return "array";
    case 'T':
      return "timestamp";
    case 'F':
      return "table";
    default:
      return "void";
  }
}

std::string describe_arg(const FieldValue* v) {
  if (!v) return "none";
  return fmt::format("the value '{}' of type '{}'", render_value(*v), rabbit_type_name(*v));
}

Status apply_queue_arguments(Queue& q, const FieldTable& args) {
  auto invalid = [&](std::string_view arg, std::string_view why) {
    return error(ReplyCode::precondition_failed,
                 fmt::format("invalid arg '{}' for {}: {}", arg, resource("queue", q.name, q.vhost), why),
                 method::queue_declare);
  };
  const FieldValue* dlx = args.find("x-dead-letter-exchange");
  const FieldValue* dlrk = args.find("x-dead-letter-routing-key");
  if (dlx && !dlx->as<std::string>())
    return invalid("x-dead-letter-exchange", fmt::format("{{unacceptable_type,{}}}", rabbit_type_name(*dlx)));
  if (dlrk && !dlrk->as<std::string>())
    return invalid("x-dead-letter-routing-key", fmt::format("{{unacceptable_type,{}}}", rabbit_type_name(*dlrk)));
  if (dlrk && !dlx) return invalid("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined");
  if (dlx) {
    q.dead_letter = DeadLetterTarget{*dlx->as<std::string>(), std::nullopt};
    if (dlrk) q.dead_letter->routing_key = *dlrk->as<std::string>();
  }
  return {};
}

bool same_arg_value(const FieldValue* a, const FieldValue* b) {
  if (!a || !b) return a == b;
  auto ia = a->as_integer(), ib = b->as_integer();
  if (ia && ib) return *ia == *ib;  // integer widths compare by value
  return *a == *b;
}

Status check_queue_args_equivalent(const FieldTable& current, const FieldTable& received,
                                   std::string_view queue, std::string_view vhost) {
  for (auto key : kClassicQueueArgs) {
    const FieldValue* cur = effective(current, key);
    const FieldValue* rec = effective(received, key);
    if (!same_arg_value(cur, rec))
      return inequivalent_arg(key, "queue", queue, vhost, describe_arg(rec), describe_arg(cur),
                              method::queue_declare);
  }
  return {};
}

}  // namespace warren::core
