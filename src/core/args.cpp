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
    "x-deduplication-header",
    "x-cache-size",
    "x-cache-ttl",
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

namespace {

// Argument checks with RabbitMQ's reasons ("{value_negative,-1}", "invalid_overflow").
class ArgReader {
 public:
  ArgReader(const Queue& q, const FieldTable& args) : queue_(q), args_(args) {}

  Status invalid(std::string_view arg, std::string_view why) const {
    return error(ReplyCode::precondition_failed,
                 fmt::format("invalid arg '{}' for {}: {}", arg,
                             resource("queue", queue_.name, queue_.vhost), why),
                 method::queue_declare);
  }

  // A non-negative integer (positive when zero_ok is false); nullopt when absent.
  Result<std::optional<uint64_t>> integer(std::string_view arg, bool zero_ok = true) const {
    const FieldValue* v = args_.find(arg);
    if (!v) return std::optional<uint64_t>();
    auto n = v->as_integer();
    if (!n)
      return invalid(arg, fmt::format("\"expected integer, got {}\"", rabbit_type_name(*v)));
    if (*n < 0) return invalid(arg, fmt::format("{{value_negative,{}}}", *n));
    if (*n == 0 && !zero_ok) return invalid(arg, "{value_zero,0}");
    return std::optional<uint64_t>(uint64_t(*n));
  }

  Result<const std::string*> string(std::string_view arg) const {
    const FieldValue* v = args_.find(arg);
    if (!v) return static_cast<const std::string*>(nullptr);
    if (const auto* s = v->as<std::string>()) return s;
    return invalid(arg, fmt::format("{{unacceptable_type,{}}}", rabbit_type_name(*v)));
  }

  const FieldValue* find(std::string_view arg) const { return args_.find(arg); }

 private:
  const Queue& queue_;
  const FieldTable& args_;
};

#define WARREN_TRY_ASSIGN(target, expr)     \
  do {                                      \
    auto result_ = (expr);                  \
    if (!result_.ok()) return result_.status(); \
    target = result_.value();               \
  } while (0)

Status read_dead_letter(const ArgReader& in, Queue& q) {
  const std::string *dlx = nullptr, *dlrk = nullptr;
  WARREN_TRY_ASSIGN(dlx, in.string("x-dead-letter-exchange"));
  WARREN_TRY_ASSIGN(dlrk, in.string("x-dead-letter-routing-key"));
  if (dlrk && !dlx) return in.invalid("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined");
  if (dlx) q.dead_letter = DeadLetterTarget{*dlx, dlrk ? std::optional(*dlrk) : std::nullopt};
  return {};
}

Status read_overflow(const ArgReader& in, QueueSettings& s) {
  const std::string* overflow = nullptr;
  WARREN_TRY_ASSIGN(overflow, in.string("x-overflow"));
  if (!overflow || *overflow == "drop-head") return {};
  if (*overflow == "reject-publish")
    s.overflow = Overflow::reject_publish;
  else if (*overflow == "reject-publish-dlx")
    s.overflow = Overflow::reject_publish_dlx;
  else
    return in.invalid("x-overflow", "invalid_overflow");
  return {};
}

// x-requeue-delay: an integer (a fixed delay in ms) or a table {base, factor, max}.
Status read_requeue_delay(const ArgReader& in, QueueSettings& s) {
  const FieldValue* v = in.find("x-requeue-delay");
  if (!v) return {};
  Backoff b;
  if (auto fixed = v->as_integer()) {
    if (*fixed <= 0) return in.invalid("x-requeue-delay", "the delay must be a positive integer (ms)");
    b.base_ms = uint64_t(*fixed);
    s.requeue_delay = b;
    return {};
  }
  const auto* t = v->as<FieldTable>();
  if (!t) return in.invalid("x-requeue-delay", "expected an integer (ms) or a table {base, factor, max}");
  for (const auto& [key, value] : *t)
    if (key != "base" && key != "factor" && key != "max")
      return in.invalid("x-requeue-delay", fmt::format("unknown key '{}'; expected base, factor, max", key));
  auto number = [&](std::string_view key) -> std::optional<double> {
    const FieldValue* f = t->find(key);
    if (!f) return std::nullopt;
    if (auto i = f->as_integer()) return double(*i);
    if (auto d = f->as<double>()) return *d;
    if (auto d = f->as<float>()) return double(*d);
    return -1.0;  // refused below
  };
  auto base = number("base"), factor = number("factor"), max = number("max");
  if (!base || *base < 1) return in.invalid("x-requeue-delay", "'base' must be a positive integer (ms)");
  if (factor && *factor < 1) return in.invalid("x-requeue-delay", "'factor' must be a number >= 1");
  if (max && *max < *base) return in.invalid("x-requeue-delay", "'max' must be at least 'base'");
  b.base_ms = uint64_t(*base);
  b.factor = factor.value_or(2.0);
  if (max) b.max_ms = uint64_t(*max);
  s.requeue_delay = b;
  return {};
}

Status read_priorities(const ArgReader& in, QueueSettings& s) {
  std::optional<uint64_t> max;
  WARREN_TRY_ASSIGN(max, in.integer("x-max-priority"));
  if (max && *max > 255) return in.invalid("x-max-priority", fmt::format("{{max_value_exceeded,{}}}", *max));
  if (max) s.max_priority = uint8_t(*max);
  return {};
}

Status read_single_active_consumer(const ArgReader& in, QueueSettings& s) {
  const FieldValue* v = in.find("x-single-active-consumer");
  if (!v) return {};
  const bool* on = v->as<bool>();
  if (!on)
    return in.invalid("x-single-active-consumer", fmt::format("{{unacceptable_type,{}}}", rabbit_type_name(*v)));
  s.single_active_consumer = *on;
  return {};
}

Status read_dedup(const ArgReader& in, QueueSettings& s) {
  const FieldValue* on = in.find("x-message-deduplication");
  if (!on) return {};
  const bool* enabled = on->as<bool>();
  if (!enabled) return in.invalid("x-message-deduplication", fmt::format("{{unacceptable_type,{}}}", rabbit_type_name(*on)));
  if (!*enabled) return {};
  DedupSettings d;
  const std::string* header = nullptr;
  WARREN_TRY_ASSIGN(header, in.string("x-deduplication-header"));
  if (header) d.header = *header;
  std::optional<uint64_t> size, ttl;
  WARREN_TRY_ASSIGN(size, in.integer("x-cache-size", false));
  WARREN_TRY_ASSIGN(ttl, in.integer("x-cache-ttl", false));
  if (size) d.cache_size = *size;
  if (ttl) d.cache_ttl_ms = *ttl;
  s.dedup = d;
  return {};
}

}  // namespace

Status apply_queue_arguments(Queue& q, const FieldTable& args) {
  ArgReader in(q, args);
  QueueSettings s;
  if (Status st = read_dead_letter(in, q); !st) return st;
  const std::string* type = nullptr;
  WARREN_TRY_ASSIGN(type, in.string("x-queue-type"));
  s.quorum = type && *type == "quorum";
  if (type && !s.quorum && *type != "classic")
    return in.invalid("x-queue-type", fmt::format("\"unsupported queue type '{}'\"", *type));
  if (s.quorum) {
    // A quorum queue is durable and shared by nature; Warren keeps it as a classic queue
    // that counts deliveries, with RabbitMQ's declaration rules.
    auto refuse = [&](std::string_view property) {
      return error(ReplyCode::precondition_failed,
                   fmt::format("invalid property '{}' for {}", property,
                               resource("queue", q.name, q.vhost)),
                   method::queue_declare);
    };
    if (in.find("x-max-priority"))
      return error(ReplyCode::precondition_failed,
                   fmt::format("invalid arg 'x-max-priority' for {} of queue type rabbit_quorum_queue",
                               resource("queue", q.name, q.vhost)),
                   method::queue_declare);
    if (!q.durable) return refuse("non-durable");
    if (q.exclusive) return refuse("exclusive-owner");
    if (q.auto_delete) return refuse("auto-delete");
  }
  WARREN_TRY_ASSIGN(s.message_ttl, in.integer("x-message-ttl"));
  WARREN_TRY_ASSIGN(s.expires, in.integer("x-expires", false));
  WARREN_TRY_ASSIGN(s.max_length, in.integer("x-max-length"));
  WARREN_TRY_ASSIGN(s.max_length_bytes, in.integer("x-max-length-bytes"));
  WARREN_TRY_ASSIGN(s.delivery_limit, in.integer("x-delivery-limit"));
  if (Status st = read_overflow(in, s); !st) return st;
  if (Status st = read_requeue_delay(in, s); !st) return st;
  if (Status st = read_dedup(in, s); !st) return st;
  if (Status st = read_priorities(in, s); !st) return st;
  if (Status st = read_single_active_consumer(in, s); !st) return st;
  q.settings = s;
  q.use_priorities(s.max_priority);
  return {};
}

#undef WARREN_TRY_ASSIGN

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
    if (same_arg_value(cur, rec)) continue;
    // RabbitMQ names the types only when one side is missing.
    auto describe = [&](const FieldValue* v) {
      return cur && rec ? fmt::format("'{}'", render_value(*v)) : describe_arg(v);
    };
    return inequivalent_arg(key, "queue", queue, vhost, describe(rec), describe(cur), method::queue_declare);
  }
  return {};
}

}  // namespace warren::core
