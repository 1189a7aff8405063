#include "amqp/codec.h"

namespace warren::amqp {
namespace {

constexpr uint32_t key(uint16_t class_id, uint16_t method_id) {
  return (uint32_t(class_id) << 16) | method_id;
}

template <size_t I = 0>
DecodedMethod decode_known(uint32_t id, wire::Reader& r, DecodedMethod out) {
  if constexpr (I < std::variant_size_v<AnyMethod>) {
    using M = std::variant_alternative_t<I, AnyMethod>;
    if (id != key(M::class_id, M::method_id)) return decode_known<I + 1>(id, r, std::move(out));
    M m;
    // Trailing bytes are tolerated, as RabbitMQ does: later protocol revisions append fields.
    if (!decode_arguments(r, m)) {
      out.outcome = DecodedMethod::Outcome::malformed;
      return out;
    }
    out.method = std::move(m);
    return out;
  } else {
    out.outcome = DecodedMethod::Outcome::unknown_method;
    return out;
  }
}

}  // namespace

DecodedMethod decode_method(std::string_view payload) {
  wire::Reader r(payload);
  DecodedMethod out;
  out.class_id = r.u16();
  out.method_id = r.u16();
  if (r.failed()) {
    out.outcome = DecodedMethod::Outcome::malformed;
    return out;
  }
  return decode_known(key(out.class_id, out.method_id), r, std::move(out));
}

}  // namespace warren::amqp
